"""Every way a `you` object can end a step on a `win` object, in both BabaIsAI variants.

alma's game wins whenever, after the step, a `you` object shares a cell with a `win` object (or
is `win` itself). The original (the ``balrog`` variant) reads win on the top piece of the cell a
`you` object moves to, before it arrives, for the last `you` object that moves; ``idle`` checks
nothing. Each case says what each game answers.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from alma.domains.babaisai import balrog_engine
from alma.domains.babaisai.engine import Board, Piece, advance, encode, obj, rule_tiles, status_of
from alma.domains.babaisai.engine import tile as word

BOARD = Board(6, 6)
YOU = rule_tiles("baba", "you", 0, 5)


def rule(noun: str, prop: str, y: int) -> list[Piece]:
    """A rule along row ``y`` at the right edge, out of every case's way."""
    return rule_tiles(noun, prop, 3, y)


CASES: dict[str, tuple[list[Piece], Sequence[str], str, str]] = {
    # name: pieces (one cell's pieces bottom to top), actions, alma's status, the original's
    "walk onto a win object": (
        [*YOU, *rule("ball", "win", 4), obj("baba", 1, 1), obj("ball", 2, 1)],
        ["right"],
        "won",
        "won",
    ),
    "push a tile off a win object and walk onto it": (
        [*YOU, *rule("ball", "win", 4), obj("baba", 1, 1), obj("ball", 2, 1), word("key", 2, 1)],
        ["right"],
        "won",
        "won",
    ),
    "walk onto a win object under another object": (
        [*YOU, *rule("ball", "win", 4), obj("baba", 1, 1), obj("ball", 2, 1), obj("key", 2, 1)],
        ["right"],
        "won",
        "playing",
    ),
    "walk onto a win object lying on a stop object": (
        [
            *YOU,
            *rule("ball", "win", 4),
            *rule("wall", "stop", 3),
            obj("baba", 1, 1),
            obj("wall", 2, 1),
            obj("ball", 2, 1),
        ],
        ["right"],
        "playing",
        "won",
    ),
    "you is win and moves into a free cell": (
        [*YOU, *rule("baba", "win", 4), obj("baba", 1, 1)],
        ["right"],
        "won",
        "playing",
    ),
    "you is win and walks into the edge": (
        [*YOU, *rule("baba", "win", 4), obj("baba", 0, 1)],
        ["left"],
        "won",
        "won",
    ),
    "you is win and is blocked by a stop object": (
        [
            *YOU,
            *rule("baba", "win", 4),
            *rule("wall", "stop", 3),
            obj("baba", 1, 1),
            obj("wall", 2, 1),
        ],
        ["right"],
        "won",
        "won",
    ),
    "you is win and pushes a tile": (
        [*YOU, *rule("baba", "win", 4), obj("baba", 1, 1), word("key", 2, 1)],
        ["right"],
        "won",
        "playing",
    ),
    "you is win and idles": (
        [*YOU, *rule("baba", "win", 4), obj("baba", 1, 1)],
        ["idle"],
        "won",
        "playing",
    ),
    "idle on a win object": (
        [*YOU, *rule("ball", "win", 4), obj("ball", 1, 1), obj("baba", 1, 1)],
        ["idle"],
        "won",
        "playing",
    ),
    "a push makes you win": (
        [*YOU, word("baba", 0, 0), word("is", 1, 0), word("win", 2, 1), obj("baba", 2, 2)],
        ["up"],
        "won",
        "playing",
    ),
    "a push makes you win, then a blocked move": (
        [*YOU, word("baba", 0, 0), word("is", 1, 0), word("win", 2, 1), obj("baba", 2, 2)],
        ["up", "up"],
        "won",
        "won",
    ),
    "a push by one you makes the object another you walks onto win": (
        [
            *YOU,
            word("key", 0, 0),
            word("is", 1, 0),
            word("win", 2, 1),
            obj("baba", 2, 2),
            obj("key", 4, 2),
            obj("baba", 4, 3),
        ],
        ["up"],
        "won",
        "playing",
    ),
    "the last you object to move decides": (
        [*YOU, *rule("ball", "win", 4), obj("baba", 0, 1), obj("ball", 1, 1), obj("baba", 0, 2)],
        ["right"],
        "won",
        "playing",
    ),
    "the last you object to move walks onto win": (
        [*YOU, *rule("ball", "win", 4), obj("baba", 0, 1), obj("ball", 1, 2), obj("baba", 0, 2)],
        ["right"],
        "won",
        "won",
    ),
    "the object walked onto turns into a win object": (
        [
            *YOU,
            *rule("ball", "win", 4),
            *rule("key", "ball", 3),
            obj("baba", 1, 1),
            obj("key", 2, 1),
        ],
        ["right"],
        "won",
        "playing",
    ),
}


def alma_statuses(pieces: list[Piece], actions: Sequence[str]) -> list[str]:
    state = encode(BOARD, pieces)
    found = []
    for action in actions:
        state, status = advance(BOARD, state, action)
        assert status == status_of(BOARD, state)  # what a step says is what the state says
        found.append(status)
    return found


def balrog_statuses(pieces: list[Piece], actions: Sequence[str]) -> list[str]:
    state = balrog_engine.encode_stacks(BOARD, pieces)
    found = []
    for action in actions:
        state, status = balrog_engine.step(BOARD, state, action)
        found.append(status)
    return found


@pytest.mark.parametrize("case", list(CASES))
def test_alma_variant(case: str) -> None:
    pieces, actions, alma, _original = CASES[case]
    assert alma_statuses(pieces, actions)[-1] == alma


@pytest.mark.parametrize("case", list(CASES))
def test_balrog_variant(case: str) -> None:
    pieces, actions, _alma, original = CASES[case]
    assert balrog_statuses(pieces, actions)[-1] == original


def test_a_lone_you_that_is_win_wins_on_every_kind_of_step_in_alma() -> None:
    # the shortcut for a lone `you` object moving into a free cell or the edge once skipped this
    start = [*YOU, *rule("baba", "win", 4), obj("baba", 2, 2)]
    for action in ("idle", "up", "right", "down", "left"):
        assert alma_statuses(start, [action]) == ["won"], action
    corner = [*YOU, *rule("baba", "win", 4), obj("baba", 0, 0)]
    assert alma_statuses(corner, ["up"]) == ["won"]
    assert alma_statuses(corner, ["left"]) == ["won"]
