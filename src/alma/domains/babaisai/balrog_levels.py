"""The levels of the ``balrog`` variant: BabaIsAI's own generators for its 40 families.

Each family is laid out as the original lays it out (nacloos/baba-is-ai, ``baba/envs.py``): one
room of 6 x 6 cells, or two rooms of 5 x 7 around a dividing column of walls (11 x 7 inside), the
same rule positions, the same placement ranges, the same order of random draws. Draws come from
numpy's ``RandomState`` seeded with the task's seed, exactly as the original draws from numpy's
global generator, so a level here is the one the original makes after ``numpy.random.seed(seed)``
(the tests compare them). The original's coordinates count the wall around the map; here the
board is the inside, one cell less on each axis.

Placement follows the original's rejection sampling: a random cell in a rectangle, drawn again
while its top is taken. Some pieces are put without that check, so a rule tile can land on
another (the second win rule of ``distr_win_rule`` families is put last, over whatever is there).
Levels are kept as drawn, solvable or not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alma.domains.babaisai.balrog_engine import Stacks, encode_stacks
from alma.domains.babaisai.engine import Board, Piece, obj, tile

NAMES = ("ball", "key", "door")
COLOURS = ("red", "blue", "green")
ROOM = Board(6, 6)  # the original's 8 x 8 with its wall
TWO_ROOMS = Board(11, 7)  # 13 x 9 with its wall
_FULL = {ROOM: (8, 8), TWO_ROOMS: (13, 9)}

Area = tuple[tuple[int, int], tuple[int, int]]  # (top, size) in the original's coordinates
Pos = tuple[int, int]


@dataclass(frozen=True)
class Layout:
    """What one family's constructor is given."""

    kind: str  # one_room, two_room, make_you, make_wall_win
    break_win: bool = False
    break_stop: bool = False
    distractor_obj: bool = True
    distractor_rule: bool = True
    irrelevant_rule: bool = False
    distractor_win_rule: bool = False
    win_area: str = ""  # two_room: left_anywhere, right_anywhere, anywhere


def _layouts() -> dict[str, Layout]:
    table: dict[str, Layout] = {}
    flags: dict[str, dict[str, Any]] = {
        "": {"distractor_obj": False, "distractor_rule": False},
        "-distr_obj": {"distractor_rule": False},
        "-distr_rule": {"distractor_obj": False},
        "-distr_obj_rule": {},
        "-distr_obj-irrelevant_rule": {"irrelevant_rule": True},
    }
    for goal in ("goto_win", "make_win"):
        for tail, extra in flags.items():
            table[f"{goal}{tail}"] = Layout("one_room", break_win=goal == "make_win", **extra)
            two = "left_anywhere"
            table[f"two_room-{goal}{tail}"] = Layout(
                "two_room", break_win=goal == "make_win", break_stop=True, win_area=two, **extra
            )
            table[f"two_room-break_stop-{goal}{tail}"] = Layout(
                "two_room", break_win=goal == "make_win", win_area="right_anywhere", **extra
            )
            if goal == "goto_win":
                table[f"two_room-maybe_break_stop-{goal}{tail}"] = Layout(
                    "two_room", win_area="anywhere", **extra
                )
        table[f"two_room-{goal}-distr_win_rule"] = Layout(
            "two_room",
            break_win=goal == "make_win",
            break_stop=True,
            distractor_win_rule=True,
            win_area="left_anywhere",
        )
    table["two_room-make_you"] = Layout("make_you")
    table["two_room-make_you-make_win"] = Layout("make_you", break_win=True)
    table["two_room-make_wall_win"] = Layout("make_wall_win", irrelevant_rule=True)
    return table


LAYOUTS = _layouts()


