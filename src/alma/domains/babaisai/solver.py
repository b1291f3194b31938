"""A bounded breadth-first search over a game's steps: the shortest winning plan of a level.

States are the engines' canonical states, so two move orders that lead to the same layout meet.
``idle`` never changes a settled state and is not tried; lost states are dead ends, and so, in the
``balrog`` variant, are states where nothing is ``you`` (BALROG's wrapper restarts the level
there, which brings back the start). A step is checked for a win before its state is looked up,
since in the ``balrog`` variant a win belongs to the step (read before the move), not to the
state it leaves. The search stops at ``max_steps`` moves or after ``max_states`` distinct states,
whichever comes first, and then says the level has no plan (within those bounds).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from alma.domains.babaisai import balrog_engine
from alma.domains.babaisai.engine import MOVES, Board, State, Status, advance

MAX_STATES = 400_000

S = TypeVar("S", bound=Hashable)


@dataclass(frozen=True)
class Search:
    """What one search found: the plan (None when there is none within the bounds)."""

    plan: tuple[str, ...] | None
    states: int  # distinct states reached
    exhausted: bool  # True when the state cap, not the depth, ended a failed search


def _search(
    start: S,
    successors: Callable[[S, Any], Iterable[tuple[str, S, Status, bool, Any]]],
    max_steps: int,
    max_states: int,
) -> Search:
    """Breadth-first search; ``successors(state, hint)`` gives ``(move, after, status, alive,
    hint)`` (a hint is whatever the game hands on to spare work on the state after)."""
    came_from: dict[S, tuple[S, str] | None] = {start: None}
    frontier: list[tuple[S, Any]] = [(start, None)]
    for _ in range(max_steps):
        following: list[tuple[S, Any]] = []
        for state, hint in frontier:
            for move, after, status, alive, handed in successors(state, hint):
                if status == "won":
                    plan = [move]
                    link = came_from[state]
                    while link is not None:
                        plan.append(link[1])
                        link = came_from[link[0]]
                    return Search(tuple(reversed(plan)), len(came_from) + 1, False)
                if after in came_from:
                    continue
                came_from[after] = (state, move)
                if status == "playing" and alive:
                    following.append((after, handed))
                if len(came_from) >= max_states:
                    return Search(None, len(came_from), True)
        if not following:
            break
        frontier = following
    return Search(None, len(came_from), False)


def shortest_plan(
    board: Board, start: State, max_steps: int, max_states: int = MAX_STATES
) -> Search:
    """A shortest list of moves that wins from ``start`` in alma's game, within ``max_steps``."""

    def successors(state: State, _hint: None) -> list[tuple[str, State, Status, bool, None]]:
        return [(m, *advance(board, state, m), True, None) for m in MOVES]

    return _search(start, successors, max_steps, max_states)


def shortest_balrog_plan(
    board: Board, start: balrog_engine.Stacks, max_steps: int, max_states: int = MAX_STATES
) -> Search:
    """A shortest list of moves that wins from ``start`` in the original's game."""

    return _search(start, lambda s, h: balrog_engine.successors(board, s, h), max_steps, max_states)
