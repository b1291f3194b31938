"""The design author's guide (docs/writing-a-design.md) against the code it describes.

The guide marks each machine-readable part with an HTML comment (``<!-- api: Toolkit -->``,
``<!-- fields: Episode -->``, ``<!-- example: PATH -->``...). These tests read those parts and
compare them with the classes, settings and commands themselves, so the guide cannot drift:
a new toolkit method, a renamed field, a changed default or an example that stops passing
fails here.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import random
import re
import shlex
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any, get_args

import pytest

from alma.cli import main
from alma.config import AlmaConfig
from alma.memory.check import (
    ALLOWED_ALMA,
    ALLOWED_LIBRARIES,
    DENIED_CALLS,
    DENIED_STDLIB,
    static_check,
)
from alma.memory.faiss_store import FaissVectorStore
from alma.memory.rendering import render_memory
from alma.memory.stores import Hit, KVStore, VectorStore
from alma.memory.toolkit import MemoryLLM, Toolkit
from alma.search.reference import HARNESS_ONLY
from alma.types import Episode, EpisodeStart, Outcome, OutcomeReason, Step, Usage

ROOT = Path(__file__).resolve().parents[1]
GUIDE_PATH = ROOT / "docs" / "writing-a-design.md"
GUIDE = GUIDE_PATH.read_text(encoding="utf-8")

#: How the guide writes special methods: ``len(store)``, ``key in kv``.
SPECIAL_NAMES = {"__len__": "len", "__contains__": "in", "__iter__": "iter", "__getitem__": "[]"}


# --------------------------------------------------------------------------- reading the guide


def marked(marker: str) -> str:
    """The block right after ``<!-- marker -->``: a table, a paragraph or a fenced block."""
    tag = f"<!-- {marker} -->\n"
    assert GUIDE.count(tag) == 1, f"the guide should mark exactly one block with {tag!r}"
    rest = GUIDE.split(tag, 1)[1]
    if rest.startswith("```"):
        end = rest.index("\n```", 3)
        return rest[: end + 4]
    return rest.split("\n\n", 1)[0]


def fenced(marker: str) -> str:
    """The body of the fenced code block after the marker."""
    block = marked(marker)
    assert block.startswith("```"), f"{marker}: expected a fenced block"
    return block.split("\n", 1)[1].rsplit("\n```", 1)[0] + "\n"


def table(marker: str) -> list[list[str]]:
    """The rows of the table after the marker (header and rule left out), cells stripped."""
    lines = [line for line in marked(marker).splitlines() if line.startswith("|")]
    assert len(lines) > 2, f"{marker}: expected a table"
    rows = []
    for line in lines[2:]:
        cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
        rows.append([cell.strip().replace("\\|", "|") for cell in cells])
    return rows


def code(cell: str) -> str:
    """The text of a cell's first inline code span."""
    match = re.search(r"`([^`]+)`", cell)
    assert match, f"no `code` in table cell {cell!r}"
    return match.group(1)


def code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


# --------------------------------------------------------------------------- reading the code


def public_members(cls: type, instance: object | None = None) -> set[str]:
    """What a design can reach on ``cls``: its public methods and properties, the special
    methods it writes as syntax, and the public attributes of a fresh instance."""
    names = {
        SPECIAL_NAMES.get(name, name)
        for name, value in vars(cls).items()
        if (not name.startswith("_") or name in SPECIAL_NAMES)
        and (callable(value) or isinstance(value, property | staticmethod | classmethod))
    }
    if instance is not None:
        names |= {name for name in vars(instance) if not name.startswith("_")}
    return names


def parameters(function: Any) -> str:
    """A call's parameters as the guide writes them: ``prompt, *, system=None``."""
    parts: list[str] = []
    star = False
    for parameter in list(inspect.signature(function).parameters.values())[1:]:  # no self
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        text = parameter.name
        if parameter.default is not inspect.Parameter.empty:
            text += f"={parameter.default!r}"
        parts.append(text)
    return ", ".join(parts)


def call_parameters(call: str) -> str:
    match = re.fullmatch(r"(?:await )?[\w.]+\((.*)\)", call)
    assert match, f"not a call: {call!r}"
    return match.group(1)


def field_rows(cls: type) -> list[tuple[str, str]]:
    """(name, type) of each dataclass field, then of each public property."""
    rows = [(f.name, str(f.type)) for f in dataclasses.fields(cls)]
    for name, value in vars(cls).items():
        if isinstance(value, property) and value.fget and not name.startswith("_"):
            rows.append((name, str(inspect.signature(value.fget).return_annotation)))
    return rows


