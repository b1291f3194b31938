"""Playing one compiled TextWorld game through alma's text environment contract.

The game runs in TextWorld's Z-machine back end (Jericho, one private copy of the interpreter
per game, so several games can run at once in threads). Each step asks TextWorld for the
admissible commands, the inventory, the score and the won / lost state.

What the agent reads: on reset, the game's objective and the starting room; after each command,
the game's answer; then always the room the player is in and the inventory, so the agent never
has to spend a step on ``look`` or ``inventory`` to know them. TextWorld's banner, the command
prompt, the status bar and the "RESTART, RESTORE or QUIT" question are left out.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import textworld

from alma.types import Observation, Transition

_REQUESTED = textworld.EnvInfos(
    admissible_commands=True,
    inventory=True,
    objective=True,
    score=True,
    max_score=True,
    won=True,
    lost=True,
)
_OUTCOME_ONLY = textworld.EnvInfos(won=True, lost=True)

# TextWorld parses its game data with parsers shared by the whole process, which break when two
# threads use them at once: loading a game, and generating one, hold this lock. Stepping does
# not parse, so games already loaded run freely in parallel.
TEXTWORLD_LOCK = threading.RLock()

# the interpreter's own commands that would restart, end or rewind the game behind TextWorld's
# back (its tracking of the game state would no longer match): refused without reaching the game
REFUSED = frozenset({"restart", "quit", "q", "save", "restore", "undo", "script", "unscript"})

_ROOM_HEADER = re.compile(r"^-= (.+?) =-$", re.MULTILINE)
_ENDING_QUESTION = re.compile(r"Would you like to RESTART.*$", re.DOTALL)
_BLANK_LINES = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """The game's answer without the prompt, status bar, end-of-game question and padding."""
    text = _ENDING_QUESTION.sub("", text)
    lines = [line.strip() for line in text.replace("\r", "").split("\n")]
    if lines and lines[-1].startswith(">"):  # the prompt, followed by the status bar
        lines.pop()
    text = "\n".join(lines)
    return _BLANK_LINES.sub("\n\n", text).strip()


def room_in(text: str) -> str | None:
    """The room named by the last ``-= Room =-`` heading in ``text``, if any."""
    rooms = _ROOM_HEADER.findall(text)
    return rooms[-1] if rooms else None


def opening_scene(feedback: str, objective: str) -> str:
    """The part of the opening text after the objective (the banner and objective removed)."""
    text = clean_text(feedback)
    heading = _ROOM_HEADER.search(text)
    if heading is not None:
        return text[heading.start() :]
    goal = clean_text(objective)
    return text.split(goal, 1)[1].strip() if goal and goal in text else text


class TextWorldEnv:
    """One TextWorld game (implements :class:`alma.domains.base.TextEnv`).

    ``success`` is TextWorld's won state; the episode also ends when the game is lost (for
    example by eating an ingredient before the meal is ready, or taking the wrong object).
    After the end, further steps repeat the last transition without touching the game.
    """

    def __init__(self, story: Path, info: dict[str, Any] | None = None) -> None:
        self._info = dict(info or {})
        with TEXTWORLD_LOCK:
            self._game: Any = textworld.start(str(story), _REQUESTED)
        self._room = ""
        self._score = 0
        self._state: Any = None
        self._final: Transition | None = None

    def reset(self) -> Observation:
        with TEXTWORLD_LOCK:
            state = self._game.reset()
        objective = clean_text(state.objective or "")
        scene = opening_scene(state.feedback or "", state.objective or "")
        self._room = room_in(scene) or ""
        self._score = int(state.score or 0)
        self._state = state
        self._final = None
        text = f"{objective}\n\n{scene}" if objective else scene
        return self._observe(text, state)

    def step(self, action: str) -> Transition:
        if self._final is not None:
            return self._final
        words = action.lower().split()
        if words and words[0] in REFUSED:
            refusal = (
                f'"{words[0]}" is not available: the game cannot be restarted, saved or undone.'
            )
            return Transition(
                self._observe(refusal, self._state), 0.0, False, False, self._status()
            )
        state, _, _ = self._game.step(action)
        self._state = state
        answer = clean_text(state.feedback or "")
        self._room = room_in(answer) or self._room
        score = int(state.score or 0)
        reward = float(score - self._score)
        self._score = score
        won, lost = bool(state.won), bool(state.lost)
        observation = self._observe(answer or "Nothing happens.", state)
        transition = Transition(observation, reward, won or lost, won, self._status())
        if won or lost:
            self._final = transition
        return transition

    def close(self) -> None:
        game, self._game = self._game, None
        if game is not None:
            game.close()

    def _status(self) -> dict[str, Any]:
        state = self._state
        return {
            "won": bool(state.won),
            "lost": bool(state.lost),
            "score": self._score,
            "max_score": int(state.max_score or 0),
            **self._info,
        }

    def _observe(self, text: str, state: Any) -> Observation:
        inventory = " ".join((state.inventory or "").split())
        lines = [text, ""]
        if self._room:
            lines.append(f"Location: {self._room}")
        if inventory:
            lines.append(f"Inventory: {inventory}")
        actions = tuple(state.admissible_commands or ())
        info = {"room": self._room, "score": self._score, **self._info}
        return Observation("\n".join(lines).strip(), actions or None, info)


@dataclass(frozen=True)
class PlayOutcome:
    won: bool
    lost: bool
    steps: int
    reason: str  # "won", "lost" or "not finished"


def play_commands(story: Path, commands: list[str]) -> PlayOutcome:
    """Plays ``commands`` in the compiled game (asking TextWorld only for won / lost)."""
    with TEXTWORLD_LOCK:
        game: Any = textworld.start(str(story), _OUTCOME_ONLY)
    try:
        game.reset()
        for number, command in enumerate(commands, 1):
            state, _, done = game.step(command)
            if state.won or state.lost or done:
                won, lost = bool(state.won), bool(state.lost)
                return PlayOutcome(won, lost, number, "won" if won else "lost")
        return PlayOutcome(False, False, len(commands), "not finished")
    finally:
        game.close()
