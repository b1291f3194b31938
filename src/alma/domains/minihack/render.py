"""The observation text of a MiniHack state, from the pieces NetHack's language wrapper gives.

The wrapper (``nle_language_obsv`` in balrog-nle) turns NetHack's arrays into text: the message,
what the agent sees and where (e.g. "doorway near west"), the status lines, the inventory. This
module arranges them, adds a cropped map of the dungeon as the screen shows it, and says what the
game waits for when it asks a question or shows a menu.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# NetHack reads the real date at start: these remarks would make a task's first observation
# depend on the day it is played, so they are left out
_DATE_REMARKS = re.compile(
    r"You are lucky!  Full moon tonight\.|Be careful!  New moon tonight\.|"
    r"Watch out!  Bad things can happen on Friday the 13th\."
)
_STATS = ("HP", "AC", "XP", "Time", "Hunger", "Encumbrance", "Condition")
_UNREMARKABLE = {"Encumbrance": "Unencumbered", "Condition": "None"}
_DEATH_CAUSE = re.compile(r"on level \d+\.\s+([^.]+)\.")


@dataclass(frozen=True)
class View:
    """One state as text pieces; ``pending`` is "question", "menu" or "" (the game waits for an
    ordinary command)."""

    messages: tuple[str, ...]
    seen: str  # the wrapper's description of what is seen and where
    stats: dict[str, str]  # the wrapper's status lines, parsed: "HP" -> "12/12", ...
    map_rows: tuple[str, ...]  # the dungeon as the screen shows it, cropped
    inventory: str | None  # None: not shown for this task
    pending: str = ""
    prompt: str = ""  # the question or menu text when ``pending``
    ended: str = ""  # how the game ended, when it did


def clean_message(text: str) -> str:
    text = text.replace("--More--", " ").replace("\x00", " ")
    text = _DATE_REMARKS.sub(" ", text)
    return " ".join(text.split())


def parse_stats(text: str) -> dict[str, str]:
    """``"HP: 12/12\\nAC: 7\\n..."`` -> ``{"HP": "12/12", "AC": "7", ...}``."""
    stats = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            stats[key.strip()] = value.strip()
    return stats


def crop_map(rows: Sequence[str]) -> tuple[str, ...]:
    """The smallest rectangle holding every non-blank character of the dungeon rows."""
    used = [i for i, row in enumerate(rows) if row.strip()]
    if not used:
        return ()
    left = min(len(rows[i]) - len(rows[i].lstrip()) for i in used)
    return tuple(rows[i][left:].rstrip() for i in range(used[0], used[-1] + 1))


def death_cause(screen: str) -> str:
    """What killed the agent, from the end-of-game screen ("burned by molten lava"), or ""."""
    match = _DEATH_CAUSE.search(" ".join(screen.split()))
    return match[1].strip().lower() if match else ""


def position_line(stats: dict[str, str]) -> str:
    x, _, y = stats.get("Position", "?|?").partition("|")
    shown = ", ".join(
        f"{key} {stats[key]}"
        for key in _STATS
        if key in stats and stats[key] != _UNREMARKABLE.get(key)
    )
    return f"You are at x={x}, y={y}. {shown}."


def render(view: View) -> str:
    lines = [position_line(view.stats)]
    message = " ".join(m for m in view.messages if m)
    if view.ended:
        lines.append(f"Message: {message}" if message else "Message: (none)")
        lines.append(view.ended)
        return "\n".join(lines)
    if view.pending == "question":
        if message and message != view.prompt:
            lines.append(f"Message: {message}")
        lines.append(f"The game asks: {view.prompt}")
    elif view.pending == "menu":
        if message:
            lines.append(f"Message: {message}")
        lines.append("The game shows a menu (select items by letter, then confirm):")
        lines.append(view.prompt)
    else:
        lines.append(f"Message: {message}" if message else "Message: (none)")
    lines.append("You see:")
    lines.append(view.seen.strip() or "nothing nearby")
    lines.append("Map (@ is you):")
    lines.extend(view.map_rows)
    if view.inventory is not None:
        lines.append("Inventory:")
        lines.append(view.inventory.strip() or "(empty)")
    return "\n".join(lines)
