"""The reference memory designs, driven by the scripted model and the hash embedder."""

from __future__ import annotations

import ast
import inspect
import json
import pickle
from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel

from alma.errors import UsageError
from alma.llm.embeddings import HashEmbedder
from alma.llm.scripted import Answer, Rule, ScriptedLLM, default_policy
from alma.memory import MemoryDesign, Toolkit
from alma.memory.baselines import BASELINES, load_baseline
from alma.memory.baselines.dynamic_cheatsheet import DynamicCheatsheet
from alma.memory.baselines.g_memory import GMemory
from alma.memory.baselines.no_memory import NoMemory
from alma.memory.baselines.reasoning_bank import ReasoningBank
from alma.memory.baselines.trajectory_retrieval import TrajectoryRetrieval
from alma.memory.toolkit import ModelServices
from alma.types import Completion, Episode, EpisodeStart, Message, Outcome, Step

# Tasks whose texts the hash embedder keeps apart, except the two key tasks (similarity ~0.8).
TASKS = {
    "key": (
        "find the red key and unlock the chest",
        "You are in a dusty hall. A chest stands here.",
    ),
    "key2": (
        "find the red key and unlock the door",
        "You are in a dusty hall. A door stands here.",
    ),
    "egg": ("cook an egg on the stove", "Kitchen. There is a stove and a fridge."),
    "plants": ("water the plants in the garden", "Garden. A watering can lies on the grass."),
    "coin": ("collect the gold coin", "Cellar. It is dark and damp."),
}
ACTIONS = {
    "key": ["take red key", "unlock chest with red key", "open chest"],
    "key2": ["take red key", "unlock door with red key"],
    "egg": ["open fridge", "take egg", "cook egg on stove"],
    "plants": ["take watering can", "water plants"],
    "coin": ["go down", "take gold coin"],
}


def start(name: str) -> EpisodeStart:
    task, observation = TASKS[name]
    return EpisodeStart(domain="toy", task_description=task, observation=observation)


def episode(
    name: str,
    *,
    success: bool = True,
    actions: Sequence[str] | None = None,
    final: str | None = None,
) -> Episode:
    actions = list(ACTIONS[name] if actions is None else actions)
    first = start(name)
    steps = tuple(
        Step(
            observation=first.observation if index == 0 else f"after {actions[index - 1]}",
            thought="",
            action=action,
        )
        for index, action in enumerate(actions)
    )
    if final is None:
        final = "You win!" if success else "Nothing happens."
    return Episode(
        start=first,
        steps=steps,
        outcome=Outcome(success=success, score=float(success), steps=len(steps)),
        final_observation=final,
    )


class CountingServices:
    """Model services that record every prompt and every embedded text."""

    def __init__(self, llm: ScriptedLLM | None = None) -> None:
        self.inner = ModelServices(llm or ScriptedLLM(), HashEmbedder())
        self.prompts: list[str] = []
        self.embed_calls: list[list[str]] = []

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: type[BaseModel] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        self.prompts.append(messages[-1].content)
        return await self.inner.complete(
            messages, schema=schema, temperature=temperature, max_tokens=max_tokens
        )

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.embed_calls.append(list(texts))
        return await self.inner.embed(texts)

    @property
    def embedded(self) -> int:
        return sum(len(batch) for batch in self.embed_calls)


Policy = Callable[[Sequence[Message], type[BaseModel] | None], Answer]


def services(policy: Policy | None = None, rules: Sequence[Rule] = ()) -> CountingServices:
    return CountingServices(ScriptedLLM(policy, rules=rules))


def last_user(messages: Sequence[Message]) -> str:
    return next(m.content for m in reversed(messages) if m.role == "user")


def by_schema(answers: Mapping[str, Answer | Callable[[str], Answer]]) -> Policy:
    """A policy answering per schema name (a callable gets the prompt); others as default."""

    def policy(messages: Sequence[Message], schema: type[BaseModel] | None) -> Answer:
        name = schema.__name__ if schema is not None else "text"
        if name not in answers:
            return default_policy(messages, schema)
        answer = answers[name]
        return answer(last_user(messages)) if callable(answer) else answer

    return policy


