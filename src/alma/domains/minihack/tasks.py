"""MiniHack task families, splits and task ids: plain data, no game is touched here.

A task is one MiniHack environment (its gym id) and one NetHack seed. Families seen in training
(``train`` and ``eval_in_distribution``, on disjoint seeds) and families held out of training
(``eval_out_of_distribution``) are fixed below. Tasks of a split are dealt to its families in
turn, so any prefix of a split mixes them; the id names the family and the task's index within
it, e.g. ``minihack-train-mazewalk-9x9-004``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from alma.domains.minihack.actions import ITEM_COMMANDS, MOVES, far_moves
from alma.errors import ConfigError, UnknownDomainError, UsageError
from alma.types import SPLITS, Split, Task

STEP_LIMIT = 100


@dataclass(frozen=True)
class Family:
    """One MiniHack environment as this domain presents it."""

    slug: str  # the family's part of a task id
    env_id: str  # MiniHack's gym id
    goal: str  # the task description the acting agent reads
    actions: tuple[str, ...]  # the named actions of the family (outside questions and menus)
    inventory: bool  # whether observations list the inventory (tasks where items matter)


_CORRIDOR_ACTIONS = (*MOVES, "open", "kick", "search")
_QUEST_ACTIONS = (*MOVES, *far_moves(), "wait", "search", "look", *ITEM_COMMANDS)

FAMILIES: dict[str, Family] = {
    family.slug: family
    for family in (
        Family(
            "mazewalk-9x9",
            "MiniHack-MazeWalk-9x9-v0",
            "Find a way through the dark maze to the staircase down (>) and step onto it.",
            MOVES,
            inventory=False,
        ),
        Family(
            "corridor-r3",
            "MiniHack-Corridor-R3-v0",
            "Find the staircase down (>) in one of the rooms joined by corridors, and step "
            "onto it.",
            _CORRIDOR_ACTIONS,
            inventory=False,
        ),
        Family(
            "corridorbattle-dark",
            "MiniHack-CorridorBattle-Dark-v0",
            "Reach the staircase down (>) beyond the dark corridor and step onto it; monsters "
            "lurk in the dark.",
            MOVES,
            inventory=False,
        ),
        Family(
            "quest-easy",
            "MiniHack-Quest-Easy-v0",
            "Reach the staircase down (>) on the far side of the level and step onto it; "
            "monsters and lava stand in the way.",
            _QUEST_ACTIONS,
            inventory=True,
        ),
        Family(
            "mazewalk-15x15",
            "MiniHack-MazeWalk-15x15-v0",
            "Find a way through the dark maze to the staircase down (>) and step onto it.",
            MOVES,
            inventory=False,
        ),
        Family(
            "quest-medium",
            "MiniHack-Quest-Medium-v0",
            "Reach the staircase down (>) at the far end of the level and step onto it; "
            "monsters and lava stand in the way.",
            _QUEST_ACTIONS,
            inventory=True,
        ),
    )
}

# split -> (id infix, families, first seed); seeds of different splits never overlap
SEED_STRIDE = 100_000
SPLIT_FAMILIES: dict[Split, tuple[str, tuple[str, ...], int]] = {
    "train": (
        "train",
        ("mazewalk-9x9", "corridor-r3", "corridorbattle-dark", "quest-easy"),
        SEED_STRIDE,
    ),
    "eval_in_distribution": (
        "eval-id",
        ("mazewalk-9x9", "corridor-r3", "corridorbattle-dark", "quest-easy"),
        2 * SEED_STRIDE,
    ),
    "eval_out_of_distribution": (
        "eval-ood",
        ("mazewalk-15x15", "quest-medium"),
        3 * SEED_STRIDE,
    ),
}

_ID = re.compile(r"minihack-(train|eval-id|eval-ood)-([a-z0-9-]+)-(\d{3,})")


def check_size(tasks_per_split: int) -> None:
    if not 0 <= tasks_per_split <= SEED_STRIDE:
        raise ConfigError(
            f"minihack tasks_per_split must be between 0 and {SEED_STRIDE}, not {tasks_per_split}"
        )


def split_tasks(split: Split, tasks_per_split: int) -> tuple[Task, ...]:
    """The tasks of ``split``: ids, seeds and parameters only (cheap)."""
    if split not in SPLIT_FAMILIES:
        raise UsageError(f"unknown split {split!r}", hint=f"choose one of {', '.join(SPLITS)}")
    infix, slugs, first_seed = SPLIT_FAMILIES[split]
    tasks = []
    for index in range(tasks_per_split):
        family = FAMILIES[slugs[index % len(slugs)]]
        number = index // len(slugs)
        tasks.append(
            Task(
                f"minihack-{infix}-{family.slug}-{number:03d}",
                split,
                family.goal,
                first_seed + index,
                {"family": family.slug, "env_id": family.env_id},
            )
        )
    return tuple(tasks)


def id_range(tasks_per_split: int) -> str:
    """One line naming every valid task id, for error hints."""
    parts = []
    for split, (infix, slugs, _) in SPLIT_FAMILIES.items():
        for position, slug in enumerate(slugs):
            count = len(range(position, tasks_per_split, len(slugs)))
            if count:
                parts.append(f"minihack-{infix}-{slug}-000..{count - 1:03d} ({split})")
    return "; ".join(parts) if parts else "this domain was built with no tasks"


def find(task_id: str, tasks_per_split: int) -> Task:
    """The task with id ``task_id``; raises UnknownDomainError naming the valid ids."""
    match = _ID.fullmatch(task_id)
    if match is not None:
        split = next(s for s, (infix, _, _) in SPLIT_FAMILIES.items() if infix == match[1])
        for task in split_tasks(split, tasks_per_split):
            if task.id == task_id:
                return task
    raise UnknownDomainError(
        f"minihack has no task {task_id!r}", hint=f"valid ids: {id_range(tasks_per_split)}"
    )


def family_of(task: Task) -> Family:
    """The family a task belongs to; raises UnknownDomainError for a task of another domain."""
    family = FAMILIES.get(str(task.params.get("family")))
    if family is None or not isinstance(task.seed, int) or task.seed < 0:
        raise UnknownDomainError(
            f"task {task.id!r} is not a minihack task (no known params['family'] and seed)",
            hint="take tasks from MiniHackDomain.tasks(split)",
        )
    return family
