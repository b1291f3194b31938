"""The ``babaisai`` domain: tasks per split, environments, and shortest plans, in two variants.

``balrog`` (the default) is the benchmark's game: the original engine's rules, levels and
BALROG's text (:mod:`.balrog_engine`, :mod:`.balrog_levels`, :mod:`.balrog_text`); every level is
kept as drawn and labelled with its shortest plan, or with none when it cannot be won within the
step limit. ``alma`` is alma's own game (:mod:`.engine`, :mod:`.families`, :mod:`.observation`):
every level proven winnable within the limit, and a clearer text. Task ids and caches name the
variant (``babaisai-balrog-train-goto_win-000``, ``babaisai-alma-train-goto_win-000``), so runs of
the two are never mixed.
"""

from __future__ import annotations

import contextlib
import json
import threading
from importlib.resources import files
from typing import Any, Literal, get_args

from alma.domains.babaisai.balrog_catalogue import BalrogEntry, shipped_balrog, solve_level
from alma.domains.babaisai.balrog_env import BalrogEnv
from alma.domains.babaisai.balrog_levels import BalrogLevel, generate_balrog
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


Variant = Literal["balrog", "alma"]
VARIANTS: tuple[str, ...] = get_args(Variant)
DEFAULT_VARIANT: Variant = "balrog"

