"""Seeded ALFWorld-style tasks: a goal in a floor plan, then an initial state, as PDDL.

Generation has two stages, so that listing tasks stays cheap:

1. :func:`sample_spec` draws, from a seed, what the task asks: its type (one of ALFWorld's six),
   the floor plan, the object, the receptacle or the lamp. It reads only the small layout files.
2. :func:`draw_problem` draws, from the same seed and an attempt number, the initial state that
   goes with it: which objects lie in which receptacles, where the agent starts. It writes the
   state as a PDDL problem for ALFWorld's PDDL domain, with the goal taken from ALFWorld's goal
   library, and the game file that ALFWorld's TextWorld environment loads.

Objects and receptacles get ALFRED-style ids (``Apple|+01.20|+00.95|-00.50``) so that ALFWorld's
own name demangler turns them into "apple 1", "countertop 2" as in the official games.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

from alma.domains.alfworld.dependencies import goal_library, logic_files
from alma.domains.alfworld.scenes import (
    GRID,
    LAMP_STANDS,
    FloorPlan,
    Location,
    Receptacle,
    Rules,
    floor_plan,
    rules,
)

TASK_TYPES = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
#: The appliance each state-changing task needs, which is also never its target receptacle.
APPLIANCE = {
    "pick_clean_then_place_in_recep": "SinkBasin",
    "pick_heat_then_place_in_recep": "Microwave",
    "pick_cool_then_place_in_recep": "Fridge",
}
DISTRACTOR_TYPES = (6, 12)  # how many other object types lie in the room (inclusive range)
MAX_INSTANCES = 3  # copies of one object type, as ALFRED's MAX_NUM_OF_OBJ_INSTANCES


@dataclass(frozen=True)
class TaskSpec:
    """What a generated task asks (stage 1); all of it is known before any game exists."""

    task_type: str
    floor_plan: int
    object_type: str
    parent_type: str | None  # the receptacle type to put the object(s) in, if any
    toggle_type: str | None  # the lamp to look under, for look_at_obj_in_light
    template: int  # which of the goal library's sentences states the goal
    seed: int

    @property
    def goal(self) -> str:
        """The goal sentence, as ALFWorld words it (e.g. "put a clean apple in fridge")."""
        template: str = goal_library()[self.task_type]["templates"][self.template]
        return template.format(
            obj=self.object_type.lower(),
            recep=(self.parent_type or "").lower(),
            toggle=(self.toggle_type or "").lower(),
            mrecep="",
        )

    def params(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_params(params: dict[str, Any]) -> TaskSpec:
        return TaskSpec(
            task_type=str(params["task_type"]),
            floor_plan=int(params["floor_plan"]),
            object_type=str(params["object_type"]),
            parent_type=params.get("parent_type"),
            toggle_type=params.get("toggle_type"),
            template=int(params["template"]),
            seed=int(params["seed"]),
        )


def feasible_plans(task_type: str, numbers: Sequence[int]) -> tuple[int, ...]:
    """The floor plans among ``numbers`` where ``task_type`` can be generated."""
    return _feasible_plans(task_type, tuple(numbers))


@cache
def _feasible_plans(task_type: str, numbers: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(n for n in numbers if _choices(task_type, floor_plan(n), rules()))


def sample_spec(task_type: str, numbers: Sequence[int], seed: int) -> TaskSpec:
    """Stage 1: the goal of the task of ``seed``, in one of the floor plans ``numbers``."""
    law = rules()
    rng = random.Random(f"alfworld-spec-{task_type}-{seed}")
    plans = feasible_plans(task_type, numbers)
    if not plans:
        raise ValueError(f"no floor plan among {list(numbers)} allows {task_type}")
    plan = floor_plan(rng.choice(plans))
    choices = _choices(task_type, plan, law)
    object_type, target = rng.choice(choices)
    templates = goal_library()[task_type]["templates"]
    is_light = task_type == "look_at_obj_in_light"
    return TaskSpec(
        task_type=task_type,
        floor_plan=plan.number,
        object_type=object_type,
        parent_type=None if is_light else target,
        toggle_type=target if is_light else None,
        template=rng.randrange(len(templates)),
        seed=seed,
    )


def _choices(task_type: str, plan: FloorPlan, law: Rules) -> list[tuple[str, str]]:
    """Every (object type, receptacle or lamp type) the task type allows in ``plan``."""
    if plan.room not in law.valid_rooms[task_type]:
        return []
    present = set(plan.receptacle_types())
    if task_type == "look_at_obj_in_light":
        if not present.intersection(LAMP_STANDS):
            return []
        objects = [o for o in plan.object_types if _holders(o, present, law)]
        return [(o, lamp) for lamp in plan.lamp_types for o in objects]
    appliance = APPLIANCE.get(task_type)
    if appliance is not None and appliance not in present:
        return []
    allowed = {
        "pick_clean_then_place_in_recep": law.cleanable,
        "pick_heat_then_place_in_recep": law.heatable,
        "pick_cool_then_place_in_recep": law.coolable,
    }.get(task_type, law.portable)
    pairs = []
    for o in plan.object_types:
        if o not in allowed:
            continue
        holders = _holders(o, present, law)
        for parent in holders:
            if parent == appliance:
                continue
            # the object must start somewhere that does not already satisfy the goal
            if any(h not in (parent, appliance) for h in holders):
                pairs.append((o, parent))
    return pairs


def _holders(object_type: str, present: set[str], law: Rules) -> list[str]:
    return sorted(r for r in present if object_type in law.can_contain.get(r, ()))


# --------------------------------------------------------------------------- initial state


@dataclass(frozen=True)
class Thing:
    """A portable object (or a lamp) of the initial state."""

    id: str
    type: str
    receptacle: Receptacle


@dataclass(frozen=True)
class Problem:
    spec: TaskSpec
    attempt: int
    things: tuple[Thing, ...]
    start: Location
    pddl: str

    def game(self) -> dict[str, Any]:
        """The game file ALFWorld's TextWorld environment loads (``game.tw-pddl``)."""
        domain, grammar = logic_files()
        return {
            "pddl_domain": domain,
            "grammar": grammar.replace("UNKNOWN GOAL", self.spec.goal),
            "pddl_problem": self.pddl,
            "solvable": None,
            "walkthrough": None,
        }


