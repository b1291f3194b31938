"""The meta agent's steps, their prompts, the contract reference and the scripted meta model."""

from __future__ import annotations

import ast
import inspect
import json
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from alma.domains.toy import ToyDomain
from alma.errors import MalformedOutputError
from alma.llm.embeddings import HashEmbedder
from alma.llm.scripted import POLICIES, ScriptedLLM, scripted_from_spec
from alma.llm.scripted_designs import (
    INVALID_DESIGNS,
    UNFIXABLE,
    VALID_DESIGNS,
    VARIANTS,
    choose_design,
    design_source,
)
from alma.llm.scripted_meta import meta_policy, scripted_meta_llm
from alma.llm.tokens import approx_message_tokens
from alma.memory import MemoryDesign, Toolkit
from alma.memory.base import MemoryDesign as BaseDesign
from alma.memory.loading import DesignLoadError, DesignSource, load_class
from alma.memory.stores import Hit, KVStore, VectorStore
from alma.memory.toolkit import MemoryLLM, ModelServices
from alma.search.episode_sample import EpisodeView, as_view, sample_episodes
from alma.search.meta_agent import MetaAgent
from alma.search.proposal import (
    Analysis,
    Change,
    Implementation,
    RetrievedPart,
    parse_implementation,
    render_implementation,
    snake_case,
    strip_fences,
)
from alma.search.reference import (
    ALLOWED_IMPORTS,
    HARNESS_ONLY,
    class_stub,
    contract_reference,
    memory_chars,
    public_methods,
    skeleton_design,
    system_text,
    toolkit_attributes,
)
from alma.store import RunStore
from alma.types import Completion, Episode, EpisodeStart, Message, Outcome, Step, Task, to_dict

DOMAIN = ToyDomain.description
PARENT = design_source("keyword_episodes", 2)


# --------------------------------------------------------------------------- helpers


def toy_episode(number: int, *, success: bool, steps: int = 4, obs_chars: int = 40) -> Episode:
    start = EpisodeStart(
        "toy", f"Find the golden coin number {number} and take it.", "You are in the hall."
    )
    actions = [f"go north {index}" for index in range(steps - 1)] + ["take golden coin"]
    observation = "You are in a room. " + "x" * obs_chars
    return Episode(
        start=start,
        steps=tuple(
            Step(start.observation if index == 0 else observation, "thinking", action)
            for index, action in enumerate(actions)
        ),
        outcome=Outcome(success, float(success), steps, "success" if success else "step_limit"),
        final_observation="You win!" if success else "Nothing happens.",
        memory={"similar_episodes": [{"task": "earlier", "actions": ["go north"]}]},
    )


def tokens(messages: Sequence[Message]) -> int:
    return approx_message_tokens(m.content for m in messages)


def toolkit() -> Toolkit:
    return Toolkit(ModelServices(ScriptedLLM(), HashEmbedder()))


async def exercise(design_class: type[MemoryDesign]) -> dict[str, Any]:
    """Build, update twice (and with an empty episode), retrieve, pickle: what the smoke run
    does. Returns what retrieve gave."""
    design = design_class(toolkit())
    await design.update(toy_episode(1, success=True))
    await design.update(toy_episode(2, success=False))
    await design.update(
        Episode(EpisodeStart("toy", "empty", "nothing"), (), Outcome(False, 0.0, 0, "error"))
    )
    start = EpisodeStart("toy", "Find the golden coin number 3 and take it.", "You are in a hall.")
    memory = await design.retrieve(start)
    assert isinstance(memory, dict)
    json.dumps(memory)
    copy = pickle.loads(pickle.dumps(design))
    copy.toolkit.bind(ModelServices(ScriptedLLM(), HashEmbedder()))
    assert await copy.retrieve(start) == memory
    return memory


class Recording:
    """An LLM that records each call and answers with the scripted meta policy."""

    def __init__(self) -> None:
        self.inner = scripted_meta_llm()
        self.model = "recording"
        self.calls: list[tuple[type[BaseModel] | None, float | None, list[Message]]] = []

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: type[BaseModel] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
    ) -> Completion:
        self.calls.append((schema, temperature, list(messages)))
        return await self.inner.complete(messages, schema=schema, temperature=temperature)


