"""Designs in the original ALMA format: import, evaluation in the sandbox, export.

The designs under tests/data/alma_original/ are unchanged copies of the original system's
baselines (see SOURCE.md there). They are evaluated on ``toy`` with the scripted models through
the CLI, so their code runs in the sandbox worker only.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from alma.cli import main
from alma.llm.embeddings import HashEmbedder
from alma.llm.scripted import Rule, ScriptedLLM
from alma.memory import Toolkit, alma_format
from alma.memory.baselines.trajectory_retrieval import TrajectoryRetrieval
from alma.memory.check import static_check
from alma.memory.compat import adapter, models
from alma.memory.loading import (
    DesignLoadError,
    design_id,
    load_class,
    normalise_source,
    read_design,
    reference_design,
)
from alma.memory.toolkit import ModelServices
from alma.types import Episode, EpisodeStart, Outcome, Step

ORIGINALS = Path(__file__).parent / "data" / "alma_original"
MAPPED = ["no_mem", "similarity", "insights_traj_sim", "pure_insights"]


def original(name: str) -> Path:
    return ORIGINALS / f"memo_structure_{name}.py"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------- import


@pytest.mark.parametrize("name", MAPPED)
def test_baseline_imports_as_a_normal_alma_design(name: str) -> None:
    design = alma_format.import_design(original(name))
    assert design.origin == "imported" and design.name == f"memo_structure_{name}"
    assert design.id == design_id(design.source)
    assert alma_format.import_design(original(name)).id == design.id  # a content id
    assert alma_format.import_design(original(name), "mine").id == design.id
    assert read_design(original(name)) == design  # --design PATH.py recognises the format
    errors = [f for f in static_check(design.source) if f.severity == "error"]
    assert errors == []


def test_gmemory_is_refused_naming_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DesignLoadError) as caught:
        alma_format.import_design(original("g_memory"))
    message = str(caught.value)
    for piece in ("langchain_chroma", "finch", "memo_test.prompt.gmemory_prompt"):
        assert piece in message
    assert "\n" not in message
    code, out, err = run(
        capsys, "eval", "--domain", "toy", "--design", str(original("g_memory")), "--quick"
    )
    assert code == 2 and "langchain_chroma" in err and "Traceback" not in err + out


def test_unmapped_names_and_relative_imports_are_named(tmp_path: Path) -> None:
    path = tmp_path / "odd.py"
    path.write_text(
        "from agents.memo_structure import MemoStructure\n"
        "from utils.hire_agent import Agent, TokenTracker\n"
        "from .helpers import thing\n"
        "from agents.base import GLOBAL_TOKEN_TRACKER\n"
        "class Odd(MemoStructure):\n"
        "    async def general_retrieve(self, recorder):\n        return {}\n"
        "    async def general_update(self, recorder):\n        return None\n"
    )
    with pytest.raises(DesignLoadError) as caught:
        alma_format.import_design(path)
    assert str(caught.value).endswith("utils.hire_agent.TokenTracker, .helpers, agents.base")


def test_files_that_are_not_alma_format_are_refused(tmp_path: Path) -> None:
    native = tmp_path / "native.py"
    native.write_text(reference_design("no_memory").source)
    with pytest.raises(DesignLoadError, match="not an ALMA-format design"):
        alma_format.import_design(native)
    assert read_design(native).source == native.read_text()  # left as it is
    two = tmp_path / "two.py"
    two.write_text(
        "from agents.memo_structure import MemoStructure\n"
        "class A(MemoStructure):\n    pass\nclass B(MemoStructure):\n    pass\n"
    )
    with pytest.raises(DesignLoadError, match="defines 2 MemoStructure subclasses"):
        alma_format.import_design(two)


# --------------------------------------------------------------------------- evaluation


@pytest.mark.parametrize("name", MAPPED)
def test_baseline_evaluates_on_toy_in_the_sandbox(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "eval", "--domain", "toy", "--design", str(original(name)), "--quick", "--json"
    )
    result = json.loads(out)
    assert code == 0 and result["status"] == "done"
    memory = result["memory"]
    assert memory["retrieve_errors"] == 0 and memory["update_errors"] == 0
    assert memory["update_calls"] == 2 and memory["retrieve_calls"] > 0
    calls = result["usage"]["memory"]["calls"]
    assert (calls == 0) if name == "no_mem" else (calls > 0)  # metered like any design call


SNEAKY = """
from pathlib import Path

for _where in {targets!r}:
    try:
        Path(_where).write_text("ran here")
    except OSError:
        pass

from agents.memo_structure import MemoStructure


