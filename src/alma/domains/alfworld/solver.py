"""Proving a generated task solvable: an expert's plan, replayed through ALFWorld's engine.

The generator knows where everything starts, so an expert can write down a plan the way a person
would (walk to the object's receptacle, open it if closed, take the object, use the appliance,
walk to a receptacle of the goal's type, open it, put the object there). That plan is then played
through :class:`~alma.domains.alfworld.engine.AlfWorldEnv`: every command must be admissible
when it is sent, the goal must not hold before the last command and must hold after it (the goal
check is fast-downward's, on ALFWorld's PDDL goal). A task passes only then, and its plan is kept
as the game's walkthrough, as in ALFWorld's own game files.

:func:`fast_downward_plan` asks fast-downward (the planner ALFWorld ships through TextWorld) for a
plan instead. It is exact but can take many seconds in a kitchen, so generation does not use it;
it is there to cross-check the expert.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alma.domains.alfworld.engine import AlfWorldEnv
from alma.domains.alfworld.generator import APPLIANCE, Problem, Thing, pddl_name
from alma.domains.alfworld.scenes import Location, Receptacle, floor_plan, rules

_VERB = {
    "pick_clean_then_place_in_recep": "clean",
    "pick_heat_then_place_in_recep": "heat",
    "pick_cool_then_place_in_recep": "cool",
}


class _Walk:
    """The expert's view of the state: where the agent is, which receptacles are open."""

    def __init__(self, start: Location, openable: frozenset[str]) -> None:
        self.at = start
        self.opened: set[str] = set()
        self.openable = openable
        self.steps: list[tuple[str, ...]] = []  # ("go", r) ("open", r) ("take", o, r) ...

    def go(self, receptacle: Receptacle) -> None:
        if self.at != receptacle.location:
            self.steps.append(("go", receptacle.id))
            self.at = receptacle.location

    def open(self, receptacle: Receptacle) -> None:
        if receptacle.type in self.openable and receptacle.id not in self.opened:
            self.steps.append(("open", receptacle.id))
            self.opened.add(receptacle.id)

    def fetch(self, thing: Thing) -> None:
        self.go(thing.receptacle)
        self.open(thing.receptacle)
        self.steps.append(("take", thing.id, thing.receptacle.id))

    def put(self, thing: Thing, receptacle: Receptacle) -> None:
        self.go(receptacle)
        self.open(receptacle)
        self.steps.append(("move", thing.id, receptacle.id))


def expert_steps(problem: Problem) -> list[tuple[str, ...]]:
    """The expert's plan for ``problem``, in ids (see :func:`commands` for its text)."""
    spec = problem.spec
    plan = floor_plan(spec.floor_plan)
    walk = _Walk(problem.start, rules().openable)
    targets = sorted((t for t in problem.things if t.type == spec.object_type), key=_order)
    if spec.task_type == "look_at_obj_in_light":
        lamp = next(t for t in problem.things if t.type == spec.toggle_type)
        walk.fetch(targets[0])
        walk.go(lamp.receptacle)
        walk.steps.append(("use", lamp.id))
        return walk.steps
    parent = min((r for r in plan.receptacles if r.type == spec.parent_type), key=_distance(walk))
    wanted = 2 if spec.task_type == "pick_two_obj_and_place" else 1
    for thing in targets[:wanted]:
        walk.fetch(thing)
        appliance_type = APPLIANCE.get(spec.task_type)
        if appliance_type is not None:
            appliance = min(
                (r for r in plan.receptacles if r.type == appliance_type), key=_distance(walk)
            )
            walk.go(appliance)
            walk.steps.append((_VERB[spec.task_type], thing.id, appliance.id))
        walk.put(thing, parent)
    return walk.steps


def _order(thing: Thing) -> tuple[str, str]:
    return (thing.receptacle.id, thing.id)


def _distance(walk: _Walk) -> Callable[[Receptacle], tuple[int, str]]:
    """Sort key: receptacles nearest to the agent first (grid steps), then by id."""

    def key(receptacle: Receptacle) -> tuple[int, str]:
        x, z = receptacle.location[:2]
        return (abs(x - walk.at[0]) + abs(z - walk.at[1]), receptacle.id)

    return key


def commands(steps: Sequence[tuple[str, ...]], names: Mapping[str, str]) -> list[str]:
    """The plan as ALFWorld commands; ``names`` maps PDDL names to the demangled names."""

    def name(alfred_id: str) -> str:
        return names[pddl_name(alfred_id).lower()]

    text = []
    for verb, *args in steps:
        if verb == "go":
            text.append(f"go to {name(args[0])}")
        elif verb in ("open", "use"):
            text.append(f"{verb} {name(args[0])}")
        elif verb == "take":
            text.append(f"take {name(args[0])} from {name(args[1])}")
        elif verb == "move":
            text.append(f"move {name(args[0])} to {name(args[1])}")
        else:
            text.append(f"{verb} {name(args[0])} with {name(args[1])}")
    return text


@dataclass(frozen=True)
class Verdict:
    """The outcome of a solvability check: the winning plan, or why there is none."""

    plan: tuple[str, ...] | None
    reason: str = ""

    @property
    def solvable(self) -> bool:
        return self.plan is not None


def replay(env: AlfWorldEnv, plan: Sequence[str], *, limit: int) -> Verdict:
    """Play ``plan`` from the start: it must win on its last command, within ``limit`` commands."""
    if not plan:
        return Verdict(None, "empty plan")
    if len(plan) > limit:
        return Verdict(None, f"the plan takes {len(plan)} steps, more than {limit}")
    observation = env.reset()
    if env.won:
        return Verdict(None, "the goal already holds at the start")
    for i, command in enumerate(plan, 1):
        if command not in (observation.actions or ()):
            return Verdict(None, f"step {i} ({command!r}) is not admissible")
        transition = env.step(command)
        observation = transition.observation
        if transition.success != (i == len(plan)):
            state = "holds" if transition.success else "does not hold"
            return Verdict(None, f"the goal {state} after step {i} of {len(plan)}")
    return Verdict(tuple(plan))


def check_problem(problem: Problem, *, limit: int) -> Verdict:
    """Whether ``problem`` is solvable within ``limit`` steps, by the expert's replayed plan."""
    env = AlfWorldEnv(problem.game())
    try:
        try:
            plan = commands(expert_steps(problem), env.names())
        except (StopIteration, IndexError, KeyError, ValueError) as exc:
            return Verdict(None, f"the expert found no plan ({type(exc).__name__}: {exc})")
        return replay(env, plan, limit=limit)
    finally:
        env.close()


def fast_downward_plan(game: Mapping[str, Any]) -> list[str]:
    """fast-downward's plan for ``game`` from its start (can take many seconds); [] if none."""
    env = AlfWorldEnv(game, plan=True)
    try:
        env.reset()
        return env.plan()
    finally:
        env.close()