def copy_of(design: MemoryDesign, bound: CountingServices) -> MemoryDesign:
    clone: MemoryDesign = pickle.loads(pickle.dumps(design))
    clone.toolkit.bind(bound)
    return clone


# --------------------------------------------------------------------------- registry


def test_registry_lists_five_designs_each_alone_in_its_module() -> None:
    assert set(BASELINES) == {
        "no_memory",
        "trajectory_retrieval",
        "reasoning_bank",
        "dynamic_cheatsheet",
        "g_memory",
    }
    for name, target in BASELINES.items():
        design = load_baseline(name)
        assert issubclass(design, MemoryDesign)
        module = import_module(target.split(":")[0])
        defined = [
            value
            for value in vars(module).values()
            if inspect.isclass(value)
            and issubclass(value, MemoryDesign)
            and value.__module__ == module.__name__
        ]
        assert defined == [design]
        assert design.__doc__ and len(design.__doc__) > 200


def test_unknown_baseline_is_a_usage_error_listing_the_names() -> None:
    with pytest.raises(UsageError) as caught:
        load_baseline("reasoningbank")
    assert caught.value.hint is not None
    assert all(name in caught.value.hint for name in BASELINES)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_designs_use_only_the_public_toolkit(name: str) -> None:
    source = inspect.getsource(import_module(BASELINES[name].split(":")[0]))
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("alma"):
            assert node.module in ("alma.memory", "alma.types"), node.module
            if node.module == "alma.memory":
                assert {alias.name for alias in node.names} <= {"MemoryDesign", "Toolkit"}
        if isinstance(node, ast.Import):
            assert not any(alias.name.startswith("alma") for alias in node.names)


# --------------------------------------------------------------------------- every design


def generic_policy() -> Policy:
    def sheet(prompt: str) -> dict[str, str]:
        last_task = prompt.rsplit("Task: ", 1)[-1].splitlines()[0]
        return {"cheatsheet": f"Notes up to: {last_task}"}

    return by_schema({"Distilled": five_items, "Insights": insights_for, "Sheet": sheet})


@pytest.mark.parametrize("name", sorted(BASELINES))
async def test_every_design_retrieves_updates_and_survives_a_copy(name: str) -> None:
    design = load_baseline(name)(Toolkit(services(generic_policy()), seed=1))
    assert await design.retrieve(start("key")) == {}
    for task, success in [("key", True), ("egg", False), ("key2", True), ("plants", True)]:
        await design.update(episode(task, success=success))
    memory = await design.retrieve(start("key"))
    assert json.loads(json.dumps(memory)) == memory
    assert bool(memory) == (name != "no_memory")
    before = await design.retrieve(start("coin"))

    clone = copy_of(design, services(generic_policy()))
    assert await clone.retrieve(start("key")) == memory
    await clone.update(episode("coin"))  # the copy learns alone
    assert await design.retrieve(start("coin")) == before
    if name != "no_memory":
        assert await clone.retrieve(start("coin")) != before


async def test_a_copy_without_services_rebinds() -> None:
    design = TrajectoryRetrieval(Toolkit(services()))
    await design.update(episode("key"))
    clone: MemoryDesign = pickle.loads(pickle.dumps(design))
    with pytest.raises(Exception, match="no model services"):
        await clone.retrieve(start("key"))
    clone.toolkit.bind(services())
    assert (await clone.retrieve(start("key")))["similar_episodes"][0]["task"] == TASKS["key"][0]


async def test_no_memory_calls_nothing() -> None:
    bound = services()
    design = NoMemory(Toolkit(bound))
    await design.update(episode("key"))
    assert await design.retrieve(start("key")) == {}
    assert bound.prompts == [] and bound.embed_calls == []


# --------------------------------------------------------------------------- trajectory retrieval


async def test_trajectory_retrieval_prefers_the_same_task_and_successes() -> None:
    design = TrajectoryRetrieval(Toolkit(services()))
    await design.update(episode("key", success=False, actions=["look", "go north"]))
    await design.update(episode("coin"))
    await design.update(episode("key"))
    await design.update(episode("egg", success=False))
    shown = (await design.retrieve(start("key")))["similar_episodes"]
    assert [(item["task"], item["outcome"]) for item in shown] == [
        (TASKS["key"][0], "success"),
        (TASKS["coin"][0], "success"),  # any success comes before a failure
        (TASKS["key"][0], "failure"),
    ]
    assert shown[0]["actions"] == ACTIONS["key"] and shown[0]["steps"] == 3
    assert set(shown[0]) == {"task", "outcome", "steps", "actions"}