# --------------------------------------------------------------------------- reference


def test_contract_reference_names_everything_the_code_defines() -> None:
    reference = contract_reference()
    names: set[str] = set(toolkit_attributes()) | {"llm", "rng"}
    for cls in (BaseDesign, VectorStore, KVStore, MemoryLLM):
        names |= {name for name, _ in public_methods(cls)}
    names |= {name for name, _ in public_methods(Toolkit)}
    assert {"embed", "vectors", "kv", "graph", "add", "search", "delete", "set"} <= names
    for name in names:
        assert name in reference, name
    for cls in (Hit, EpisodeStart, Step, Outcome, Episode):
        assert f"class {cls.__name__}" in reference
        for field in cls.__dataclass_fields__:
            assert f"    {field}:" in reference, (cls.__name__, field)
    for parameter in inspect.signature(MemoryLLM.__call__).parameters:
        assert parameter in reference
    for module in ALLOWED_IMPORTS:
        assert f"`{module}`" in reference
    for harness in HARNESS_ONLY:
        assert f"`{harness}`" in reference  # named, as off limits
    assert f"{memory_chars()} characters" in reference
    assert "async def retrieve(self, start: EpisodeStart) -> dict[str, Any]" in reference
    assert contract_reference() is reference  # cached


def test_class_stubs_follow_the_code() -> None:
    class Gadget:
        """A thing."""

        def frobnicate(self, amount: int, *, loud: bool = False) -> str:
            """Frobnicate loudly or not."""
            return ""

        async def fetch(self, key: str) -> None: ...

        def _private(self) -> None: ...

    stub = class_stub(Gadget)
    assert "def frobnicate(self, amount: int, *, loud: bool = False) -> str:" in stub
    assert "Frobnicate loudly or not." in stub
    assert "async def fetch(self, key: str) -> None: ..." in stub
    assert "_private" not in stub
    for name, method in public_methods(VectorStore):
        line = next(line for line in contract_reference().splitlines() if f"def {name}(" in line)
        for parameter in inspect.signature(method).parameters:
            assert parameter in line, (name, parameter)


async def test_the_skeleton_in_the_reference_is_a_valid_design() -> None:
    assert skeleton_design().strip() in contract_reference()
    design_class = load_class(DesignSource("skeleton", skeleton_design()))
    memory = await exercise(design_class)
    assert memory["lessons"]


# --------------------------------------------------------------------------- steps


async def test_each_step_returns_a_validated_object() -> None:
    llm = Recording()
    meta = MetaAgent(llm, token_budget=40_000)
    episodes = [to_dict(toy_episode(n, success=n % 2 == 0)) for n in range(6)]

    analysis = await meta.analyse(PARENT, "keyword_episodes_v2", 0.4, 0.3, episodes, DOMAIN)
    assert isinstance(analysis, Analysis)
    assert [change.priority for change in analysis.changes] == [1, 2]
    assert [part.part for part in analysis.retrieved_parts] == ["similar_episodes"]
    assert "6 episodes shown, 3 solved" in analysis.learned_from_memory

    child = await meta.implement(PARENT, analysis, DOMAIN, parent_name="keyword_episodes_v2")
    first = await meta.from_scratch(DOMAIN)
    fixed = await meta.repair(design_source("keyword_episodes_syntax_error", 3), "boom", DOMAIN)
    for answer in (child, first, fixed):
        assert isinstance(answer, Implementation)
        assert answer.name == snake_case(answer.name) and "\n" not in answer.idea
        assert not answer.code.lstrip().startswith("```")
    assert fixed.code == design_source("keyword_episodes", 3)

    schemas = [schema for schema, _, _ in llm.calls]
    assert schemas == [Analysis, None, None, None]  # code is written as text, not JSON
    temperatures = [temperature for _, temperature, _ in llm.calls]
    assert temperatures == [0.2, 0.7, 0.8, 0.2]
    # the system message is the same for every step: one prompt-cache prefix
    systems = {messages[0].content for _, _, messages in llm.calls}
    assert len(systems) == 1
    (system,) = systems
    assert contract_reference().strip() in system and DOMAIN.strip() in system


