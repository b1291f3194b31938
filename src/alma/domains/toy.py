"""The built-in ``toy`` domain: rooms, keys and locked doors, generated from a seed.

A task is a handful of rooms on a grid joined by passages (north, south, east, west). One room
holds the goal object; taking it wins. Some passages are closed by coloured doors, locked; the key
of each colour lies in a room that can be reached before its door. Other items are distractors.

The default ``houses`` profile is a memory test bed: bigger games of one "house" share rules
that only experience reveals (which way the goal lies, which door matters); ``classic`` keeps the
small games. Everything is stdlib and deterministic: a task's game depends only on its seed and
its generator (``Task.params["profile"]``), drawn with ``random.Random(seed)``. Every game is
checked solvable within the step limit by a breadth-first search over (room, keys held, doors
open) and re-drawn if it is not; the same search gives :meth:`ToyDomain.solve`.
"""

from __future__ import annotations

import random
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from itertools import pairwise

from alma.errors import ConfigError, UnknownDomainError, UsageError
from alma.types import SPLITS, Observation, Split, Task, Transition

STEP_LIMIT = 25
DIRECTIONS = ("north", "south", "east", "west")
COMMANDS = "go <direction>, take <item>, drop <item>, open <colour> door, look, inventory"

_OFFSETS = {"north": (0, 1), "south": (0, -1), "east": (1, 0), "west": (-1, 0)}
_OPPOSITE = {"north": "south", "south": "north", "east": "west", "west": "east"}
_DIRECTION_WORDS = {
    **{d: d for d in DIRECTIONS},
    "n": "north",
    "s": "south",
    "e": "east",
    "w": "west",
}
_ARTICLES = frozenset({"a", "an", "the"})

ROOM_NAMES = (
    "pantry", "kitchen", "hallway", "library", "study", "cellar", "attic", "garden",
    "workshop", "bedroom", "bathroom", "gallery", "chapel", "armoury", "greenhouse",
    "observatory", "ballroom", "conservatory", "dining room", "laundry", "nursery", "parlour",
    "scullery", "storeroom", "foyer", "music room", "boiler room", "courtyard", "tower", "vault",
)  # fmt: skip
GOAL_OBJECTS = (
    "golden coin", "silver chalice", "jade statuette", "ruby ring", "ancient map", "crystal orb",
    "bronze medal", "ivory comb", "emerald brooch", "pearl necklace", "brass compass",
    "velvet purse", "sapphire tiara", "amber pendant", "porcelain doll", "marble bust",
)  # fmt: skip
DISTRACTORS = (
    "rusty spoon", "old boot", "torn letter", "empty bottle", "wooden bowl", "broken lamp",
    "dusty book", "woollen sock", "chipped mug", "bent nail", "copper coin", "tin cup",
    "wax candle", "paper fan", "cracked mirror", "leather glove", "clay pot", "feather quill",
)  # fmt: skip
COLOURS = ("red", "blue", "green", "yellow", "purple", "white", "black", "orange")


def _read_text(name: str) -> str:
    text = files("alma.domains").joinpath(name).read_text(encoding="utf-8")
    return text.strip().format(step_limit=STEP_LIMIT)


DESCRIPTIONS = {
    "houses": _read_text("toy_houses_description.txt"),
    "classic": _read_text("toy_description.txt"),
}
INSTRUCTIONS = _read_text("toy_instructions.txt")


@dataclass(frozen=True)
class _Profile:
    """Generator settings; each range is inclusive."""

    rooms: tuple[int, int]
    locked_doors: tuple[int, int]
    distractors: tuple[int, int]
    spare_keys: tuple[int, int]  # keys whose colour opens nothing
    min_goal_distance: int  # passages between the start room and the goal room


@dataclass(frozen=True)
class _House:
    """Generator settings of a test-bed house: the rules every game of the house shares.

    The route from the start room to the goal room only ever moves in the two ``route``
    directions and is closed by one locked door of ``door_colour``; the other locked doors
    (decoys) lead off the route. Nothing tells the agent so: only experience does.
    """

    route: tuple[str, str]
    route_length: tuple[int, int]  # passages from the start room to the goal room
    door_colour: str
    rooms: tuple[int, int]
    decoy_doors: tuple[int, int]
    distractors: tuple[int, int]