async def test_trajectory_retrieval_embeds_only_the_query_at_retrieval() -> None:
    bound = services()
    design = TrajectoryRetrieval(Toolkit(bound), k=2)
    for name in TASKS:
        await design.update(episode(name))
    assert len(bound.embed_calls) == len(TASKS)  # one embedding per stored trajectory
    bound.embed_calls.clear()
    await design.retrieve(start("egg"))
    await design.retrieve(start("plants"))
    assert bound.embed_calls == [
        [f"{TASKS['egg'][0]}\n{TASKS['egg'][1]}"],
        [f"{TASKS['plants'][0]}\n{TASKS['plants'][1]}"],
    ]
    assert bound.prompts == []


async def test_trajectory_retrieval_options_duplicates_and_empty_episodes() -> None:
    design = TrajectoryRetrieval(Toolkit(services()), k=3, max_steps_shown=4)
    long_run = [f"step {index}" for index in range(10)]
    await design.update(episode("key", actions=long_run))
    await design.update(episode("key", actions=long_run))  # the same trajectory again
    await design.update(episode("egg", actions=[]))  # nothing happened: not stored
    shown = (await design.retrieve(start("key")))["similar_episodes"]
    assert len(shown) == 1
    assert shown[0]["actions"] == long_run[:4] and shown[0]["steps"] == 10

    verbose = TrajectoryRetrieval(Toolkit(services()), include_observations=True)
    await verbose.update(episode("egg"))
    item = (await verbose.retrieve(start("egg")))["similar_episodes"][0]
    assert "1. open fridge -> after open fridge" in item["trajectory"]
    assert item["trajectory"].endswith("3. cook egg on stove -> You win!")


# --------------------------------------------------------------------------- reasoning bank


def judge_by_final_line(prompt: str) -> dict[str, str]:
    verdict = "success" if "You win!" in prompt else "failure"
    return {"reasoning": "read the last line", "verdict": verdict}


def five_items(prompt: str) -> dict[str, Any]:
    task = prompt.split("Task: ", 1)[1].splitlines()[0]
    kind = "strategy" if "completed its task" in prompt else "lesson"
    items = [
        {"title": f"{kind} {n} for {task}", "description": f"when: {task}", "content": f"do {n}"}
        for n in range(5)
    ]
    items[1] = {"title": "", "description": "no title", "content": "skipped"}
    return {"items": items}


async def test_reasoning_bank_judges_then_distils_at_most_three_items() -> None:
    bound = services(by_schema({"Verdict": judge_by_final_line, "Distilled": five_items}))
    design = ReasoningBank(Toolkit(bound))
    await design.update(episode("key"))
    assert bound.prompts[0].startswith("Judge whether")
    assert "completed its task" in bound.prompts[1]
    assert len(bound.embed_calls) == 1 and len(bound.embed_calls[0]) == 3  # one batch, once
    store = design.toolkit.vectors("memory_items")
    titles = [item["title"] for _, item in store.items()]
    assert titles == [f"strategy {n} for {TASKS['key'][0]}" for n in (0, 2, 3)]

    # the environment says success, the judge reads a failure: the judge decides
    await design.update(episode("egg", success=True, final="The egg burns."))
    assert "failed its task" in bound.prompts[-1]
    assert len(store) == 6

    memory = await design.retrieve(start("egg"))
    assert json.loads(json.dumps(memory)) == memory
    [item] = memory["memory_items"]  # k=1 by default
    assert set(item) == {"title", "description", "content"}
    assert item["title"].startswith("lesson") and TASKS["egg"][0] in item["title"]
    assert (
        len((await ReasoningBank(design.toolkit, k=2).retrieve(start("key")))["memory_items"]) == 2
    )