async def test_the_prompts_carry_what_each_step_needs() -> None:
    meta = MetaAgent(scripted_meta_llm())
    analysis = Analysis(
        learned_from_memory="the agent followed the listed actions",
        retrieved_parts=[RetrievedPart(part="similar_episodes", label="useful", why="ep 2")],
        content_problems=["actions of failures are shown as plans"],
        structure_problems=["no dedup"],
        changes=[
            Change(priority=2, what="dedupe records", why="duplicates"),
            Change(priority=1, what="show successes only", why="failures mislead"),
        ],
    )
    _, user = meta.implement_messages(PARENT, analysis, DOMAIN, parent_name="kw")
    text = user.content
    assert text.startswith("# Implement a new memory design")
    assert PARENT.strip() in text
    assert text.index("show successes only") < text.index("dedupe records")  # by priority
    assert "[useful] similar_episodes" in text and "no dedup" in text
    assert f"{memory_chars()}" in text  # the memory cap
    _, scratch = meta.from_scratch_messages(DOMAIN)
    assert scratch.content.startswith("# Write a first memory design")
    _, repair = meta.repair_messages(design_source("success_plans", 1), "Traceback: x", DOMAIN)
    assert repair.content.startswith("# Repair memory design `success_plans`")
    assert "Traceback: x" in repair.content


async def test_a_model_without_a_parsed_answer_is_an_error() -> None:
    class Empty:
        model = "empty"

        async def complete(self, messages: Sequence[Message], **_: Any) -> Completion:
            return Completion(text="{}", parsed=None)

    with pytest.raises(MalformedOutputError, match=r"gave no valid design: .*no code block"):
        await MetaAgent(Empty()).from_scratch(DOMAIN)
    with pytest.raises(MalformedOutputError, match="no valid Analysis"):
        await MetaAgent(Empty()).analyse(PARENT, "p", 0.1, 0.0, [], DOMAIN)


CODE = 'class Notes(MemoryDesign):\n    """Keeps notes per task."""\n\n    x = 1\n'


@pytest.mark.parametrize(
    ("answer", "name", "idea"),
    [
        (f"name: notes_v2\nidea: keeps notes\n\n```python\n{CODE}```\n", "notes_v2", "keeps notes"),
        (
            f"Sure!\n\n**Name:** `Notes V2`\n- **Idea**: keeps notes\n\n"
            f"```python\n{CODE}```\nDone.",
            "notes_v2",
            "keeps notes",
        ),
        (f"```python\n{CODE}```", "notes", "Keeps notes per task."),  # no header
        (CODE, "notes", "Keeps notes per task."),  # no fence: the whole answer is code
        (f"name: cut\nidea: cut short\n```python\n{CODE}    def retr", "cut", "cut short"),
        # the longest block is the module; a short one in the prose is not
        (f"name: n\nidea: i\nUse `x`:\n```\nx\n```\n```python\n{CODE}```", "n", "i"),
    ],
)
def test_a_text_answer_gives_the_design(answer: str, name: str, idea: str) -> None:
    written = parse_implementation(answer)
    assert (written.name, written.idea) == (name, idea)
    assert written.code.startswith("class Notes(MemoryDesign):")
    assert "```" not in written.code and written.code.endswith("\n")
    assert parse_implementation(render_implementation(written)) == written


@pytest.mark.parametrize("answer", ["", "I cannot write this.", "name: x\nidea: y\n"])
def test_a_text_answer_without_code_is_malformed(answer: str) -> None:
    with pytest.raises(MalformedOutputError, match="no code block"):
        parse_implementation(answer)


# --------------------------------------------------------------------------- budget