@dataclass(frozen=True)
class BalrogLevel:
    """One level of the original's generator."""

    family: str
    seed: int
    board: Board
    state: Stacks
    outline: str  # the original's ``target_plan``

    def fingerprint(self) -> str:
        """A short stable digest of the board and stacks."""
        text = repr((self.board.width, self.board.height, self.state))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Draft:
    """The original's grid while a level is laid out, in its coordinates (wall included)."""

    def __init__(self, board: Board, rng: np.random.RandomState) -> None:
        self.board = board
        self.width, self.height = _FULL[board]
        self.rng = rng
        self.cells: dict[Pos, list[Piece]] = {}
        for x in range(self.width):
            for y in range(self.height):
                if x in (0, self.width - 1) or y in (0, self.height - 1):
                    self.cells[(x, y)] = [obj("wall", x, y)]  # stands for the outer wall

    def taken(self, pos: Pos) -> bool:
        return bool(self.cells.get(pos))

    def put(self, piece: Piece, pos: Pos) -> None:
        self.cells.setdefault(pos, []).append(piece._replace(x=pos[0], y=pos[1]))

    def rule(self, noun: str, word: str, pos: Pos) -> list[Pos]:
        cells = [(pos[0] + i, pos[1]) for i in range(3)]
        for w, at in zip((noun, "is", word), cells, strict=True):
            self.put(tile(w, 0, 0), at)
        return cells

    def place(self, piece: Piece | None, area: Area) -> Pos:
        """The original's ``place_obj``: a random cell of ``area`` whose top is free."""
        (tx, ty), (sx, sy) = area
        while True:
            x = int(self.rng.randint(tx, min(tx + sx, self.width)))
            y = int(self.rng.randint(ty, min(ty + sy, self.height)))
            if not self.taken((x, y)):
                break
        if piece is not None:
            self.put(piece, (x, y))
        return (x, y)

    def shift(self, at: Pos, to: Pos) -> None:
        """Move the top piece of ``at`` onto ``to`` (how the original breaks a rule)."""
        if at != to and self.cells.get(at):
            self.put(self.cells[at].pop(), to)

    def pick(self, options: Sequence[Pos]) -> Pos:
        return options[int(self.rng.choice(len(options)))]

    def state(self) -> Stacks:
        inside = [
            p._replace(x=p.x - 1, y=p.y - 1)
            for y in range(1, self.height - 1)
            for x in range(1, self.width - 1)
            for p in self.cells.get((x, y), [])
        ]
        return encode_stacks(self.board, inside)


def _sample(rng: np.random.RandomState) -> list[tuple[str, str]]:
    """Three objects of different kinds, colours drawn independently: (colour, kind)."""
    names = rng.choice(len(NAMES), size=3, replace=False)
    colours = rng.choice(len(COLOURS), size=3, replace=True)
    return [(COLOURS[int(c)], NAMES[int(n)]) for n, c in zip(names, colours, strict=True)]


def _object(spec: tuple[str, str]) -> Piece:
    return obj(spec[1], 0, 0, spec[0])


def _one_room(d: _Draft, lay: Layout) -> str:
    obj1, obj2, obj3 = _sample(d.rng)
    win = obj1[1]
    d.rule("baba", "you", (1, 6))
    cells = d.rule(win, "win", (1, 1))
    if lay.break_win:
        d.shift(cells[0], d.place(None, ((2, 2), (4, 4))))
    if lay.distractor_rule:
        spots = [(4, 6), (5, 6), (6, 6), (4, 1), (5, 1), (6, 1)]
        spots += [(6, 1), (6, 2), (6, 3), (6, 4), (6, 5), (6, 6)]
        noun = obj3[1] if lay.irrelevant_rule else obj2[1]
        d.put(tile(noun, 0, 0), d.pick(spots))
    anywhere = ((1, 2), (8, 8))
    d.place(obj("baba", 0, 0), anywhere)
    d.place(_object(obj1), anywhere)
    if lay.distractor_obj:
        d.place(_object(obj2), anywhere)
    return f"make[{win} is win], goto[{win}]" if lay.break_win else f"goto[{win}]"