@pytest.mark.parametrize(
    "answers",
    [
        {"Verdict": "not json at all", "Distilled": "{broken"},
        {"Distilled": {"items": [{"title": 3, "content": ["no"]}]}},
        {"Distilled": {"items": [{"title": "  ", "content": ""}, {"description": "only"}]}},
        {"Distilled": {"items": []}},
    ],
)
async def test_reasoning_bank_survives_garbage(answers: dict[str, Answer]) -> None:
    design = ReasoningBank(Toolkit(services(by_schema(answers))))
    await design.update(episode("key"))
    assert len(design.toolkit.vectors("memory_items")) == 0
    assert await design.retrieve(start("key")) == {}


async def test_reasoning_bank_uses_the_outcome_when_the_judge_fails() -> None:
    bound = services(by_schema({"Verdict": "garbage", "Distilled": five_items}))
    design = ReasoningBank(Toolkit(bound))
    await design.update(episode("key", success=False))
    assert "failed its task" in bound.prompts[-1]


# --------------------------------------------------------------------------- dynamic cheatsheet


async def test_dynamic_cheatsheet_curates_and_keeps_the_old_sheet_on_garbage() -> None:
    answer: dict[str, Answer] = {"Sheet": {"cheatsheet": "1. Take keys first."}}
    bound = services(by_schema(answer))  # the policy reads `answer` at call time
    design = DynamicCheatsheet(Toolkit(bound), max_chars=200)
    assert await design.retrieve(start("key")) == {}
    await design.update(episode("key"))
    assert await design.retrieve(start("egg")) == {"cheatsheet": "1. Take keys first."}
    assert "Current cheatsheet:\n(empty)" in bound.prompts[0]

    answer["Sheet"] = {"cheatsheet": "1. Take keys first.\n2. Open the fridge for food."}
    await design.update(episode("egg", success=False))
    assert "Current cheatsheet:\n1. Take keys first." in bound.prompts[1]
    assert "Latest episode (failure)" in bound.prompts[1]
    good = {"cheatsheet": "1. Take keys first.\n2. Open the fridge for food."}
    assert await design.retrieve(start("egg")) == good

    garbage: list[Answer] = ["not json", {"cheatsheet": " "}, {"cheatsheet": "x" * 201}, {"s": 1}]
    for bad in garbage:
        answer["Sheet"] = bad
        await design.update(episode("plants"))
        assert await design.retrieve(start("plants")) == good
    assert len(bound.prompts) == 6

    clone = copy_of(design, services())
    assert await clone.retrieve(start("coin")) == good


async def test_dynamic_cheatsheet_retrieval_synthesis_variant() -> None:
    def synthesise(prompt: str) -> dict[str, str]:
        first_past = prompt.split("Past episodes:\n", 1)[1].splitlines()[0]
        return {"cheatsheet": f"Most similar: {first_past}"}

    answer: dict[str, Answer | Callable[[str], Answer]] = {"Sheet": synthesise}
    bound = services(by_schema(answer))
    design = DynamicCheatsheet(Toolkit(bound), variant="retrieval_synthesis", k=2)
    assert await design.retrieve(start("key")) == {}
    for name in ("egg", "key", "plants"):
        await design.update(episode(name, success=name != "egg"))
    assert bound.prompts == []  # storing an episode needs no model call
    assert len(bound.embed_calls) == 3

    bound.embed_calls.clear()
    memory = await design.retrieve(start("key2"))
    assert memory == {"cheatsheet": f"Most similar: [success] Task: {TASKS['key'][0]}"}
    assert len(bound.embed_calls) == 1
    assert bound.prompts[0].count("Task: ") == 2  # k=2 past episodes shown

    answer["Sheet"] = {"cheatsheet": ""}  # unusable: fall back to the similar episodes
    fallback = (await design.retrieve(start("egg")))["cheatsheet"]
    assert fallback.splitlines()[0] == f"[failure] {TASKS['egg'][0]}: " + ", ".join(ACTIONS["egg"])
    assert await design.retrieve(start("egg")) == {"cheatsheet": fallback}  # retrieve is pure
    assert len(design.toolkit.vectors("episodes")) == 3


def test_dynamic_cheatsheet_rejects_an_unknown_variant() -> None:
    with pytest.raises(ValueError, match="retrieval_synthesis"):
        DynamicCheatsheet(Toolkit(), variant="retrieval")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- g-memory


