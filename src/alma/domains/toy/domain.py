"""The built-in ``toy`` domain: rooms, keys and locked doors, generated from a seed.

A task is a handful of rooms on a grid joined by passages (north, south, east, west). One room
holds the goal object; taking it wins. Some passages are closed by coloured doors, locked; the key
of each colour lies in a room that can be reached before its door. Other items are distractors.

The default ``houses`` profile is a memory test bed: bigger games of one "house" share rules
that only experience reveals (which way the goal lies, which door matters); ``cottages`` is a
smaller one, with no locked door and a short step limit, sized for small acting models;
``classic`` keeps the small games. Everything is stdlib and deterministic: a task's game depends
only on its seed and its generator (``Task.params["profile"]``), drawn with
``random.Random(seed)``. Every game is checked solvable within the step limit by a breadth-first
search over (room, keys held, doors open) and re-drawn if it is not; the same search gives
:meth:`ToyDomain.solve`.
"""

from __future__ import annotations

from importlib.resources import files

from alma.domains.toy.env import ToyEnv
from alma.domains.toy.generation import (
    DEFAULT_PROFILE,
    DOMAIN_PROFILES,
    PROFILES,
    SEED_STRIDE,
    SPLIT_SETTINGS,
    STEP_LIMITS,
    Layout,
    generate,
)
from alma.errors import ConfigError, UnknownDomainError, UsageError
from alma.types import SPLITS, Split, Task


def _read_text(name: str, profile: str) -> str:
    text = files("alma.domains.toy").joinpath(name).read_text(encoding="utf-8")
    return text.strip().format(step_limit=STEP_LIMITS[profile])


DESCRIPTION_FILES = {
    "houses": "toy_houses_description.txt",
    "cottages": "toy_cottages_description.txt",
    "classic": "toy_description.txt",
}
DESCRIPTIONS = {p: _read_text(name, p) for p, name in DESCRIPTION_FILES.items()}
INSTRUCTIONS = {p: _read_text("toy_instructions.txt", p) for p in DESCRIPTION_FILES}


class ToyDomain:
    """Rooms, keys and locked doors (implements :class:`alma.domains.base.Domain`).

    Three profiles (``[domains.toy] profile = ...``), each with its step limit:

    - ``houses`` (default), the memory test bed: ``train`` and ``eval_in_distribution`` are games
      of one house (``manor``: the route to the goal only goes south and west, through a green
      door), ``eval_out_of_distribution`` of another (``lodge``: north and east, a purple door);
      8-10 rooms, decoy doors off the route. Ids read ``toy-house-train-007``,
      ``toy-house-eval-id-007``, ``toy-house-eval-ood-007``.
    - ``cottages``, the laptop-scale test bed: cottages of 6-7 rooms, no locked door, the goal
      two or three passages away along one fixed way (``cottage``: south, west, south; the
      ``cabin`` of ``eval_out_of_distribution``: north, east, north), 10 steps an episode. Ids
      read ``toy-cottage-train-007``, ``toy-cottage-eval-id-007``, ``toy-cottage-eval-ood-007``.
    - ``classic``: ``train`` and ``eval_in_distribution`` share the ``standard`` generator (3-5
      rooms, at most one locked door) on disjoint seeds; ``eval_out_of_distribution`` uses
      ``chain`` (6-9 rooms, two locked doors, the second key behind the first door, more
      distractors). Ids read ``toy-train-007``, ``toy-eval-id-007``, ``toy-eval-ood-007``.

    An id names one game whatever the profile: :meth:`task` finds the tasks of both.
    """

    name: str = "toy"
    step_limit: int = STEP_LIMITS[DEFAULT_PROFILE]
    description: str = DESCRIPTIONS[DEFAULT_PROFILE]
    instructions: str = INSTRUCTIONS[DEFAULT_PROFILE]

    def __init__(self, tasks_per_split: int = 50, profile: str = DEFAULT_PROFILE) -> None:
        if not 0 <= tasks_per_split <= SEED_STRIDE:
            raise ConfigError(
                f"toy tasks_per_split must be between 0 and {SEED_STRIDE}, not {tasks_per_split}"
            )
        if profile not in SPLIT_SETTINGS:
            raise ConfigError(
                f"unknown toy profile {profile!r}",
                hint=f"choose one of {', '.join(DOMAIN_PROFILES)} in [domains.toy]",
            )
        self.tasks_per_split = tasks_per_split
        self.profile = profile
        self.step_limit = STEP_LIMITS[profile]
        self.description = DESCRIPTIONS[profile]
        self.instructions = INSTRUCTIONS[profile]
        self.details = {"profile": profile}
        self._tasks: dict[Split, tuple[Task, ...]] = {}
        self._games: dict[tuple[int, str], tuple[Layout, list[str]]] = {}

    def tasks(self, split: Split) -> tuple[Task, ...]:
        settings = SPLIT_SETTINGS[self.profile]
        if split not in settings:
            raise UsageError(f"unknown split {split!r}", hint=f"choose one of {', '.join(SPLITS)}")
        if split not in self._tasks:
            infix, generator, first_seed = settings[split]
            self._tasks[split] = tuple(
                self._task(split, f"toy-{infix}-{i:03d}", first_seed + i, generator)
                for i in range(self.tasks_per_split)
            )
        return self._tasks[split]

    def task(self, task_id: str) -> Task:
        """The task with this id, in this profile or another (an id is always the same game)."""
        head, _, number = task_id.rpartition("-")
        if number.isdigit() and len(number) >= 3 and int(number) < SEED_STRIDE:
            for settings in SPLIT_SETTINGS.values():
                for split, (infix, generator, first_seed) in settings.items():
                    if head == f"toy-{infix}":
                        index = int(number)
                        if task_id != f"toy-{infix}-{index:03d}":
                            break
                        return self._task(split, task_id, first_seed + index, generator)
        last = self.tasks_per_split - 1
        runs = [
            f"toy-{infix}-000 to -{last:03d}"
            for infix, _, _ in SPLIT_SETTINGS[self.profile].values()
        ]
        hint = f"task ids run {', '.join(runs)}" if last >= 0 else "this toy domain has no tasks"
        raise UnknownDomainError(f"domain 'toy' has no task {task_id!r}", hint=hint)

    def make_env(self, task: Task) -> ToyEnv:
        return ToyEnv(self._game(task)[0])

    def solve(self, task: Task) -> list[str]:
        """A shortest list of commands that wins ``task``."""
        return list(self._game(task)[1])

    def _task(self, split: Split, task_id: str, seed: int, profile: str) -> Task:
        layout, solution = self._generated(seed, profile)
        params = {
            "profile": profile,
            "rooms": len(layout.rooms),
            "locked_doors": len(layout.doors),
            "items": sum(len(items) for items in layout.items),
            "optimal_steps": len(solution),
        }
        return Task(task_id, split, f"Find the {layout.goal} and take it.", seed, params)

    def _game(self, task: Task) -> tuple[Layout, list[str]]:
        profile = task.params.get("profile")
        if not isinstance(profile, str) or profile not in PROFILES:
            raise UnknownDomainError(
                f"task {task.id!r} is not a toy task (no known params['profile'])",
                hint="take tasks from ToyDomain.tasks(split)",
            )
        return self._generated(task.seed, profile)

    def _generated(self, seed: int, profile: str) -> tuple[Layout, list[str]]:
        key = (seed, profile)
        if key not in self._games:
            self._games[key] = generate(seed, PROFILES[profile])
        return self._games[key]
