"""What a player is shown: the rules and every piece relative to the `you` object, or a drawing.

:func:`describe` gives the text an agent reads, in the form LLM agents usually get BabaIsAI: the
active rules, one per line, then every object and rule tile with its offset from the object the
player controls ("rule `win` 2 steps to the right and 1 step up"), then how far the edges of the
map are. :func:`draw` gives an ASCII picture of the board for people.
"""

from __future__ import annotations

from alma.domains.babaisai.engine import Board, Piece, Rules, State, Status, decode, rules_of

CELL = 7  # characters per cell in a drawing


def _steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def offset_text(dx: int, dy: int) -> str:
    """``2 steps to the right and 1 step up`` for an offset (x grows right, y grows down)."""
    parts = []
    if dx:
        parts.append(f"{_steps(abs(dx))} to the {'right' if dx > 0 else 'left'}")
    if dy:
        parts.append(f"{_steps(abs(dy))} {'down' if dy > 0 else 'up'}")
    return " and ".join(parts) if parts else "on your cell"


def _controlled(pieces: list[Piece], rules: Rules) -> list[Piece]:
    return [p for p in pieces if "you" in rules.of(p)]


def rules_text(rules: Rules) -> str:
    return "Active rules:\n" + ("\n".join(rules.lines) if rules.lines else "(none)")


def describe(board: Board, state: State, status: Status = "playing") -> str:
    """The observation text of ``state``."""
    rules = rules_of(board, state)
    pieces = decode(board, state)
    yous = _controlled(pieces, rules)
    lines = [rules_text(rules), ""]
    if status == "won":
        lines.insert(0, "You are on a win object: the level is solved!\n")
    if not yous:
        lines.append("No object is you any more, so nothing can move: the level is lost.")
        return "\n".join(lines)
    me = yous[0]
    lines.append(f"Objects on the map (positions relative to you, the {me.label()}):")
    for p in pieces:
        if p is me:
            continue
        also = " (also you)" if p in yous else ""
        lines.append(f"{p.label()}{also} {offset_text(p.x - me.x, p.y - me.y)}")
    lines.append("")
    lines.append(
        f"Free cells before the edge of the map: {me.x} to the left, "
        f"{board.width - 1 - me.x} to the right, {me.y} up, {board.height - 1 - me.y} down."
    )
    return "\n".join(lines)


def _token(p: Piece, yous: list[Piece]) -> str:
    if p.text:
        return p.name.upper()
    return ("@" if p in yous else "") + p.name


def draw(board: Board, state: State) -> str:
    """An ASCII drawing of ``state`` with a legend and the active rules."""
    rules = rules_of(board, state)
    pieces = decode(board, state)
    yous = _controlled(pieces, rules)
    by_cell: dict[tuple[int, int], list[Piece]] = {}
    for p in pieces:
        by_cell.setdefault((p.x, p.y), []).append(p)
    border = "+" + "-" * (CELL * board.width) + "+"
    rows = [border]
    for y in range(board.height):
        cells = []
        for x in range(board.width):
            here = by_cell.get((x, y), [])
            if not here:
                cells.append(".".ljust(CELL))
                continue
            # the most telling piece: what you control, then rule tiles, then other objects
            shown = min(here, key=lambda p: (p not in yous, not p.text))
            token = _token(shown, yous)[: CELL - 2] + ("+" if len(here) > 1 else "")
            cells.append(token.ljust(CELL))
        rows.append("|" + "".join(cells) + "|")
    rows.append(border)
    rows.append("@ you   UPPERCASE rule tile   lowercase object   + more pieces on that cell")
    rows.append("rules: " + ("; ".join(rules.lines) if rules.lines else "(none)"))
    return "\n".join(rows)
