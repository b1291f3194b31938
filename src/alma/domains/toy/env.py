"""Playing a toy game: the commands the game understands and the environment."""

from __future__ import annotations

import re

from alma.domains.toy.generation import (
    ARTICLES,
    COMMANDS,
    DIRECTION_WORDS,
    Layout,
)
from alma.types import Observation, Transition


def _with_article(name: str) -> str:
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _listing(items: list[str]) -> str:
    return ", ".join(_with_article(item) for item in items)


def parse_command(command: str) -> tuple[str, str] | None:
    """``(verb, argument)`` for a toy command, or None when it does not parse.

    Verbs: ``go`` (argument: a direction), ``take`` and ``drop`` (an item), ``open`` (a colour,
    possibly empty), ``look`` and ``inventory`` (no argument). Case, punctuation, articles and
    a few synonyms ("n", "get", "pick up", "unlock", "i") are forgiven.
    """
    words = re.sub(r"[^a-z ]", " ", command.lower()).split()
    if not words:
        return None
    verb, rest = words[0], words[1:]
    if words[:2] in (["pick", "up"], ["put", "down"]):
        verb, rest = ("take" if verb == "pick" else "drop"), words[2:]
    obj = [w for w in rest if w not in ARTICLES]
    if not rest and verb in DIRECTION_WORDS:
        return "go", DIRECTION_WORDS[verb]
    if verb in ("go", "walk", "move") and len(obj) == 1 and obj[0] in DIRECTION_WORDS:
        return "go", DIRECTION_WORDS[obj[0]]
    if not rest and verb in ("look", "l"):
        return "look", ""
    if not rest and verb in ("inventory", "inv", "i"):
        return "inventory", ""
    if verb in ("take", "get", "grab", "drop") and obj:
        return ("drop" if verb == "drop" else "take"), " ".join(obj)
    if verb in ("open", "unlock") and obj and obj[-1] == "door":
        return "open", " ".join(obj[:-1])
    return None


class ToyEnv:
    """One toy game (implements :class:`alma.domains.base.TextEnv`)."""

    inline_steps = True  # in-memory and instant: the agent steps it without a thread

    def __init__(self, layout: Layout) -> None:
        self._layout = layout
        self._restart()

    def _restart(self) -> None:
        self._room = self._layout.start
        self._items = [list(items) for items in self._layout.items]
        self._inventory: list[str] = []
        self._opened: set[str] = set()
        self._won = False

    def reset(self) -> Observation:
        self._restart()
        return self._observe(None)

    def step(self, action: str) -> Transition:
        if self._won:
            over = self._observe("The game is over: you already won.")
            return Transition(over, 0.0, True, True, {"won": True})
        message = self._act(action)
        reward = 1.0 if self._won else 0.0
        return Transition(self._observe(message), reward, self._won, self._won, {"won": self._won})

    def close(self) -> None:
        """Nothing to release."""

    # ------------------------------------------------------------------ state to text

    def _door_to(self, neighbour: int) -> tuple[str, bool] | None:
        """Colour and locked state of the door to ``neighbour``, if the passage has one."""
        colour = self._layout.door(self._room, neighbour)
        return None if colour is None else (colour, colour not in self._opened)

    def _observe(self, message: str | None) -> Observation:
        room = self._layout.rooms[self._room]
        exits = []
        for d, nb in self._layout.exits[self._room].items():
            door = self._door_to(nb)
            if door is None:
                exits.append(d)
            else:
                state = "locked" if door[1] else "open"
                exits.append(f"{d} ({_with_article(door[0] + ' door')}, {state})")
        here = self._items[self._room]
        lines = [f"You are in the {room}."]
        if message:
            lines.append(message)
        lines.append(f"Exits: {', '.join(exits)}.")
        lines.append(f"You see: {_listing(here)}." if here else "You see nothing here.")
        return Observation("\n".join(lines), self._admissible(), {"room": room})

    def _admissible(self) -> tuple[str, ...]:
        exits = self._layout.exits[self._room]
        actions = [f"go {d}" for d in exits]
        for nb in exits.values():
            door = self._door_to(nb)
            if door is not None and door[1]:
                actions.append(f"open {door[0]} door")
        actions += [f"take {item}" for item in self._items[self._room]]
        actions += [f"drop {item}" for item in self._inventory]
        return (*actions, "look", "inventory")

    # ------------------------------------------------------------------ commands

    def _act(self, action: str) -> str | None:
        parsed = parse_command(action)
        if parsed is None:
            return f'I don\'t understand "{action.strip()}". Commands: {COMMANDS}.'
        verb, arg = parsed
        if verb == "go":
            return self._go(arg)
        if verb == "take":
            return self._take(arg)
        if verb == "drop":
            return self._drop(arg)
        if verb == "open":
            return self._open(arg)
        if verb == "inventory":
            held = _listing(self._inventory)
            return f"You carry: {held}." if held else "You carry nothing."
        return None  # look

    def _go(self, direction: str) -> str | None:
        nb = self._layout.exits[self._room].get(direction)
        if nb is None:
            return f"You can't go {direction} from here."
        door = self._door_to(nb)
        if door is not None and door[1]:
            return f"The {door[0]} door to the {direction} is locked."
        self._room = nb
        return None

    def _take(self, item: str) -> str:
        here = self._items[self._room]
        if item not in here:
            if item in self._inventory:
                return f"You already carry the {item}."
            return f"There is no {item} here."
        here.remove(item)
        self._inventory.append(item)
        if item == self._layout.goal:
            self._won = True
            return f"You take the {item}. You found it: you win!"
        return f"You take the {item}."

    def _drop(self, item: str) -> str:
        if item not in self._inventory:
            return f"You don't carry any {item}."
        self._inventory.remove(item)
        self._items[self._room].append(item)
        return f"You drop the {item}."

    def _open(self, colour: str) -> str:
        if not colour:
            return 'Which door? Name its colour, e.g. "open red door".'
        doors = [self._door_to(nb) for nb in self._layout.exits[self._room].values()]
        door = next((d for d in doors if d is not None and d[0] == colour), None)
        if door is None:
            return f"There is no {colour} door here."
        if not door[1]:
            return f"The {colour} door is already open."
        if f"{colour} key" not in self._inventory:
            return f"The {colour} door is locked, and you don't carry the {colour} key."
        self._opened.add(colour)
        return f"You unlock the {colour} door with the {colour} key and open it."
