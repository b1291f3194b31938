"""The minihack domain: task lists, answers to the game's questions, and the real game through
balrog-nle and MiniHack (seeding, observations, success, several envs at once, the harness)."""

from __future__ import annotations

import importlib
import json
import random
import re
import subprocess
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import pytest

from alma.cli import main
from alma.domains.base import Domain, TextEnv
from alma.domains.checker import check_domain
from alma.domains.minihack import MiniHackDomain
from alma.domains.minihack import env as env_module
from alma.domains.minihack.actions import (
    ENTER,
    ESC,
    KEYS,
    MOVES,
    is_menu,
    menu_answers,
    question_answers,
    resolve,
)
from alma.domains.minihack.render import clean_message, crop_map, death_cause
from alma.domains.minihack.tasks import FAMILIES, STEP_LIMIT
from alma.domains.registry import domain_specs, get_domain, install_hint
from alma.errors import MissingDependencyError, UnknownDomainError
from alma.llm.weights import models_dir, weights_status
from alma.types import SPLITS, Observation, Task, Transition

_MODELS = models_dir()  # read before the fixtures move the user cache
ID = re.compile(r"minihack-(train|eval-id|eval-ood)-([a-z0-9-]+)-(\d{3})")
OFFSETS = {
    "north": (0, -1),
    "east": (1, 0),
    "south": (0, 1),
    "west": (-1, 0),
    "northeast": (1, -1),
    "southeast": (1, 1),
    "southwest": (-1, 1),
    "northwest": (-1, -1),
}
POSITION = re.compile(r"You are at x=(\d+), y=(\d+)\.")
WALKABLE = set(".#<>@")


@pytest.fixture(scope="module")
def minihack() -> MiniHackDomain:
    return MiniHackDomain()


def first_observation(domain: MiniHackDomain, task: Task) -> Observation:
    env = domain.make_env(task)
    try:
        return env.reset()
    finally:
        env.close()


def play_random(domain: MiniHackDomain, task: Task, seed: int, steps: int = 40) -> list[str]:
    """The observation texts of a seeded random walk over the admissible actions."""
    env = domain.make_env(task)
    try:
        obs = env.reset()
        texts = [obs.text]
        rng = random.Random(seed)
        for _ in range(steps):
            assert obs.actions
            transition = env.step(rng.choice(obs.actions))
            obs = transition.observation
            texts.append(obs.text)
            if transition.done:
                break
        return texts
    finally:
        env.close()


# --------------------------------------------------------------------------- tasks (no game)


def test_listing_tasks_never_starts_a_game(
    minihack: MiniHackDomain, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse() -> None:
        raise AssertionError("tasks() must not load NetHack")

    monkeypatch.setattr(env_module, "game_modules", refuse)
    fresh = MiniHackDomain(tasks_per_split=200)
    assert all(len(fresh.tasks(split)) == 200 for split in SPLITS)
    assert isinstance(minihack, Domain)
    assert minihack.name == "minihack" and minihack.step_limit == STEP_LIMIT == 100


def test_splits_are_disjoint_and_ood_families_are_held_out(minihack: MiniHackDomain) -> None:
    families = {}
    for split in SPLITS:
        tasks = minihack.tasks(split)
        assert len(tasks) == 60 and len({t.id for t in tasks}) == 60
        for task in tasks:
            match = ID.fullmatch(task.id)
            assert match is not None and task.split == split
            assert match[2] == task.params["family"]
            assert task.description == FAMILIES[match[2]].goal
            assert "minihack-" not in task.description and split not in task.description
        families[split] = {t.params["family"] for t in tasks}
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not {t.id for t in minihack.tasks(a)} & {t.id for t in minihack.tasks(b)}
                assert not {t.seed for t in minihack.tasks(a)} & {t.seed for t in minihack.tasks(b)}
    assert families["train"] == families["eval_in_distribution"]
    assert families["eval_out_of_distribution"] == {"mazewalk-15x15", "quest-medium"}
    assert not families["train"] & families["eval_out_of_distribution"]
    # the families are dealt in turn, so a split's first tasks mix them
    assert len({t.params["family"] for t in minihack.tasks("train")[:4]}) == 4
    held_out = minihack.details["families"]["eval_out_of_distribution"]
    assert held_out == ["MiniHack-MazeWalk-15x15-v0", "MiniHack-Quest-Medium-v0"]
    for name in held_out:
        assert name.removeprefix("MiniHack-").removesuffix("-v0") in minihack.description


def test_texts_for_the_meta_agent_and_the_acting_agent(minihack: MiniHackDomain) -> None:
    assert "eval_out_of_distribution" in minihack.description
    assert "staircase down" in minihack.description
    assert "100 steps" in minihack.instructions and "{" not in minihack.instructions
    for action in ("north", "kick", "zap", "pick up", "esc", "confirm"):
        assert action in minihack.instructions


def test_unknown_task_ids_name_the_valid_range(minihack: MiniHackDomain) -> None:
    task = minihack.task("minihack-eval-ood-quest-medium-029")
    assert task.split == "eval_out_of_distribution" and task in minihack.tasks(task.split)
    for bad in ("minihack-train-mazewalk-9x9-015", "minihack-train-quest-medium-000", "toy-1"):
        with pytest.raises(UnknownDomainError) as caught:
            minihack.task(bad)
        assert caught.value.hint is not None
        assert "minihack-train-mazewalk-9x9-000..014 (train)" in caught.value.hint
        assert "minihack-eval-ood-quest-medium-000..029" in caught.value.hint
    with pytest.raises(UnknownDomainError, match="not a minihack task"):
        minihack.make_env(Task("toy-train-000", "train", "Find the coin.", 3, {"profile": "x"}))


def test_a_bad_task_id_on_the_command_line_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["play", "--domain", "minihack", "--task", "minihack-train-maze-999"])
    err = capsys.readouterr().err
    assert code == 2
    assert "has no task 'minihack-train-maze-999'" in err and "Traceback" not in err