_PROFILES: dict[str, _Profile | _House] = {
    "standard": _Profile(
        rooms=(3, 5),
        locked_doors=(0, 1),
        distractors=(1, 2),
        spare_keys=(0, 0),
        min_goal_distance=1,
    ),
    "chain": _Profile(
        rooms=(6, 9),
        locked_doors=(2, 2),
        distractors=(3, 4),
        spare_keys=(0, 1),
        min_goal_distance=2,
    ),
    "manor": _House(
        route=("south", "west"),
        route_length=(2, 4),
        door_colour="green",
        rooms=(8, 10),
        decoy_doors=(1, 2),
        distractors=(1, 2),
    ),
    "lodge": _House(
        route=("north", "east"),
        route_length=(4, 5),
        door_colour="purple",
        rooms=(8, 10),
        decoy_doors=(1, 2),
        distractors=(1, 2),
    ),
}

# domain profile -> split -> (id infix, generator, first seed); seeds never overlap.
_SEED_STRIDE = 100_000
_SPLIT_SETTINGS: dict[str, dict[Split, tuple[str, str, int]]] = {
    "houses": {
        "train": ("house-train", "manor", 3 * _SEED_STRIDE),
        "eval_in_distribution": ("house-eval-id", "manor", 4 * _SEED_STRIDE),
        "eval_out_of_distribution": ("house-eval-ood", "lodge", 5 * _SEED_STRIDE),
    },
    "classic": {
        "train": ("train", "standard", 0),
        "eval_in_distribution": ("eval-id", "standard", _SEED_STRIDE),
        "eval_out_of_distribution": ("eval-ood", "chain", 2 * _SEED_STRIDE),
    },
}
DOMAIN_PROFILES = tuple(_SPLIT_SETTINGS)
DEFAULT_PROFILE = "houses"
_MAX_DRAWS = 1000


@dataclass(frozen=True)
class _Layout:
    """One game as generated: rooms are indices into ``rooms``."""

    rooms: tuple[str, ...]
    exits: tuple[dict[str, int], ...]  # per room: direction -> neighbouring room
    doors: dict[frozenset[int], str]  # passage (its two rooms) -> colour of its locked door
    items: tuple[tuple[str, ...], ...]  # per room: items lying there at the start
    start: int
    goal: str

    def door(self, a: int, b: int) -> str | None:
        return self.doors.get(frozenset((a, b)))


# --------------------------------------------------------------------------- generation


def _reachable(exits: list[dict[str, int]], closed: set[frozenset[int]]) -> set[int]:
    """Rooms reachable from room 0 without crossing a ``closed`` passage."""
    seen = {0}
    stack = [0]
    while stack:
        room = stack.pop()
        for nb in exits[room].values():
            if nb not in seen and frozenset((room, nb)) not in closed:
                seen.add(nb)
                stack.append(nb)
    return seen


def _grow(
    rng: random.Random, cells: list[tuple[int, int]], exits: list[dict[str, int]], n: int
) -> None:
    """Add rooms to the tree on the grid until it has ``n``, each joined to a random one."""
    taken = set(cells)
    while len(cells) < n:
        a = rng.randrange(len(cells))
        d = rng.choice(DIRECTIONS)
        cell = (cells[a][0] + _OFFSETS[d][0], cells[a][1] + _OFFSETS[d][1])
        if cell in taken:
            continue
        taken.add(cell)
        cells.append(cell)
        exits.append({_OPPOSITE[d]: a})
        exits[a][d] = len(cells) - 1


