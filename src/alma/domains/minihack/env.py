"""One MiniHack game as a text environment.

The game runs in NetHack through MiniHack (its level files and success rule: the episode is won
when the agent stands on the staircase down). Each reset seeds NetHack's two generators (core
and display) with the task's seed and turns NetHack's periodic reseeding off, so a task id is
always the same level and the same dice. Observations come from the language wrapper shipped with
balrog-nle. The environment answers the game's interruptions itself where no choice is involved:
it pages through ``--More--`` (keeping every message) and declines to type names; questions and
menus are left to the agent, whose admissible actions become the possible answers.

NetHack instances are independent: each loads its own copy of NetHack's shared library, so several
environments can be open at once in one process, one per thread (a step holds the GIL; a reset
releases it while NetHack starts). Creating one is not thread-safe, though: the first construction
of NLE's C++ game object initialises a function-local static that imports a Python module, which
releases the GIL; a second thread constructing at that moment waits on the static's guard while
holding the GIL, and the two deadlock. So environments are created under a process-wide lock
(a few milliseconds each; measured faster than one process per environment).

One input escapes the seed: NetHack reads the calendar at start. On a full moon it grants +1 Luck
(and says so), on a new moon or Friday the 13th it warns or takes Luck away. The level, the start
and the first observation do not depend on it (the remark is left out of the messages), but a few
later dice rolls can differ between such dates and the others.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import threading
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from alma.domains.minihack.actions import (
    ALL_KEYS,
    ENTER,
    ESC,
    KEYS,
    is_menu,
    menu_answers,
    question_answers,
    resolve,
)
from alma.domains.minihack.render import (
    View,
    clean_message,
    crop_map,
    death_cause,
    parse_stats,
    render,
)
from alma.domains.minihack.tasks import STEP_LIMIT, Family
from alma.domains.registry import install_hint
from alma.errors import MissingDependencyError
from alma.types import Observation, Transition

_OBSERVATION_KEYS = (
    "glyphs",
    "chars",
    "blstats",
    "tty_chars",
    "tty_cursor",
    "inv_strs",
    "inv_letters",
)
_AUTO_KEYS = 64  # keys the environment may send by itself after one action (--More--, names)
_SUCCESS, _DEATH, _ABORTED = 2, 1, -1  # MiniHack's end statuses
_ENDINGS = {
    _SUCCESS: "You are on the staircase down: the task is complete.",
    _DEATH: "You died: the episode is over.",
    _ABORTED: "The game was stopped: the episode is over.",
}

_import_lock = threading.Lock()
_setup_lock = threading.Lock()  # around creating a game: see the module's docstring


@dataclass(frozen=True)
class _Game:
    gym: ModuleType
    language: Any  # the class nle_language_obsv.NLELanguageObsv
    actions: tuple[Any, ...]  # the NetHack actions the environment may send, as MiniHack wants


_game: _Game | None = None


def game_modules() -> _Game:
    """Import gym, MiniHack and the language wrapper once (quietly: gym prints a notice)."""
    global _game
    with _import_lock:
        if _game is None:
            try:
                with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
                    warnings.simplefilter("ignore")
                    gym = importlib.import_module("gym")
                    importlib.import_module("minihack")  # registers the MiniHack environments
                    from nle import nethack, nle_language_obsv
            except ImportError as exc:
                raise MissingDependencyError(
                    f"the minihack domain needs nle (from balrog-nle) and minihack: {exc}",
                    hint=install_hint("minihack"),
                ) from exc
            by_key: dict[int, Any] = {}
            for action in nethack.ACTIONS:
                by_key.setdefault(int(action), action)
            missing = sorted(ALL_KEYS - by_key.keys())
            if missing:
                raise MissingDependencyError(
                    f"this nle build lacks the keys {missing}", hint=install_hint("minihack")
                )
            actions = tuple(by_key[key] for key in sorted(ALL_KEYS))
            _game = _Game(gym, nle_language_obsv.NLELanguageObsv, actions)
        return _game


class MiniHackEnv:
    """One MiniHack task (implements :class:`alma.domains.base.TextEnv`)."""

    def __init__(self, family: Family, seed: int) -> None:
        game = game_modules()
        self.family = family
        self.seed = seed
        self._language = game.language()  # one per environment: nothing shared across threads
        with _setup_lock, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._env = game.gym.make(
                family.env_id,
                observation_keys=_OBSERVATION_KEYS,
                actions=game.actions,
                autopickup=False,  # items are picked up only when the agent asks
                allow_all_modes=True,  # --More--, questions and menus come back to us
                max_episode_steps=10 * STEP_LIMIT,  # a safety net; the harness caps episodes
            )
        self._nethack = self._env.unwrapped
        self._index = {int(action): i for i, action in enumerate(self._nethack.actions)}
        self._options: dict[str, int] = {}
        self._view: View | None = None
        self._observation: Observation | None = None
        self._ended: int | None = None
        self._closed = False

    # ------------------------------------------------------------------ TextEnv

    def reset(self) -> Observation:
        self._nethack.seed(self.seed, self.seed, reseed=False)
        raw = self._env.reset()
        self._ended = None
        raw, done, status, messages = self._settle(raw, False, 0, [])
        return self._observe(raw, done, status, messages)

    def step(self, action: str) -> Transition:
        if self._observation is None:
            self.reset()
        assert self._observation is not None
        if self._ended is not None:
            return self._transition(0.0)
        name = resolve(action, self._options)
        if name is None:
            note = f"{action.strip()!r} is not possible now; choose one of the admissible actions."
            text = f"{note}\n{self._observation.text}"
            observation = Observation(text, self._observation.actions, self._observation.info)
            return Transition(observation, 0.0, False, False, {"invalid_action": True})
        raw, _, done, info = self._env.step(self._index[self._options[name]])
        status = int(info.get("end_status", 0))
        raw, done, status, messages = self._settle(raw, done, status, [])
        self._observe(raw, done, status, messages)
        return self._transition(1.0 if self._ended == _SUCCESS else 0.0)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._env.close()

    # ------------------------------------------------------------------ game to text

    def _settle(
        self, raw: dict[str, Any], done: bool, status: int, messages: list[str]
    ) -> tuple[dict[str, Any], bool, int, list[str]]:
        """Page through ``--More--`` (keeping the messages) and decline to type text, until the
        game waits for a command, a question's answer or a menu choice, or ends."""
        for _ in range(_AUTO_KEYS):
            if done:
                break
            internal = self._nethack.last_observation[self._nethack._internal_index]
            text = self._message(raw)
            if internal[2]:  # the game wants a line of text (a name): decline
                key = ESC
            elif internal[3] and not is_menu(text):  # --More--
                messages.append(clean_message(text))
                key = ENTER
            else:
                break
            raw, _, done, info = self._env.step(self._index[key])
            status = int(info.get("end_status", 0))
        return raw, done, status, messages

    def _message(self, raw: dict[str, Any]) -> str:
        return str(self._language.text_message(raw["tty_chars"]).decode("latin-1"))

    def _observe(
        self, raw: dict[str, Any], done: bool, status: int, messages: list[str]
    ) -> Observation:
        if done:
            self._ended = status if status in _ENDINGS else _ABORTED
            previous = self._view
            assert previous is not None, "the game ended before its first observation"
            ending = _ENDINGS[self._ended]
            if self._ended == _DEATH:
                cause = death_cause(raw["tty_chars"].tobytes().decode("latin-1"))
                ending = f"You died ({cause}): the episode is over." if cause else ending
            view = View(
                tuple(messages),
                previous.seen,
                previous.stats,
                previous.map_rows,
                previous.inventory,
                ended=ending,
            )
            self._options = {}
            self._set(view, None)
            assert self._observation is not None
            return self._observation

        language = self._language
        internal = self._nethack.last_observation[self._nethack._internal_index]
        text = self._message(raw)
        pending, prompt = "", ""
        if is_menu(text):
            pending = "menu"
            prompt = "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())
            self._options = menu_answers(text)
        elif internal[1]:
            pending, prompt = "question", clean_message(text)
            self._options = question_answers(prompt)
        else:
            messages.append(clean_message(text))
            self._options = {name: KEYS[name] for name in self.family.actions}
        rows = raw["chars"].tobytes().decode("latin-1")
        width = raw["chars"].shape[1]
        view = View(
            messages=tuple(messages),
            seen=language.text_glyphs(raw["glyphs"], raw["blstats"]).decode("latin-1"),
            stats=parse_stats(language.text_blstats(raw["blstats"]).decode("latin-1")),
            map_rows=crop_map([rows[i : i + width] for i in range(0, len(rows), width)]),
            inventory=(
                language.text_inventory(raw["inv_strs"], raw["inv_letters"]).decode("latin-1")
                if self.family.inventory
                else None
            ),
            pending=pending,
            prompt=prompt,
        )
        self._set(view, tuple(self._options) or None)
        assert self._observation is not None
        return self._observation

    def _set(self, view: View, actions: tuple[str, ...] | None) -> None:
        self._view = view
        info: dict[str, Any] = {"pending": view.pending or None}
        if self._ended is not None:
            info["ended"] = {_SUCCESS: "success", _DEATH: "death"}.get(self._ended, "aborted")
        self._observation = Observation(render(view), actions, info)

    def _transition(self, reward: float) -> Transition:
        assert self._observation is not None
        done = self._ended is not None
        success = self._ended == _SUCCESS
        info = {"won": success, "ended": self._observation.info.get("ended")}
        return Transition(self._observation, reward, done, success, info)
