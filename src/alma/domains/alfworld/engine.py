"""ALFWorld's own text engine, wrapped as a :class:`~alma.domains.base.TextEnv`.

A game file (``game.tw-pddl``: ALFWorld's PDDL domain, a PDDL problem and the TextWorld grammar
with the goal sentence) is played by TextWorld's ``PddlEnv`` behind ALFWorld's
``AlfredDemangler``, exactly as ALFWorld plays it: the observations, the admissible commands and
the goal check (fast-downward's ``check_goal``) are theirs. Two things are added around it:

* Speed. Translating a PDDL problem for fast-downward takes most of a second, and ``PddlEnv``
  does it twice on ``load`` and twice more on every ``reset``. Translations are kept in a small
  in-memory cache keyed by the problem's text, and the planner's optimised translation is only
  made when a plan is asked for. Deriving the text of each admissible command from the grammar
  also dominates a step; a command depends only on the action arguments its template names (and
  on facts no action changes), so each one is derived once per game and shared by all its copies.
  Equivalence with ``PddlEnv`` itself is tested step by step.
* Threads. fast-downward's translator swaps ``sys.stdout`` and rewrites global options while it
  works, so all work with the engine holds one process-wide lock. Each game has its own copy of
  fast-downward's library, taken from a pool and given back by :meth:`AlfWorldEnv.close`.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import fast_downward  # type: ignore[import-untyped]
import textworld
from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
from textworld.envs.pddl import PddlEnv
from textworld.envs.pddl import logic as pddl_logic

from alma.errors import UsageError
from alma.types import Observation, Transition

#: Held by every call into TextWorld's PDDL engine or fast-downward.
ENGINE_LOCK = threading.RLock()
_CACHE_SIZE = 32  # games whose translations and command texts are kept in memory
_translations: OrderedDict[tuple[str, bool], tuple[Any, str]] = OrderedDict()
_ORIGINAL_PDDL2SAS = fast_downward.pddl2sas
_idle_libraries: list[Any] = []
_QUERY = re.compile(r"\|([^}\]]*)")
_PREDICATE = re.compile(r"([A-Za-z_][\w-]*)\(")
_PLAIN = re.compile(r"(?:[^{}\[\]|#]|\{\w+\})*")  # words and "{placeholder}"s only


def _translate(domain: str, problem: str, *, optimize: bool = False, verbose: bool = False) -> Any:
    """fast-downward's ``pddl2sas``, cached; ``sys.argv`` is restored after it."""
    digest = hashlib.sha256(f"{domain}\0{problem}".encode()).hexdigest()
    key = (digest, optimize)
    with ENGINE_LOCK:
        cached = _translations.get(key)
        if cached is not None:
            _translations.move_to_end(key)
            return cached
        argv = sys.argv
        try:
            result = _ORIGINAL_PDDL2SAS(domain, problem, verbose=verbose, optimize=optimize)
        finally:
            sys.argv = argv
        _translations[key] = result
        while len(_translations) > _CACHE_SIZE:
            _translations.popitem(last=False)
        return result


def clear_caches() -> None:
    """Forget every cached translation and command text (the next games start cold)."""
    with ENGINE_LOCK:
        _translations.clear()
        _command_texts.clear()


def _acquire_library() -> Any:
    """A copy of fast-downward's library that no open game uses.

    ``PddlEnv`` loads a private copy of the library per game (the library keeps one task in
    global state), and unloading a copy crashes the process later on; so copies are pooled and
    reused, and there are never more of them than games open at once.
    """
    with ENGINE_LOCK:
        return _idle_libraries.pop() if _idle_libraries else fast_downward.load_lib()


def _release_library(library: Any) -> None:
    with ENGINE_LOCK:
        library.cleanup()
        _idle_libraries.append(library)


@contextlib.contextmanager
def _cached_translations(plan: bool) -> Iterator[None]:
    """While it lasts, TextWorld's PDDL state gets its translations from :func:`_translate`.

    Without ``plan``, the planner's optimised translation is replaced by the plain one: both are
    valid tasks for fast-downward, and the optimised one only speeds up planning.
    """

    def translate(domain: str, problem: str, verbose: bool = False, optimize: bool = False) -> Any:
        return _translate(domain, problem, optimize=optimize and plan, verbose=verbose)

    with ENGINE_LOCK:
        pddl_logic.fast_downward.pddl2sas = translate
        try:
            yield
        finally:
            pddl_logic.fast_downward.pddl2sas = _ORIGINAL_PDDL2SAS


