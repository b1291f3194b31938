"""The built-in toy domain: splits, determinism, solvability and game rules.

Most tests pin the ``classic`` profile, whose ids and games predate the memory test bed (the
default ``houses`` profile, tested in test_testbed.py); the game rules are the same in both.
"""

from __future__ import annotations

import re

import pytest

from alma.domains.base import Domain, TextEnv
from alma.domains.toy import STEP_LIMIT, ToyDomain, ToyEnv, parse_command
from alma.errors import ConfigError, UnknownDomainError, UsageError
from alma.types import SPLITS, Observation, Split, Task, Transition

ROOM_LINE = re.compile(r"^You are in the [a-z ]+\.$")
LOCKED_EXIT = re.compile(r"(north|south|east|west) \(an? (\w+) door, locked\)")


@pytest.fixture(scope="module")
def toy() -> ToyDomain:
    return ToyDomain(profile="classic")


def room_of(obs: Observation) -> str:
    return obs.text.splitlines()[0]


def task_with_lock(toy: ToyDomain) -> Task:
    return next(t for t in toy.tasks("train") if t.params["locked_doors"] == 1)


def play(env: ToyEnv, actions: list[str]) -> Transition:
    transition = None
    for action in actions:
        transition = env.step(action)
    assert transition is not None
    return transition


# --------------------------------------------------------------------------- contract and splits


def test_implements_the_domain_contract(toy: ToyDomain) -> None:
    assert isinstance(toy, Domain)
    assert isinstance(toy.make_env(toy.tasks("train")[0]), TextEnv)
    assert toy.name == "toy"
    assert toy.step_limit == STEP_LIMIT == 25
    assert "locked" in toy.description and "eval_out_of_distribution" in toy.description
    for command in ("go <direction>", "take <item>", "drop <item>", "open <colour> door", "look"):
        assert command in toy.instructions
    assert "25 steps" in toy.instructions and "{" not in toy.instructions


@pytest.mark.parametrize(
    ("split", "pattern"),
    [
        ("train", r"toy-train-\d{3}"),
        ("eval_in_distribution", r"toy-eval-id-\d{3}"),
        ("eval_out_of_distribution", r"toy-eval-ood-\d{3}"),
    ],
)
def test_split_has_50_readable_unique_ids(toy: ToyDomain, split: Split, pattern: str) -> None:
    tasks = toy.tasks(split)
    assert len(tasks) == 50
    assert all(re.fullmatch(pattern, t.id) and t.split == split for t in tasks)
    assert len({t.id for t in tasks}) == 50
    assert tasks[7].id.endswith("-007")
    assert all(re.fullmatch(r"Find the [a-z ]+ and take it\.", t.description) for t in tasks)


def test_splits_are_disjoint_in_ids_seeds_and_games(toy: ToyDomain) -> None:
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not {t.id for t in toy.tasks(a)} & {t.id for t in toy.tasks(b)}
                assert not {t.seed for t in toy.tasks(a)} & {t.seed for t in toy.tasks(b)}
    train_games = {toy.make_env(t).reset().text + t.description for t in toy.tasks("train")}
    eval_games = {
        toy.make_env(t).reset().text + t.description for t in toy.tasks("eval_in_distribution")
    }
    assert not train_games & eval_games


def test_split_profiles(toy: ToyDomain) -> None:
    for split in ("train", "eval_in_distribution"):
        params = [t.params for t in toy.tasks(split)]
        assert {p["rooms"] for p in params} == {3, 4, 5}
        assert {p["locked_doors"] for p in params} == {0, 1}
    ood = [t.params for t in toy.tasks("eval_out_of_distribution")]
    assert {p["rooms"] for p in ood} == {6, 7, 8, 9}
    assert {p["locked_doors"] for p in ood} == {2}
    assert min(p["items"] for p in ood) > max(p["items"] for p in params)


def test_task_count_is_a_constructor_argument_and_ids_are_stable(toy: ToyDomain) -> None:
    small = ToyDomain(tasks_per_split=7, profile="classic")
    for split in SPLITS:
        assert small.tasks(split) == toy.tasks(split)[:7]
    assert len(ToyDomain(tasks_per_split=120, profile="classic").tasks("train")) == 120
    assert ToyDomain(tasks_per_split=0).tasks("train") == ()
    with pytest.raises(ConfigError, match="tasks_per_split"):
        ToyDomain(tasks_per_split=-1)


