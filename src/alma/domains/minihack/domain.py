"""The ``minihack`` domain: MiniHack tasks on fixed NetHack seeds, played in text."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from alma.domains.minihack.env import MiniHackEnv
from alma.domains.minihack.tasks import (
    FAMILIES,
    SPLIT_FAMILIES,
    STEP_LIMIT,
    check_size,
    family_of,
    find,
    split_tasks,
)
from alma.types import Split, Task


def _read_text(name: str) -> str:
    text = files("alma.domains.minihack").joinpath(name).read_text(encoding="utf-8")
    return text.strip().replace("{step_limit}", str(STEP_LIMIT))


DESCRIPTION = _read_text("description.txt")
INSTRUCTIONS = _read_text("instructions.txt")


class MiniHackDomain:
    """MiniHack mazes, corridors and quests (implements :class:`alma.domains.base.Domain`).

    ``train`` and ``eval_in_distribution`` hold MazeWalk-9x9, Corridor-R3, CorridorBattle-Dark
    and Quest-Easy on disjoint seeds; ``eval_out_of_distribution`` holds the two families kept
    out of training, MazeWalk-15x15 (a bigger maze) and Quest-Medium (a longer quest with a pack
    of monsters). Each split has ``tasks_per_split`` tasks (60 by default) dealt to its families
    in turn. Listing tasks is free; a game is created only by :meth:`make_env`.
    """

    name: str = "minihack"
    step_limit: int = STEP_LIMIT
    description: str = DESCRIPTION
    instructions: str = INSTRUCTIONS

    def __init__(self, tasks_per_split: int = 60) -> None:
        check_size(tasks_per_split)
        self.tasks_per_split = tasks_per_split
        self._tasks: dict[Split, tuple[Task, ...]] = {}
        self.details: dict[str, Any] = {
            "families": {
                split: [FAMILIES[slug].env_id for slug in slugs]
                for split, (_, slugs, _) in SPLIT_FAMILIES.items()
            },
            "source": "MiniHack 0.1.6 levels in NetHack 3.6 (balrog-nle), seeded per task",
        }

    def tasks(self, split: Split) -> tuple[Task, ...]:
        if split not in self._tasks:
            self._tasks[split] = split_tasks(split, self.tasks_per_split)
        return self._tasks[split]

    def task(self, task_id: str) -> Task:
        """The task with this id; raises UnknownDomainError listing the valid ids."""
        return find(task_id, self.tasks_per_split)

    def make_env(self, task: Task) -> MiniHackEnv:
        return MiniHackEnv(family_of(task), task.seed)