def test_a_missing_game_package_says_how_to_install_it(
    minihack: MiniHackDomain, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = importlib.import_module

    def without_minihack(name: str, package: str | None = None) -> ModuleType:
        if name.split(".")[0] == "minihack":
            raise ModuleNotFoundError("No module named 'minihack'")
        return real_import(name, package)

    monkeypatch.setattr(env_module, "_game", None)
    monkeypatch.setattr(importlib, "import_module", without_minihack)
    with pytest.raises(MissingDependencyError) as caught:
        minihack.make_env(minihack.tasks("train")[0])
    assert "No module named 'minihack'" in caught.value.message
    assert caught.value.hint == install_hint("minihack")
    assert "--no-deps" in caught.value.hint and "minihack==0.1.6" in caught.value.hint
    assert caught.value.exit_code == 2


# --------------------------------------------------------------------------- answers and text


def test_answers_to_the_game_s_questions() -> None:
    assert question_answers("What do you want to zap? [f or ?*]") == {"f": ord("f"), "esc": ESC}
    drop = question_answers("What do you want to drop? [ac-eh or ?*]")
    assert list(drop) == ["a", "c", "d", "e", "h", "esc"]
    assert list(question_answers("There is an apple here; eat it? [ynq] (n)")) == [
        "yes",
        "no",
        "esc",
    ]
    direction = question_answers("In what direction?")
    assert list(direction) == [*MOVES, "esc"] and direction["north"] == ord("k")
    assert question_answers("What do you want to throw? [*]") == {"esc": ESC}


def test_menus_are_recognised_and_answered_by_letter() -> None:
    menu = "Pick up what?\nWands\na - a balsa wand\nTools\nb + a horn\n(end)"
    assert is_menu(menu) and not is_menu("You see here a horn.")
    assert not is_menu("a - a balsa wand.")  # an inventory message is not a menu
    assert menu_answers(menu) == {"a": ord("a"), "b": ord("b"), "confirm": ENTER, "esc": ESC}
    long = "Pick up what?\na - a rock\nc - a gem\n(1 of 2)"
    assert list(menu_answers(long)) == ["a", "c", "next page", "confirm", "esc"]


def test_what_the_agent_writes_is_forgiven_within_reason() -> None:
    moves = {name: KEYS[name] for name in (*MOVES, "pick up", "far east")}
    assert resolve("north", moves) == "north"
    assert resolve("  Move North. ", moves) == "north"
    assert resolve("pickup", moves) == "pick up" and resolve("far_east", moves) == "far east"
    assert resolve("n", moves) is None and resolve("fly", moves) is None
    letters = question_answers("What do you want to zap? [fF or ?*]")
    assert resolve("F", letters) == "F" and resolve("f - a wand of cold", letters) == "f"
    assert resolve("g", letters) is None
    assert resolve("y", question_answers("Really attack? [yn] (n)")) == "yes"


def test_messages_maps_and_endings_as_text() -> None:
    assert clean_message("You are lucky!  Full moon tonight.  The newt bites!--More--") == (
        "The newt bites!"
    )
    assert crop_map(["          ", "   --- ", "   |@.  ", "          "]) == ("---", "|@.")
    screen = "  0  Agent-Cav died in The Dungeons of Doom on      level 1.  Burned by molten lava."
    assert death_cause(screen) == "burned by molten lava"
    assert death_cause("Goodbye.") == ""


# --------------------------------------------------------------------------- the real game


@pytest.mark.domain
def test_passes_the_domain_checker(minihack: MiniHackDomain) -> None:
    assert check_domain(minihack, tasks_per_split=4) == []


@pytest.mark.domain
def test_same_id_same_game_and_seeds_change_the_level(minihack: MiniHackDomain) -> None:
    for split in SPLITS:
        for task in minihack.tasks(split)[:6]:
            assert play_random(minihack, task, seed=5) == play_random(minihack, task, seed=5)
    mazes = [t for t in minihack.tasks("train") if t.params["family"] == "mazewalk-9x9"]
    starts = {play_random(minihack, task, seed=1, steps=12)[-1] for task in mazes[:8]}
    assert len(starts) == 8


@pytest.mark.domain
def test_first_observation_reads_like_the_game(minihack: MiniHackDomain) -> None:
    quest = minihack.task("minihack-train-quest-easy-000")
    obs = first_observation(minihack, quest)
    assert POSITION.match(obs.text) and "HP 16/16" in obs.text
    assert "\nYou see:\n" in obs.text and "lava" in obs.text
    assert "\nInventory:\na: a +1 club (weapon in hand)" in obs.text
    assert obs.actions is not None and "zap" in obs.actions and "far east" in obs.actions
    assert "Full moon" not in obs.text and "New moon" not in obs.text
    maze = first_observation(minihack, minihack.task("minihack-train-mazewalk-9x9-000"))
    assert maze.actions == MOVES and "Inventory" not in maze.text
    corridor = first_observation(minihack, minihack.task("minihack-train-corridor-r3-000"))
    assert corridor.actions == (*MOVES, "open", "kick", "search")


@pytest.mark.domain
def test_questions_menus_and_invalid_actions(minihack: MiniHackDomain) -> None:
    env = minihack.make_env(minihack.task("minihack-train-quest-easy-000"))
    try:
        start = env.reset()
        invalid = env.step("fly away")
        assert not invalid.done and invalid.info["invalid_action"]
        assert invalid.observation.text.startswith("'fly away' is not possible now")
        assert invalid.observation.actions == start.actions
        menu = env.step("pick up").observation
        assert "The game shows a menu" in menu.text and menu.actions == ("a", "b", "confirm", "esc")
        env.step("a")
        env.step("b")
        picked = env.step("confirm").observation
        assert re.search(r"Message: f - an? [a-z ]*wand\. g - a horn\.", picked.text)
        asked = env.step("zap").observation
        assert "The game asks: What do you want to zap? [f or ?*]" in asked.text
        assert asked.actions == ("f", "esc")
        direction = env.step("f").observation
        assert "In what direction?" in direction.text and direction.actions == (*MOVES, "esc")
        frozen = env.step("east").observation
        assert "The lava cools and solidifies." in frozen.text
        assert "f: a wand of cold" in frozen.text  # zapping identified it
    finally:
        env.close()


Cell = tuple[int, int]


def read_map(obs: Observation) -> tuple[Cell, dict[Cell, str]]:
    """The agent's position and the squares of the map seen so far, by absolute position (the
    map is placed by where its @ is)."""
    match = POSITION.match(obs.text)
    assert match is not None
    here = (int(match[1]), int(match[2]))
    rows = obs.text.split("Map (@ is you):\n", 1)[1].split("\nInventory:", 1)[0].splitlines()
    at_row = next(i for i, row in enumerate(rows) if "@" in row)
    left, top = here[0] - rows[at_row].index("@"), here[1] - at_row
    cells = {
        (left + x, top + y): char
        for y, row in enumerate(rows)
        for x, char in enumerate(row)
        if char != " "
    }
    return here, cells


def explore(env: TextEnv, limit: int = STEP_LIMIT) -> list[Transition]:
    """Reach the stairs from the observations alone: walk to a visible > along the squares seen
    (breadth first), else explore depth first, trying seen floor before unknown squares and
    backing up from dead ends."""
    obs = env.reset()
    parent: dict[Cell, Cell | None] = {}
    tried: dict[Cell, set[str]] = {}
    transitions: list[Transition] = []
    while len(transitions) < limit:
        here, cells = read_map(obs)
        parent.setdefault(here, None)
        action = route_to_stairs(here, cells)
        if action is None:
            fresh = [
                name
                for name, (dx, dy) in OFFSETS.items()
                if name not in tried.setdefault(here, set())
                and (here[0] + dx, here[1] + dy) not in parent
                and cells.get((here[0] + dx, here[1] + dy), " ") in WALKABLE | {" "}
            ]
            fresh.sort(key=lambda name: shift(here, name) not in cells)
            if fresh:
                action = fresh[0]
                tried[here].add(action)
            else:  # a dead end: back to where this square was entered from
                back = parent[here] or here
                step = (back[0] - here[0], back[1] - here[1])
                action = next((n for n, offset in OFFSETS.items() if offset == step), "north")
        transition = env.step(action)
        transitions.append(transition)
        if transition.done:
            break
        obs = transition.observation
        now, _ = read_map(obs)
        if now not in parent:
            parent[now] = here
    return transitions


def shift(cell: Cell, direction: str) -> Cell:
    return (cell[0] + OFFSETS[direction][0], cell[1] + OFFSETS[direction][1])


def route_to_stairs(here: Cell, cells: dict[Cell, str]) -> str | None:
    """The first move of a shortest walk to a > seen on the map, or None."""
    goal = next((cell for cell, char in cells.items() if char == ">"), None)
    came: dict[Cell, tuple[Cell, str] | None] = {here: None}
    queue = deque([here])
    while queue and goal is not None:
        cell = queue.popleft()
        if cell == goal:
            first = ""
            while (link := came[cell]) is not None:
                cell, first = link
            return first
        for name in OFFSETS:
            following = shift(cell, name)
            if following not in came and cells.get(following, " ") in WALKABLE:
                came[following] = (cell, name)
                queue.append(following)
    return None


@pytest.mark.domain
@pytest.mark.parametrize(
    "task_id", ["minihack-train-mazewalk-9x9-001", "minihack-eval-ood-mazewalk-15x15-003"]
)
def test_a_maze_is_solved_from_the_observations_alone(
    minihack: MiniHackDomain, task_id: str
) -> None:
    env = minihack.make_env(minihack.task(task_id))
    try:
        assert ">" not in env.reset().text  # the stairs must be found
        transitions = explore(env)
        after = env.step("north")
    finally:
        env.close()
    last = transitions[-1]
    assert last.done and last.success and last.reward == 1.0 and last.info["won"]
    assert "You are on the staircase down" in last.observation.text
    assert last.observation.actions is None
    assert not any(t.done or t.reward for t in transitions[:-1])
    assert len(transitions) <= STEP_LIMIT
    assert after.done and after.success and after.reward == 0.0  # the game is over


@pytest.mark.domain
def test_several_envs_at_once_in_threads_play_as_alone(minihack: MiniHackDomain) -> None:
    tasks = [*minihack.tasks("train")[:4], *minihack.tasks("eval_out_of_distribution")[:2]]
    alone = [play_random(minihack, task, seed=11) for task in tasks]
    # two envs open at once in one thread, stepped in turn
    one, two = (minihack.make_env(task) for task in tasks[:2])
    try:
        obs = [one.reset(), two.reset()]
        rngs = [random.Random(11), random.Random(11)]
        texts: list[list[str]] = [[obs[0].text], [obs[1].text]]
        finished = [False, False]
        for _ in range(40):
            for i, env in enumerate((one, two)):
                if finished[i]:
                    continue
                actions = obs[i].actions
                assert actions
                transition = env.step(rngs[i].choice(actions))
                obs[i] = transition.observation
                texts[i].append(obs[i].text)
                finished[i] = transition.done
        assert texts == alone[:2]
    finally:
        one.close()
        two.close()
    # one env per worker thread, as the evaluation runs them
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda task: play_random(minihack, task, seed=11), tasks * 2))
    assert threaded == alone * 2


