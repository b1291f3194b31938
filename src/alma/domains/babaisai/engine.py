"""The rules engine of the ``alma`` variant of BabaIsAI: pieces on a grid, rules from tiles.

A *board* is a rectangle of ``width`` x ``height`` cells; outside it nothing can go (the edge is
not a piece and no rule changes it). On the board stand *pieces*: objects (``baba``, ``wall``,
``ball``, ``key``, ``door``, each with a colour that no rule looks at) and rule tiles (the nouns,
``is`` and the properties). Several pieces may share a cell.

Rules are read from every ``is`` tile with a noun tile just left of it (or just above) and a
property or noun tile just right of it (or just below): ``NOUN IS PROPERTY`` gives every object
of that noun the property, ``NOUN IS NOUN`` turns every object of the first noun into the second
(``NOUN IS ITSELF`` protects it from turning). Rule tiles are always pushable and are never
governed by rules.

One step (:func:`advance`) with a direction: every ``you`` object, the one furthest ahead first,
tries to move one cell. A mover may enter a cell when every ``push`` piece there can itself be
pushed one cell further (chains are followed), and no other piece there is ``stop``; an ``open``
mover ignores ``shut`` pieces (and the reverse), since both are destroyed on contact. ``pull``
pieces right behind a piece that moves follow it. Then, with the rules read again from where the
tiles now stand: objects transform, ``open`` and ``shut`` objects sharing a cell destroy each other
in pairs, ``you`` objects sharing a cell with a ``defeat`` object are destroyed, and the level is
won when a ``you`` object shares a cell with a ``win`` object (or is itself ``win``) and lost when
no object is ``you``. ``idle`` runs only that second half, so it changes nothing in a settled
state. Everything is a pure function of the state: no randomness, no clock.

For speed a state is a sorted tuple of ints, one per piece: ``(cell << 6) | code`` with
``cell = y * width + x`` and ``code`` the piece's kind (see :data:`CODES`); sorting puts pieces in
reading order. :class:`Piece` is the readable form, and :func:`encode` / :func:`decode` convert.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

NOUNS = ("baba", "wall", "ball", "key", "door")
PROPERTIES = ("you", "win", "stop", "push", "pull", "defeat", "open", "shut")
IS = "is"
WORDS = (*NOUNS, IS, *PROPERTIES)
COLOURS = ("white", "grey", "red", "green", "blue")
ACTIONS = ("idle", "up", "right", "down", "left")
MOVES = ("up", "right", "down", "left")
OFFSETS: dict[str, tuple[int, int]] = {
    "up": (0, -1),
    "right": (1, 0),
    "down": (0, 1),
    "left": (-1, 0),
}
#: the colour an object gets when a rule turns another object into it
DEFAULT_COLOURS = {"baba": "white", "wall": "grey", "ball": "green", "key": "blue", "door": "red"}

Status = Literal["playing", "won", "lost"]
State = tuple[int, ...]

#: piece kind codes: objects (noun, colour) first, then rule tiles (word)
CODES: tuple[tuple[bool, str, str], ...] = (
    *((False, noun, colour) for noun in NOUNS for colour in COLOURS),
    *((True, word, "") for word in WORDS),
)
_CODE_OF = {kind: code for code, kind in enumerate(CODES)}
_FIRST_TILE = len(NOUNS) * len(COLOURS)
_SHIFT = 6
_KIND = (1 << _SHIFT) - 1
assert len(CODES) <= _KIND + 1

_BIT = {prop: 1 << i for i, prop in enumerate(PROPERTIES)}
YOU, WIN, STOP, PUSH, PULL, DEFEAT, OPEN, SHUT = (_BIT[p] for p in PROPERTIES)
_DESTROYING = OPEN | SHUT | DEFEAT


class Piece(NamedTuple):
    """One object or rule tile. Field order makes sorted pieces read top-down, left to right."""

    y: int
    x: int
    text: bool  # True for a rule tile
    name: str  # an object's noun, or a rule tile's word
    colour: str = ""  # an object's colour; empty for a rule tile

    def label(self) -> str:
        """How the piece is named to a player: ``rule `win```, ``green ball``."""
        if self.text:
            return f"rule `{self.name}`"
        return f"{self.colour} {self.name}"


def obj(name: str, x: int, y: int, colour: str | None = None) -> Piece:
    """An object piece (``colour`` defaults to the noun's usual colour)."""
    if name not in NOUNS:
        raise ValueError(f"unknown object {name!r}; objects are {', '.join(NOUNS)}")
    colour = DEFAULT_COLOURS[name] if colour is None else colour
    if colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}; colours are {', '.join(COLOURS)}")
    return Piece(y, x, False, name, colour)


