"""The generated task source: seeded ALFWorld-style tasks, checked solvable, cached on disk.

Splits. ``train`` and ``eval_in_distribution`` are drawn from the floor plans ALFRED trains on,
with disjoint seeds; ``eval_out_of_distribution`` from the floor plans ALFRED holds out for its
unseen-room evaluation (``TEST_SCENE_NUMBERS``), the rooms of ALFWorld's ``valid_unseen``. Task
``i`` of a split has the task type ``i mod 6``, so every split holds all six.

Listing a split only draws each task's goal (:func:`~.generator.sample_spec`). The game is made
the first time a task is played or prepared: the initial state is drawn, checked solvable within
the step limit (:func:`~.solver.check_problem`), and written to the cache as one JSON file, the
way ALFWorld stores a game (``game.tw-pddl`` content, plus ``traj_data`` naming the task). A
state that fails its check is replaced by the next attempt's (the seed stays, the attempt number
grows), which is deterministic; the failed attempts and their reasons are kept in the file.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alma.domains.alfworld.dependencies import alfworld_version, load_solver
from alma.domains.alfworld.game_cache import read_json, write_json
from alma.domains.alfworld.generator import (
    TASK_TYPES,
    Problem,
    TaskSpec,
    draw_problem,
    sample_spec,
)
from alma.domains.alfworld.scenes import floor_plan, floor_plan_numbers, rules
from alma.errors import AlmaError, UnknownDomainError
from alma.paths import cache_dir
from alma.types import Split, Task

if TYPE_CHECKING:
    from alma.domains.alfworld.solver import Verdict

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1  # bump when the same seed would give a different game
MAX_ATTEMPTS = 8  # initial states tried for one task before giving up
SEED_STRIDE = 100_000
# split -> (id infix, held-out floor plans?, first seed)
SPLIT_SETTINGS: dict[Split, tuple[str, bool, int]] = {
    "train": ("train", False, 0),
    "eval_in_distribution": ("eval-id", False, SEED_STRIDE),
    "eval_out_of_distribution": ("eval-ood", True, 2 * SEED_STRIDE),
}


class GenerationError(AlmaError):
    """No solvable game could be made for a task."""


def floor_plans(held_out: bool) -> tuple[int, ...]:
    """The floor plans of the seen rooms, or of the held-out ones."""
    out = rules().held_out
    return tuple(n for n in floor_plan_numbers() if (n in out) == held_out)


@dataclass(frozen=True)
class Game:
    """A playable game and what is known about how it was made."""

    data: dict[str, Any]  # the game.tw-pddl content
    walkthrough: tuple[str, ...]
    attempt: int
    replaced: tuple[dict[str, Any], ...]  # the failed attempts: {"attempt": i, "reason": ...}


class GeneratedTasks:
    """Tasks of the generated source, and their games (made on first use, then cached)."""

    source = "generated"

    def __init__(self, tasks_per_split: int, step_limit: int, root: Path | None = None) -> None:
        self.tasks_per_split = tasks_per_split
        self.step_limit = step_limit
        self._root = root
        self._tasks: dict[Split, tuple[Task, ...]] = {}
        self._games: dict[str, Game] = {}
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    @property
    def root(self) -> Path:
        """The cache folder of this generator version (``ALMA_CACHE_DIR`` moves it)."""
        if self._root is not None:
            return self._root
        version = f"generated-v{GENERATOR_VERSION}-alfworld{alfworld_version()}"
        return cache_dir("alfworld") / version

    def details(self) -> dict[str, Any]:
        return {
            "source": "generated",
            "note": (
                "ALFWorld-style tasks generated locally from the floor plans, PDDL domain, "
                "grammar and goal library ALFWorld ships; not the official ALFWorld game files "
                "(set ALFWORLD_DATA to use those)"
            ),
            "task_types": list(TASK_TYPES),
            "floor_plans": {
                split: len(floor_plans(held_out))
                for split, (_, held_out, _) in SPLIT_SETTINGS.items()
            },
            "cache": str(self.root),
        }

    # ------------------------------------------------------------------ listing

    def tasks(self, split: Split) -> tuple[Task, ...]:
        if split not in self._tasks:
            infix, held_out, first_seed = SPLIT_SETTINGS[split]
            plans = floor_plans(held_out)
            tasks = []
            for i in range(self.tasks_per_split):
                spec = sample_spec(TASK_TYPES[i % len(TASK_TYPES)], plans, first_seed + i)
                tasks.append(self._task(f"alfworld-gen-{infix}-{i:03d}", split, spec))
            self._tasks[split] = tuple(tasks)
        return self._tasks[split]

    @staticmethod
    def _task(task_id: str, split: Split, spec: TaskSpec) -> Task:
        params = {
            "source": "generated",
            **spec.params(),
            "room": floor_plan(spec.floor_plan).room,
        }
        return Task(task_id, split, spec.goal, spec.seed, params)

    @staticmethod
    def spec(task: Task) -> TaskSpec:
        if task.params.get("source") != "generated":
            raise UnknownDomainError(
                f"task {task.id!r} is not a generated ALFWorld task",
                hint="take tasks from AlfWorldDomain.tasks(split)",
            )
        return TaskSpec.from_params(task.params)

    # ------------------------------------------------------------------ games

    def path(self, task: Task) -> Path:
        return self.root / f"{task.id}.json"

    def cached(self, task: Task) -> bool:
        return self._from_disk(task) is not None

    def game(self, task: Task) -> Game:
        """The game of ``task``: from memory, from the cache, or generated now."""
        game = self._games.get(task.id)
        if game is not None:
            return game
        with self._guard:
            lock = self._locks.setdefault(task.id, threading.Lock())
        with lock:  # one thread generates a task; the others wait for it
            game = self._games.get(task.id) or self._from_disk(task) or self._generate(task)
            self._games[task.id] = game
            return game

    def _from_disk(self, task: Task) -> Game | None:
        entry = read_json(self.path(task))
        if not isinstance(entry, dict) or entry.get("spec") != self.spec(task).params():
            return None
        try:
            return Game(
                entry["game"],
                tuple(entry["game"]["walkthrough"]),
                int(entry["attempt"]),
                tuple(entry.get("replaced", ())),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def _generate(self, task: Task) -> Game:
        spec = self.spec(task)
        started = time.perf_counter()
        failures: list[dict[str, Any]] = []
        for attempt in range(MAX_ATTEMPTS):
            problem = draw_problem(spec, attempt)
            verdict = self.check(problem)
            if verdict.plan is not None:
                break
            log.info("%s: attempt %d replaced: %s", task.id, attempt, verdict.reason)
            failures.append({"attempt": attempt, "reason": verdict.reason})
        else:
            reasons = "; ".join(f"{f['attempt']}: {f['reason']}" for f in failures)
            raise GenerationError(
                f"no solvable game for {task.id} in {MAX_ATTEMPTS} attempts ({reasons})",
                hint="report this: the generator should always find one",
            )
        data = {**problem.game(), "solvable": True, "walkthrough": list(verdict.plan)}
        entry = {
            "format": 1,
            "task_id": task.id,
            "spec": spec.params(),
            "attempt": attempt,
            "replaced": failures,
            "seconds": round(time.perf_counter() - started, 3),
            "game": data,
            "traj_data": traj_data(task.id, spec),
        }
        write_json(self.path(task), entry)
        return Game(data, verdict.plan, attempt, tuple(failures))

    def check(self, problem: Problem) -> Verdict:
        """The solvability check of one drawn initial state."""
        solver = load_solver()
        verdict: Verdict = solver.check_problem(problem, limit=self.step_limit)
        return verdict


def traj_data(task_id: str, spec: TaskSpec) -> dict[str, Any]:
    """The task's ``traj_data.json``, with the fields ALFWorld reads from the official ones."""
    return {
        "task_id": task_id,
        "task_type": spec.task_type,
        "pddl_params": {
            "object_target": spec.object_type,
            "parent_target": spec.parent_type or "",
            "toggle_target": spec.toggle_type or "",
            "mrecep_target": "",
            "object_sliced": False,
        },
        "scene": {"floor_plan": f"FloorPlan{spec.floor_plan}", "scene_num": spec.floor_plan},
        "turk_annotations": {"anns": [{"task_desc": spec.goal, "assignment_id": "generated"}]},
        "generated_by": "alma",
    }