def _draw(rng: random.Random, profile: _Profile) -> _Layout | None:
    """One random game, or None when this draw cannot fit the profile."""
    n = rng.randint(*profile.rooms)
    cells = [(0, 0)]
    exits: list[dict[str, int]] = [{}]
    _grow(rng, cells, exits, n)

    parent: dict[int, int] = {}
    depth = {0: 0}
    order = [0]
    for room in order:
        for nb in exits[room].values():
            if nb not in depth:
                parent[nb] = room
                depth[nb] = depth[room] + 1
                order.append(nb)

    n_locked = rng.randint(*profile.locked_doors)
    far = [r for r in range(n) if depth[r] >= max(profile.min_goal_distance, n_locked, 1)]
    if not far:
        return None
    goal_room = rng.choice(far)
    path = [goal_room]
    while path[-1] in parent:
        path.append(parent[path[-1]])
    path.reverse()
    passages = [frozenset(p) for p in pairwise(path)]
    locked = [passages[i] for i in sorted(rng.sample(range(len(passages)), n_locked))]
    colours = rng.sample(COLOURS, n_locked + rng.randint(*profile.spare_keys))

    goal = rng.choice(GOAL_OBJECTS)
    placed: list[list[str]] = [[] for _ in range(n)]
    placed[goal_room].append(goal)
    before: set[int] = set()
    for i, colour in enumerate(colours[:n_locked]):
        # the key of door i lies past door i-1 (a chain) and before door i
        region = _reachable(exits, set(locked[i:]))
        placed[rng.choice(sorted(region - before))].append(f"{colour} key")
        before = region
    for colour in colours[n_locked:]:
        placed[rng.randrange(n)].append(f"{colour} key")
    for item in rng.sample(DISTRACTORS, rng.randint(*profile.distractors)):
        placed[rng.randrange(n)].append(item)
    for items in placed:
        rng.shuffle(items)

    return _Layout(
        rooms=tuple(rng.sample(ROOM_NAMES, n)),
        exits=tuple({d: e[d] for d in DIRECTIONS if d in e} for e in exits),
        doors=dict(zip(locked, colours, strict=False)),
        items=tuple(tuple(items) for items in placed),
        start=0,
        goal=goal,
    )


def _draw_house(rng: random.Random, house: _House) -> _Layout:
    """One game of a test-bed house: the route first, then side rooms, doors, keys, items."""
    cells = [(0, 0)]
    exits: list[dict[str, int]] = [{}]
    length = rng.randint(*house.route_length)
    for _ in range(length):  # the route only moves in the house's two directions: no loops
        d = rng.choice(house.route)
        last = len(cells) - 1
        cells.append((cells[last][0] + _OFFSETS[d][0], cells[last][1] + _OFFSETS[d][1]))
        exits.append({_OPPOSITE[d]: last})
        exits[last][d] = last + 1
    goal_room = length
    n = rng.randint(*house.rooms)
    _grow(rng, cells, exits, n)

    route = {frozenset((i, i + 1)) for i in range(length)}
    at = rng.randrange(length)
    route_door = frozenset((at, at + 1))
    side = [frozenset((a, b)) for a in range(n) for b in exits[a].values() if a < b]
    side = [p for p in side if p not in route]
    decoys = rng.sample(side, min(len(side), rng.randint(*house.decoy_doors)))
    others = [c for c in COLOURS if c != house.door_colour]
    doors = {
        route_door: house.door_colour,
        **dict(zip(decoys, rng.sample(others, len(decoys)), strict=True)),
    }

    goal = rng.choice(GOAL_OBJECTS)
    placed: list[list[str]] = [[] for _ in range(n)]
    placed[goal_room].append(goal)
    before = _reachable(exits, set(doors))  # every key lies where no locked door is in the way
    for colour in doors.values():
        placed[rng.choice(sorted(before))].append(f"{colour} key")
    for item in rng.sample(DISTRACTORS, rng.randint(*house.distractors)):
        placed[rng.randrange(n)].append(item)
    for items in placed:
        rng.shuffle(items)
    return _Layout(
        rooms=tuple(rng.sample(ROOM_NAMES, n)),
        exits=tuple({d: e[d] for d in DIRECTIONS if d in e} for e in exits),
        doors=doors,
        items=tuple(tuple(items) for items in placed),
        start=0,
        goal=goal,
    )