def test_a_huge_sample_is_cut_to_the_budget_but_never_the_code_or_contract() -> None:
    budget = 12_000
    meta = MetaAgent(scripted_meta_llm(), token_budget=budget)
    huge_memory = {"notes": ["n" * 500 for _ in range(60)]}
    episodes = []
    for number in range(200):
        episode = to_dict(toy_episode(number, success=number % 5 == 0, steps=150, obs_chars=500))
        episode["memory"] = {**huge_memory, "id": number}  # every dump differs
        episodes.append(episode)
    system, user = meta.analyse_messages(PARENT, "kw", 0.2, 0.1, episodes, DOMAIN)
    assert tokens([system, user]) <= budget
    assert contract_reference().strip() in system.content
    assert PARENT.strip() in user.content
    shown = user.content.count("### Episode ")
    assert 0 < shown < 200
    assert f"{shown} of 200 sampled episodes" in user.content
    assert "SUCCESS" in user.content and "FAILURE" in user.content  # both kinds kept
    assert "lines omitted" in user.content and "characters omitted" in user.content


def test_a_small_sample_is_shown_whole_and_in_detail() -> None:
    meta = MetaAgent(scripted_meta_llm(), token_budget=40_000)
    episodes = [to_dict(toy_episode(n, success=n == 0)) for n in range(3)]
    _, user = meta.analyse_messages(PARENT, "kw", 0.5, 0.5, episodes, DOMAIN)
    text = user.content
    assert "All 3 sampled episodes" in text
    assert text.index("Episode 1: FAILURE") < text.index("Episode 2: SUCCESS")  # alternating
    assert "go north 0 -> You are in a room." in text and "[thought: thinking]" in text
    assert "the same as in episode 1" in text  # a repeated memory dump is shown once
    assert "- gain over the reference: +0.000" in text


def test_no_room_for_episodes_leaves_code_and_contract_whole() -> None:
    meta = MetaAgent(scripted_meta_llm(), token_budget=100)
    episodes = [to_dict(toy_episode(1, success=True))]
    system, user = meta.analyse_messages(PARENT, "kw", None, None, episodes, DOMAIN)
    assert contract_reference().strip() in system.content and PARENT.strip() in user.content
    assert "### Episode" not in user.content
    assert "0 of 1 sampled episodes" in user.content
    assert "score: not evaluated" in user.content


def test_episodes_in_flat_form_and_repeated_steps() -> None:
    view = EpisodeView.from_dict(
        {
            "task": "open the box",
            "success": False,
            "actions": ["look"] + ["go east"] * 5,
            "memory": {},
            "phase": "deploy",
        }
    )
    assert view.step_count == 6 and view.extras == (("phase", "deploy"),)
    meta = MetaAgent(scripted_meta_llm())
    _, user = meta.analyse_messages(PARENT, "kw", 0.0, 0.0, [{"task": "t", "steps": 3}], DOMAIN)
    assert "(no steps recorded)" in user.content
    flat = {
        "task": "open the box",
        "success": False,
        "actions": ["look"] + ["go east"] * 5,
        "invalid_actions": 2,
    }
    _, user = meta.analyse_messages(PARENT, "kw", 0.0, 0.0, [flat], DOMAIN)
    assert "2-6. go east (x5)" in user.content
    assert "(6 steps, 2 not admissible)" in user.content


def test_a_long_error_report_is_cut_to_the_budget() -> None:
    meta = MetaAgent(scripted_meta_llm(), token_budget=8_000)
    report = "HEAD of the report\n" + "noise line\n" * 100_000 + "TAIL: ValueError: bad"
    messages = meta.repair_messages(PARENT, report, DOMAIN)
    assert tokens(messages) <= 8_000
    assert "HEAD of the report" in messages[1].content
    assert "TAIL: ValueError: bad" in messages[1].content
    assert PARENT.strip() in messages[1].content


# --------------------------------------------------------------------------- a run's sample


def test_a_recorded_episode_reads_as_its_json_form_does() -> None:
    cut_short = Episode(
        EpisodeStart("toy", "open the box", "a box"), (), Outcome(False, 0.0, 0, "error", "boom")
    )
    for episode in (toy_episode(3, success=False, steps=6), cut_short):
        typed = EpisodeView.from_episode(episode, phase="deploy")
        assert typed == EpisodeView.from_dict({**to_dict(episode), "phase": "deploy"})
        assert as_view(episode) == EpisodeView.from_dict(to_dict(episode))
        assert as_view(typed) is typed
    assert EpisodeView.from_episode(cut_short).error == "boom"


