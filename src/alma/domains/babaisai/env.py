"""One BabaIsAI level played through text (implements :class:`alma.domains.base.TextEnv`)."""

from __future__ import annotations

import re
from typing import Any

from alma.domains.babaisai.engine import ACTIONS, Board, State, Status, advance, rules_of
from alma.domains.babaisai.observation import describe, draw
from alma.types import Observation, Transition

_SYNONYMS = {
    **{a: a for a in ACTIONS},
    "wait": "idle",
    "stay": "idle",
    "noop": "idle",
    "pass": "idle",
    "u": "up",
    "north": "up",
    "r": "right",
    "east": "right",
    "d": "down",
    "south": "down",
    "l": "left",
    "west": "left",
}
_FILLER = frozenset({"move", "go", "step", "walk", "one", "to", "the", "a"})


def parse_action(command: str) -> str | None:
    """The action a command names (``"Move up."`` -> ``"up"``), or None when it names none."""
    words = [w for w in re.sub(r"[^a-z ]", " ", command.lower()).split() if w not in _FILLER]
    if len(words) != 1:
        return None
    return _SYNONYMS.get(words[0])


class BabaIsAIEnv:
    """A level: ``reset`` puts the pieces back, ``step`` plays one action.

    Reward is 1.0 on the step that wins and 0.0 otherwise. The episode ends when a `you` object
    reaches a `win` object (success) or when no object is `you` any more (failure); stepping a
    finished episode changes nothing. An unknown command passes a turn with a message.
    """

    inline_steps = True  # in-memory and instant: the agent steps it without a thread

    def __init__(self, board: Board, start: State, info: dict[str, Any] | None = None) -> None:
        self.board = board
        self.start = start
        self.info = dict(info or {})
        self.state = start
        self.status: Status = "playing"
        self.steps = 0

    def reset(self) -> Observation:
        self.state = self.start
        self.status = "playing"
        self.steps = 0
        return self._observe()

    def step(self, action: str) -> Transition:
        if self.status != "playing":
            obs = self._observe("The level is over; nothing moves any more.")
            return Transition(obs, 0.0, True, self.status == "won", self._info())
        self.steps += 1
        chosen = parse_action(action)
        if chosen is None:
            message = (
                f"Unknown action {action.strip()!r}: nothing happened. "
                f"Actions: {', '.join(ACTIONS)}."
            )
            return Transition(self._observe(message), 0.0, False, False, self._info(valid=False))
        self.state, self.status = advance(self.board, self.state, chosen)
        won = self.status == "won"
        done = self.status != "playing"
        return Transition(self._observe(), 1.0 if won else 0.0, done, won, self._info())

    def render(self) -> str:
        """An ASCII drawing of the board as it is now, for people."""
        return draw(self.board, self.state)

    def close(self) -> None:
        """Nothing to release."""

    def _info(self, *, valid: bool = True) -> dict[str, Any]:
        return {
            "status": self.status,
            "won": self.status == "won",
            "steps": self.steps,
            "valid_action": valid,
            "rules": list(rules_of(self.board, self.state).lines),
        }

    def _observe(self, message: str | None = None) -> Observation:
        text = describe(self.board, self.state, self.status)
        if message:
            text = f"{message}\n\n{text}"
        return Observation(text, ACTIONS, {**self.info, **self._info()})