class Sneaky(MemoStructure):
    async def general_retrieve(self, recorder):
        return {{"seen": recorder.init.get("goal", "")}}

    async def general_update(self, recorder):
        return None
"""


def test_original_code_runs_only_in_the_worker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    targets = [tmp_path / "ran.txt", Path.cwd() / "ran-too.txt"]
    path = tmp_path / "sneaky.py"
    path.write_text(SNEAKY.format(targets=[str(t) for t in targets]))
    code, out, _ = run(
        capsys, "eval", "--domain", "toy", "--design", str(path), "--quick", "--json"
    )
    result = json.loads(out)
    assert code == 0 and result["status"] == "done" and result["memory"]["retrieve_errors"] == 0
    assert [t for t in targets if t.exists()] == []
    assert not [m for m in sys.modules if m.startswith("alma_original_")]


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize("name", MAPPED)
def test_export_gives_back_the_original(name: str) -> None:
    design = alma_format.import_design(original(name))
    exported = alma_format.export_design(design)
    assert exported == normalise_source(original(name).read_text())
    assert alma_format.wrap(exported, design.name).id == design.id  # and imports back the same


def test_export_of_a_native_design_says_why_not() -> None:
    with pytest.raises(alma_format.ExportError, match="written for alma's toolkit"):
        alma_format.export_design(reference_design("trajectory_retrieval"))


def test_literal_survives_quotes_and_backslashes(tmp_path: Path) -> None:
    source = (
        "from agents.memo_structure import MemoStructure\n"
        "A = '''x \\\\ y \\n'''\nB = r'\\d+'\n"
        "class C(MemoStructure):\n"
        "    async def general_retrieve(self, recorder):\n        return {'a': A, 'b': B}\n"
        "    async def general_update(self, recorder):\n        return None\n"
    )
    path = tmp_path / "quotes.py"
    path.write_text(source)
    assert alma_format.export_design(alma_format.import_design(path)) == source


# --------------------------------------------------------------------------- the layer


def toy_start(task: str, observation: str, domain: str = "toy") -> EpisodeStart:
    return EpisodeStart(domain=domain, task_description=task, observation=observation)


def toy_episode(start: EpisodeStart, actions: list[str], success: bool = True) -> Episode:
    steps = tuple(
        Step(
            observation=start.observation if i == 0 else f"after {actions[i - 1]}",
            thought="",
            action=action,
            reward=0.5,
        )
        for i, action in enumerate(actions)
    )
    return Episode(
        start=start,
        steps=steps,
        outcome=Outcome(success=success, score=float(success), steps=len(steps)),
        final_observation="You win!" if success else "Nothing happens.",
    )


def toolkit(llm: ScriptedLLM | None = None) -> Toolkit:
    return Toolkit(ModelServices(llm or ScriptedLLM(), HashEmbedder()))


def built(name: str, kit: Toolkit) -> Any:
    cls = load_class(alma_format.import_design(original(name)))
    return cls(kit)


@pytest.mark.parametrize("domain", ["toy", "alfworld", "minihack"])
def test_the_recorder_is_shaped_as_the_original_fills_it(domain: str) -> None:
    start = toy_start("put a mug in the sink", "You are in a kitchen.", domain)
    recorder = adapter.episode_recorder(toy_episode(start, ["go to sink", "put mug in sink"]))
    assert recorder.reward == 1.0 and len(recorder.steps) == 2
    last = recorder.steps[-1]
    assert last["action_took"] == "put mug in sink" and last["scores"] == 0.5 and last["dones"]
    assert recorder.steps[0]["dones"] is False
    if domain == "alfworld":
        assert recorder.init["obs"].endswith("Your task is to: put a mug in the sink")
        assert last["obs"] == "You win!"
    elif domain == "minihack":
        assert recorder.init["goal"] == "put a mug in the sink"
        assert last["long_term_context"] == "You win!"
    else:
        assert recorder.init == {"obs": "You are in a kitchen.", "goal": "put a mug in the sink"}
        assert recorder.steps[0]["obs"] == "after go to sink"


TASKS = [
    ("find the red key and unlock the chest", "You are in a dusty hall. A chest stands here."),
    ("cook an egg on the stove", "Kitchen. There is a stove and a fridge."),
    ("water the plants in the garden", "Garden. A watering can lies on the grass."),
    ("collect the gold coin", "Cellar. It is dark and damp."),
]
QUERIES = [
    ("find the red key and unlock the door", "You are in a dusty hall. A door stands here."),
    ("cook two eggs on the stove", "Kitchen. There is a stove."),
    ("water the flowers in the garden", "Garden. The grass is wet."),
    ("collect the silver coin", "Cellar. It is dark."),
]


def test_similarity_retrieves_what_trajectory_retrieval_retrieves() -> None:
    """The original's similarity baseline and alma's trajectory retrieval (one trajectory)
    follow the same idea: the same store and query give the same trajectory."""

    async def scenario() -> None:
        imported = built("similarity", toolkit())
        reference = TrajectoryRetrieval(toolkit(), k=1)
        for number, (task, observation) in enumerate(TASKS):
            episode = toy_episode(toy_start(task, observation), [f"act {number}", "finish"])
            await imported.update(episode)
            await reference.update(episode)
        for task, observation in QUERIES:
            start = toy_start(task, observation)
            theirs = (await imported.retrieve(start))["retrieved_similar_tasks"]
            ours = (await reference.retrieve(start))["similar_episodes"][0]
            assert theirs["initial_env"]["goal"] == ours["task"]
            assert [s["action_took"] for s in theirs["steps"]] == ours["actions"]
        assert (
            len(
                {
                    (await reference.retrieve(toy_start(*q)))["similar_episodes"][0]["task"]
                    for q in QUERIES
                }
            )
            == 4
        )  # the queries do pick different trajectories

    asyncio.run(scenario())


def test_a_built_memory_pickles_and_keeps_learning() -> None:
    rules = [Rule("CHEATSHEET", "<cheatsheet>look before you leap</cheatsheet>")]

    async def scenario() -> None:
        llm = ScriptedLLM(rules=rules)
        memory = built("pure_insights", toolkit(llm))
        await memory.update(toy_episode(toy_start(*TASKS[0]), ["open chest"]))
        assert llm.calls == 1
        copy = pickle.loads(pickle.dumps(memory))
        copy.toolkit.bind(ModelServices(llm, HashEmbedder()))
        retrieved = await copy.retrieve(toy_start(*TASKS[1]))
        assert retrieved == {"insights": "<cheatsheet>look before you leap</cheatsheet>"}
        await copy.update(toy_episode(toy_start(*TASKS[1]), ["cook egg"]))
        assert llm.calls == 2

    asyncio.run(scenario())


def test_agent_schema_and_embedding_helpers() -> None:
    schema = {
        "type": "object",
        "properties": {"rule": {"type": "string"}, "score": {"type": "integer"}},
        "required": ["rule", "score"],
    }
    llm = ScriptedLLM(rules=[Rule("rate", {"rule": "be brief", "score": 7})])

    async def scenario() -> None:
        kit = toolkit(llm)
        with models.bound(kit):
            agent = models.Agent("You rate rules.", output_schema=schema, model="gpt-4o-mini")
            assert await agent.ask("rate this") == {"rule": "be brief", "score": 7}
            assert "json schema" in agent.messages[0]["content"]
            plain = models.Agent("You talk.")
            assert await plain.ask("hello", with_history=True) == "ok"
            embedder = models.Embedding()
            one = await embedder.get_embedding("red key")
            many = await embedder.get_batch_embeddings(["red key", "blue door"])
            assert one == many[0] and isinstance(one[0], float)
            same = await models.Embedding.compute_similarity(one, many[0])
            assert same == pytest.approx(1.0)
            sims = await models.Embedding.compute_one_to_group_similarity(one, many)
            assert sims[0] > sims[1]
            with pytest.raises(models.UnmappedCallError, match="on the event loop"):
                embedder.embed_query("red key")
            from_thread = await asyncio.to_thread(embedder.embed_query, "red key")
            assert from_thread == one and threading.active_count() >= 1
        with pytest.raises(models.UnmappedCallError):
            await models.Embedding().get_embedding("outside any call")

    asyncio.run(scenario())


def test_import_and_export_design_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from alma.search.archive import Archive
    from alma.store import RunStore

    original = ORIGINALS / "memo_structure_similarity.py"
    written = tmp_path / "similarity.py"
    assert main(["import", str(original), "--out", str(written), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    design = read_design(written)
    assert shown["id"] == design.id and design.origin == "imported"
    store = RunStore(tmp_path / "run")
    try:
        Archive(store).add_design(design, parent=None, iteration=0, idea="imported")
    finally:
        store.close()
    exported = tmp_path / "back.py"
    args = ["export-design", str(tmp_path / "run"), design.id[:8], "--out", str(exported)]
    assert main(args) == 0
    # the original's code as the content id reads it (line ends normalised)
    assert exported.read_text(encoding="utf-8") == normalise_source(
        original.read_text(encoding="utf-8")
    )
    capsys.readouterr()
    assert main([*args[:3], "--format", "dspy"]) == 2
    assert "unknown design format 'dspy'" in capsys.readouterr().err