# --------------------------------------------------------------------------- the API lists


def test_the_toolkit_table_lists_every_public_member() -> None:
    documented = [code(row[0]) for row in table("api: Toolkit")]
    harness = {code(row[0]) for row in table("api: Toolkit, harness only")}
    assert len(documented) == len(set(documented))
    assert set(documented) | harness == public_members(Toolkit, Toolkit())
    assert not set(documented) & harness
    assert harness == HARNESS_ONLY  # what the meta agent is told it must not call, too


def test_the_toolkit_calls_match_the_signatures() -> None:
    kit = Toolkit()
    for row in table("api: Toolkit"):
        name, call, returns = code(row[0]), code(row[1]), row[2]
        value = getattr(kit, name)
        if not callable(value):  # an attribute: ``toolkit.rng``
            assert call == f"toolkit.{name}"
            kind = type(value)
            assert f"{kind.__module__}.{kind.__qualname__}" in code_spans(returns)
            continue
        function = type(value).__call__ if isinstance(value, MemoryLLM) else getattr(Toolkit, name)
        assert call.startswith(f"toolkit.{name}(") or call.startswith(f"await toolkit.{name}(")
        assert call.startswith("await ") == inspect.iscoroutinefunction(function), name
        assert call_parameters(call) == parameters(function), name
        annotation = str(inspect.signature(function).return_annotation)
        if annotation != "Any":
            assert annotation.rsplit(".", 1)[-1] in returns, f"{name} returns {annotation}"
    assert isinstance(kit.rng, random.Random)


@pytest.mark.parametrize(
    ("marker", "cls", "instance"),
    [("api: VectorStore", VectorStore, VectorStore()), ("api: KVStore", KVStore, KVStore())],
)
def test_the_store_tables_match_the_stores(marker: str, cls: type, instance: object) -> None:
    rows = table(marker)
    assert {code(row[0]) for row in rows} == public_members(cls, instance)
    for row in rows:
        name, call = code(row[0]), code(row[1])
        value = getattr(cls, name, None)
        if callable(value):
            assert call_parameters(call) == parameters(value), f"{cls.__name__}.{name}"
            assert not inspect.iscoroutinefunction(value) and not call.startswith("await")


def test_the_faiss_vector_store_has_the_documented_methods() -> None:
    """The guide says ``vector_backend = "faiss"`` keeps the same API."""
    methods = public_members(VectorStore) - {"dim"}
    assert methods <= public_members(FaissVectorStore)
    for name in methods - set(SPECIAL_NAMES.values()):
        assert parameters(getattr(FaissVectorStore, name)) == parameters(getattr(VectorStore, name))


@pytest.mark.parametrize("cls", [EpisodeStart, Episode, Step, Outcome, Usage, Hit])
def test_the_field_tables_match_the_dataclasses(cls: type) -> None:
    rows = [(code(row[0]), code(row[1])) for row in table(f"fields: {cls.__name__}")]
    assert rows == field_rows(cls)


def test_the_outcome_reasons_are_all_listed() -> None:
    reasons = [code(row[0]) for row in table("values: OutcomeReason")]
    assert sorted(reasons) == sorted(get_args(OutcomeReason))


# --------------------------------------------------------------------------- limits and rules


def test_the_limits_are_the_configured_defaults() -> None:
    config = AlmaConfig()
    keys = set()
    for row in table("limits"):
        key = code(row[2])
        section, name = key.split(".")
        number = re.match(r"\d+(?:\.\d+)?", row[1])
        assert number, f"{key}: no default in {row[1]!r}"
        assert float(number.group()) == getattr(getattr(config, section), name), key
        keys.add(key)
    sandbox_limits = {f"sandbox.{name}" for name in type(config.sandbox).model_fields} - {
        "sandbox.mode",
        "sandbox.unsafe_no_sandbox",
    }
    required = {"eval.retrieve_timeout_s", "eval.update_timeout_s", "agent.memory_chars"}
    assert sandbox_limits | required <= keys
    cap = config.agent.memory_chars
    assert f"`agent.memory_chars` characters ({cap} by default)" in GUIDE


def test_the_import_rules_are_the_checker_rules() -> None:
    assert set(code_spans(marked("imports: allowed"))) == {*ALLOWED_LIBRARIES, *ALLOWED_ALMA}
    assert set(code_spans(marked("imports: discouraged"))) == DENIED_STDLIB
    assert set(code_spans(marked("calls: discouraged"))) == DENIED_CALLS


