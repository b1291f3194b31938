"""The 40 level families of BabaIsAI and a seeded generator for each.

Family names are BALROG's. A name is read as: an optional ``two_room`` layout (two rooms split by
a column of walls), a goal (``goto_win``: the win rule stands, walk to the win object;
``make_win``: the noun of the win rule was pushed out of its line, push it back first;
``make_you``: turn a distractor object into what you control; ``make_wall_win``: only the wall
noun can complete the win rule), an optional ``break_stop`` (``wall is stop`` stands and the win
object is behind the wall) or ``maybe_break_stop`` (the win object is in either room), and the
distractors (``distr_obj``: another object; ``distr_rule``: a loose noun tile;
``irrelevant_rule``: a loose noun tile of an object that is not on the map; ``distr_win_rule``: a
second win rule, for an object that is not on the map, plus a distractor object and its noun
tile). In the ``two_room-goto_win`` and ``two_room-make_win`` families ``wall is stop`` starts
broken.

:func:`generate` draws one level from ``random.Random`` seeded with the family, the seed and a draw
number, so a level depends on nothing else. Layouts are small (a 6 x 6 room, or two 4 x 7 rooms
on a 9 x 7 board) so that a breadth-first search proves each level solvable within the step limit.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from alma.domains.babaisai.engine import (
    IS,
    Board,
    Piece,
    State,
    decode,
    encode,
    obj,
    rule_tiles,
    tile,
)

KINDS = ("ball", "key", "door")  # what can be the win object or a distractor
COLOURS = ("red", "green", "blue")

FAMILIES: tuple[str, ...] = (
    "goto_win",
    "goto_win-distr_obj",
    "goto_win-distr_rule",
    "goto_win-distr_obj_rule",
    "goto_win-distr_obj-irrelevant_rule",
    "make_win",
    "make_win-distr_obj",
    "make_win-distr_rule",
    "make_win-distr_obj_rule",
    "make_win-distr_obj-irrelevant_rule",
    "two_room-goto_win",
    "two_room-goto_win-distr_obj",
    "two_room-goto_win-distr_rule",
    "two_room-goto_win-distr_obj_rule",
    "two_room-goto_win-distr_obj-irrelevant_rule",
    "two_room-goto_win-distr_win_rule",
    "two_room-break_stop-goto_win",
    "two_room-break_stop-goto_win-distr_obj",
    "two_room-break_stop-goto_win-distr_rule",
    "two_room-break_stop-goto_win-distr_obj_rule",
    "two_room-break_stop-goto_win-distr_obj-irrelevant_rule",
    "two_room-maybe_break_stop-goto_win",
    "two_room-maybe_break_stop-goto_win-distr_obj",
    "two_room-maybe_break_stop-goto_win-distr_rule",
    "two_room-maybe_break_stop-goto_win-distr_obj_rule",
    "two_room-maybe_break_stop-goto_win-distr_obj-irrelevant_rule",
    "two_room-make_win",
    "two_room-make_win-distr_obj",
    "two_room-make_win-distr_rule",
    "two_room-make_win-distr_obj_rule",
    "two_room-make_win-distr_obj-irrelevant_rule",
    "two_room-make_win-distr_win_rule",
    "two_room-break_stop-make_win",
    "two_room-break_stop-make_win-distr_obj",
    "two_room-break_stop-make_win-distr_rule",
    "two_room-break_stop-make_win-distr_obj_rule",
    "two_room-break_stop-make_win-distr_obj-irrelevant_rule",
    "two_room-make_you",
    "two_room-make_you-make_win",
    "two_room-make_wall_win",
)

ROOM = Board(6, 6)
TWO_ROOMS = Board(9, 7)
DIVIDER = TWO_ROOMS.width // 2  # the column of walls between the rooms

Cell = tuple[int, int]


@dataclass(frozen=True)
class Spec:
    """What a family's name says."""

    two_room: bool
    goal: str  # goto_win, make_win, make_you, make_you-make_win, make_wall_win
    # `wall is stop`: "broken" at the start, "break" (it holds and must be broken), "maybe"
    # (the goal may be behind it), "kept" (it holds and need not be broken); "" in one room
    stop: str
    distractor_object: bool
    distractor_noun: bool
    irrelevant_noun: bool
    distractor_win_rule: bool


