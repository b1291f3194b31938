"""One level of the ``balrog`` variant played through BALROG's text (a :class:`TextEnv`)."""

from __future__ import annotations

from typing import Any

from alma.domains.babaisai import balrog_engine, balrog_text
from alma.domains.babaisai.balrog_engine import Stacks
from alma.domains.babaisai.engine import ACTIONS, CODES, Board, Status
from alma.domains.babaisai.env import parse_action
from alma.types import Observation, Transition

CELL = 7  # characters per cell in a drawing


class BalrogEnv:
    """A level of the original game: ``reset`` puts the pieces back, ``step`` plays one action.

    As in BALROG, reward is 1.0 on the step that wins (success is binary) and the episode ends on
    a win or a loss (walking onto ``defeat``). When a step leaves nothing ``you``, BALROG's
    wrapper restarts the level: the text says so and the level is back at its start, and the
    episode goes on. An unknown command passes a turn with a message, as ``idle`` would.
    """

    inline_steps = True  # in-memory and instant: the agent steps it without a thread

    def __init__(self, board: Board, start: Stacks, info: dict[str, Any] | None = None) -> None:
        self.board = board
        self.start = start
        self.info = dict(info or {})
        self.state = start
        self.status: Status = "playing"
        self.steps = 0
        self.restarts = 0

    def reset(self) -> Observation:
        self.state = self.start
        self.status = "playing"
        self.steps = 0
        self.restarts = 0
        return self._observe(balrog_text.observation(self.board, self.state))

    def step(self, action: str) -> Transition:
        if self.status != "playing":
            text = "The level is over; nothing moves any more.\n\n" + balrog_text.observation(
                self.board, self.state
            )
            return Transition(self._observe(text), 0.0, True, self.status == "won", self._info())
        self.steps += 1
        chosen = parse_action(action)
        if chosen is None:
            message = (
                f"Unknown action {action.strip()!r}: nothing happened. "
                f"Actions: {', '.join(ACTIONS)}."
            )
            text = f"{message}\n\n{balrog_text.observation(self.board, self.state)}"
            return Transition(self._observe(text), 0.0, False, False, self._info(valid=False))
        after, self.status = balrog_engine.step(self.board, self.state, chosen)
        if balrog_engine.has_you(self.board, after):
            self.state = after
            text = balrog_text.observation(self.board, after)
        else:  # BALROG's wrapper restarts the level
            text = balrog_text.reset_observation(self.board, after, self.start)
            self.state = self.start
            self.restarts += 1
        won = self.status == "won"
        done = self.status != "playing"
        return Transition(self._observe(text), 1.0 if won else 0.0, done, won, self._info())

    def render(self) -> str:
        """An ASCII drawing of the board as it is now (the top piece of each cell), for people."""
        return draw(self.board, self.state)

    def close(self) -> None:
        """Nothing to release."""

    def _info(self, *, valid: bool = True) -> dict[str, Any]:
        rules = balrog_engine.read_rules(self.board, self.state)
        return {
            "status": self.status,
            "won": self.status == "won",
            "steps": self.steps,
            "valid_action": valid,
            "rules": balrog_text.rules_text(rules).splitlines(),
            "restarts": self.restarts,
        }

    def _observe(self, text: str) -> Observation:
        return Observation(text, ACTIONS, {**self.info, **self._info()})


def draw(board: Board, state: Stacks) -> str:
    """An ASCII drawing of the top pieces, with a legend and the rules BALROG lists."""
    rules = balrog_engine.read_rules(board, state)
    _noun, me = balrog_engine.you_position(board, state, rules)
    border = "+" + "-" * (CELL * board.width) + "+"
    rows = [border]
    for y in range(board.height):
        cells = []
        for x in range(board.width):
            stack = state[y * board.width + x]
            if not stack:
                cells.append(".".ljust(CELL))
                continue
            text, name, _colour = CODES[stack[-1] & 63]
            token = name.upper() if text else name
            if me is not None and (me.x, me.y) == (x, y):
                token = "@" + token
            token = token[: CELL - 2] + ("+" if len(stack) > 1 else "")
            cells.append(token.ljust(CELL))
        rows.append("|" + "".join(cells) + "|")
    rows.append(border)
    rows.append("@ you   UPPERCASE rule tile   lowercase object   + more pieces under it")
    listed = balrog_text.rules_text(rules).replace("\n", "; ")
    rows.append("rules: " + (listed or "(none)"))
    return "\n".join(rows)
