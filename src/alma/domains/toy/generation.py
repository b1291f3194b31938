"""The toy games, drawn from a seed: profiles, layouts, and the shortest solution that checks
each game solvable within the step limit."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import pairwise

from alma.types import Split

STEP_LIMIT = 25
DIRECTIONS = ("north", "south", "east", "west")
COMMANDS = "go <direction>, take <item>, drop <item>, open <colour> door, look, inventory"

OFFSETS = {"north": (0, 1), "south": (0, -1), "east": (1, 0), "west": (-1, 0)}
OPPOSITE = {"north": "south", "south": "north", "east": "west", "west": "east"}
DIRECTION_WORDS = {
    **{d: d for d in DIRECTIONS},
    "n": "north",
    "s": "south",
    "e": "east",
    "w": "west",
}
ARTICLES = frozenset({"a", "an", "the"})

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


@dataclass(frozen=True)
class Profile:
    """Generator settings; each range is inclusive."""

    rooms: tuple[int, int]
    locked_doors: tuple[int, int]
    distractors: tuple[int, int]
    spare_keys: tuple[int, int]  # keys whose colour opens nothing
    min_goal_distance: int  # passages between the start room and the goal room


@dataclass(frozen=True)
class House:
    """Generator settings of a test-bed house: the rules every game of the house shares.

    The route from the start room to the goal room only ever moves in the ``route``
    directions (in that order, over and over, when ``ordered``; else each passage draws one)
    and, unless ``door_colour`` is None, is closed by one locked door of that colour; the other
    locked doors (decoys) lead off the route. Nothing tells the agent so: only experience does.
    """

    route: tuple[str, ...]
    route_length: tuple[int, int]  # passages from the start room to the goal room
    door_colour: str | None  # None: no locked door on the route
    rooms: tuple[int, int]
    decoy_doors: tuple[int, int]
    distractors: tuple[int, int]
    ordered: bool = False  # the route takes its directions in order, not at random


COTTAGE = House(
    route=("south", "west"),
    route_length=(2, 3),
    door_colour=None,
    rooms=(6, 7),
    decoy_doors=(0, 0),
    distractors=(1, 2),
    ordered=True,
)
PROFILES: dict[str, Profile | House] = {
    "standard": Profile(
        rooms=(3, 5),
        locked_doors=(0, 1),
        distractors=(1, 2),
        spare_keys=(0, 0),
        min_goal_distance=1,
    ),
    "chain": Profile(
        rooms=(6, 9),
        locked_doors=(2, 2),
        distractors=(3, 4),
        spare_keys=(0, 1),
        min_goal_distance=2,
    ),
    "manor": House(
        route=("south", "west"),
        route_length=(2, 4),
        door_colour="green",
        rooms=(8, 10),
        decoy_doors=(1, 2),
        distractors=(1, 2),
    ),
    "lodge": House(
        route=("north", "east"),
        route_length=(4, 5),
        door_colour="purple",
        rooms=(8, 10),
        decoy_doors=(1, 2),
        distractors=(1, 2),
    ),
    "cottage": COTTAGE,
    "cabin": replace(COTTAGE, route=("north", "east")),
}

# domain profile -> split -> (id infix, generator, first seed); seeds never overlap.
SEED_STRIDE = 100_000
SPLIT_SETTINGS: dict[str, dict[Split, tuple[str, str, int]]] = {
    "houses": {
        "train": ("house-train", "manor", 3 * SEED_STRIDE),
        "eval_in_distribution": ("house-eval-id", "manor", 4 * SEED_STRIDE),
        "eval_out_of_distribution": ("house-eval-ood", "lodge", 5 * SEED_STRIDE),
    },
    "cottages": {
        "train": ("cottage-train", "cottage", 6 * SEED_STRIDE),
        "eval_in_distribution": ("cottage-eval-id", "cottage", 7 * SEED_STRIDE),
        "eval_out_of_distribution": ("cottage-eval-ood", "cabin", 8 * SEED_STRIDE),
    },
    "classic": {
        "train": ("train", "standard", 0),
        "eval_in_distribution": ("eval-id", "standard", SEED_STRIDE),
        "eval_out_of_distribution": ("eval-ood", "chain", 2 * SEED_STRIDE),
    },
}
# domain profile -> steps an episode may take; a cottage is small, so exploring must be quick
STEP_LIMITS = {"houses": STEP_LIMIT, "cottages": 10, "classic": STEP_LIMIT}
DOMAIN_PROFILES = tuple(SPLIT_SETTINGS)
DEFAULT_PROFILE = "houses"
_MAX_DRAWS = 1000


@dataclass(frozen=True)
class Layout:
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
        cell = (cells[a][0] + OFFSETS[d][0], cells[a][1] + OFFSETS[d][1])
        if cell in taken:
            continue
        taken.add(cell)
        cells.append(cell)
        exits.append({OPPOSITE[d]: a})
        exits[a][d] = len(cells) - 1


def _draw(rng: random.Random, profile: Profile) -> Layout | None:
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

    return Layout(
        rooms=tuple(rng.sample(ROOM_NAMES, n)),
        exits=tuple({d: e[d] for d in DIRECTIONS if d in e} for e in exits),
        doors=dict(zip(locked, colours, strict=False)),
        items=tuple(tuple(items) for items in placed),
        start=0,
        goal=goal,
    )


def _draw_house(rng: random.Random, house: House) -> Layout:
    """One game of a test-bed house: the route first, then side rooms, doors, keys, items."""
    cells = [(0, 0)]
    exits: list[dict[str, int]] = [{}]
    length = rng.randint(*house.route_length)
    for step in range(length):  # the route only moves in the house's directions: no loops
        d = house.route[step % len(house.route)] if house.ordered else rng.choice(house.route)
        last = len(cells) - 1
        cells.append((cells[last][0] + OFFSETS[d][0], cells[last][1] + OFFSETS[d][1]))
        exits.append({OPPOSITE[d]: last})
        exits[last][d] = last + 1
    goal_room = length
    n = rng.randint(*house.rooms)
    _grow(rng, cells, exits, n)

    route = {frozenset((i, i + 1)) for i in range(length)}
    doors: dict[frozenset[int], str] = {}
    if house.door_colour is not None:
        at = rng.randrange(length)
        doors[frozenset((at, at + 1))] = house.door_colour
    side = [frozenset((a, b)) for a in range(n) for b in exits[a].values() if a < b]
    side = [p for p in side if p not in route]
    decoys = rng.sample(side, min(len(side), rng.randint(*house.decoy_doors)))
    others = [c for c in COLOURS if c != house.door_colour]
    doors.update(zip(decoys, rng.sample(others, len(decoys)), strict=True))

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
    return Layout(
        rooms=tuple(rng.sample(ROOM_NAMES, n)),
        exits=tuple({d: e[d] for d in DIRECTIONS if d in e} for e in exits),
        doors=doors,
        items=tuple(tuple(items) for items in placed),
        start=0,
        goal=goal,
    )


State = tuple[int, frozenset[str], frozenset[str]]  # room, useful items held, doors open


def _moves(layout: Layout, state: State) -> Iterator[tuple[str, State | None]]:
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


def _shortest_solution(layout: Layout) -> list[str] | None:
    """A shortest winning action list (breadth-first search), or None if there is none."""
    start: State = (layout.start, frozenset(), frozenset())
    came_from: dict[State, tuple[State, str] | None] = {start: None}
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


def generate(seed: int, profile: Profile | House) -> tuple[Layout, list[str]]:
    """The game of ``seed`` and its shortest solution; draws again until it fits the limit."""
    rng = random.Random(seed)
    for _ in range(_MAX_DRAWS):
        layout = _draw(rng, profile) if isinstance(profile, Profile) else _draw_house(rng, profile)
        if layout is None:
            continue
        solution = _shortest_solution(layout)
        if solution is not None and len(solution) <= STEP_LIMIT:
            return layout, solution
    raise RuntimeError(f"no solvable toy game in {_MAX_DRAWS} draws for seed {seed}")
