"""The rules engine of the ``balrog`` variant: BabaIsAI's own game, step for step.

This is the game the benchmark plays (nacloos/baba-is-ai, as BALROG runs it), written for alma
from that engine's published behaviour. It differs from alma's engine (:mod:`.engine`) on
purpose, in every way the original does:

- A cell holds a *stack* of pieces; only the top one counts. Rules are read from the top pieces,
  a mover looks at the top piece of the cell ahead, and a push moves only that top piece (what
  lies under it stays).
- One step with a direction visits the cells in reading order; the top piece of each cell, when
  it is a ``you`` object that has not moved yet in this step, moves. A move first destroys an
  ``open`` / ``shut`` pair (the mover and the top of the cell ahead), pushes the top of the cell
  ahead when it is ``push``, then enters if the cell ahead is now empty or its top is neither a
  rule tile nor ``stop``. **Win and loss are read from the top of the destination cell before
  the mover arrives** (its own cell when it could not move), and only the last ``you`` object
  moved in the step decides them. The piece right behind the mover follows it when it is
  ``pull``, whether the mover moved or not.
- ``idle`` does nothing at all, not even a win check.
- After the moves the rules are read again, and every ``X is Y`` rule puts a new ``Y`` (in its
  usual colour) on top of each cell whose top is an ``X``; the ``X`` stays underneath and shows
  again when the ``Y`` leaves. Rules apply in the order they were read, so chains follow.
- Nothing is lost when no object is ``you``: BALROG's wrapper then starts the level again (see
  :mod:`.balrog_text`). The level is lost only by walking onto a ``defeat`` object.

The original marks each ``you`` object "has moved" as a step begins, but only when that object is
the top of its cell; an object uncovered later in the step keeps the mark it had. The state keeps
that mark where it can still matter (a ``you`` object on top has it cleared, since the next step
sets it again), so the replay is exact. (An object that never carried a mark crashes the original
when uncovered in its turn; here it stays put.)

A state is a tuple of cells in reading order, each a tuple of piece values bottom to top. A value
is ``code | mark << 6``: the piece kind (:data:`~.engine.CODES`, shared with alma's engine) and the
"has moved" mark of an object (0 none, 1 not yet, 2 moved).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from alma.domains.babaisai.engine import (
    ACTIONS,
    CODES,
    DEFAULT_COLOURS,
    IS,
    NOUNS,
    OFFSETS,
    PROPERTIES,
    Board,
    Piece,
    Status,
)

Cell = tuple[int, ...]
Stacks = tuple[Cell, ...]

_SHIFT = 6
_KIND = (1 << _SHIFT) - 1
_UNMARKED, _READY, _MOVED = 0, 1, 2
_CODE_OF = {kind: code for code, kind in enumerate(CODES)}
_IS_CODE = _CODE_OF[(True, IS, "")]
_OPPOSITE = {"up": "down", "down": "up", "left": "right", "right": "left"}


def encode_stacks(board: Board, pieces: Iterable[Piece]) -> Stacks:
    """The state holding ``pieces``; pieces given for one cell stack up in the order given.

    Raises:
        ValueError: for a piece outside the board.
    """
    cells: list[list[int]] = [[] for _ in range(board.width * board.height)]
    for p in pieces:
        if not board.inside(p.x, p.y):
            raise ValueError(f"{p.label()} at ({p.x}, {p.y}) is outside the board")
        cells[p.y * board.width + p.x].append(_CODE_OF[(p.text, p.name, p.colour)])
    return tuple(tuple(c) for c in cells)


def decode_stacks(board: Board, state: Stacks) -> list[list[Piece]]:
    """Every cell's pieces, bottom to top, cells in reading order."""
    out = []
    for index, cell in enumerate(state):
        y, x = divmod(index, board.width)
        out.append([Piece(y, x, *CODES[v & _KIND]) for v in cell])
    return out


def tops(board: Board, state: Stacks) -> list[Piece]:
    """The top piece of every occupied cell, in reading order (what the original shows)."""
    found = []
    for index, cell in enumerate(state):
        if cell:
            y, x = divmod(index, board.width)
            found.append(Piece(y, x, *CODES[cell[-1] & _KIND]))
    return found