_State = tuple[int, frozenset[str], frozenset[str]]  # room, useful items held, doors open


def _moves(layout: _Layout, state: _State) -> Iterator[tuple[str, _State | None]]:
    """The actions that can shorten a solution; ``None`` as next state means the goal is taken.

    Dropping never helps and taking a distractor or a spare key is wasted, so neither is tried.
    """
    room, held, opened = state
    for d, nb in layout.exits[room].items():
        colour = layout.door(room, nb)
        if colour is None or colour in opened:
            yield f"go {d}", (nb, held, opened)
    keys = {f"{colour} key" for colour in layout.doors.values()}
    for item in layout.items[room]:
        if item == layout.goal:
            yield f"take {item}", None
        elif item in keys and item not in held:
            yield f"take {item}", (room, held | {item}, opened)
    for nb in layout.exits[room].values():
        colour = layout.door(room, nb)
        if colour is not None and colour not in opened and f"{colour} key" in held:
            yield f"open {colour} door", (room, held, opened | {colour})


def _shortest_solution(layout: _Layout) -> list[str] | None:
    """A shortest winning action list (breadth-first search), or None if there is none."""
    start: _State = (layout.start, frozenset(), frozenset())
    came_from: dict[_State, tuple[_State, str] | None] = {start: None}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        for action, following in _moves(layout, state):
            if following is None:
                actions = [action]
                link = came_from[state]
                while link is not None:
                    actions.append(link[1])
                    link = came_from[link[0]]
                return actions[::-1]
            if following not in came_from:
                came_from[following] = (state, action)
                queue.append(following)
    return None


def _generate(seed: int, profile: _Profile | _House) -> tuple[_Layout, list[str]]:
    """The game of ``seed`` and its shortest solution; draws again until it fits the limit."""
    rng = random.Random(seed)
    for _ in range(_MAX_DRAWS):
        layout = _draw(rng, profile) if isinstance(profile, _Profile) else _draw_house(rng, profile)
        if layout is None:
            continue
        solution = _shortest_solution(layout)
        if solution is not None and len(solution) <= STEP_LIMIT:
            return layout, solution
    raise RuntimeError(f"no solvable toy game in {_MAX_DRAWS} draws for seed {seed}")


# --------------------------------------------------------------------------- playing


def _with_article(name: str) -> str:
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _listing(items: list[str]) -> str:
    return ", ".join(_with_article(item) for item in items)


def parse_command(command: str) -> tuple[str, str] | None:
    """``(verb, argument)`` for a toy command, or None when it does not parse.

    Verbs: ``go`` (argument: a direction), ``take`` and ``drop`` (an item), ``open`` (a colour,
    possibly empty), ``look`` and ``inventory`` (no argument). Case, punctuation, articles and
    a few synonyms ("n", "get", "pick up", "unlock", "i") are forgiven.
    """
    words = re.sub(r"[^a-z ]", " ", command.lower()).split()
    if not words:
        return None
    verb, rest = words[0], words[1:]
    if words[:2] in (["pick", "up"], ["put", "down"]):
        verb, rest = ("take" if verb == "pick" else "drop"), words[2:]
    obj = [w for w in rest if w not in _ARTICLES]
    if not rest and verb in _DIRECTION_WORDS:
        return "go", _DIRECTION_WORDS[verb]
    if verb in ("go", "walk", "move") and len(obj) == 1 and obj[0] in _DIRECTION_WORDS:
        return "go", _DIRECTION_WORDS[obj[0]]
    if not rest and verb in ("look", "l"):
        return "look", ""
    if not rest and verb in ("inventory", "inv", "i"):
        return "inventory", ""
    if verb in ("take", "get", "grab", "drop") and obj:
        return ("drop" if verb == "drop" else "take"), " ".join(obj)
    if verb in ("open", "unlock") and obj and obj[-1] == "door":
        return "open", " ".join(obj[:-1])
    return None