def parse_family(name: str) -> Spec:
    """The :class:`Spec` of a family name; raises ``KeyError`` for an unknown family."""
    if name not in FAMILIES:
        raise KeyError(name)
    parts = name.split("-")
    two_room = parts[0] == "two_room"
    if two_room:
        parts = parts[1:]
    stop = "broken" if two_room else ""
    if parts[0] in ("break_stop", "maybe_break_stop"):
        stop = "break" if parts[0] == "break_stop" else "maybe"
        parts = parts[1:]
    goal = parts.pop(0)
    if parts and parts[0] == "make_win" and goal == "make_you":
        goal = "make_you-make_win"
        parts.pop(0)
    if goal in ("make_you", "make_you-make_win"):
        stop = "kept"
    elif goal == "make_wall_win":
        stop = "break"
    flags = set(parts)
    # as in the original, a second win rule comes with a distractor object and its noun tile
    win_rule = "distr_win_rule" in flags
    return Spec(
        two_room=two_room,
        goal=goal,
        stop=stop,
        distractor_object=bool(flags & {"distr_obj", "distr_obj_rule"}) or win_rule,
        distractor_noun=bool(flags & {"distr_rule", "distr_obj_rule"}) or win_rule,
        irrelevant_noun="irrelevant_rule" in flags,
        distractor_win_rule=win_rule,
    )


@dataclass(frozen=True)
class Level:
    """One generated level: the board, its pieces, and what the generator meant."""

    family: str
    seed: int
    draw: int
    board: Board
    state: State
    outline: str  # the intended plan, e.g. "break[wall is stop], goto[ball]"

    def fingerprint(self) -> str:
        """A short stable digest of the board and pieces (to tell two generations apart)."""
        text = repr((self.board.width, self.board.height, decode(self.board, self.state)))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Draft:
    """A level being laid out: pieces so far and a random source."""

    def __init__(self, board: Board, rng: random.Random) -> None:
        self.board = board
        self.rng = rng
        self.pieces: list[Piece] = []

    def taken(self) -> set[Cell]:
        return {(p.x, p.y) for p in self.pieces}

    def free_in(self, cells: Sequence[Cell]) -> Cell:
        taken = self.taken()
        free = [c for c in cells if c not in taken]
        if not free:
            raise _NoRoom
        return self.rng.choice(free)

    def add(self, piece: Piece) -> None:
        self.pieces.append(piece)

    def add_rule(self, noun: str, prop: str, x: int, y: int) -> None:
        """The three tiles of ``noun is prop``, left to right from ``(x, y)``."""
        self.pieces.extend(rule_tiles(noun, prop, x, y))

    def move_tile(self, word: str, at: Cell, to: Cell) -> None:
        """Move the rule tile ``word`` standing at ``at`` to ``to`` (breaking its rule)."""
        for i, p in enumerate(self.pieces):
            if p.text and p.name == word and (p.x, p.y) == at:
                self.pieces[i] = p._replace(x=to[0], y=to[1])
                return
        raise LookupError(f"no tile {word!r} at {at}")


class _NoRoom(Exception):
    """A draw ran out of free cells (the caller draws again)."""


