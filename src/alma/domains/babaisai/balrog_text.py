"""What a player of the ``balrog`` variant reads: BALROG's text for BabaIsAI, quirks and all.

BALROG's wrapper shows the active rules, then the pieces on top of their cells, in reading
order, each with its offset from the first top piece of the noun that the last ``... is you`` rule
names. It is reproduced here as the benchmark's models read it:

- only rules of the form ``noun is property`` are listed (``key is door`` is not), in the order
  the engine reads them, duplicates included; ``defeat`` is called ``lose``;
- objects are named by their noun alone (no colour); ``baba`` objects are never listed, nor the
  walls around the map (the wall between the rooms is);
- a piece at your own position (a ``key`` when keys are ``you``) gets an empty line;
- "step" is singular for every move left or up ("2 step to the left"), as in the original;
- when no piece is ``you`` (its rule is broken, or its noun has no object on top of a cell), the
  wrapper starts the level again and shows the rules it read, then, in place of the objects, the
  printed form of its own reset observation (an object at a memory address; alma writes a fixed
  one). alma restarts the same level; the original draws a new one.
"""

from __future__ import annotations

from alma.domains.babaisai.balrog_engine import (
    OriginalRules,
    Stacks,
    read_rules,
    tops,
    you_position,
)
from alma.domains.babaisai.engine import Board

RESET_NOTICE = "[...] IS YOU rule was broken, environment reset"
FAKE_ADDRESS = "0x7f0000000000"
TILE_PIXELS = 32
_SHOWN_OBJECTS = frozenset({"ball", "wall", "door", "key"})


def _word(word: str) -> str:
    return "lose" if word == "defeat" else word


def rules_text(rules: OriginalRules) -> str:
    """The rules as BALROG lists them, one a line."""
    return "\n".join(f"{r.subject} is {_word(r.complement)}" for r in rules.rules if r.is_property)


def _offset(name: str, dx: int, dy: int) -> str:
    def steps(v: int) -> str:
        return "steps" if v > 1 else "step"

    across = ""
    if dx > 0:
        across = f"{dx} {steps(dx)} to the right"
    elif dx < 0:
        across = f"{-dx} {steps(dx)} to the left"
    upright = ""
    if dy > 0:
        upright = f"{dy} {steps(dy)} down"
    elif dy < 0:
        upright = f"{-dy} {steps(dy)} up"
    if across and upright:
        return f"{name} {across} and {upright}"
    if across:
        return f"{name} {across}"
    if upright:
        return f"{name} {upright}"
    return ""


def objects_text(board: Board, state: Stacks, rules: OriginalRules) -> str | None:
    """The "Objects on the map" lines, or None when there is no ``you`` to measure from."""
    _noun, me = you_position(board, state, rules)
    if me is None:
        return None
    lines = []
    for p in tops(board, state):
        if p.text:
            name = f"rule `{_word(p.name)}`"
        elif p.name in _SHOWN_OBJECTS:
            name = p.name
        else:
            continue
        lines.append(_offset(name, p.x - me.x, p.y - me.y))
    return "\n".join(lines)


def observation(board: Board, state: Stacks) -> str:
    """BALROG's text for ``state`` (which must have a ``you`` piece to measure from)."""
    rules = read_rules(board, state)
    found = objects_text(board, state, rules)
    if found is None:
        raise ValueError("no piece is `you`: BALROG's wrapper would restart the level")
    return f"Active rules:\n{rules_text(rules)}\n\nObjects on the map:\n{found}"


def reset_observation(board: Board, broken: Stacks, start: Stacks) -> str:
    """BALROG's text for a step after which nothing is ``you``: the notice, the rules read from
    ``broken``, then the printed form of the wrapper's observation of the restarted level."""
    rules = read_rules(board, broken)
    fresh = observation(board, start)
    width, height = (board.width + 2) * TILE_PIXELS, (board.height + 2) * TILE_PIXELS
    printed = (
        "defaultdict(<function BabaIsAIWrapper.textworld_process_obsv.<locals>.<lambda> at "
        f"{FAKE_ADDRESS}>, {{'text': {{'long_term_context': {fresh!r}, 'short_term_context': ''}}"
        f", 'image': <PIL.Image.Image image mode=RGB size={width}x{height} at "
        f"{FAKE_ADDRESS.upper().replace('X', 'x')}>}})"
    )
    return f"{RESET_NOTICE}Active rules:\n{rules_text(rules)}\n\nObjects on the map:\n{printed}"