def test_the_rendering_example_is_what_the_agent_sees() -> None:
    returned = ast.literal_eval(fenced("rendering: returned"))
    text, truncated = render_memory(returned, AlmaConfig().agent.memory_chars)
    assert not truncated
    assert text + "\n" == fenced("rendering: shown")
    heading = marked("prompt: memory heading").removeprefix("> ").strip()
    template = resources.files("alma.agent").joinpath("prompts", "memory.txt").read_text("utf-8")
    assert heading in template


def test_the_contract_sketch_passes_the_static_checks() -> None:
    sketch = GUIDE.split("## The contract", 1)[1].split("```python\n", 1)[1].split("\n```", 1)[0]
    assert "class MyMemory(MemoryDesign)" in sketch
    assert static_check(sketch) == []


# --------------------------------------------------------------------------- the worked examples


def examples() -> list[str]:
    return re.findall(r"<!-- example: (\S+) -->", GUIDE)


def test_the_guide_shows_the_example_files_as_they_are() -> None:
    paths = examples()
    assert len(paths) >= 2
    for path in paths:
        assert fenced(f"example: {path}") == (ROOT / path).read_text(encoding="utf-8")
    sources = [(ROOT / path).read_text(encoding="utf-8") for path in paths]
    assert any("toolkit.llm(" in s and "toolkit.vectors(" in s for s in sources)


def guide_commands(path: str) -> list[list[str]]:
    """The ``alma`` commands the guide gives right after an example (without ``alma``)."""
    after = GUIDE.split(f"<!-- example: {path} -->", 1)[1]
    block = after.split("```bash\n", 1)[1].split("\n```", 1)[0]
    return [shlex.split(line)[1:] for line in block.splitlines() if line.startswith("alma ")]


def run_json(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, Any]:
    code = main(args)
    out = capsys.readouterr().out
    return code, json.loads(out)


@pytest.mark.parametrize("path", examples())
def test_an_example_passes_check_and_evaluates(
    path: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    commands = guide_commands(path)
    assert [args[0] for args in commands] == ["check", "eval"]
    assert all(path in args for args in commands)
    # the guide names the files from the repository's root; the test runs from its own folder
    check, evaluate = ([str(ROOT / a) if a == path else a for a in args] for args in commands)
    assert {"--domain", "toy", "--agent-model", "scripted", "--quick"} <= set(evaluate)

    code, report = run_json(capsys, [*check, "--json"])
    assert code == 0 and report["passed"], report
    assert report["findings"] == []  # not even a warning
    steps = [code_spans(row[0])[0] for row in table("check: smoke steps")]
    assert list(report["smoke"]) == steps

    run_dir = str(tmp_path / "run")
    code, result = run_json(capsys, [*evaluate, "--run-dir", run_dir, "--json"])
    assert code == 0 and result["status"] == "done", result
    memory = result["memory"]
    assert memory["retrieve_calls"] > 0 and memory["update_calls"] > 0
    assert memory["retrieve_errors"] == memory["update_errors"] == memory["truncated"] == 0


def test_the_examples_beat_no_memory_with_the_recalling_agent(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The guide says so: the scripted agent that follows its notes wins more with them."""
    designs = [str(ROOT / path) for path in examples()]
    args = ["compare", "--domain", "toy", "--memories", ",".join(["no_memory", *designs])]
    args += ["--agent-model", "scripted:recall", "--tasks", "20", "--json"]
    code, result = run_json(capsys, [*args, "--run-dir", str(tmp_path / "run")])
    assert code == 0
    scores = {row["design"]: row for row in result["rows"]}
    assert len(scores) == 1 + len(designs)
    for path in examples():
        row = scores[Path(path).stem]
        assert row["status"] == "done" and row["gain"] > 0 and row["p_value"] < 0.05, row


def test_the_driving_snippet_runs() -> None:
    snippet = fenced("snippet: drive a design")
    done = subprocess.run(
        [sys.executable, "-c", snippet],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    retrieved = ast.literal_eval(done.stdout.strip())
    lessons = retrieved["lessons_from_similar_tasks"]
    assert lessons and {"task", "outcome", "lesson"} <= set(lessons[0])
    json.dumps(retrieved)


def test_the_contents_links_point_at_headings() -> None:
    headings = re.findall(r"^#{2,3} (.+)$", GUIDE, flags=re.MULTILINE)
    slugs = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}
    anchors = re.findall(r"\]\(#([^)]+)\)", GUIDE)
    assert anchors and set(anchors) <= slugs