@dataclass(frozen=True)
class Rule:
    """One rule as the original lists it: ``noun is property`` or ``noun is noun``."""

    subject: str
    complement: str

    @property
    def is_property(self) -> bool:
        return self.complement in PROPERTIES


@dataclass(frozen=True)
class OriginalRules:
    """The rules spelled by the top pieces, in the order the original reads them (duplicates
    kept: a rule spelled twice is listed twice)."""

    rules: tuple[Rule, ...]

    def has(self, noun: str, prop: str) -> bool:
        return Rule(noun, prop) in self.rules

    def nouns_with(self, prop: str) -> frozenset[str]:
        return frozenset(r.subject for r in self.rules if r.complement == prop)

    @property
    def replacements(self) -> tuple[tuple[str, str], ...]:
        return tuple((r.subject, r.complement) for r in self.rules if not r.is_property)


_FIRST_TILE = min(code for code, (text, _n, _c) in enumerate(CODES) if text)
# rules by the tile tops they are read from; shared by every thread (dict reads and writes are
# atomic), emptied when full
_RULES_CACHE: dict[tuple[int, ...], OriginalRules] = {}
_CACHE_SIZE = 50_000


def _tile_tops(cells: Iterable[Sequence[int]]) -> tuple[int, ...]:
    return tuple(
        i << _SHIFT | (c[-1] & _KIND)
        for i, c in enumerate(cells)
        if c and c[-1] & _KIND >= _FIRST_TILE
    )


def read_rules(board: Board, state: Iterable[Sequence[int]]) -> OriginalRules:
    """Every ``is`` tile on top of its cell, in reading order: the line through it left to right,
    then top to bottom, counts when the tops around it spell ``NOUN IS PROPERTY`` or ``NOUN IS
    NOUN``."""
    key = (board.width, board.height, *_tile_tops(state))
    found = _RULES_CACHE.get(key)
    if found is None:
        if len(_RULES_CACHE) >= _CACHE_SIZE:
            _RULES_CACHE.clear()
        found = _RULES_CACHE[key] = _read(board, key[2:])
    return found


def _read(board: Board, tiles: tuple[int, ...]) -> OriginalRules:
    w = board.width
    words = {v >> _SHIFT: CODES[v & _KIND][1] for v in tiles}
    found: list[Rule] = []
    for index, word in words.items():  # in reading order
        if word != IS:
            continue
        y, x = divmod(index, w)
        for (ax, ay), (bx, by) in (((x - 1, y), (x + 1, y)), ((x, y - 1), (x, y + 1))):
            if not (board.inside(ax, ay) and board.inside(bx, by)):
                continue
            a, b = words.get(ay * w + ax), words.get(by * w + bx)
            if a in NOUNS and b is not None and (b in PROPERTIES or b in NOUNS):
                found.append(Rule(a, b))
    return OriginalRules(tuple(found))


class _Table:
    """Property look-ups for one set of rules, by piece code (one list of flags a property)."""

    @staticmethod
    def of_rules(rules: OriginalRules) -> _Table:
        found = _TABLES.get(rules)
        if found is None:
            if len(_TABLES) >= _CACHE_SIZE:
                _TABLES.clear()
            found = _TABLES[rules] = _Table(rules)
        return found

    def __init__(self, rules: OriginalRules) -> None:
        props: dict[str, set[str]] = {}
        for r in rules.rules:
            if r.is_property:
                props.setdefault(r.subject, set()).add(r.complement)
        of = [frozenset({"push"}) if t else frozenset(props.get(n, ())) for t, n, _c in CODES]
        self.you = [("you" in p) for p in of]
        self.win = [("win" in p) for p in of]
        self.defeat = [("defeat" in p) for p in of]
        self.push = [("push" in p) for p in of]
        self.pull = [("pull" in p) for p in of]
        self.open = [("open" in p) for p in of]
        self.shut = [("shut" in p) for p in of]
        #: whether a mover may enter a cell with this piece on top: not a tile, not `stop`
        self.enter = [not t and "stop" not in p for (t, _n, _c), p in zip(CODES, of, strict=True)]
        self.any_pull = any(self.pull)
        self.any_open_shut = any(self.open) and any(self.shut)
        noun = None
        for r in rules.rules:
            if r.complement == "you":
                noun = r.subject
        #: the codes of the noun BALROG's wrapper measures from (that of the last `is you` rule)
        self.you_codes = frozenset(
            code for code, (text, name, _c) in enumerate(CODES) if not text and name == noun
        )