@dataclass
class _CommandTexts:
    """What one game's commands read, shared by every open copy of that game."""

    dynamic: frozenset[str]  # predicates some action changes
    commands: dict[tuple[str, tuple[tuple[str, str], ...]], str] = field(default_factory=dict)
    mention: dict[tuple[str, str], bool] = field(default_factory=dict)
    static_template: dict[str, bool] = field(default_factory=dict)
    plain: dict[str, bool] = field(default_factory=dict)


_command_texts: OrderedDict[str, _CommandTexts] = OrderedDict()


class _FastPddlEnv(PddlEnv):  # type: ignore[misc]
    """TextWorld's ``PddlEnv`` with cached translations and command texts."""

    def __init__(self, infos: Any, *, plan: bool) -> None:
        # PddlEnv.__init__ would load a fresh copy of fast-downward's library; take a pooled one
        textworld.Environment.__init__(self, infos)
        self.downward_lib = _acquire_library()
        self._plan = plan
        self._texts = _CommandTexts(frozenset())

    def load(self, data: Mapping[str, Any]) -> None:
        with _cached_translations(self._plan):
            super().load(data)
        game = "\0".join(str(data[k]) for k in ("pddl_domain", "grammar", "pddl_problem"))
        digest = hashlib.sha256(game.encode()).hexdigest()
        texts = _command_texts.get(digest)
        if texts is None:
            dynamic = frozenset(
                effect.literal.predicate.lower()
                for action in self._pddl_state.task.actions
                for effect in action.effects
            )
            texts = _command_texts[digest] = _CommandTexts(dynamic)
            while len(_command_texts) > _CACHE_SIZE:
                _command_texts.popitem(last=False)
        _command_texts.move_to_end(digest)
        self._texts = texts

    def reset(self) -> Any:
        with _cached_translations(self._plan):
            return super().reset()

    def _is_static(self, template: str) -> bool:
        """Whether ``template``'s text depends only on facts that no action changes.

        A template that expands other grammar rules ("#rule#") may depend on anything: never.
        """
        known = self._texts.static_template.get(template)
        if known is None:
            predicates = {
                p.lower() for query in _QUERY.findall(template) for p in _PREDICATE.findall(query)
            }
            known = "#" not in template and not predicates & self._texts.dynamic
            self._texts.static_template[template] = known
        return known

    def _mentions(self, template: str, placeholder: str) -> bool:
        """Whether ``template`` uses the action argument ``placeholder`` (so its text may)."""
        key = (template, placeholder)
        known = self._texts.mention.get(key)
        if known is None:
            known = self._texts.mention[key] = (
                re.search(rf"\b{re.escape(placeholder)}\b", template) is not None
            )
        return known

    def _gather_infos(self) -> None:
        # The same information as PddlEnv._gather_infos, with each command's text derived once.
        state = self._pddl_state
        self.state["command_templates"] = sorted(
            {action.template for action in self._logic.actions.values()}
        )
        self.state["won"] = state.check_goal()
        self.state["lost"] = False
        self.state["_entity_infos"] = dict(self._entity_infos)
        facts = list(state.facts)
        self.state["_facts"] = facts
        if self.request_infos.facts:
            self.state["facts"] = [self._get_human_readable_fact(fact) for fact in facts]
        self.state["last_action"] = None
        self.state["_last_action"] = self._last_action
        actions = list(state.all_applicable_actions())
        names = {key: info.name for key, info in self._entity_infos.items()}
        commands = []
        for action in actions:
            key = (
                action.command_template,
                tuple(
                    sorted(
                        (ph.name, var.name)
                        for ph, var in action.mapping.items()
                        if self._mentions(action.command_template, ph.name)
                    )
                ),
            )
            command = self._texts.commands.get(key)
            if command is None and self._texts.plain.get(action.command_template):
                command = self._texts.commands[key] = action.command_template.format(
                    **{ph.name: names[var.name] for ph, var in action.mapping.items()}
                )
            if command is None:
                template = action.command_template
                context = {
                    "state": state,
                    "facts": facts,
                    "variables": {
                        ph.name: self._entity_infos[var.name] for ph, var in action.mapping.items()
                    },
                    "mapping": action.mapping,
                    "entity_infos": self._entity_infos,
                }
                action.command_template = self._logic.grammar.derive(template, context)
                command = action.format_command(names)
                if self._is_static(template):
                    self._texts.commands[key] = command
                if template not in self._texts.plain:
                    # a template made only of "{placeholder}"s is filled in by plain formatting:
                    # checked once against the grammar's own derivation
                    self._texts.plain[template] = _PLAIN.fullmatch(template) is not None and (
                        template.format(
                            **{ph.name: names[var.name] for ph, var in action.mapping.items()}
                        )
                        == command
                    )
            commands.append(command)
        self.state["_valid_actions"] = actions
        self.state["_valid_commands"] = commands
        self.state["admissible_commands"] = sorted(set(commands))
        if self.request_infos.moves:
            self.state["moves"] = self._moves
        if self.request_infos.policy_commands:
            self.state["policy_commands"] = state.replan(self._entity_infos)


