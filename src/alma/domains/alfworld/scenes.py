"""The floor plans ALFWorld ships, read as rooms of receptacles that hold objects.

ALFWorld's package carries, for each of AI2-THOR's 120 floor plans, the object types found in the
room (``FloorPlan<n>-objects.json``), the static receptacles with the pose from which the agent
reaches each of them (``FloorPlan<n>-openable.json``) and the grid points the agent can stand on
(``FloorPlan<n>-layout.npy``). Its ``alfworld.gen.constants`` module says which object types each
receptacle type can hold and which objects can be cleaned, heated, cooled or switched on. This
module turns them into :class:`FloorPlan` values.

A few receptacle types present in a room (stove burners, coffee machines, toasters, some garbage
cans) have no recorded pose; they get one at a reachable grid point drawn from a generator seeded
by the floor plan's number, so a floor plan is always the same room.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from alma.domains.alfworld.dependencies import alfworld_constants

GRID = 0.25  # metres per grid step, as in ALFRED (AGENT_STEP_SIZE)
ROOMS: dict[str, range] = {
    "kitchen": range(1, 31),
    "living room": range(201, 231),
    "bedroom": range(301, 331),
    "bathroom": range(401, 431),
}
#: Receptacle types a lamp can stand on (for the look-at-object-in-light tasks).
LAMP_STANDS = ("SideTable", "Desk", "Dresser", "Shelf", "CoffeeTable", "TVStand", "DiningTable")
LAMP_TYPES = ("DeskLamp", "FloorLamp")
#: Stove burners come four to a stove; other receptacle types without a pose get one instance.
_SYNTHETIC_COUNTS = {"StoveBurner": 4}

Location = tuple[int, int, int, int]  # grid x, grid z, rotation (quarter turns), camera horizon


@dataclass(frozen=True)
class Receptacle:
    id: str  # ALFRED-style id, e.g. "Cabinet|+00.68|+00.50|-02.20"
    type: str  # e.g. "Cabinet", "SinkBasin"
    location: Location


@dataclass(frozen=True)
class FloorPlan:
    number: int
    room: str
    receptacles: tuple[Receptacle, ...]
    object_types: tuple[str, ...]  # the portable object types present (sorted)
    lamp_types: tuple[str, ...]  # DeskLamp / FloorLamp, when present
    points: tuple[tuple[int, int], ...]  # reachable grid points

    @property
    def name(self) -> str:
        return f"FloorPlan{self.number}"

    def receptacle_types(self) -> tuple[str, ...]:
        return tuple(sorted({r.type for r in self.receptacles}))


@dataclass(frozen=True)
class Rules:
    """ALFWorld's object tables (from ``alfworld.gen.constants``)."""

    can_contain: dict[str, frozenset[str]]  # receptacle type -> object types it can hold
    cleanable: frozenset[str]
    heatable: frozenset[str]
    coolable: frozenset[str]
    sliceable: frozenset[str]
    toggleable: frozenset[str]
    openable: frozenset[str]
    movable_receptacles: frozenset[str]  # objects that are also containers (bowl, mug, ...)
    static_receptacles: frozenset[str]
    portable: frozenset[str]  # object types some receptacle can hold
    valid_rooms: dict[str, frozenset[str]]  # task type -> rooms it is generated in
    held_out: frozenset[int]  # floor plans ALFRED keeps for unseen-room evaluation

    def holders(self, object_type: str) -> tuple[str, ...]:
        """The receptacle types that can hold ``object_type``."""
        return tuple(sorted(r for r, held in self.can_contain.items() if object_type in held))


_ROOM_KEYS = {"Kitchen": "kitchen", "LivingRoom": "living room", "Bedroom": "bedroom"}
_ROOM_KEYS["Bathroom"] = "bathroom"