def insights_for(prompt: str) -> dict[str, list[str]]:
    task = prompt.split("Task: ", 1)[1].splitlines()[0]
    if "red key" in task:
        return {"insights": ["Open the chest before taking the key.", f"Remember: {task}."]}
    return {"insights": [f"For {task}: check every room.", ""]}


async def test_g_memory_builds_query_edges_and_merges_insights() -> None:
    bound = services(by_schema({"Insights": insights_for}))
    design = GMemory(Toolkit(bound))
    await design.update(episode("key"))
    await design.update(episode("egg"))
    assert len(bound.embed_calls) == 4  # per update: the query once, its new insights once
    await design.update(episode("key2", success=False))
    assert "- Open the chest before taking the key." in bound.prompts[-1]  # known, via the edge

    queries = design.toolkit.graph("queries")
    assert sorted(queries.nodes) == ["q0", "q1", "q2"]
    assert sorted(queries.edges) == [("q0", "q2"), ("q2", "q0")]  # the two key tasks only
    assert queries.edges["q0", "q2"]["weight"] > 0.6
    assert queries.nodes["q1"]["actions"] == ACTIONS["egg"]

    insights = design.toolkit.graph("insights")
    texts = {node: data["text"] for node, data in insights.nodes(data=True) if "text" in data}
    assert sorted(texts.values()) == sorted(
        [
            "Open the chest before taking the key.",
            f"Remember: {TASKS['key'][0]}.",
            f"For {TASKS['egg'][0]}: check every room.",
            f"Remember: {TASKS['key2'][0]}.",
        ]
    )
    [shared] = [node for node, text in texts.items() if text.startswith("Open the chest")]
    assert sorted(insights.successors(shared)) == ["q0", "q2"]  # merged, not duplicated

    memory = await design.retrieve(start("key"))
    assert json.loads(json.dumps(memory)) == memory
    assert [t["task"] for t in memory["relevant_trajectories"]] == [
        TASKS["key"][0],
        TASKS["key2"][0],
    ]
    assert memory["relevant_trajectories"][1]["outcome"] == "failure"
    assert memory["insights"][0] == "Open the chest before taking the key."  # most support
    assert len(memory["insights"]) == 3


async def test_g_memory_expands_to_neighbours_and_lets_the_model_choose() -> None:
    def choose(keyword: str) -> Callable[[str], dict[str, list[int]]]:
        def answer(prompt: str) -> dict[str, list[int]]:
            lines = [line for line in prompt.splitlines() if line[:1].isdigit()]
            return {"chosen": [int(line.split(".")[0]) for line in lines if keyword in line]}

        return answer

    answer: dict[str, Answer | Callable[[str], Answer]] = {"Selection": choose("door")}
    bound = services(by_schema(answer))
    design = GMemory(Toolkit(bound), k_queries=1, max_trajectories=1)
    for name in ("key", "key2", "egg"):
        await design.update(episode(name))
    bound.prompts.clear()

    memory = await design.retrieve(start("key"))
    [prompt] = bound.prompts
    assert TASKS["key2"][0] in prompt  # the 1-hop neighbour of the one seed
    assert TASKS["egg"][0] not in prompt  # neither similar enough nor a neighbour
    assert [t["task"] for t in memory["relevant_trajectories"]] == [TASKS["key2"][0]]

    invalid: list[Answer] = [{"chosen": [7, -1]}, {"chosen": []}, "no json", {"pick": 1}]
    for bad in invalid:
        answer["Selection"] = bad
        memory = await design.retrieve(start("key"))
        assert [t["task"] for t in memory["relevant_trajectories"]] == [TASKS["key"][0]]


async def test_g_memory_keeps_the_query_when_insight_extraction_fails() -> None:
    design = GMemory(Toolkit(services(by_schema({"Insights": "{nope"}))))
    await design.update(episode("coin"))
    assert list(design.toolkit.graph("queries").nodes) == ["q0"]
    assert design.toolkit.graph("insights").number_of_nodes() == 0
    memory = await design.retrieve(start("coin"))
    assert memory == {
        "insights": [],
        "relevant_trajectories": [
            {"task": TASKS["coin"][0], "outcome": "success", "steps": 2, "actions": ACTIONS["coin"]}
        ],
    }