class ToyEnv:
    """One toy game (implements :class:`alma.domains.base.TextEnv`)."""

    inline_steps = True  # in-memory and instant: the agent steps it without a thread

    def __init__(self, layout: _Layout) -> None:
        self._layout = layout
        self._restart()

    def _restart(self) -> None:
        self._room = self._layout.start
        self._items = [list(items) for items in self._layout.items]
        self._inventory: list[str] = []
        self._opened: set[str] = set()
        self._won = False

    def reset(self) -> Observation:
        self._restart()
        return self._observe(None)

    def step(self, action: str) -> Transition:
        if self._won:
            over = self._observe("The game is over: you already won.")
            return Transition(over, 0.0, True, True, {"won": True})
        message = self._act(action)
        reward = 1.0 if self._won else 0.0
        return Transition(self._observe(message), reward, self._won, self._won, {"won": self._won})

    def close(self) -> None:
        """Nothing to release."""

    # ------------------------------------------------------------------ state to text

    def _door_to(self, neighbour: int) -> tuple[str, bool] | None:
        """Colour and locked state of the door to ``neighbour``, if the passage has one."""
        colour = self._layout.door(self._room, neighbour)
        return None if colour is None else (colour, colour not in self._opened)

    def _observe(self, message: str | None) -> Observation:
        room = self._layout.rooms[self._room]
        exits = []
        for d, nb in self._layout.exits[self._room].items():
            door = self._door_to(nb)
            if door is None:
                exits.append(d)
            else:
                state = "locked" if door[1] else "open"
                exits.append(f"{d} ({_with_article(door[0] + ' door')}, {state})")
        here = self._items[self._room]
        lines = [f"You are in the {room}."]
        if message:
            lines.append(message)
        lines.append(f"Exits: {', '.join(exits)}.")
        lines.append(f"You see: {_listing(here)}." if here else "You see nothing here.")
        return Observation("\n".join(lines), self._admissible(), {"room": room})

    def _admissible(self) -> tuple[str, ...]:
        exits = self._layout.exits[self._room]
        actions = [f"go {d}" for d in exits]
        for nb in exits.values():
            door = self._door_to(nb)
            if door is not None and door[1]:
                actions.append(f"open {door[0]} door")
        actions += [f"take {item}" for item in self._items[self._room]]
        actions += [f"drop {item}" for item in self._inventory]
        return (*actions, "look", "inventory")

    # ------------------------------------------------------------------ commands

    def _act(self, action: str) -> str | None:
        parsed = parse_command(action)
        if parsed is None:
            return f'I don\'t understand "{action.strip()}". Commands: {COMMANDS}.'
        verb, arg = parsed
        if verb == "go":
            return self._go(arg)
        if verb == "take":
            return self._take(arg)
        if verb == "drop":
            return self._drop(arg)
        if verb == "open":
            return self._open(arg)
        if verb == "inventory":
            held = _listing(self._inventory)
            return f"You carry: {held}." if held else "You carry nothing."
        return None  # look

    def _go(self, direction: str) -> str | None:
        nb = self._layout.exits[self._room].get(direction)
        if nb is None:
            return f"You can't go {direction} from here."
        door = self._door_to(nb)
        if door is not None and door[1]:
            return f"The {door[0]} door to the {direction} is locked."
        self._room = nb
        return None

    def _take(self, item: str) -> str:
        here = self._items[self._room]
        if item not in here:
            if item in self._inventory:
                return f"You already carry the {item}."
            return f"There is no {item} here."
        here.remove(item)
        self._inventory.append(item)
        if item == self._layout.goal:
            self._won = True
            return f"You take the {item}. You found it: you win!"
        return f"You take the {item}."

    def _drop(self, item: str) -> str:
        if item not in self._inventory:
            return f"You don't carry any {item}."
        self._inventory.remove(item)
        self._items[self._room].append(item)
        return f"You drop the {item}."

    def _open(self, colour: str) -> str:
        if not colour:
            return 'Which door? Name its colour, e.g. "open red door".'
        doors = [self._door_to(nb) for nb in self._layout.exits[self._room].values()]
        door = next((d for d in doors if d is not None and d[0] == colour), None)
        if door is None:
            return f"There is no {colour} door here."
        if not door[1]:
            return f"The {colour} door is already open."
        if f"{colour} key" not in self._inventory:
            return f"The {colour} door is locked, and you don't carry the {colour} key."
        self._opened.add(colour)
        return f"You unlock the {colour} door with the {colour} key and open it."


