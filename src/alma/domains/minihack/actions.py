"""Named actions and the keys NetHack reads for them, and the answers to the game's questions.

Plain data and text parsing; nothing here imports NetHack. An action name is what the acting
agent writes ("north", "pick up", "zap"); its value is the key code NetHack receives. When the
game asks something (an item letter, a direction, yes or no) or shows a menu, the admissible
actions become the possible answers: item letters such as ``f``, directions, ``yes`` / ``no``,
``confirm`` and ``esc``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

ESC = 27
ENTER = 13


def _ctrl(char: str) -> int:
    return ord(char) & 0x1F


def _meta(char: str) -> int:
    return 0x80 | ord(char)


_DIRECTION_KEYS = {
    "north": "k",
    "east": "l",
    "south": "j",
    "west": "h",
    "northeast": "u",
    "southeast": "n",
    "southwest": "b",
    "northwest": "y",
}
MOVES: tuple[str, ...] = tuple(_DIRECTION_KEYS)


def far_moves() -> tuple[str, ...]:
    return tuple(f"far {direction}" for direction in MOVES)


#: commands that act on items, doors, boxes or the gods (the Quest families' extra actions)
ITEM_COMMANDS: tuple[str, ...] = (
    "pick up",
    "apply",
    "zap",
    "quaff",
    "eat",
    "put on",
    "open",
    "close",
    "kick",
    "force",
    "loot",
    "pray",
)

KEYS: dict[str, int] = {
    **{name: ord(key) for name, key in _DIRECTION_KEYS.items()},
    **{f"far {name}": ord(key.upper()) for name, key in _DIRECTION_KEYS.items()},
    "wait": ord("."),
    "search": ord("s"),
    "look": ord(":"),
    "pick up": ord(","),
    "apply": ord("a"),
    "zap": ord("z"),
    "quaff": ord("q"),
    "eat": ord("e"),
    "put on": ord("P"),
    "open": ord("o"),
    "close": ord("c"),
    "kick": _ctrl("d"),
    "force": _meta("f"),
    "loot": _meta("l"),
    "pray": _meta("p"),
}

#: every key the environment may send, named actions and answers alike
ALL_KEYS: frozenset[int] = frozenset(
    {*KEYS.values(), ESC, ENTER, ord(">"), *(ord(c) for c in "abcdefghijklmnopqrstuvwxyz")}
    | {ord(c) for c in "ABCDEFGHIJKLMNPQRTUWXYZ"}
)

_BRACKET = re.compile(r"\[([^\]]*)\]")
_YES_NO = re.compile(r"yn[aq#]*")
_MENU_LINE = re.compile(r"^([a-zA-Z]) [-+#] (.+)$")
_MENU_END = re.compile(r"\(end\)|\(\d+ of \d+\)")
_MORE_PAGES = re.compile(r"\((\d+) of (\d+)\)")
_ALIASES = {"pickup": "pick up", "puton": "put on", "y": "yes", "n": "no", "cancel": "esc"}


def _letters(spec: str) -> list[str]:
    """``"ac-fh"`` -> a, c, d, e, f, h: the item letters a NetHack prompt offers."""
    letters: list[str] = []
    i = 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-" and spec[i].isalpha() and spec[i + 2].isalpha():
            letters += [chr(c) for c in range(ord(spec[i]), ord(spec[i + 2]) + 1)]
            i += 3
            continue
        if spec[i].isascii() and spec[i].isalpha():
            letters.append(spec[i])
        i += 1
    return [letter for letter in dict.fromkeys(letters) if ord(letter) in ALL_KEYS]


def question_answers(prompt: str) -> dict[str, int]:
    """The answers to a question the game asks (``prompt`` is its text), name -> key."""
    answers: dict[str, int] = {}
    if "direction" in prompt.lower():
        answers.update({name: KEYS[name] for name in MOVES})
    else:
        bracket = _BRACKET.search(prompt)
        if bracket is not None:
            inside = bracket[1].strip()
            if _YES_NO.fullmatch(inside):
                answers.update({"yes": ord("y"), "no": ord("n")})
            else:
                answers.update(
                    {letter: ord(letter) for letter in _letters(inside.split(" or ")[0])}
                )
    answers["esc"] = ESC
    return answers


def is_menu(text: str) -> bool:
    """Whether ``text`` (the game's message area) is a menu waiting for a selection."""
    return _MENU_END.search(text) is not None and any(
        _MENU_LINE.match(line.strip()) for line in text.splitlines()
    )


def menu_answers(text: str) -> dict[str, int]:
    """The answers to a menu: its item letters, ``next page`` when there is one, ``confirm``
    (Enter) and ``esc``."""
    answers: dict[str, int] = {}
    for line in text.splitlines():
        match = _MENU_LINE.match(line.strip())
        if match is not None and ord(match[1]) in ALL_KEYS:
            answers[match[1]] = ord(match[1])
    pages = _MORE_PAGES.search(text)
    if pages is not None and int(pages[1]) < int(pages[2]):
        answers["next page"] = ord(">")
    answers["confirm"] = ENTER
    answers["esc"] = ESC
    return answers


def resolve(raw: str, options: Mapping[str, int]) -> str | None:
    """The option that ``raw`` (what the agent wrote) names, or None.

    Exact names first (item letters are case-sensitive), then case, spacing, punctuation and a
    few aliases forgiven ("move north", "pickup", "y"), then a leading item letter ("f - a wand").
    """
    text = raw.strip()
    if text in options:
        return text
    words = re.sub(r"[^a-z0-9 ]+", " ", text.lower().replace("_", " ")).split()
    if words[:1] in (["move"], ["go"]) and len(words) > 1:
        words = words[1:]
    name = " ".join(words)
    name = _ALIASES.get(name, name)
    if name in options and len(name) > 1:
        return name
    first = text.split(maxsplit=1)[0] if text else ""
    if len(first) == 1 and first in options and len(text) > 1 and not text[1].isalnum():
        return first
    return None