def test_the_sample_alternates_deploy_failures_and_successes(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    task = Task("toy-1", "train", "find the coin")
    played = [
        ("build", True), ("deploy", True), ("deploy", True), ("deploy", False),
        ("build", False), ("deploy", True), ("deploy", False),
    ]  # fmt: skip
    for number, (phase, success) in enumerate(played):
        episode = toy_episode(number, success=success)
        data = {"phase": phase, "repeat": number % 2, "episode": to_dict(episode)}
        store.add_episode("toy", task, episode, label="eval-1", data=data)
    alone = toy_episode(99, success=False)
    store.add_episode("toy", task, alone, label="play")  # an episode outside an evaluation

    sample = sample_episodes(store, "eval-1", limit=4)
    numbers = [int(view.task.split("number ")[1].split()[0]) for view in sample]
    assert numbers == [6, 2, 3, 1]  # failures first; each kind by repeat, then as played
    assert all(("phase", "deploy") in view.extras for view in sample)
    assert len(sample_episodes(store, "eval-1", limit=50)) == 5  # build episodes left out
    assert sample_episodes(store, None, limit=4) == []

    recorded = store.episodes("eval-1")
    assert [(r.phase, r.repeat) for r in recorded][:3] == [
        ("build", 0),
        ("deploy", 1),
        ("deploy", 0),
    ]
    assert recorded[3].episode == toy_episode(3, success=False)  # typed, as it was played
    (single,) = store.episodes("play")
    assert (single.phase, single.repeat, single.task_id, single.episode) == ("", 0, "toy-1", alone)
    store.close()


def test_the_system_text_is_built_once_and_shared_by_every_step() -> None:
    first = MetaAgent(scripted_meta_llm()).system_message(DOMAIN).content
    again = MetaAgent(scripted_meta_llm(), token_budget=9_000).system_message(DOMAIN).content
    assert first is again  # one text per domain, not rendered again per design
    assert first == system_text(DOMAIN)
    assert contract_reference().strip() in first and DOMAIN.strip() in first


def test_the_real_agents_import_nothing_from_the_scripted_doubles() -> None:
    import alma
    from alma.agent import conversation
    from alma.llm import scripted

    source = Path(alma.__file__).parent
    for path in sorted(
        [*source.joinpath("search").glob("*.py"), *source.joinpath("agent").glob("*.py")]
    ):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not [name for name in imported if name.startswith("alma.llm.scripted")], path
    # the double reads the header the agent writes
    assert scripted.ACTIONS_HEADER == conversation.ACTIONS_HEADER


# --------------------------------------------------------------------------- cleaning


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("```python\nx = 1\n```", "x = 1\n"),
        ("```\nx = 1\n```\n", "x = 1\n"),
        ("```py\nx = 1```", "x = 1\n"),
        ("Here is the design:\n```python\nx = 1\ny = 2\n```\nEnjoy!", "x = 1\ny = 2\n"),
        ("x = '```'\n", "x = '```'\n"),  # valid code keeps its backticks
        ("x = 1", "x = 1\n"),
    ],
)
def test_fences_are_stripped(raw: str, clean: str) -> None:
    assert strip_fences(raw) == clean
    assert Implementation(name="n", idea="i", code=raw).code == clean


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("KeywordEpisodes", "keyword_episodes"),
        ("key-door memory v2", "key_door_memory_v2"),
        ("2nd try", "design_2nd_try"),
        ("!!!", "design"),
        ("HTTPCache", "http_cache"),
    ],
)
def test_names_become_snake_case(raw: str, name: str) -> None:
    assert Implementation(name=raw, idea="a\nb", code="x = 1").name == name
    assert Implementation(name=raw, idea="  first  line \nsecond", code="").idea == "first line"


# --------------------------------------------------------------------------- scripted designs