def draw_problem(spec: TaskSpec, attempt: int = 0) -> Problem:
    """Stage 2: the initial state of ``spec``'s task (attempt ``attempt``) as a PDDL problem."""
    law = rules()
    plan = floor_plan(spec.floor_plan)
    rng = random.Random(f"alfworld-state-{spec.seed}-{attempt}")
    by_type: dict[str, list[Receptacle]] = {}
    for receptacle in plan.receptacles:
        by_type.setdefault(receptacle.type, []).append(receptacle)
    present = set(by_type)
    # where the goal's objects may start: not in a receptacle that would already satisfy it
    barred = {t for t in (spec.parent_type, APPLIANCE.get(spec.task_type)) if t}

    placements: list[tuple[str, Receptacle]] = []

    def place(object_type: str, count: int, exclude: set[str]) -> None:
        holders = [r for r in _holders(object_type, present, law) if r not in exclude]
        for _ in range(count):
            if holders:
                placements.append((object_type, rng.choice(by_type[rng.choice(holders)])))

    if spec.task_type == "pick_two_obj_and_place":
        target_count = rng.randint(2, MAX_INSTANCES)
    else:
        target_count = rng.choice((1, 1, 2))
    place(spec.object_type, target_count, barred)
    if spec.toggle_type is not None:
        stands = sorted(present.intersection(LAMP_STANDS))
        placements.append((spec.toggle_type, rng.choice(by_type[rng.choice(stands)])))
    others = [t for t in plan.object_types if t != spec.object_type]
    k = min(len(others), rng.randint(*DISTRACTOR_TYPES))
    for object_type in rng.sample(others, k):
        # other objects may lie anywhere they fit, the goal's receptacle type included
        place(object_type, rng.choice((1, 1, 1, 2, 2, 3)), set())

    things = []
    seen: set[str] = set()
    for object_type, receptacle in placements:
        while True:
            gx, gz = receptacle.location[:2]
            x = gx * GRID + rng.uniform(-0.6, 0.6)
            y = rng.uniform(0.1, 1.9)
            z = gz * GRID + rng.uniform(-0.6, 0.6)
            thing_id = f"{object_type}|{x:+06.2f}|{y:+06.2f}|{z:+06.2f}"
            if thing_id not in seen:
                seen.add(thing_id)
                break
        things.append(Thing(thing_id, object_type, receptacle))

    taken = {r.location[:2] for r in plan.receptacles}
    free = [p for p in plan.points if p not in taken] or list(plan.points)
    gx, gz = rng.choice(free)
    start: Location = (gx, gz, rng.randrange(4), 30)
    pddl = problem_pddl(spec, plan, tuple(things), start, law)
    return Problem(spec, attempt, tuple(things), start, pddl)