def test_unknown_split_and_foreign_task_are_clear_errors(toy: ToyDomain) -> None:
    with pytest.raises(UsageError, match="unknown split 'test'"):
        toy.tasks("test")  # type: ignore[arg-type]
    foreign = Task("other-1", "train", "Do something.")
    with pytest.raises(UnknownDomainError, match="'other-1' is not a toy task"):
        toy.make_env(foreign)


# --------------------------------------------------------------------------- determinism


def test_reset_is_deterministic_across_envs_instances_and_replays(toy: ToyDomain) -> None:
    for split in SPLITS:
        task = toy.tasks(split)[3]
        env = toy.make_env(task)
        first = env.reset()
        play(env, ["look", *toy.solve(task)[:-1]])
        assert env.reset() == first
        assert ToyDomain().make_env(task).reset() == first
        assert ToyDomain().solve(task) == toy.solve(task)


def test_example_observation(toy: ToyDomain) -> None:
    obs = toy.make_env(toy.tasks("eval_out_of_distribution")[3]).reset()
    assert obs.text == (
        "You are in the gallery.\nExits: south, west (a white door, locked).\nYou see nothing here."
    )
    assert obs.actions == ("go south", "go west", "open white door", "look", "inventory")
    assert obs.info == {"room": "gallery"}


# --------------------------------------------------------------------------- solvability


@pytest.mark.parametrize("split", SPLITS)
def test_every_task_is_won_by_replaying_solve(toy: ToyDomain, split: Split) -> None:
    for task in toy.tasks(split):
        solution = toy.solve(task)
        assert 2 <= len(solution) <= toy.step_limit
        assert len(solution) == task.params["optimal_steps"]
        env = toy.make_env(task)
        obs = env.reset()
        assert ROOM_LINE.match(room_of(obs))
        for i, action in enumerate(solution):
            assert obs.actions is not None and action in obs.actions, (task.id, action)
            transition = env.step(action)
            obs = transition.observation
            assert ROOM_LINE.match(room_of(obs)), obs.text
            last = i == len(solution) - 1
            assert transition.done is last and transition.success is last, (task.id, i)
        assert transition.reward == 1.0 and transition.info == {"won": True}
        assert solution[-1] == "take " + task.description.removeprefix("Find the ").split(" and")[0]


def test_ood_keys_form_a_chain(toy: ToyDomain) -> None:
    for task in toy.tasks("eval_out_of_distribution"):
        solution = toy.solve(task)
        opens = [i for i, a in enumerate(solution) if a.startswith("open ")]
        assert len(opens) == 2, task.id
        second_colour = solution[opens[1]].split()[1]
        # the second key can only be picked up once the first door is open
        assert solution.index(f"take {second_colour} key") > opens[0], task.id


def test_solution_needs_the_key_before_the_door(toy: ToyDomain) -> None:
    for task in toy.tasks("train"):
        solution = toy.solve(task)
        for i, action in enumerate(solution):
            if action.startswith("open "):
                assert f"take {action.split()[1]} key" in solution[:i]


# --------------------------------------------------------------------------- rules


def test_admissible_actions_include_useless_ones(toy: ToyDomain) -> None:
    task = task_with_lock(toy)
    env = toy.make_env(task)
    env.reset()
    solution = toy.solve(task)
    obs = play(env, solution[: solution.index(next(a for a in solution if "open" in a))])
    assert obs.observation.actions is not None
    match = LOCKED_EXIT.search(obs.observation.text)
    assert match is not None
    direction, colour = match.groups()
    assert f"go {direction}" in obs.observation.actions
    assert f"open {colour} door" in obs.observation.actions
    assert f"drop {colour} key" in obs.observation.actions
    assert obs.observation.actions[-2:] == ("look", "inventory")
    assert all(parse_command(a) is not None for a in obs.observation.actions)
    takes = {
        (action, t.description)
        for t in toy.tasks("train")
        for action in toy.make_env(t).reset().actions or ()
        if action.startswith("take ")
    }
    assert any(" key" not in a and a[5:] not in description for a, description in takes)