@cache
def rules() -> Rules:
    c = alfworld_constants()
    can_contain = {r: frozenset(objs) for r, objs in c.VAL_RECEPTACLE_OBJECTS.items()}
    static = frozenset(c.RECEPTACLES) - frozenset(c.MOVABLE_RECEPTACLES)
    actions: dict[str, Any] = c.VAL_ACTION_OBJECTS
    portable = frozenset(
        o
        for held in can_contain.values()
        for o in held
        if o in c.OBJECTS and o not in static and not o.endswith("Sliced")
    )
    return Rules(
        can_contain={r: objs for r, objs in can_contain.items() if r in static},
        cleanable=frozenset(actions["Cleanable"]),
        heatable=frozenset(actions["Heatable"]),
        coolable=frozenset(actions["Coolable"]),
        sliceable=frozenset(actions["Sliceable"]),
        toggleable=frozenset(actions["Toggleable"]),
        openable=frozenset(c.OPENABLE_CLASS_LIST),
        movable_receptacles=frozenset(c.MOVABLE_RECEPTACLES),
        static_receptacles=static,
        portable=portable,
        valid_rooms={
            goal: frozenset(_ROOM_KEYS[room] for room in rooms)
            for goal, rooms in c.GOALS_VALID.items()
        },
        held_out=frozenset(c.TEST_SCENE_NUMBERS),
    )


def layouts_dir() -> Path:
    return Path(str(files("alfworld.gen").joinpath("layouts")))


def room_of(number: int) -> str:
    for room, numbers in ROOMS.items():
        if number in numbers:
            return room
    raise ValueError(f"FloorPlan{number} is in no known room type")


def floor_plan_numbers() -> tuple[int, ...]:
    """Every floor plan whose three layout files are shipped."""
    folder = layouts_dir()
    numbers = []
    for path in folder.glob("FloorPlan*-objects.json"):
        number = int(path.name.removeprefix("FloorPlan").split("-")[0])
        if all(
            (folder / f"FloorPlan{number}-{part}").exists()
            for part in ("openable.json", "layout.npy")
        ):
            numbers.append(number)
    return tuple(sorted(numbers))


def _receptacle_type(receptacle_id: str) -> str:
    parts = receptacle_id.split("|")
    last = parts[-1]
    return last if last.isalpha() and len(parts) > 4 else parts[0]


def _pose(values: list[float]) -> Location:
    x, z, rotation, horizon = values
    return (round(x / GRID), round(z / GRID), round(rotation / 90) % 4, int(horizon))


@cache
def floor_plan(number: int) -> FloorPlan:
    """The room of ``FloorPlan<number>``, read from ALFWorld's layout files."""
    import numpy as np

    folder = layouts_dir()
    present = json.loads((folder / f"FloorPlan{number}-objects.json").read_text())
    poses = json.loads((folder / f"FloorPlan{number}-openable.json").read_text())
    grid = np.load(folder / f"FloorPlan{number}-layout.npy")
    points = tuple(sorted({(round(x / GRID), round(z / GRID)) for x, z in grid.tolist()}))
    law = rules()

    receptacles = [
        Receptacle(rid, _receptacle_type(rid), _pose(pose))
        for rid, pose in sorted(poses.items())
        if _receptacle_type(rid) in law.static_receptacles
    ]
    posed = {r.type for r in receptacles}
    # Receptacle types present in the room but without a recorded pose: place them at
    # reachable points drawn from a generator seeded by the floor plan.
    rng = random.Random(f"alfworld-floorplan-{number}")
    missing = sorted({t for t in present if t in law.static_receptacles and t not in posed})
    if "SinkBasin" in missing and "Sink" in present:
        missing.remove("SinkBasin")
        missing.append("Sink|SinkBasin")
    for kind in missing:
        rtype = kind.split("|")[-1]
        for _ in range(_SYNTHETIC_COUNTS.get(rtype, 1)):
            gx, gz = rng.choice(points)
            x, y, z = gx * GRID, rng.uniform(0.2, 1.8), gz * GRID
            rid = f"{kind.split('|')[0]}|{x:+06.2f}|{y:+06.2f}|{z:+06.2f}"
            if "|" in kind:
                rid += "|" + rtype
            receptacles.append(Receptacle(rid, rtype, (gx, gz, rng.randrange(4), 30)))
    object_types = tuple(sorted({t for t in present if t in law.portable}))
    lamps = tuple(t for t in LAMP_TYPES if t in present)
    return FloorPlan(number, room_of(number), tuple(receptacles), object_types, lamps, points)