@pytest.mark.domain
def test_a_random_episode_through_the_harness(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(
        [
            "play",
            "--domain",
            "minihack",
            "--task",
            "minihack-train-quest-easy-001",
            "--agent-model",
            "scripted:random",
            "--max-steps",
            "30",
            "--json",
            "--run-dir",
            str(tmp_path / "run"),
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["task"] == "minihack-train-quest-easy-001"
    steps = result["episode"]["steps"]
    assert 1 <= result["steps_used"] == len(steps) <= 30
    assert all(step["valid"] for step in steps)  # random admissible actions always match
    assert result["reason"] in ("success", "done", "step_limit")
    assert result["episode"]["start"]["observation"].startswith("You are at x=")


RACE = """
import threading
from alma.domains.minihack import MiniHackDomain
domain = MiniHackDomain()
tasks = domain.tasks("train")[:8]
start = threading.Barrier(len(tasks))
def play(task):
    start.wait()  # every thread creates its first game at the same moment
    env = domain.make_env(task)
    env.reset()
    env.close()
threads = [threading.Thread(target=play, args=(task,)) for task in tasks]
[thread.start() for thread in threads]
[thread.join() for thread in threads]
print("done")
"""


@pytest.mark.domain
def test_games_created_at_once_in_fresh_processes_never_deadlock() -> None:
    # NLE's first game construction deadlocked two threads in about one process in four
    for _ in range(6):
        done = subprocess.run(
            [sys.executable, "-c", RACE], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr[-500:]


@pytest.mark.domain
def test_quick_evaluations_in_a_row_at_the_default_concurrency(tmp_path: Path) -> None:
    for index in range(3):
        command = [sys.executable, "-m", "alma", "eval", "--domain", "minihack", "--quick"]
        command += ["--agent-model", "scripted", "--memory", "no_memory", "--json"]
        command += ["--run-dir", str(tmp_path / f"run-{index}")]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-500:]
        assert time.perf_counter() - started < 60  # seconds when nothing freezes
        result = json.loads(done.stdout)
        assert result["n_episodes"] == 11 and result["episode_errors"] == 0


@pytest.mark.domain
def test_registered_installed_and_described_for_alma_domains() -> None:
    spec = domain_specs()["minihack"]
    assert spec.installed()  # balrog-nle and minihack are installed here
    assert "balrog-nle==0.9.0" in spec.install and "--no-deps" in spec.install
    assert "minihack==0.1.6" in spec.install
    domain = get_domain("minihack")
    assert isinstance(domain, MiniHackDomain)
    assert {split: len(domain.tasks(split)) for split in SPLITS} == {split: 60 for split in SPLITS}
    details = json.loads(json.dumps(domain.details))  # JSON-able, as `alma domains --json` needs
    assert details["families"]["train"] == [
        "MiniHack-MazeWalk-9x9-v0",
        "MiniHack-Corridor-R3-v0",
        "MiniHack-CorridorBattle-Dark-v0",
        "MiniHack-Quest-Easy-v0",
    ]


@pytest.mark.local_llm
@pytest.mark.domain
def test_a_few_steps_with_the_local_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("xllamacpp")
    if not weights_status("local-small", cache_dir=_MODELS)["installed"]:
        pytest.skip("local-small weights are not installed (alma models install local-small)")
    code = main(
        [
            "play",
            "--domain",
            "minihack",
            "--task",
            "minihack-train-corridor-r3-002",
            "--agent-model",
            "local-small",
            "--max-steps",
            "2",
            "--json",
            "--run-dir",
            str(tmp_path / "run"),
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert 1 <= result["steps_used"] <= 2 and result["tokens"] > 0 and result["cost_usd"] == 0
    corridor = (*MOVES, "open", "kick", "search")
    assert all(
        step["action"] in corridor or not step["valid"] for step in result["episode"]["steps"]
    )
