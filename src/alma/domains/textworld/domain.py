"""The ``textworld`` domain object: task lists, environments, and generating games ahead of time."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from importlib.resources import files
from types import ModuleType
from typing import Any

from alma.domains.base import PrepareReport
from alma.domains.textworld.families import (
    DEFAULT_TASKS,
    FAMILIES,
    MAX_TASKS,
    SPLIT_PLANS,
    STEP_LIMIT,
    TEXTWORLD_PINNED,
    GameSettings,
    settings_name,
    settings_named,
    textworld_version,
)
from alma.errors import ConfigError, MissingDependencyError, UnknownDomainError, UsageError
from alma.paths import cache_dir
from alma.types import SPLITS, Split, Task

GOALS = {
    "coin_collector": "Find the coin somewhere in the maze of rooms and take it.",
    "treasure_hunter": "Find the object named in the game's objective and take it.",
    "cooking": (
        "Read the recipe in the cookbook, gather and prepare its ingredients, "
        "then prepare the meal and eat it."
    ),
}


def _read_text(name: str) -> str:
    text = files("alma.domains.textworld").joinpath(name).read_text(encoding="utf-8")
    return text.strip().format(step_limit=STEP_LIMIT)


DESCRIPTION = _read_text("description.txt")
INSTRUCTIONS = _read_text("instructions.txt")


def _generation() -> ModuleType:
    try:
        from alma.domains.textworld import generation
    except ImportError as exc:
        from alma.domains.registry import domain_spec

        raise MissingDependencyError(
            f"the textworld domain needs the textworld package ({exc})",
            hint=domain_spec("textworld").install,
        ) from exc
    return generation


class TextWorldDomain:
    """Text adventures made by TextWorld's generators (implements the Domain protocol).

    Splits (task ``i`` of a split plays the settings ``i`` modulo the number of settings, on
    seed ``first seed + i``):

    - ``train`` (``textworld-train-000``...) and ``eval_in_distribution``
      (``textworld-eval-id-000``...): coin collector level 220, the cooking game (recipe 5,
      take 5, go 12, open, cook, cut; TextWorld's training foods) and treasure hunter level 30,
      in turn, on disjoint seeds.
    - ``eval_out_of_distribution`` (``textworld-eval-ood-000``...): harder versions of two
      families, in turn: coin collector level 230 (a 30-room chain instead of 20) and the
      cooking game with a limited inventory (``drop``) and TextWorld's test foods and
      preparations, never seen in the other splits. No treasure hunter: level 30 is already
      its hardest.

    ``tasks`` costs nothing; a game is generated the first time an environment is made for
    it (a few seconds for coin collector and cooking; for treasure hunter half a minute, and
    minutes when seeds have to be replaced) and cached, or ahead of time for many tasks at
    once, in parallel and with a progress bar, by :meth:`prepare`.
    ``families`` keeps only some families (task ids do not change).
    """

    name: str = "textworld"
    step_limit: int = STEP_LIMIT
    description: str = DESCRIPTION
    instructions: str = INSTRUCTIONS

    def __init__(
        self, tasks_per_split: int = DEFAULT_TASKS, families: Sequence[str] | None = None
    ) -> None:
        if not 0 <= tasks_per_split <= MAX_TASKS:
            raise ConfigError(
                f"textworld tasks_per_split must be between 0 and {MAX_TASKS}, "
                f"not {tasks_per_split}"
            )
        chosen = tuple(FAMILIES if families is None else families)
        unknown = sorted(set(chosen) - set(FAMILIES))
        if unknown:
            raise ConfigError(
                f"unknown textworld families: {', '.join(unknown)}",
                hint=f"choose among {', '.join(FAMILIES)}",
            )
        self.tasks_per_split = tasks_per_split
        self.families = chosen
        self._tasks: dict[Split, tuple[Task, ...]] = {}

    # ------------------------------------------------------------------ the Domain protocol

    def tasks(self, split: Split) -> tuple[Task, ...]:
        if split not in SPLIT_PLANS:
            raise UsageError(f"unknown split {split!r}", hint=f"choose one of {', '.join(SPLITS)}")
        if split not in self._tasks:
            plan = SPLIT_PLANS[split]
            chosen = []
            for index in range(self.tasks_per_split):
                settings = plan.settings[index % len(plan.settings)]
                if settings.family in self.families:
                    task_id = f"textworld-{plan.infix}-{index:03d}"
                    chosen.append(self._task(task_id, split, plan.first_seed + index, settings))
            self._tasks[split] = tuple(chosen)
        return self._tasks[split]

    def make_env(self, task: Task) -> Any:
        """The task's game, generated first if the cache does not hold it yet."""
        from alma.domains.textworld.env import TextWorldEnv

        settings = self._settings(task)
        game = _generation().ensure_game(settings, task.seed)
        return TextWorldEnv(game.path, {"family": settings.family, "game_seed": game.seed})

    # ------------------------------------------------------------------ beyond the protocol

    @property
    def details(self) -> dict[str, Any]:
        """Shown by ``alma domains``: where the games come from and what each split holds."""
        generator = f"TextWorld {textworld_version()} challenge generators"
        if textworld_version() != TEXTWORLD_PINNED:
            generator += f" (the task ids stand for the games of TextWorld {TEXTWORLD_PINNED})"
        return {
            "generator": generator,
            "families": {
                split: [
                    f"{s.family}: {s.summary}"
                    for s in SPLIT_PLANS[split].settings
                    if s.family in self.families
                ]
                for split in SPLITS
            },
            "cache": str(cache_dir("textworld")),
        }

    def game(self, task: Task) -> Any:
        """The task's game in the cache (a ``CachedGame``: seed, story file, seeds skipped),
        generated first if needed."""
        return _generation().ensure_game(self._settings(task), task.seed)

    def solve(self, task: Task) -> list[str]:
        """The walkthrough of the task's game: commands that win it within the step limit."""
        game = self.game(task)
        data = json.loads(game.path.with_suffix(".json").read_text(encoding="utf-8"))
        return list(data["metadata"]["walkthrough"])

    def prepare(
        self,
        tasks: Split | Sequence[Task] = "train",
        *,
        workers: int | None = None,
        progress: bool = True,
    ) -> PrepareReport:
        """Generates every game of ``tasks`` (a split or a task list) that is not cached yet.

        Runs ``workers`` generator processes at once (default: one per CPU core) and shows a
        progress bar on stderr unless ``progress`` is False. Seeds replaced on the way are
        logged as warnings and listed in the result.
        """
        generation = _generation()
        chosen = list(self.tasks(tasks) if isinstance(tasks, str) else tasks)
        started = time.perf_counter()
        missing = [
            task
            for task in chosen
            if generation.find_cached(self._settings(task), task.seed) is None
        ]
        settled = generation.generate_many(
            [(self._settings(task), task.seed) for task in missing],
            workers=workers,
            progress=progress,
        )
        replaced = {}
        for task in chosen:
            game = generation.find_cached(self._settings(task), task.seed)
            if game is not None and game.seed != task.seed:
                replaced[task.id] = game.seed
        return PrepareReport(
            cached=len(chosen) - len(missing),
            generated=len(missing),
            seconds=time.perf_counter() - started,
            replaced=replaced,
            game_seconds={
                task.id: done.made_in or 0.0 for task, done in zip(missing, settled, strict=True)
            },
        )

    # ------------------------------------------------------------------ internals

    def _task(self, task_id: str, split: Split, seed: int, settings: GameSettings) -> Task:
        params = {"family": settings.family, "settings": settings_name(settings)}
        return Task(task_id, split, GOALS[settings.family], seed, params)

    def _settings(self, task: Task) -> GameSettings:
        settings = settings_named(str(task.params.get("settings", "")))
        if settings is None:
            raise UnknownDomainError(
                f"task {task.id!r} is not a textworld task (no known params['settings'])",
                hint="take tasks from TextWorldDomain.tasks(split)",
            )
        return settings