@pytest.mark.parametrize("variant", [1, VARIANTS])
@pytest.mark.parametrize("name", sorted(VALID_DESIGNS))
async def test_every_valid_scripted_design_works(name: str, variant: int) -> None:
    source = design_source(name, variant)
    design_class = load_class(DesignSource(name, source))
    memory = await exercise(design_class)
    assert memory, f"{name} retrieved nothing after two episodes"


async def test_every_invalid_scripted_design_fails_and_repair_fixes_it() -> None:
    meta = MetaAgent(scripted_meta_llm())
    failures: dict[str, str] = {}
    for name, design in INVALID_DESIGNS.items():
        source = design.source(2)
        try:
            design_class = load_class(DesignSource(name, source))
        except DesignLoadError as error:
            failures[name] = error.message
        else:
            with pytest.raises(TypeError, match="not JSON serializable"):
                await exercise(design_class)
            failures[name] = "retrieve returned a set"
        fixed = await meta.repair(source, failures[name], DOMAIN)
        assert fixed.code == design_source(design.fixed_by, 2)
        await exercise(load_class(DesignSource(fixed.name, fixed.code)))
    assert "SyntaxError" in failures["keyword_episodes_syntax_error"]
    assert "no MemoryDesign" in failures["success_plans_no_subclass"]


def test_design_choice_is_deterministic_and_sometimes_invalid() -> None:
    prompts = [f"# Implement a new memory design\nparent {index}" for index in range(90)]
    choices = [choose_design(prompt) for prompt in prompts]
    assert choices == [choose_design(prompt) for prompt in prompts]
    invalid = sum(not design.valid for design, _ in choices)
    assert 15 <= invalid <= 45  # about one in three
    names = {design.name for design, _ in choices}
    assert (
        {*VALID_DESIGNS, *INVALID_DESIGNS}
        <= names
        <= {*VALID_DESIGNS, *INVALID_DESIGNS, UNFIXABLE.name}
    )
    assert {variant for _, variant in choices} == set(range(1, VARIANTS + 1))


async def test_a_scripted_search_round_exercises_repair() -> None:
    """Analyse, implement, load and smoke-run, repair on failure: the loop's path, offline."""
    meta = MetaAgent(scripted_meta_llm())
    repaired = fenced = 0
    for index in range(12):
        episodes = [to_dict(toy_episode(index, success=bool(index % 2)))]
        analysis = await meta.analyse(PARENT, f"parent_{index}", 0.3, 0.2, episodes, DOMAIN)
        child = await meta.implement(PARENT, analysis, DOMAIN, parent_name=f"parent_{index}")
        raw = meta_policy(
            meta.implement_messages(PARENT, analysis, DOMAIN, parent_name=f"parent_{index}"),
            None,
        )
        assert isinstance(raw, str)
        fenced += raw.startswith("Here is")  # the decorated style the parser must survive
        if child.code == UNFIXABLE.source(1):  # beyond repair: repair returns it again
            again = await meta.repair(child.code, "cannot reach 127.0.0.1:9200", DOMAIN)
            assert again.code == child.code
            continue
        try:
            await exercise(load_class(DesignSource(child.name, child.code)))
        except (DesignLoadError, TypeError) as error:
            child = await meta.repair(child.code, str(error), DOMAIN)
            await exercise(load_class(DesignSource(child.name, child.code)))
            repaired += 1
    assert repaired >= 1 and fenced >= 1


def test_other_requests_get_the_default_policy() -> None:
    class Step(BaseModel):
        thought: str
        action: str

    prompt = "Observation:\nYou are in the hall.\n\nAdmissible actions:\n- take key\n"
    answer = meta_policy([Message("user", prompt)], Step)
    assert isinstance(answer, dict) and answer["action"] == "take key"


async def test_the_meta_spec_selects_the_policy() -> None:
    assert "meta" in POLICIES  # registered by name, with the other scripted policies
    llm = scripted_from_spec("meta")
    meta = MetaAgent(llm)
    first = await meta.from_scratch(DOMAIN)
    assert first.name.split("_v")[0] in {*VALID_DESIGNS, *INVALID_DESIGNS}