def test_locked_door(toy: ToyDomain) -> None:
    task = task_with_lock(toy)
    solution = toy.solve(task)
    env = toy.make_env(task)
    env.reset()
    at_door = play(env, solution[: solution.index(next(a for a in solution if "open" in a))])
    match = LOCKED_EXIT.search(at_door.observation.text)
    assert match is not None
    direction, colour = match.groups()
    room = room_of(at_door.observation)

    blocked = env.step(f"go {direction}")
    assert blocked.observation.text.splitlines()[1] == (
        f"The {colour} door to the {direction} is locked."
    )
    assert room_of(blocked.observation) == room and not blocked.done

    env.step(f"drop {colour} key")
    no_key = env.step(f"open {colour} door")
    assert f"The {colour} door is locked, and you don't carry the {colour} key." in (
        no_key.observation.text
    )
    env.step(f"take {colour} key")
    opened = env.step(f"open {colour} door")
    assert f"You unlock the {colour} door with the {colour} key and open it." in (
        opened.observation.text
    )
    assert f"{direction} (a {colour} door, open)" in opened.observation.text.replace(" an ", " a ")
    assert f"open {colour} door" not in (opened.observation.actions or ())
    assert "is already open" in env.step(f"open {colour} door").observation.text
    moved = env.step(f"go {direction}")
    assert room_of(moved.observation) != room
    assert (
        f"({'an' if colour[0] in 'aeiou' else 'a'} {colour} door, open)" in moved.observation.text
    )


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("dance wildly", 'I don\'t understand "dance wildly". Commands: go <direction>, '),
        ("", 'I don\'t understand "". Commands:'),
        ("go up", 'I don\'t understand "go up".'),
        ("take unicorn", "There is no unicorn here."),
        ("drop golden anvil", "You don't carry any golden anvil."),
        ("open door", 'Which door? Name its colour, e.g. "open red door".'),
        ("open mauve door", "There is no mauve door here."),
        ("inventory", "You carry nothing."),
    ],
)
def test_invalid_commands_give_a_message_and_change_nothing(
    toy: ToyDomain, command: str, message: str
) -> None:
    env = toy.make_env(toy.tasks("train")[0])
    start = env.reset()
    transition = env.step(command)
    lines = transition.observation.text.splitlines()
    assert lines[0] == room_of(start)
    assert lines[1].startswith(message)
    assert lines[2:] == start.text.splitlines()[1:]
    assert (transition.reward, transition.done, transition.success) == (0.0, False, False)
    assert transition.info == {"won": False}


def test_walls(toy: ToyDomain) -> None:
    env = toy.make_env(toy.tasks("train")[0])
    actions = env.reset().actions or ()
    wall = next(d for d in ("north", "south", "east", "west") if f"go {d}" not in actions)
    assert f"You can't go {wall} from here." in env.step(f"go {wall}").observation.text


def test_winning_ends_the_game_until_reset(toy: ToyDomain) -> None:
    task = toy.tasks("train")[0]
    env = toy.make_env(task)
    env.reset()
    solution = toy.solve(task)
    won = play(env, solution)
    goal = solution[-1].removeprefix("take ")
    assert f"You take the {goal}. You found it: you win!" in won.observation.text
    after = env.step("look")
    assert after.done and after.success and after.reward == 0.0
    assert "The game is over" in after.observation.text

    env.reset()  # puts the goal back
    assert play(env, solution).success


def test_drop_puts_the_item_in_the_room(toy: ToyDomain) -> None:
    task = task_with_lock(toy)
    env = toy.make_env(task)
    env.reset()
    solution = toy.solve(task)
    take_key = next(a for a in solution if a.endswith(" key"))
    key = take_key.removeprefix("take ")
    play(env, solution[: solution.index(take_key) + 1])
    assert f"You carry: a {key}." in env.step("i").observation.text.replace(" an ", " a ")
    assert f"You already carry the {key}." in env.step(take_key).observation.text
    dropped = env.step(f"drop the {key}")
    assert f"You drop the {key}." in dropped.observation.text
    assert key in dropped.observation.text.splitlines()[-1]
    assert take_key in (dropped.observation.actions or ())


@pytest.mark.parametrize(
    ("command", "parsed"),
    [
        ("go north", ("go", "north")),
        ("N", ("go", "north")),
        ("walk West.", ("go", "west")),
        ("Take the Blue Key!", ("take", "blue key")),
        ("pick up a rusty spoon", ("take", "rusty spoon")),
        ("get golden coin", ("take", "golden coin")),
        ("put down the old boot", ("drop", "old boot")),
        ("unlock the red door", ("open", "red")),
        ("open door", ("open", "")),
        ("l", ("look", "")),
        ("i", ("inventory", "")),
        ("take", None),
        ("go", None),
        ("look around", None),
        ("open the chest", None),
        ("   ", None),
    ],
)
def test_parse_command(command: str, parsed: tuple[str, str] | None) -> None:
    assert parse_command(command) == parsed