def _areas(width: int, height: int, narrow: bool) -> dict[str, Area]:
    pushable = (width // 2 - (3 if narrow else 2), height - 6)
    return {
        "left_pushable": ((2, 3), pushable),
        "right_pushable": ((width // 2 + (2 if narrow else 1), 3), pushable),
        "left_anywhere": ((1, 1), (width // 2 - 2, height - 2)),
        "right_anywhere": ((width // 2 + 1, 2), (width // 2 - 2, height - 2)),
        "anywhere": ((1, 2), (width - 2, height - 2)),
    }


def _unpushable(width: int, height: int) -> list[Pos]:
    return [(width - 2, 2 + i) for i in range(height - 4)] + [
        (width - 2 - i, height - 2) for i in range(width // 2 - 2)
    ]


def _divider(d: _Draft) -> None:
    for y in range(1, d.height - 1):
        d.put(obj("wall", 0, 0), (d.width // 2, y))


def _two_room(d: _Draft, lay: Layout) -> str:
    w, h = d.width, d.height
    areas = _areas(w, h, narrow=False)
    _divider(d)
    obj1, obj2, obj3 = _sample(d.rng)
    d.rule("baba", "you", (1, h - 2))
    stop = d.rule("wall", "stop", (1, 2))
    win = d.rule(obj1[1], "win", (w - 4, 1))
    if lay.distractor_rule:
        if lay.irrelevant_rule:
            d.place(tile(obj3[1], 0, 0), areas["right_pushable"])
        elif lay.distractor_obj:
            d.put(tile(obj2[1], 0, 0), d.pick(_unpushable(w, h)))
        else:
            d.place(tile(obj2[1], 0, 0), areas["right_pushable"])
    if lay.break_stop:
        to = d.place(None, areas["left_pushable"])
        d.shift(stop[(1, 2)[int(d.rng.choice(2))]], to)
    if lay.break_win:
        d.shift(win[0], d.place(None, areas["right_pushable"]))
    d.place(obj("baba", 0, 0), areas["left_pushable"])
    at = d.place(_object(obj1), areas[lay.win_area])
    if lay.distractor_obj:
        d.place(_object(obj2), areas[lay.win_area])
    if lay.distractor_win_rule:
        d.rule(obj3[1], "win", (w - 4, 4))
    goto = f"goto[{obj1[1]}]"
    if not lay.break_win:
        if at[0] < w // 2 or lay.break_stop:
            return goto
        return f"break[wall is stop], {goto}"
    make = f"make[{obj1[1]} is win], {goto}"
    return make if lay.break_stop else f"break[wall is stop], {make}"


def _make_you(d: _Draft, lay: Layout) -> str:
    w, h = d.width, d.height
    areas = _areas(w, h, narrow=True)
    _divider(d)
    obj1, obj2, _obj3 = _sample(d.rng)
    d.rule("baba", "you", (1, h - 3))
    d.rule("wall", "stop", (1, 1))
    win = d.rule(obj1[1], "win", (w - 4, 1))
    d.place(tile(obj2[1], 0, 0), areas["left_pushable"])
    if lay.break_win:
        d.shift(win[0], d.place(None, areas["right_pushable"]))
    d.place(obj("baba", 0, 0), areas["left_pushable"])
    d.place(_object(obj1), areas["right_anywhere"])
    d.place(_object(obj2), areas["right_anywhere"])
    if lay.break_win:
        return f"make[{obj2[1]} is you], make[{obj1[1]} is win], goto[{obj1[1]}]"
    return f"make[{obj2[1]} is you], goto[{obj1[1]}]"


def _make_wall_win(d: _Draft, lay: Layout) -> str:
    w, h = d.width, d.height
    areas = _areas(w, h, narrow=True)
    _divider(d)
    obj1, obj2, obj3 = _sample(d.rng)
    d.rule("baba", "you", (1, h - 2))
    d.rule("wall", "stop", (2, 2))
    win = d.rule(obj1[1], "win", (w - 4, 1))
    d.place(tile(obj3[1], 0, 0), areas["right_pushable"])
    d.shift(win[0], d.pick(_unpushable(w, h)))
    d.place(obj("baba", 0, 0), areas["left_pushable"])
    d.place(_object(obj1), areas["right_anywhere"])
    d.place(_object(obj2), areas["right_anywhere"])
    return "break[wall is stop], make[wall is win], goto[wall]"


_BUILDERS = {
    "one_room": _one_room,
    "two_room": _two_room,
    "make_you": _make_you,
    "make_wall_win": _make_wall_win,
}


def generate_balrog(family: str, seed: int) -> BalrogLevel:
    """The original's level of ``family`` after ``numpy.random.seed(seed)``.

    Raises:
        KeyError: for an unknown family.
    """
    lay = LAYOUTS[family]
    board = ROOM if lay.kind == "one_room" else TWO_ROOMS
    draft = _Draft(board, np.random.RandomState(seed))
    outline = _BUILDERS[lay.kind](draft, lay)
    return BalrogLevel(family, seed, board, draft.state(), outline)
