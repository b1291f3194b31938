"""A bounded breadth-first search over the engine: the shortest winning plan of a level.

States are the engine's canonical states, so two move orders that lead to the same layout meet.
``idle`` never changes a settled state and is not tried; lost states are dead ends. The search
stops at ``max_steps`` moves or after ``max_states`` distinct states, whichever comes first, and
then says the level has no plan (within those bounds).
"""

from __future__ import annotations

from dataclasses import dataclass

from alma.domains.babaisai.engine import MOVES, Board, State, advance

MAX_STATES = 400_000


@dataclass(frozen=True)
class Search:
    """What one search found: the plan (None when there is none within the bounds)."""

    plan: tuple[str, ...] | None
    states: int  # distinct states reached
    exhausted: bool  # True when the state cap, not the depth, ended a failed search


def shortest_plan(
    board: Board, start: State, max_steps: int, max_states: int = MAX_STATES
) -> Search:
    """A shortest list of moves that wins from ``start``, within ``max_steps`` moves."""
    came_from: dict[State, tuple[State, str] | None] = {start: None}
    frontier = [start]
    for _ in range(max_steps):
        following: list[State] = []
        for state in frontier:
            for move in MOVES:
                after, status = advance(board, state, move)
                if after in came_from:
                    continue
                if status == "won":
                    plan = [move]
                    link = came_from[state]
                    while link is not None:
                        plan.append(link[1])
                        link = came_from[link[0]]
                    return Search(tuple(reversed(plan)), len(came_from) + 1, False)
                came_from[after] = (state, move)
                if status == "playing":
                    following.append(after)
                if len(came_from) >= max_states:
                    return Search(None, len(came_from), True)
        if not following:
            break
        frontier = following
    return Search(None, len(came_from), False)