class ToyDomain:
    """Rooms, keys and locked doors (implements :class:`alma.domains.base.Domain`).

    Two profiles (``[domains.toy] profile = ...``):

    - ``houses`` (default), the memory test bed: ``train`` and ``eval_in_distribution`` are games
      of one house (``manor``: the route to the goal only goes south and west, through a green
      door), ``eval_out_of_distribution`` of another (``lodge``: north and east, a purple door);
      8-10 rooms, decoy doors off the route. Ids read ``toy-house-train-007``,
      ``toy-house-eval-id-007``, ``toy-house-eval-ood-007``.
    - ``classic``: ``train`` and ``eval_in_distribution`` share the ``standard`` generator (3-5
      rooms, at most one locked door) on disjoint seeds; ``eval_out_of_distribution`` uses
      ``chain`` (6-9 rooms, two locked doors, the second key behind the first door, more
      distractors). Ids read ``toy-train-007``, ``toy-eval-id-007``, ``toy-eval-ood-007``.

    An id names one game whatever the profile: :meth:`task` finds the tasks of both.
    """

    name: str = "toy"
    step_limit: int = STEP_LIMIT
    description: str = DESCRIPTIONS[DEFAULT_PROFILE]
    instructions: str = INSTRUCTIONS

    def __init__(self, tasks_per_split: int = 50, profile: str = DEFAULT_PROFILE) -> None:
        if not 0 <= tasks_per_split <= _SEED_STRIDE:
            raise ConfigError(
                f"toy tasks_per_split must be between 0 and {_SEED_STRIDE}, not {tasks_per_split}"
            )
        if profile not in _SPLIT_SETTINGS:
            raise ConfigError(
                f"unknown toy profile {profile!r}",
                hint=f"choose one of {', '.join(DOMAIN_PROFILES)} in [domains.toy]",
            )
        self.tasks_per_split = tasks_per_split
        self.profile = profile
        self.description = DESCRIPTIONS[profile]
        self.instructions = INSTRUCTIONS
        self.details = {"profile": profile}
        self._tasks: dict[Split, tuple[Task, ...]] = {}
        self._games: dict[tuple[int, str], tuple[_Layout, list[str]]] = {}

    def tasks(self, split: Split) -> tuple[Task, ...]:
        settings = _SPLIT_SETTINGS[self.profile]
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
        if number.isdigit() and len(number) >= 3 and int(number) < _SEED_STRIDE:
            for settings in _SPLIT_SETTINGS.values():
                for split, (infix, generator, first_seed) in settings.items():
                    if head == f"toy-{infix}":
                        index = int(number)
                        if task_id != f"toy-{infix}-{index:03d}":
                            break
                        return self._task(split, task_id, first_seed + index, generator)
        last = self.tasks_per_split - 1
        runs = [
            f"toy-{infix}-000 to -{last:03d}"
            for infix, _, _ in _SPLIT_SETTINGS[self.profile].values()
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

    def _game(self, task: Task) -> tuple[_Layout, list[str]]:
        profile = task.params.get("profile")
        if not isinstance(profile, str) or profile not in _PROFILES:
            raise UnknownDomainError(
                f"task {task.id!r} is not a toy task (no known params['profile'])",
                hint="take tasks from ToyDomain.tasks(split)",
            )
        return self._generated(task.seed, profile)

    def _generated(self, seed: int, profile: str) -> tuple[_Layout, list[str]]:
        key = (seed, profile)
        if key not in self._games:
            self._games[key] = _generate(seed, _PROFILES[profile])
        return self._games[key]
