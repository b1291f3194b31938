"""The ``babaisai`` domain: tasks per split, environments, and shortest plans."""

from __future__ import annotations

import contextlib
import json
import threading
from importlib.resources import files

from alma.domains.babaisai.catalogue import (
    STEP_LIMIT,
    Entry,
    find_level,
    key,
    shipped,
    write_json_atomic,
)
from alma.domains.babaisai.env import BabaIsAIEnv
from alma.domains.babaisai.families import FAMILIES, Level, generate
from alma.errors import ConfigError, UnknownDomainError, UsageError
from alma.paths import cache_dir
from alma.types import SPLITS, Split, Task

#: families that need a skill the in-distribution families never ask for: breaking `wall is
#: stop` to reach the other room, or changing which object is `you`
HELD_OUT = tuple(
    f for f in FAMILIES if "break_stop" in f or "make_you" in f or f == "two_room-make_wall_win"
)
IN_DISTRIBUTION = tuple(f for f in FAMILIES if f not in HELD_OUT)

_SEED_STRIDE = 10_000
# split -> (id infix, families, first seed); seeds of different splits never overlap
_SPLITS: dict[Split, tuple[str, tuple[str, ...], int]] = {
    "train": ("train", IN_DISTRIBUTION, 0),
    "eval_in_distribution": ("eval-id", IN_DISTRIBUTION, _SEED_STRIDE),
    "eval_out_of_distribution": ("eval-ood", HELD_OUT, 2 * _SEED_STRIDE),
}
DEFAULT_INSTANCES = 5

TASK_DESCRIPTION = (
    "Win this Baba Is You level: get an object that is YOU onto an object that is WIN. "
    "The rules are tiles on the map; push them to rewrite the rules when needed."
)


def _read_text(name: str) -> str:
    text = files("alma.domains.babaisai").joinpath(name).read_text(encoding="utf-8")
    return text.strip().format(
        step_limit=STEP_LIMIT,
        in_distribution=", ".join(IN_DISTRIBUTION),
        held_out=", ".join(HELD_OUT),
    )


DESCRIPTION = _read_text("description.txt")
INSTRUCTIONS = _read_text("instructions.txt")


def default_jobs(instances: int = DEFAULT_INSTANCES) -> list[tuple[str, int]]:
    """Every (family, seed) the domain lists with ``instances`` tasks per family and split."""
    return [
        (family, first_seed + i)
        for _infix, families, first_seed in _SPLITS.values()
        for family in families
        for i in range(instances)
    ]


class BabaIsAIDomain:
    """BabaIsAI levels (implements :class:`alma.domains.base.Domain`).

    ``train`` and ``eval_in_distribution`` hold the 22 families listed in ``IN_DISTRIBUTION``
    on disjoint seeds; ``eval_out_of_distribution`` holds the 18 ``HELD_OUT`` families (every
    ``break_stop``, ``maybe_break_stop`` and ``make_you`` family, and ``make_wall_win``).
    Task ids read ``babaisai-train-goto_win-003``, ``babaisai-eval-id-make_win-000``,
    ``babaisai-eval-ood-two_room-make_you-004``.
    """

    name: str = "babaisai"
    step_limit: int = STEP_LIMIT
    description: str = DESCRIPTION
    instructions: str = INSTRUCTIONS

    def __init__(self, instances_per_family: int = DEFAULT_INSTANCES) -> None:
        if not 0 <= instances_per_family <= _SEED_STRIDE:
            raise ConfigError(
                f"babaisai instances_per_family must be between 0 and {_SEED_STRIDE}, "
                f"not {instances_per_family}"
            )
        self.instances_per_family = instances_per_family
        self.details = {
            "families": {split: list(families) for split, (_, families, _) in _SPLITS.items()},
            "instances_per_family": instances_per_family,
            "source": (
                "rules and the 40 level families of BabaIsAI (nacloos/baba-is-ai, MIT licence) "
                "as used by BALROG (balrog-ai/BALROG, MIT licence); engine and generators "
                "written for alma"
            ),
        }
        self._tasks: dict[Split, tuple[Task, ...]] = {}
        self._levels: dict[tuple[str, int], tuple[Level, Entry]] = {}
        self._locks: dict[tuple[str, int], threading.Lock] = {}
        self._lock = threading.Lock()  # guards the two dicts; a level's own lock guards its search

    # ------------------------------------------------------------------ tasks

    def tasks(self, split: Split) -> tuple[Task, ...]:
        if split not in _SPLITS:
            raise UsageError(f"unknown split {split!r}", hint=f"choose one of {', '.join(SPLITS)}")
        if split not in self._tasks:
            infix, families, first_seed = _SPLITS[split]
            catalogue = shipped()
            self._tasks[split] = tuple(
                self._task(
                    split,
                    infix,
                    family,
                    i,
                    first_seed + i,
                    catalogue.get(key(family, first_seed + i)),
                )
                for family in families
                for i in range(self.instances_per_family)
            )
        return self._tasks[split]

    @staticmethod
    def _task(
        split: Split, infix: str, family: str, index: int, seed: int, entry: Entry | None
    ) -> Task:
        params: dict[str, object] = {"family": family}
        if entry is not None:
            params.update(
                optimal_steps=entry.optimal_steps,
                draw=entry.draw,
                outline=entry.outline,
                replaced_draws=len(entry.rejected),
            )
        return Task(f"babaisai-{infix}-{family}-{index:03d}", split, TASK_DESCRIPTION, seed, params)

    # ------------------------------------------------------------------ levels

    def make_env(self, task: Task) -> BabaIsAIEnv:
        level, entry = self.level(task)
        info = {
            "family": level.family,
            "seed": level.seed,
            "draw": level.draw,
            "optimal_steps": entry.optimal_steps,
        }
        return BabaIsAIEnv(level.board, level.state, info)

    def solve(self, task: Task) -> list[str]:
        """A shortest list of moves that wins ``task`` (found by breadth-first search)."""
        return self.level(task)[1].moves()

    def level(self, task: Task) -> tuple[Level, Entry]:
        """The level of ``task`` and its record: the draw played, the plan, rejected draws."""
        family = task.params.get("family")
        if family not in FAMILIES:
            raise UnknownDomainError(
                f"task {task.id!r} is not a babaisai task (no known params['family'])",
                hint="take tasks from BabaIsAIDomain.tasks(split)",
            )
        assert isinstance(family, str)
        wanted = (family, task.seed)
        with self._lock:
            found = self._levels.get(wanted)
            if found is not None:
                return found
            lock = self._locks.setdefault(wanted, threading.Lock())
        with lock:  # one search per level, even when several threads ask for it at once
            with self._lock:
                found = self._levels.get(wanted)
            if found is None:
                found = _resolve(family, task.seed)
                with self._lock:
                    self._levels[wanted] = found
            return found


def _resolve(family: str, seed: int) -> tuple[Level, Entry]:
    """The verified level of (family, seed): shipped, cached on disk, or searched now."""
    entry = shipped().get(key(family, seed))
    if entry is not None:
        level = generate(family, seed, entry.draw)
        if level.fingerprint() == entry.fingerprint:
            return level, entry
    path = cache_dir("babaisai") / "levels" / f"{family}-{seed}.json"
    if path.is_file():
        try:
            cached = Entry.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError):
            cached = None
        if cached is not None:
            level = generate(family, seed, cached.draw)
            if level.fingerprint() == cached.fingerprint:
                return level, cached
    level, entry = find_level(family, seed)
    with contextlib.suppress(OSError):  # a read-only cache only costs a search next time
        write_json_atomic(path, entry.to_json())
    return level, entry