def _rect(x0: int, y0: int, x1: int, y1: int) -> list[Cell]:
    """Cells with x0 <= x <= x1 and y0 <= y <= y1, in reading order."""
    return [(x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]


@dataclass(frozen=True)
class _Cast:
    """The objects of one level: the win object, a distractor, and a third kind."""

    win: tuple[str, str]  # (colour, kind)
    other: tuple[str, str]
    third: tuple[str, str]

    @staticmethod
    def draw(rng: random.Random) -> _Cast:
        kinds = rng.sample(KINDS, 3)
        colours = [rng.choice(COLOURS) for _ in range(3)]
        win, other, third = zip(colours, kinds, strict=True)
        return _Cast(win, other, third)


def _object(spec: tuple[str, str], cell: Cell) -> Piece:
    colour, kind = spec
    return obj(kind, cell[0], cell[1], colour)


# --------------------------------------------------------------------------- one room


def _one_room(spec: Spec, draft: _Draft, cast: _Cast) -> str:
    w, h = ROOM.width, ROOM.height
    win_kind = cast.win[1]
    draft.add_rule("baba", "you", 0, h - 1)
    draft.add_rule(win_kind, "win", 0, 0)
    if spec.goal == "make_win":
        draft.move_tile(win_kind, (0, 0), draft.free_in(_rect(1, 1, w - 2, h - 2)))
    if spec.distractor_noun or spec.irrelevant_noun:
        noun = cast.third[1] if spec.irrelevant_noun else cast.other[1]
        # along the top and bottom rows and the right column: hard to bring into a rule
        edge = [(x, 0) for x in range(3, w)] + [(x, h - 1) for x in range(3, w)]
        edge += [(w - 1, y) for y in range(1, h - 1)]
        draft.add(tile(noun, *draft.free_in(edge)))
    below_rules = _rect(0, 1, w - 1, h - 1)
    draft.add(obj("baba", *draft.free_in(below_rules)))
    draft.add(_object(cast.win, draft.free_in(below_rules)))
    if spec.distractor_object:
        draft.add(_object(cast.other, draft.free_in(below_rules)))
    goto = f"goto[{win_kind}]"
    return f"make[{win_kind} is win], {goto}" if spec.goal == "make_win" else goto


# --------------------------------------------------------------------------- two rooms

_W, _H = TWO_ROOMS.width, TWO_ROOMS.height
_LEFT_ROOM = _rect(0, 0, DIVIDER - 1, _H - 1)
_RIGHT_ROOM = _rect(DIVIDER + 1, 1, _W - 1, _H - 1)  # below the win rule's row
_LEFT_INNER = _rect(1, 2, DIVIDER - 1, _H - 3)  # off the edges: a tile here can be pushed
_LEFT_PUSHABLE = _rect(1, 2, DIVIDER - 2, _H - 3)  # ... even to the left (not by the wall)
_RIGHT_INNER = _rect(DIVIDER + 2, 2, _W - 2, _H - 3)
_RIGHT_EDGE = [(_W - 1, y) for y in range(1, _H - 1)] + [
    (x, _H - 1) for x in range(DIVIDER + 2, _W)
]  # a noun here cannot be pushed back into the win rule
_ANYWHERE = [c for c in _rect(0, 1, _W - 1, _H - 1) if c[0] != DIVIDER]
_WIN_RULE_AT = (_W - 3, 0)


def _two_room_rules(draft: _Draft, win_kind: str, you_row: int, stop_at: Cell) -> None:
    """The dividing wall, then ``baba is you`` on the left at ``you_row``, ``wall is stop`` at
    ``stop_at`` and ``<win_kind> is win`` top right."""
    for y in range(_H):
        draft.add(obj("wall", DIVIDER, y))
    draft.add_rule("baba", "you", 0, you_row)
    draft.add_rule("wall", "stop", *stop_at)
    draft.add_rule(win_kind, "win", *_WIN_RULE_AT)


def _two_rooms(spec: Spec, draft: _Draft, cast: _Cast) -> str:
    win_kind = cast.win[1]
    _two_room_rules(draft, win_kind, _H - 1, (0, 1))
    if spec.distractor_win_rule:
        draft.add_rule(cast.third[1], "win", _W - 3, _H - 1)
    if spec.irrelevant_noun:
        draft.add(tile(cast.third[1], *draft.free_in(_RIGHT_INNER)))
    elif spec.distractor_noun:
        cells = _RIGHT_EDGE if spec.distractor_object else _RIGHT_INNER
        draft.add(tile(cast.other[1], *draft.free_in(cells)))
    if spec.stop == "broken":
        word = draft.rng.choice((IS, "stop"))
        draft.move_tile(word, (1 if word == IS else 2, 1), draft.free_in(_LEFT_INNER))
    if spec.goal == "make_win":
        draft.move_tile(win_kind, _WIN_RULE_AT, draft.free_in(_RIGHT_INNER))
    draft.add(obj("baba", *draft.free_in(_LEFT_INNER)))
    region = {"broken": _LEFT_ROOM, "break": _RIGHT_ROOM, "maybe": _ANYWHERE}[spec.stop]
    win_at = draft.free_in(region)
    draft.add(_object(cast.win, win_at))
    if spec.distractor_object:
        draft.add(_object(cast.other, draft.free_in(region)))
    steps = []
    if spec.stop == "break" or (spec.stop == "maybe" and win_at[0] > DIVIDER):
        steps.append("break[wall is stop]")
    if spec.goal == "make_win":
        steps.append(f"make[{win_kind} is win]")
    steps.append(f"goto[{win_kind}]")
    return ", ".join(steps)


def _make_you(spec: Spec, draft: _Draft, cast: _Cast) -> str:
    win_kind, you_kind = cast.win[1], cast.other[1]
    # baba is you a row above the bottom: room to push it
    _two_room_rules(draft, win_kind, _H - 2, (0, 0))
    draft.add(tile(you_kind, *draft.free_in(_LEFT_PUSHABLE)))
    if spec.goal == "make_you-make_win":
        draft.move_tile(win_kind, _WIN_RULE_AT, draft.free_in(_RIGHT_INNER))
    draft.add(obj("baba", *draft.free_in(_LEFT_INNER)))
    draft.add(_object(cast.win, draft.free_in(_RIGHT_ROOM)))
    draft.add(_object(cast.other, draft.free_in(_RIGHT_ROOM)))
    steps = [f"make[{you_kind} is you]"]
    if spec.goal == "make_you-make_win":
        steps.append(f"make[{win_kind} is win]")
    steps.append(f"goto[{win_kind}]")
    return ", ".join(steps)


def _make_wall_win(spec: Spec, draft: _Draft, cast: _Cast) -> str:
    win_kind = cast.win[1]
    _two_room_rules(draft, win_kind, _H - 1, (1, 1))
    draft.move_tile(win_kind, _WIN_RULE_AT, draft.free_in(_RIGHT_EDGE))
    draft.add(tile(cast.third[1], *draft.free_in(_RIGHT_INNER)))
    draft.add(obj("baba", *draft.free_in(_LEFT_INNER)))
    draft.add(_object(cast.win, draft.free_in(_RIGHT_ROOM)))
    draft.add(_object(cast.other, draft.free_in(_RIGHT_ROOM)))
    return "break[wall is stop], make[wall is win], goto[wall]"


_LAYOUTS: dict[str, Callable[[Spec, _Draft, _Cast], str]] = {
    "goto_win": _two_rooms,
    "make_win": _two_rooms,
    "make_you": _make_you,
    "make_you-make_win": _make_you,
    "make_wall_win": _make_wall_win,
}


def generate(family: str, seed: int, draw: int = 0) -> Level:
    """Level number ``draw`` of ``family`` for ``seed`` (draw 0 is the first choice).

    Raises:
        KeyError: for an unknown family.
    """
    spec = parse_family(family)
    rng = random.Random(f"babaisai/{family}/{seed}/{draw}")
    board = TWO_ROOMS if spec.two_room else ROOM
    for _ in range(100):
        draft = _Draft(board, rng)
        cast = _Cast.draw(rng)
        try:
            if spec.two_room:
                outline = _LAYOUTS[spec.goal](spec, draft, cast)
            else:
                outline = _one_room(spec, draft, cast)
        except _NoRoom:
            continue
        return Level(family, seed, draw, board, encode(board, draft.pieces), outline)
    raise RuntimeError(f"no room for a {family} level (seed {seed}, draw {draw})")
