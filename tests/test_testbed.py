"""The memory test bed: toy's ``houses`` profile and the ``scripted:recall`` acting policy.

Games of one house share rules that only experience reveals; the tests check that the rules
hold where they should and shift where they should, that exploring without memory lands in a
useful band, and that a memory which keeps what worked beats one that keeps nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from alma.agent.actor import Actor
from alma.agent.conversation import system_prompt
from alma.cli import main
from alma.domains.checker import check_domain
from alma.domains.registry import find_task, get_domain
from alma.domains.toy import DEFAULT_PROFILE, DOMAIN_PROFILES, ToyDomain
from alma.errors import ConfigError, UnknownDomainError
from alma.llm.scripted import (
    MEMORY_END,
    MEMORY_HEADER,
    ScriptedLLM,
    explorer_policy,
    memory_hints,
    recall_policy,
    scripted_from_spec,
)
from alma.types import SPLITS, Message, Split, Task

HOUSE_RULES: dict[Split, tuple[set[str], str]] = {  # route directions, colour of its door
    "train": ({"south", "west"}, "green"),
    "eval_in_distribution": ({"south", "west"}, "green"),
    "eval_out_of_distribution": ({"north", "east"}, "purple"),
}
STEPS = {"north": (0, 1), "south": (0, -1), "east": (1, 0), "west": (-1, 0)}


@pytest.fixture(scope="module")
def houses() -> ToyDomain:
    return ToyDomain()


def heading(solution: list[str]) -> set[str]:
    """The directions of the net move from the start room to the goal room."""
    x = sum(STEPS[a[3:]][0] for a in solution if a.startswith("go "))
    y = sum(STEPS[a[3:]][1] for a in solution if a.startswith("go "))
    return {d for d, value in (("east", x), ("west", -x), ("north", y), ("south", -y)) if value > 0}


# --------------------------------------------------------------------------- the profile


def test_houses_is_the_default_and_classic_stays_by_name(houses: ToyDomain) -> None:
    assert DEFAULT_PROFILE == "houses"
    assert set(DOMAIN_PROFILES) == {"houses", "cottages", "classic"}
    assert houses.profile == "houses" and get_domain("toy").details == {"profile": "houses"}
    assert re.fullmatch(r"toy-house-train-\d{3}", houses.tasks("train")[0].id)
    classic = get_domain("toy", profile="classic")
    assert classic.tasks("train")[3].id == "toy-train-003"
    assert "house rules" in houses.description and "house rules" not in classic.description
    with pytest.raises(ConfigError, match="unknown toy profile 'mansion'"):
        ToyDomain(profile="mansion")
    assert check_domain(ToyDomain(tasks_per_split=10), tasks_per_split=10) == []


def test_an_id_names_one_game_in_every_profile(houses: ToyDomain) -> None:
    classic = ToyDomain(profile="classic")
    for split in SPLITS:
        assert find_task(houses, classic.tasks(split)[4].id) == classic.tasks(split)[4]
        assert find_task(classic, houses.tasks(split)[4].id) == houses.tasks(split)[4]
    old = find_task(houses, "toy-train-003")
    assert houses.make_env(old).reset() == classic.make_env(classic.tasks("train")[3]).reset()
    seeds = [t.seed for d in (houses, classic) for split in SPLITS for t in d.tasks(split)]
    assert len(seeds) == len(set(seeds))
    for bad in ("toy-house-train-7", "toy-house-train-100000", "toy-attic-000", "nope"):
        with pytest.raises(UnknownDomainError, match="has no task") as caught:
            houses.task(bad)
        assert caught.value.hint == (
            "task ids run toy-house-train-000 to -049, toy-house-eval-id-000 to -049, "
            "toy-house-eval-ood-000 to -049"
        )


@pytest.mark.parametrize("split", SPLITS)
def test_every_house_game_is_solvable_and_follows_its_rules(
    houses: ToyDomain, split: Split
) -> None:
    directions, colour = HOUSE_RULES[split]
    for task in houses.tasks(split):
        solution = houses.solve(task)  # breadth-first search over rooms, keys and doors
        assert 2 <= len(solution) <= houses.step_limit and task.params["locked_doors"] >= 2
        env = houses.make_env(task)
        env.reset()
        assert [env.step(a).success for a in solution][-1], task.id
        assert heading(solution) and heading(solution) <= directions, (task.id, solution)
        assert [a for a in solution if a.startswith("open ")] == [f"open {colour} door"]


def test_the_rules_shift_out_of_distribution(houses: ToyDomain) -> None:
    ood = [houses.solve(t) for t in houses.tasks("eval_out_of_distribution")]
    assert not any(heading(s) & {"south", "west"} or "open green door" in s for s in ood)
    first = houses.make_env(houses.tasks("train")[0]).reset().text
    assert first.startswith("You are in the ") and "Exits: " in first  # the classic text


# --------------------------------------------------------------------------- the cottages

COTTAGE_ROUTES: dict[Split, tuple[str, str]] = {  # the way to the goal, in order
    "train": ("south", "west"),
    "eval_in_distribution": ("south", "west"),
    "eval_out_of_distribution": ("north", "east"),
}


@pytest.fixture(scope="module")
def cottages() -> ToyDomain:
    return ToyDomain(profile="cottages")


def test_cottages_are_small_open_and_quick(cottages: ToyDomain) -> None:
    assert cottages.step_limit == 10 and ToyDomain().step_limit == 25
    assert "at most 10 steps" in cottages.instructions
    assert "10 steps" in cottages.description and "house rule" in cottages.description
    assert re.fullmatch(
        r"toy-cottage-eval-ood-\d{3}", cottages.tasks("eval_out_of_distribution")[0].id
    )
    assert find_task(ToyDomain(), "toy-cottage-train-004") == cottages.tasks("train")[4]
    assert check_domain(ToyDomain(tasks_per_split=10, profile="cottages"), tasks_per_split=10) == []


@pytest.mark.parametrize("split", SPLITS)
def test_every_cottage_game_keeps_its_way_to_the_goal(cottages: ToyDomain, split: Split) -> None:
    way = COTTAGE_ROUTES[split]
    for task in cottages.tasks(split):
        solution = cottages.solve(task)
        moves = [f"go {way[i % 2]}" for i in range(len(solution) - 1)]
        assert solution == [*moves, f"take {task.description[9:-13]}"], (task.id, solution)
        assert 3 <= len(solution) <= 4 and task.params["locked_doors"] == 0
        assert 6 <= task.params["rooms"] <= 7
        env = cottages.make_env(task)
        first = env.reset()
        assert first.text.startswith("You are in the ") and "locked" not in first.text
        assert [env.step(a).success for a in solution][-1], task.id


@pytest.mark.parametrize("split", SPLITS)
def test_exploring_a_cottage_is_in_the_band_and_its_way_pays(
    cottages: ToyDomain, split: Split
) -> None:
    tasks = cottages.tasks(split)
    explorer = success_rate(cottages, tasks, "explorer", None)
    assert 0.1 <= explorer <= 0.6, explorer
    right = {"rule": [f"go {d}" for d in COTTAGE_ROUTES[split]]}
    assert success_rate(cottages, tasks, "recall", right) >= explorer + 0.5
    other = "train" if split == "eval_out_of_distribution" else "eval_out_of_distribution"
    wrong = {"rule": [f"go {d}" for d in COTTAGE_ROUTES[other]]}
    assert success_rate(cottages, tasks, "recall", wrong) <= explorer + 0.1


# --------------------------------------------------------------------------- the recall policy


def turn(actions: list[str], room: str = "hall") -> Message:
    listed = "\n".join(f"- {a}" for a in actions)
    return Message(
        "user",
        f"Task: Find the ruby ring and take it.\n\nStep 1 of 25.\nObservation:\nYou are in the "
        f"{room}.\n\nAdmissible actions:\n{listed}\n",
    )


def with_notes(memory: dict[str, Any], *turns: Message) -> list[Message]:
    from alma.memory.rendering import render_memory

    text, _ = render_memory(memory, 6000)
    return [Message("system", system_prompt("Play.", text)), *turns]


ROOM = ["go north", "go south", "go west", "open red door", "take rusty spoon", "look"]
WON = {"outcome": "success", "actions": ["go west", "go west", "take green key", "go south"]}


def test_recall_follows_the_notes_and_explores_without_them() -> None:
    def action(messages: list[Message]) -> str:
        answer = recall_policy(messages, None)
        assert isinstance(answer, dict)
        return str(answer["action"])

    bare = [Message("system", system_prompt("Play.", "")), turn(ROOM)]
    assert action(bare) == explorer_policy(bare, None)["action"] == "take rusty spoon"  # type: ignore[index]
    assert action(with_notes({"similar_episodes": [WON]}, turn(ROOM))) == "go west"
    failed = {**WON, "outcome": "failure"}
    assert action(with_notes({"similar_episodes": [failed]}, turn(ROOM))) == "take rusty spoon"
    keys = [*ROOM, "take red key", "take green key"]
    assert action(with_notes({"similar_episodes": [WON]}, turn(keys))) == "take green key"
    goal = [*keys, "take ruby ring"]
    assert action(with_notes({"similar_episodes": [WON]}, turn(goal))) == "take ruby ring"
    advice = {"insights": ["The goal was always reached by going south, then west."]}
    assert action(with_notes(advice, turn(ROOM))) == "go south"
    # a way tried here is not tried again while another is left
    tried = with_notes(
        {"similar_episodes": [WON]},
        turn(ROOM),
        Message("assistant", json.dumps({"thought": "", "action": "go west"})),
        turn(ROOM),
    )
    assert action(tried) == "go south"


def test_memory_hints_cancel_ways_back_and_survive_a_cut() -> None:
    assert memory_hints('[notes]\n[{"actions": ["go north", "open blue door"]}, "go nor') == {
        "go north": 1,
        "open blue door": 1,
    }
    assert memory_hints("") == {}
    text = system_prompt("Play.", "[x]\n1")
    assert MEMORY_HEADER in text and MEMORY_END in text  # the markers the policy reads by
    assert isinstance(scripted_from_spec("recall"), ScriptedLLM)


def success_rate(domain: ToyDomain, tasks: tuple[Task, ...], spec: str, memory: Any) -> float:
    actor = Actor(scripted_from_spec(spec), domain)

    async def play_all() -> list[bool]:
        return [(await actor.run(t, memory)).outcome.success for t in tasks]

    return sum(asyncio.run(play_all())) / len(tasks)


@pytest.mark.parametrize("split", SPLITS)
def test_exploring_is_in_the_band_and_knowing_the_rule_pays(
    houses: ToyDomain, split: Split
) -> None:
    tasks = houses.tasks(split)[:24]
    explorer = success_rate(houses, tasks, "explorer", None)
    assert 0.1 <= explorer <= 0.6, explorer
    assert success_rate(houses, tasks, "recall", None) == explorer  # no notes: the explorer
    directions, colour = HOUSE_RULES[split]
    rule = {"rule": [*(f"go {d}" for d in sorted(directions)), f"take {colour} key"]}
    knowing = success_rate(houses, tasks, "recall", rule)
    assert knowing >= explorer + 0.3, (explorer, knowing)


# --------------------------------------------------------------------------- the comparison

NOTHING = '''
from typing import Any

from alma.memory import MemoryDesign
from alma.types import Episode, EpisodeStart


class Nothing(MemoryDesign):
    """Keeps nothing; always says the same."""

    async def retrieve(self, start: EpisodeStart) -> dict[str, Any]:
        return {"advice": "explore the house carefully"}

    async def update(self, episode: Episode) -> None:
        return None
'''


def compare(capsys: pytest.CaptureFixture[str], run_dir: Path, memories: str) -> dict[str, Any]:
    code = main(
        [
            *("compare", "--domain", "toy", "--memories", memories),
            *("--agent-model", "scripted:recall", "--tasks", "12", "--embedder", "hash"),
            *("--run-dir", str(run_dir), "--json"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    return {row["design"]: row for row in json.loads(out)["rows"]}


def test_a_memory_of_what_worked_beats_no_memory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    nothing = tmp_path / "nothing.py"
    nothing.write_text(NOTHING, encoding="utf-8")
    rows = compare(capsys, tmp_path / "run", f"no_memory,trajectory_retrieval,{nothing}")
    base, learned = rows["no_memory"], rows["trajectory_retrieval"]
    assert base["status"] == learned["status"] == "done"
    assert learned["score"] - base["score"] >= 0.3, (base["score"], learned["score"])
    assert learned["gain"] >= 0.3
    empty = next(
        row for name, row in rows.items() if name not in ("no_memory", "trajectory_retrieval")
    )
    assert empty["status"] == "done" and empty["score"] == base["score"] and empty["gain"] == 0