_TABLES: dict[OriginalRules, _Table] = {}


class _Step:
    """The moves of one step, on a list of cells copied (to lists) only where they change."""

    def __init__(self, board: Board, cells: list[Any], table: _Table, move: str) -> None:
        self.cells = cells
        self.table = table
        self.ahead = board.neighbours[move]
        self.behind = board.neighbours[_OPPOSITE[move]]

    def writable(self, cell: int) -> list[int]:
        stack = self.cells[cell]
        if type(stack) is not list:
            stack = self.cells[cell] = list(stack)
        return stack

    def move(self, cell: int) -> tuple[bool, bool]:
        """Move the top piece of ``cell`` one cell on; the win / loss read on the top of its
        destination before it arrived."""
        t = self.table
        cells = self.cells
        target = self.ahead[cell]
        new = cell
        if target >= 0:
            ahead = cells[target][-1] & _KIND if cells[target] else -1
            if t.any_open_shut and ahead >= 0 and cells[cell]:
                mover = cells[cell][-1] & _KIND
                if (t.open[mover] and t.shut[ahead]) or (t.shut[mover] and t.open[ahead]):
                    self.writable(cell).pop()
                    self.writable(target).pop()
            if ahead >= 0 and t.push[ahead]:
                self.move(target)
            if not cells[target] or t.enter[cells[target][-1] & _KIND]:
                new = target
        landing = cells[new][-1] & _KIND if cells[new] else -1
        won = landing >= 0 and t.win[landing]
        lost = landing >= 0 and t.defeat[landing]
        if new != cell and cells[cell]:
            self.writable(new).append(self.writable(cell).pop())
        if t.any_pull:
            back = self.behind[cell]
            if back >= 0 and cells[back] and t.pull[cells[back][-1] & _KIND]:
                self.move(back)
        return won, lost


def _mark(value: int, mark: int) -> int:
    return (value & _KIND) | (mark << _SHIFT)


def step(board: Board, state: Stacks, action: str) -> tuple[Stacks, Status]:
    """The state after ``action`` and whether that step won (``"won"``), lost (``"lost"``: the
    last ``you`` object walked onto ``defeat``) or neither (``"playing"``).

    Raises:
        ValueError: for an action that is not one of :data:`~.engine.ACTIONS`.
    """
    if action == "idle":
        return state, "playing"
    if action not in OFFSETS:
        raise ValueError(f"unknown action {action!r}; actions are {', '.join(ACTIONS)}")
    table = _Table.of_rules(read_rules(board, state))
    cells: list[Any] = list(state)
    mover = _Step(board, cells, table, action)
    you = table.you
    for i, stack in enumerate(state):  # a `you` object on top of its cell is ready to move
        if stack and you[stack[-1] & _KIND]:
            mover.writable(i)[-1] = _mark(stack[-1], _READY)
    won = lost = False
    for i in range(len(cells)):
        stack = cells[i]
        if not stack:
            continue
        value = stack[-1]
        if not you[value & _KIND] or value >> _SHIFT != _READY:
            continue
        mover.writable(i)[-1] = _mark(value, _MOVED)
        won, lost = mover.move(i)
    return _settle(board, mover, won, lost)


def _settle(board: Board, mover: _Step, won: bool, lost: bool) -> tuple[Stacks, Status]:
    """The end of a step: rules read again, ``X is Y`` applied, marks tidied, state frozen."""
    cells = mover.cells
    rules = read_rules(board, cells)
    for subject, complement in rules.replacements:
        code = _CODE_OF[(False, complement, DEFAULT_COLOURS[complement])]
        for i, stack in enumerate(cells):
            if stack:
                text, name, _colour = CODES[stack[-1] & _KIND]
                if not text and name == subject:
                    mover.writable(i).append(code)
    # a `you` object on top is marked ready as the next step begins, whatever its mark now:
    # clearing it keeps one state per layout
    you = _Table.of_rules(rules).you
    for stack in cells:
        if stack and stack[-1] >> _SHIFT and you[stack[-1] & _KIND]:
            stack[-1] &= _KIND  # marked, so already a list
    after = tuple(tuple(c) if type(c) is list else c for c in cells)
    status: Status = "won" if won else "lost" if lost else "playing"
    return after, status