def _normal(command: str) -> str:
    return " ".join(command.lower().split())


class AlfWorldEnv:
    """One ALFWorld game (implements :class:`alma.domains.base.TextEnv`).

    ``game`` is the content of a ``game.tw-pddl`` file. ``plan=True`` also asks fast-downward
    for a plan from the current state after every reset and step (slow; see :meth:`plan`).
    ``info`` is merged into every observation's and transition's info.
    """

    def __init__(
        self, game: Mapping[str, Any], *, plan: bool = False, info: Mapping[str, Any] | None = None
    ) -> None:
        self._info = dict(info or {})
        self._plan = plan
        self._won = False
        self._started = False
        self._policy: list[str] = []
        infos = textworld.EnvInfos(admissible_commands=True, won=True, policy_commands=plan)
        with ENGINE_LOCK:
            engine = _FastPddlEnv(infos, plan=plan)
            # the library goes back to the pool on close(), or when this object is collected
            self._release = weakref.finalize(self, _release_library, engine.downward_lib)
            self._env: Any = AlfredDemangler(engine, shuffle=False)
            try:
                self._env.load(dict(game))
            except BaseException:
                self._release()
                raise
        self._open = True

    # ------------------------------------------------------------------ TextEnv

    def reset(self) -> Observation:
        self._check_open()
        with ENGINE_LOCK:
            state = self._env.reset()
        self._started = True
        self._won = bool(state["won"])
        return self._observe(state)

    def step(self, action: str) -> Transition:
        self._check_open()
        if not self._started:
            raise UsageError("step() before reset()", hint="call reset() first")
        command = _normal(action)
        with ENGINE_LOCK:
            admissible = self._env.state["admissible_commands"]
            command = next((c for c in admissible if _normal(c) == command), command)
            state, _, _ = self._env.step(command)
        won = bool(state["won"])
        self._won = won
        observation = self._observe(state)
        info = {**observation.info, "won": won}
        return Transition(observation, 1.0 if won else 0.0, won, won, info)

    def close(self) -> None:
        self._open = False
        release = getattr(self, "_release", None)
        if release is not None:
            release()

    # ------------------------------------------------------------------ extras

    def plan(self) -> list[str]:
        """fast-downward's plan from the current state (needs ``plan=True``); [] if none."""
        if not self._plan:
            raise UsageError("this game was opened without planning", hint="pass plan=True")
        return list(self._policy)

    def names(self) -> dict[str, str]:
        """Each entity's PDDL name (lower case) and the name the game shows ("apple 1")."""
        with ENGINE_LOCK:
            infos = self._env._entity_infos
            return {key: str(info.name).strip() for key, info in infos.items()}

    @property
    def won(self) -> bool:
        return self._won

    def _observe(self, state: Any) -> Observation:
        if self._plan:
            self._policy = list(state.get("policy_commands") or [])
        actions = tuple(state["admissible_commands"])
        return Observation(str(state.feedback).strip(), actions, dict(self._info))

    def _check_open(self) -> None:
        if not getattr(self, "_open", False):
            raise UsageError("this ALFWorld game is closed", hint="open a new one with make_env")