# --------------------------------------------------------------------------- PDDL text

_MANGLE = (("-", "_minus_"), ("|", "_bar_"), ("+", "_plus_"), (".", "_dot_"), (",", "_comma_"))


def pddl_name(alfred_id: str) -> str:
    """An ALFRED id written as a PDDL name, the way ALFRED's planner files spell it."""
    for old, new in _MANGLE:
        alfred_id = alfred_id.replace(old, new)
    return alfred_id


def location_name(location: Location) -> str:
    return pddl_name("loc|{}|{}|{}|{}".format(*location))


def goal_pddl(spec: TaskSpec) -> str:
    """The ``(:goal ...)`` of ALFWorld's goal library for ``spec`` (it closes the problem too)."""
    template: str = goal_library()[spec.task_type]["pddl"]
    text = template.format(
        obj=spec.object_type, recep=spec.parent_type or "", toggle=spec.toggle_type or "", mrecep=""
    )
    return text.replace("#", "-")


def problem_pddl(
    spec: TaskSpec, plan: FloorPlan, things: tuple[Thing, ...], start: Location, law: Rules
) -> str:
    receptacles = plan.receptacles
    object_types = sorted({t.type for t in things} | {spec.object_type})
    receptacle_types = sorted({r.type for r in receptacles} | {spec.parent_type or "Cabinet"})
    locations = sorted({r.location for r in receptacles} | {start})

    objects = ["agent1 - agent"]
    objects += [f"{t}Type - otype" for t in object_types]
    objects += [f"{t}Type - rtype" for t in receptacle_types]
    objects += [f"{pddl_name(t.id)} - object" for t in things]
    objects += [f"{pddl_name(r.id)} - receptacle" for r in receptacles]
    objects += [f"{location_name(loc)} - location" for loc in locations]

    init = ["(= (total-cost) 0)", f"(atLocation agent1 {location_name(start)})"]
    for r in receptacles:
        name = pddl_name(r.id)
        init.append(f"(receptacleType {name} {r.type}Type)")
        init.append(f"(receptacleAtLocation {name} {location_name(r.location)})")
        if r.type in law.openable:
            init.append(f"(openable {name})")
    for t in things:
        name = pddl_name(t.id)
        init.append(f"(objectType {name} {t.type}Type)")
        init.append(f"(inReceptacle {name} {pddl_name(t.receptacle.id)})")
        init.append(f"(objectAtLocation {name} {location_name(t.receptacle.location)})")
        if t.type in law.toggleable:
            init.append(f"(toggleable {name})")
            continue  # lamps stay where they stand
        init.append(f"(pickupable {name})")
        for predicate, kinds in (
            ("cleanable", law.cleanable),
            ("heatable", law.heatable),
            ("coolable", law.coolable),
            ("sliceable", law.sliceable),
            ("isReceptacleObject", law.movable_receptacles),
        ):
            if t.type in kinds:
                init.append(f"({predicate} {name})")
    for rtype in receptacle_types:
        for otype in object_types:
            if otype in law.can_contain.get(rtype, ()):
                init.append(f"(canContain {rtype}Type {otype}Type)")

    lines = [f"(define (problem alma_{spec.task_type}_{spec.seed})", "    (:domain alfred)"]
    lines.append("    (:objects")
    lines += [f"        {entry}" for entry in objects]
    lines.append("    )")
    lines.append("    (:init")
    lines += [f"        {fact}" for fact in init]
    lines.append("    )")
    # the goal library's text ends with the parenthesis that closes the problem
    lines.append(goal_pddl(spec).rstrip())
    return "\n".join(lines) + "\n"