def you_position(
    board: Board, state: Stacks, rules: OriginalRules
) -> tuple[str | None, Piece | None]:
    """The noun BALROG's wrapper takes for ``you`` (that of the last ``... is you`` rule) and the
    first top piece of that noun in reading order (None when there is none)."""
    noun = None
    for r in rules.rules:
        if r.complement == "you":
            noun = r.subject
    if noun is None:
        return None, None
    for p in tops(board, state):
        if not p.text and p.name == noun:
            return noun, p
    return noun, None


def has_you(board: Board, state: Stacks) -> bool:
    """Whether BALROG's wrapper finds a ``you`` piece to measure from (else it restarts)."""
    codes = _Table.of_rules(read_rules(board, state)).you_codes
    return any(cell and cell[-1] & _KIND in codes for cell in state)


Hint = tuple[OriginalRules, int]  # a state's rules and the cell of its single `you` object


def _push_step(
    board: Board, state: Stacks, move: str, table: _Table, cell: int
) -> tuple[Stacks, Status]:
    """:func:`step` for a lone `you` object at ``cell`` when no piece carries a "ready" mark
    (nothing uncovered in the step can then move)."""
    mover = _Step(board, list(state), table, move)
    stack = mover.writable(cell)
    stack[-1] = _mark(stack[-1], _MOVED)
    won, lost = mover.move(cell)
    return _settle(board, mover, won, lost)


def successors(
    board: Board, state: Stacks, hint: Hint | None = None
) -> list[tuple[str, Stacks, Status, bool, Hint | None]]:
    """``(move, state after, status, whether a piece is still you, hint)`` for each of the four
    moves: :func:`step` and :func:`has_you`, shared work done once.

    When a single `you` object is on top, the rules have no pull, open, shut or ``X is Y`` and
    no piece carries a "ready" mark, only that object moves: a push skips the scans of a full
    step, and a move that pushes nothing is worked out directly: the object enters the cell
    ahead unless a rule tile or a ``stop`` object tops it or it is the edge, and win or loss is
    read on the top of where it ends (its own cell when blocked), as :func:`step` would. Such a
    move changes no rule, so it hands on a ``hint`` (the rules and where the `you` object is)
    that spares the next call reading them again.
    """
    if hint is None:
        rules = read_rules(board, state)
        table = _Table.of_rules(rules)
        you = table.you
        yous = [i for i, c in enumerate(state) if c and you[c[-1] & _KIND]]
        simple = (
            len(yous) == 1
            and not table.any_pull
            and not (any(table.open) or any(table.shut))
            and not rules.replacements
        )
        cell = yous[0] if simple else -1
        if simple and any(v >> _SHIFT == _READY for c in state for v in c):
            simple = False
    else:
        rules, cell = hint
        table = _Table.of_rules(rules)
        simple = True
    codes = table.you_codes
    found: list[tuple[str, Stacks, Status, bool, Hint | None]] = []
    for move in OFFSETS:
        if simple:
            target = board.neighbours[move][cell]
            ahead = state[target][-1] & _KIND if target >= 0 and state[target] else -1
            if ahead < 0 or not table.push[ahead]:
                mover = state[cell][-1] & _KIND
                if target >= 0 and (ahead < 0 or table.enter[ahead]):
                    stacks = list(state)
                    stacks[target] = (*state[target], mover)
                    stacks[cell] = state[cell][:-1]
                    after: Stacks = tuple(stacks)
                    landing, now = ahead, target
                else:
                    after, landing, now = state, mover, cell
                won = landing >= 0 and table.win[landing]
                lost = landing >= 0 and table.defeat[landing]
                status: Status = "won" if won else "lost" if lost else "playing"
                alive = mover in codes or any(c and c[-1] & _KIND in codes for c in after)
                found.append((move, after, status, alive, (rules, now)))
                continue
        if simple:
            after, status = _push_step(board, state, move, table, cell)
        else:
            after, status = step(board, state, move)
        found.append((move, after, status, has_you(board, after), None))
    return found