DESCRIPTION = _read_text("description.txt")
INSTRUCTIONS = _read_text("instructions.txt")
BALROG_DESCRIPTION = _read_text("description-balrog.txt")
BALROG_INSTRUCTIONS = _read_text("instructions-balrog.txt")


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
    ``variant`` picks the game (see the module's text). Task ids read
    ``babaisai-balrog-train-goto_win-003``, ``babaisai-alma-eval-id-make_win-000``,
    ``babaisai-balrog-eval-ood-two_room-make_you-004``.
    """

    name: str = "babaisai"
    step_limit: int = STEP_LIMIT

    def __init__(
        self, instances_per_family: int = DEFAULT_INSTANCES, variant: str = DEFAULT_VARIANT
    ) -> None:
        if not 0 <= instances_per_family <= _SEED_STRIDE:
            raise ConfigError(
                f"babaisai instances_per_family must be between 0 and {_SEED_STRIDE}, "
                f"not {instances_per_family}"
            )
        if variant not in VARIANTS:
            raise ConfigError(
                f"unknown babaisai variant {variant!r}",
                hint='set [domains.babaisai] variant = "balrog" (the benchmark\'s game) or "alma"',
            )
        self.instances_per_family = instances_per_family
        self.variant = variant
        balrog = variant == "balrog"
        self.description = BALROG_DESCRIPTION if balrog else DESCRIPTION
        self.instructions = BALROG_INSTRUCTIONS if balrog else INSTRUCTIONS
        self.details = {
            "variant": variant,
            "families": {split: list(families) for split, (_, families, _) in _SPLITS.items()},
            "instances_per_family": instances_per_family,
            "source": (
                "rules and the 40 level families of BabaIsAI (nacloos/baba-is-ai, MIT licence) "
                "as used by BALROG (balrog-ai/BALROG, MIT licence); engine and generators "
                "written for alma"
                + (
                    ", faithful to the original's rules, levels and text"
                    if balrog
                    else "; alma's own variant (every level winnable, clearer text)"
                )
            ),
        }
        self._tasks: dict[Split, tuple[Task, ...]] = {}
        self._levels: dict[tuple[str, int], Any] = {}
        self._locks: dict[tuple[str, int], threading.Lock] = {}
        self._lock = threading.Lock()  # guards the two dicts; a level's own lock guards its search

    # ------------------------------------------------------------------ tasks

    def tasks(self, split: Split) -> tuple[Task, ...]:
        if split not in _SPLITS:
            raise UsageError(f"unknown split {split!r}", hint=f"choose one of {', '.join(SPLITS)}")
        if split not in self._tasks:
            infix, families, first_seed = _SPLITS[split]
            self._tasks[split] = tuple(
                self._task(split, infix, family, i, first_seed + i)
                for family in families
                for i in range(self.instances_per_family)
            )
        return self._tasks[split]

    def task(self, task_id: str) -> Task:
        """The task with this id; a one-line error for an id of the other variant or none."""
        for split in SPLITS:
            for task in self.tasks(split):
                if task.id == task_id:
                    return task
        for other in VARIANTS:
            if other != self.variant and task_id.startswith(f"babaisai-{other}-"):
                raise UnknownDomainError(
                    f"task {task_id!r} belongs to the {other!r} variant of babaisai; "
                    f"this one plays the {self.variant!r} variant",
                    hint=f'set [domains.babaisai] variant = "{other}" in alma.toml to play it',
                )
        if task_id.startswith("babaisai-") and not task_id.startswith(f"babaisai-{self.variant}-"):
            hint = (
                "ids name their variant: babaisai-alma-... for alma's game (what ids without a "
                "variant meant), babaisai-balrog-... for the benchmark's"
            )
        else:
            firsts = [tasks[0].id for split in SPLITS if (tasks := self.tasks(split))]
            hint = f"task ids look like {', '.join(firsts)}; `alma domains` shows the counts"
        raise UnknownDomainError(f"domain 'babaisai' has no task {task_id!r}", hint=hint)

    def _task(self, split: Split, infix: str, family: str, index: int, seed: int) -> Task:
        params: dict[str, object] = {"family": family, "variant": self.variant}
        if self.variant == "balrog":
            found = shipped_balrog().get(key(family, seed))
            if found is not None:
                params.update(optimal_steps=found.optimal_steps, outline=found.outline)
        else:
            entry = shipped().get(key(family, seed))
            if entry is not None:
                params.update(
                    optimal_steps=entry.optimal_steps,
                    draw=entry.draw,
                    outline=entry.outline,
                    replaced_draws=len(entry.rejected),
                )
        task_id = f"babaisai-{self.variant}-{infix}-{family}-{index:03d}"
        return Task(task_id, split, TASK_DESCRIPTION, seed, params)

    # ------------------------------------------------------------------ levels

    def make_env(self, task: Task) -> BabaIsAIEnv | BalrogEnv:
        self._check_variant(task)
        if self.variant == "balrog":
            blevel, bentry = self.balrog_level(task)
            info = {
                "family": blevel.family,
                "seed": blevel.seed,
                "variant": "balrog",
                "optimal_steps": bentry.optimal_steps,
            }
            return BalrogEnv(blevel.board, blevel.state, info)
        level, entry = self.level(task)
        info = {
            "family": level.family,
            "seed": level.seed,
            "draw": level.draw,
            "variant": "alma",
            "optimal_steps": entry.optimal_steps,
        }
        return BabaIsAIEnv(level.board, level.state, info)

    def solve(self, task: Task) -> list[str]:
        """A shortest list of moves that wins ``task`` (found by breadth-first search); empty
        for a ``balrog`` level with no plan within the step limit."""
        self._check_variant(task)
        if self.variant == "balrog":
            return self.balrog_level(task)[1].moves()
        return self.level(task)[1].moves()

    def _check_variant(self, task: Task) -> None:
        variant = task.params.get("variant", "alma")
        if variant != self.variant:
            raise UnknownDomainError(
                f"task {task.id!r} belongs to the {variant!r} variant of babaisai; "
                f"this one plays the {self.variant!r} variant",
                hint=f'set [domains.babaisai] variant = "{variant}" in alma.toml to play it',
            )

    def _family(self, task: Task) -> str:
        family = task.params.get("family")
        if family not in FAMILIES:
            raise UnknownDomainError(
                f"task {task.id!r} is not a babaisai task (no known params['family'])",
                hint="take tasks from BabaIsAIDomain.tasks(split)",
            )
        assert isinstance(family, str)
        return family

    def _once(self, wanted: tuple[str, int], resolve: Any) -> Any:
        """``resolve()`` once per level, even when several threads ask for it at once."""
        with self._lock:
            found = self._levels.get(wanted)
            if found is not None:
                return found
            lock = self._locks.setdefault(wanted, threading.Lock())
        with lock:
            with self._lock:
                found = self._levels.get(wanted)
            if found is None:
                found = resolve()
                with self._lock:
                    self._levels[wanted] = found
            return found

    def level(self, task: Task) -> tuple[Level, Entry]:
        """The ``alma`` level of ``task`` and its record: the draw played, the plan, rejected
        draws."""
        family = self._family(task)
        found: tuple[Level, Entry] = self._once(
            (family, task.seed), lambda: _resolve(family, task.seed)
        )
        return found

    def balrog_level(self, task: Task) -> tuple[BalrogLevel, BalrogEntry]:
        """The ``balrog`` level of ``task`` and the solver's verdict on it."""
        family = self._family(task)
        found: tuple[BalrogLevel, BalrogEntry] = self._once(
            (family, task.seed), lambda: _resolve_balrog(family, task.seed)
        )
        return found


def _resolve(family: str, seed: int) -> tuple[Level, Entry]:
    """The verified level of (family, seed): shipped, cached on disk, or searched now."""
    entry = shipped().get(key(family, seed))
    if entry is not None:
        level = generate(family, seed, entry.draw)
        if level.fingerprint() == entry.fingerprint:
            return level, entry
    path = cache_dir("babaisai") / "alma" / "levels" / f"{family}-{seed}.json"
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


def _resolve_balrog(family: str, seed: int) -> tuple[BalrogLevel, BalrogEntry]:
    """The ``balrog`` level of (family, seed) with its verdict: shipped, cached, or solved now."""
    level = generate_balrog(family, seed)
    entry = shipped_balrog().get(key(family, seed))
    if entry is not None and entry.fingerprint == level.fingerprint():
        return level, entry
    path = cache_dir("babaisai") / "balrog" / "levels" / f"{family}-{seed}.json"
    if path.is_file():
        try:
            cached = BalrogEntry.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError):
            cached = None
        if cached is not None and cached.fingerprint == level.fingerprint():
            return level, cached
    level, entry = solve_level(family, seed)
    with contextlib.suppress(OSError):
        write_json_atomic(path, entry.to_json())
    return level, entry