def tile(word: str, x: int, y: int) -> Piece:
    """A rule tile."""
    if word not in WORDS:
        raise ValueError(f"unknown rule word {word!r}; words are {', '.join(WORDS)}")
    return Piece(y, x, True, word)


def rule_tiles(noun: str, word: str, x: int, y: int, *, vertical: bool = False) -> list[Piece]:
    """The three tiles of ``noun is word`` starting at (x, y), left to right or top down."""
    dx, dy = (0, 1) if vertical else (1, 0)
    return [tile(noun, x, y), tile(IS, x + dx, y + dy), tile(word, x + 2 * dx, y + 2 * dy)]


@dataclass(frozen=True)
class Board:
    """The rectangle the pieces stand on, with each cell's neighbour in every direction."""

    width: int
    height: int
    neighbours: dict[str, tuple[int, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (1 <= self.width <= 64 and 1 <= self.height <= 64):
            raise ValueError(f"a board is 1 to 64 cells a side, not {self.width}x{self.height}")
        table = {}
        for move, (dx, dy) in OFFSETS.items():
            table[move] = tuple(
                (y + dy) * self.width + x + dx if self.inside(x + dx, y + dy) else -1
                for y in range(self.height)
                for x in range(self.width)
            )
        object.__setattr__(self, "neighbours", table)

    def inside(self, x: int, y: int) -> bool:
        return 0 <= x < self.width and 0 <= y < self.height


def encode(board: Board, pieces: Iterable[Piece]) -> State:
    """The state holding ``pieces``.

    Raises:
        ValueError: for a piece outside the board.
    """
    values = []
    for p in pieces:
        if not board.inside(p.x, p.y):
            raise ValueError(f"{p.label()} at ({p.x}, {p.y}) is outside the board")
        values.append(((p.y * board.width + p.x) << _SHIFT) | _CODE_OF[(p.text, p.name, p.colour)])
    return tuple(sorted(values))


def decode(board: Board, state: State) -> list[Piece]:
    """The pieces of ``state``, in reading order."""
    pieces = []
    for value in state:
        y, x = divmod(value >> _SHIFT, board.width)
        text, name, colour = CODES[value & _KIND]
        pieces.append(Piece(y, x, text, name, colour))
    return pieces


@dataclass(frozen=True)
class Rules:
    """The rules some rule tiles spell. ``lines`` are in reading order of their ``is``."""

    lines: tuple[str, ...]
    properties: dict[str, frozenset[str]]  # noun -> its properties
    transforms: dict[str, tuple[str, ...]]  # noun -> the nouns it turns into
    masks: tuple[int, ...] = field(repr=False)  # piece code -> property bits
    morphs: dict[int, tuple[int, ...]] = field(repr=False)  # piece code -> codes it turns into
    destroying: bool = field(repr=False)  # some object is open, shut or defeat
    plain: bool = field(repr=False)  # no pull, transformation or destruction: walks are simple

    def of(self, piece: Piece) -> frozenset[str]:
        """The properties of ``piece`` (a rule tile is only ``push``)."""
        if piece.text:
            return _TILE_PROPERTIES
        return self.properties.get(piece.name, _NO_PROPERTIES)


_TILE_PROPERTIES = frozenset({"push"})
_NO_PROPERTIES: frozenset[str] = frozenset()
# rules by (board size, rule tiles); shared by every thread (dict reads and writes are atomic)
_RULES_CACHE: dict[tuple[int, ...], Rules] = {}
_RULES_CACHE_SIZE = 20_000


def rules_of(board: Board, state: State) -> Rules:
    """The rules spelled by the rule tiles of ``state``."""
    tiles = tuple(v for v in state if v & _KIND >= _FIRST_TILE)
    key = (board.width, board.height, *tiles)
    found = _RULES_CACHE.get(key)
    if found is None:
        if len(_RULES_CACHE) >= _RULES_CACHE_SIZE:
            _RULES_CACHE.clear()
        found = _RULES_CACHE[key] = _read_rules(board, tiles)
    return found


def _read_rules(board: Board, tiles: Sequence[int]) -> Rules:
    at: dict[int, list[str]] = {}
    for value in tiles:
        at.setdefault(value >> _SHIFT, []).append(CODES[value & _KIND][1])
    found: list[tuple[str, str]] = []
    for value in tiles:  # sorted, so the rules come out in reading order of their `is`
        if CODES[value & _KIND][1] != IS:
            continue
        cell = value >> _SHIFT
        for before, after in (("left", "right"), ("up", "down")):
            a, b = board.neighbours[before][cell], board.neighbours[after][cell]
            if a < 0 or b < 0:
                continue
            for subject in at.get(a, ()):
                if subject not in NOUNS:
                    continue
                for complement in at.get(b, ()):
                    if complement != IS and (subject, complement) not in found:
                        found.append((subject, complement))
    properties: dict[str, set[str]] = {}
    transforms: dict[str, list[str]] = {}
    for subject, complement in found:
        if complement in PROPERTIES:
            properties.setdefault(subject, set()).add(complement)
        else:
            transforms.setdefault(subject, []).append(complement)
    # `noun is noun` keeps the noun what it is, whatever else it is told to become
    kept = {noun: tuple(into) for noun, into in transforms.items() if noun not in into}
    masks = []
    morphs: dict[int, tuple[int, ...]] = {}
    for code, (text, name, _colour) in enumerate(CODES):
        if text:
            masks.append(PUSH)
            continue
        masks.append(sum(_BIT[p] for p in properties.get(name, ())))
        if name in kept:
            morphs[code] = tuple(_CODE_OF[(False, n, DEFAULT_COLOURS[n])] for n in kept[name])
    return Rules(
        lines=tuple(f"{s} {IS} {c}" for s, c in found),
        properties={noun: frozenset(props) for noun, props in properties.items()},
        transforms=kept,
        masks=tuple(masks),
        morphs=morphs,
        destroying=any(m & _DESTROYING for m in masks),
        plain=not morphs and not any(m & (_DESTROYING | PULL) for m in masks),
    )


def status_of(board: Board, state: State) -> Status:
    """Whether ``state`` is won, lost or still playing, under its own rules."""
    return _status(state, rules_of(board, state).masks)


def _status(state: State, masks: tuple[int, ...]) -> Status:
    yous = {v >> _SHIFT for v in state if masks[v & _KIND] & YOU}
    if not yous:
        return "lost"
    for v in state:
        if masks[v & _KIND] & WIN and v >> _SHIFT in yous:
            return "won"
    return "playing"


class _Mover:
    """The movement phase of one step, on lists of cells and kinds changed in place."""

    def __init__(self, board: Board, state: State, masks: tuple[int, ...], move: str) -> None:
        self.cells = [v >> _SHIFT for v in state]
        self.codes = [v & _KIND for v in state]
        self.masks = [masks[c] for c in self.codes]
        self.ahead = board.neighbours[move]
        self.width = board.width
        self.dx, self.dy = OFFSETS[move]
        self.behind = board.neighbours[
            {"up": "down", "down": "up", "left": "right"}.get(move, "left")
        ]
        self.tiles_moved = False

    def _annihilate(self, i: int, j: int) -> bool:
        a, b = self.masks[i], self.masks[j]
        return bool((a & OPEN and b & SHUT) or (a & SHUT and b & OPEN))

    def _progress(self, i: int) -> int:
        y, x = divmod(self.cells[i], self.width)
        return x * self.dx + y * self.dy

    def can_move(self, i: int) -> bool:
        target = self.ahead[self.cells[i]]
        if target < 0:
            return False
        for j, cell in enumerate(self.cells):
            if cell != target or self._annihilate(i, j):
                continue
            if self.masks[j] & PUSH:
                if not self.can_move(j):
                    return False
            elif self.masks[j] & STOP:
                return False
        return True

    def shift(self, i: int, moving: set[int]) -> None:
        """Move piece ``i`` one cell (``can_move(i)`` must hold), with what it pushes and pulls."""
        moving.add(i)
        origin = self.cells[i]
        target = self.ahead[origin]
        for j, cell in enumerate(self.cells):
            if (
                cell == target
                and j not in moving
                and self.masks[j] & PUSH
                and not self._annihilate(i, j)
            ):
                self.shift(j, moving)
        self.cells[i] = target
        if self.codes[i] >= _FIRST_TILE:
            self.tiles_moved = True
        back = self.behind[origin]
        if back >= 0:
            for j, cell in enumerate(self.cells):
                if cell == back and j not in moving and self.masks[j] & PULL and self.can_move(j):
                    self.shift(j, moving)

    def run(self) -> list[int] | None:
        """The pieces after the move, or None when nothing moved."""
        yous = [i for i, mask in enumerate(self.masks) if mask & YOU]
        if not yous:
            return None
        # the one furthest ahead moves first, so a line of `you` objects walks together
        if len(yous) > 1:
            yous.sort(key=self._progress, reverse=True)
        moved = False
        for i in yous:
            if self.can_move(i):
                self.shift(i, set())
                moved = True
        if not moved:
            return None
        return [(cell << _SHIFT) | code for cell, code in zip(self.cells, self.codes, strict=True)]


def _destroy(values: list[int], masks: tuple[int, ...]) -> list[int]:
    """Open/shut pairs on one cell destroy each other; `you` on a cell with `defeat` dies."""
    by_cell: dict[int, list[int]] = {}
    for i, v in enumerate(values):
        by_cell.setdefault(v >> _SHIFT, []).append(i)
    gone: set[int] = set()
    for members in by_cell.values():
        if len(members) < 2:
            continue
        opens = [i for i in members if masks[values[i] & _KIND] & OPEN]
        shuts = [i for i in members if masks[values[i] & _KIND] & SHUT]
        for a in opens:  # pair each open piece with a shut piece not yet destroyed
            if a in gone:
                continue
            partner = next((b for b in shuts if b != a and b not in gone), None)
            if partner is not None:
                gone.update((a, partner))
        alive = [i for i in members if i not in gone]
        if any(masks[values[i] & _KIND] & DEFEAT for i in alive):
            gone.update(i for i in alive if masks[values[i] & _KIND] & YOU)
    return [v for i, v in enumerate(values) if i not in gone]


_MATTERS = PUSH | STOP | WIN | DEFEAT | OPEN | SHUT


def _walk(board: Board, state: State, masks: tuple[int, ...], move: str) -> State | None:
    """The state after a plain step of the only `you` object, or None if the step is not plain.

    A plain step (the common case, and the one a search takes most) moves the one `you` object
    onto a cell where nothing pushes, stops, wins, defeats, opens or shuts, or into the edge,
    and the object is not itself `win`; under rules with no pull, transformation or destruction
    nothing else can then happen, and the level is still being played.
    """
    you = -1
    for i, v in enumerate(state):
        if masks[v & _KIND] & YOU:
            if you >= 0:
                return None
            you = i
    if you < 0:
        return None
    value = state[you]
    if masks[value & _KIND] & WIN:  # a `you` that is also `win` has won wherever it ends up
        return None
    target = board.neighbours[move][value >> _SHIFT]
    if target < 0:
        return state
    for v in state:
        if v >> _SHIFT == target and masks[v & _KIND] & _MATTERS:
            return None
    moved = [*state[:you], *state[you + 1 :], (target << _SHIFT) | (value & _KIND)]
    moved.sort()
    return tuple(moved)


def advance(board: Board, state: State, action: str) -> tuple[State, Status]:
    """The state after ``action`` (``idle`` or a direction) and whether the level is won or lost.

    Raises:
        ValueError: for an action that is not one of :data:`ACTIONS`.
    """
    rules = rules_of(board, state)
    if action != "idle":
        if action not in OFFSETS:
            raise ValueError(f"unknown action {action!r}; actions are {', '.join(ACTIONS)}")
        if rules.plain:
            walked = _walk(board, state, rules.masks, action)
            if walked is not None:
                return walked, "playing"
        mover = _Mover(board, state, rules.masks, action)
        values = mover.run()
        if values is not None:
            state = tuple(sorted(values))
            if mover.tiles_moved:
                rules = rules_of(board, state)
    if rules.morphs or rules.destroying:
        pieces = list(state)
        if rules.morphs:
            pieces = [
                (v & ~_KIND) | code
                for v in pieces
                for code in rules.morphs.get(v & _KIND, (v & _KIND,))
            ]
        if rules.destroying:
            pieces = _destroy(pieces, rules.masks)
        state = tuple(sorted(pieces))
    return state, _status(state, rules.masks)
