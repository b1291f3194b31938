"""Tells a domain's author what breaks the contract, in the spirit of Gymnasium's env checker.

``check_domain`` returns warnings (suspicious but allowed) and raises
:class:`alma.errors.DomainCheckError` listing every problem it found. It never lets an exception
from the domain escape: each one becomes a problem naming the call, the exception type and its
message.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from itertools import combinations
from typing import Any, TypeVar

from alma.domains.base import Domain, StepLimit, TextEnv
from alma.errors import DomainCheckError
from alma.types import SPLITS, Observation, Split, Task, Transition

_STEPS_CHECKED = 3  # steps whose transitions are checked right after reset
_IDS_SHOWN = 5  # ids listed in one problem before "..."

T = TypeVar("T")


class _Failed(Exception):
    """A domain call raised; the problem is already recorded."""


class _Report:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()``, turning an exception into a problem about ``what`` (and raising _Failed)."""
        try:
            return fn()
        except Exception as exc:
            self.problems.append(f"{what} raised {type(exc).__name__}: {exc}")
            raise _Failed from exc


def _type_name(value: object) -> str:
    return type(value).__name__


def _ids(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:_IDS_SHOWN])
    return shown + (", ..." if len(ids) > _IDS_SHOWN else "")


def check_domain(domain: Domain, *, tasks_per_split: int = 3, seed: int = 0) -> list[str]:
    """Check ``domain`` against the contract; return warnings, raise on problems.

    Checks the attributes (``name``, ``step_limit``, ``description``, ``instructions``), each
    split's tasks (their ``split`` field, unique ids, no id in two splits), and for up to
    ``tasks_per_split`` tasks of each split (picked with ``seed``): ``reset`` is deterministic
    across two fresh envs and after stepping, observations and transitions have the right types,
    an env wrapped in :class:`~alma.domains.base.StepLimit` and driven by random admissible
    actions (else ``"look"``) ends by the step limit, and ``close`` works.

    Raises:
        DomainCheckError: listing every problem found.
    """
    report = _Report()
    rng = random.Random(seed)
    values = _check_attributes(domain, report)
    name, step_limit = values.get("name"), values.get("step_limit")
    limit = step_limit if type(step_limit) is int and step_limit > 0 else None
    if callable(getattr(domain, "tasks", None)):
        by_split = _check_splits(domain, report)
        if callable(getattr(domain, "make_env", None)):
            for tasks in by_split.values():
                for index in sorted(
                    rng.sample(range(len(tasks)), min(tasks_per_split, len(tasks)))
                ):
                    with contextlib.suppress(_Failed):
                        _check_task(domain, tasks[index], limit, rng, report)
    if report.problems:
        shown = name if isinstance(name, str) and name.strip() else _type_name(domain)
        raise DomainCheckError(shown, report.problems)
    return report.warnings


def _check_attributes(domain: Domain, report: _Report) -> dict[str, object]:
    """Check the four attributes and the two methods; return the attributes that could be read."""
    values: dict[str, object] = {}
    for attr in ("name", "step_limit", "description", "instructions"):
        try:
            value = values[attr] = getattr(domain, attr)
        except AttributeError:
            report.problems.append(f"missing attribute {attr!r}")
            continue
        except Exception as exc:
            report.problems.append(f"reading {attr!r} raised {type(exc).__name__}: {exc}")
            continue
        if attr == "step_limit":
            if type(value) is not int:
                report.problems.append(f"step_limit must be an int, not {_type_name(value)}")
            elif value <= 0:
                report.problems.append(f"step_limit must be positive, not {value}")
        elif not isinstance(value, str):
            report.problems.append(f"{attr} must be a str, not {_type_name(value)}")
        elif not value.strip():
            report.problems.append(f"{attr} is empty")
    for method in ("tasks", "make_env"):
        if not callable(getattr(domain, method, None)):
            report.problems.append(f"missing method {method}()")
    return values


def _check_splits(domain: Domain, report: _Report) -> dict[Split, list[Task]]:
    """Check every split's task list; return the well-formed tasks of each split."""
    by_split: dict[Split, list[Task]] = {}
    for split in SPLITS:
        what = f"tasks({split!r})"
        try:
            result: object = report.call(what, partial(domain.tasks, split))
        except _Failed:
            continue
        if not isinstance(result, Sequence) or isinstance(result, str):
            report.problems.append(f"{what} must return a sequence, not {_type_name(result)}")
            continue
        tasks: list[Task] = []
        for i, task in enumerate(result):
            if not isinstance(task, Task):
                report.problems.append(f"{what}[{i}] must be a Task, not {_type_name(task)}")
            elif not isinstance(task.id, str) or not task.id:
                report.problems.append(f"{what}[{i}] has an empty or non-str id: {task.id!r}")
            else:
                tasks.append(task)
                if task.split != split:
                    report.problems.append(f"task {task.id!r} from {what} has split {task.split!r}")
                if not isinstance(task.description, str) or not task.description.strip():
                    report.problems.append(f"task {task.id!r} has an empty or non-str description")
        if not result:
            report.warnings.append(f"split {split!r} has no tasks")
        duplicates = sorted(i for i, n in Counter(t.id for t in tasks).items() if n > 1)
        if duplicates:
            report.problems.append(f"{what} repeats task ids: {_ids(duplicates)}")
        by_split[split] = tasks
    for (a, tasks_a), (b, tasks_b) in combinations(by_split.items(), 2):
        shared = sorted({t.id for t in tasks_a} & {t.id for t in tasks_b})
        if shared:
            report.problems.append(
                f"splits {a!r} and {b!r} share {len(shared)} task id(s): {_ids(shared)}"
            )
    return by_split


def _check_observation(obs: object, what: str, report: _Report) -> Observation | None:
    """Check one observation's types; return it when usable, else record why and return None."""
    if not isinstance(obs, Observation):
        report.problems.append(f"{what} must return an Observation, not {_type_name(obs)}")
        return None
    ok = True
    if not isinstance(obs.text, str) or not obs.text.strip():
        report.problems.append(
            f"{what}: observation text must be a non-empty str, got {obs.text!r}"
        )
        ok = False
    actions: Any = obs.actions
    if actions is not None:
        if not isinstance(actions, tuple | list) or not all(isinstance(a, str) for a in actions):
            report.problems.append(
                f"{what}: observation actions must be None or a tuple of str, got {actions!r}"
            )
            ok = False
        elif isinstance(actions, list):
            report.warnings.append(f"{what}: observation actions is a list; a tuple is expected")
    if not isinstance(obs.info, dict):
        report.problems.append(
            f"{what}: observation info must be a dict, not {_type_name(obs.info)}"
        )
        ok = False
    return obs if ok else None


def _check_transition(tr: object, what: str, report: _Report) -> Transition | None:
    """Check one transition's types; return it when usable, else record why and return None."""
    if not isinstance(tr, Transition):
        report.problems.append(f"{what} must return a Transition, not {_type_name(tr)}")
        return None
    n_problems = len(report.problems)
    reward: Any = tr.reward
    if type(reward) not in (int, float) or not math.isfinite(reward):
        report.problems.append(f"{what}: reward must be a finite number, got {reward!r}")
    for field in ("done", "success"):
        value = getattr(tr, field)
        if not isinstance(value, bool):
            report.problems.append(f"{what}: {field} must be a bool, not {_type_name(value)}")
    if not isinstance(tr.info, dict):
        report.problems.append(f"{what}: info must be a dict, not {_type_name(tr.info)}")
    obs = _check_observation(tr.observation, what, report)
    if obs is None or len(report.problems) > n_problems:
        return None
    if tr.success and not tr.done:
        report.warnings.append(f"{what}: success=True while done=False")
    return tr


def _pick(obs: Observation, rng: random.Random) -> str:
    return rng.choice(obs.actions) if obs.actions else "look"


def _check_task(
    domain: Domain, task: Task, limit: int | None, rng: random.Random, report: _Report
) -> None:
    """Determinism, types, step limit and close for one task (raises _Failed on a crash)."""
    label = f"task {task.id!r}"
    envs: list[TextEnv] = []
    try:
        first = report.call(f"{label}: make_env()", lambda: domain.make_env(task))
        envs.append(first)
        second = report.call(f"{label}: make_env()", lambda: domain.make_env(task))
        envs.append(second)
        what = f"{label}: reset()"
        obs = _check_observation(report.call(what, first.reset), what, report)
        again = _check_observation(report.call(what, second.reset), what, report)
        if obs is None or again is None:
            return
        if obs.actions == ():
            report.problems.append(
                f"{label}: reset() gives no admissible actions; use None when they are unknown"
            )
        _compare(obs, again, f"{label}: reset() on two fresh envs", report)

        for _ in range(_STEPS_CHECKED):
            action = _pick(obs, rng)
            what = f"{label}: step({action!r})"
            tr = _check_transition(report.call(what, partial(first.step, action)), what, report)
            if tr is None:
                return
            if tr.done:
                break
            obs = tr.observation
        what = f"{label}: reset() after step()"
        replay = _check_observation(report.call(what, first.reset), what, report)
        if replay is not None:
            _compare(replay, again, what, report)

        if limit is not None:
            _check_step_limit(domain, task, limit, rng, report, envs)
    finally:
        for env in envs:
            with contextlib.suppress(_Failed):
                report.call(f"{label}: close()", env.close)


def _actions(obs: Observation) -> tuple[str, ...] | None:
    return None if obs.actions is None else tuple(obs.actions)


def _compare(obs: Observation, expected: Observation, what: str, report: _Report) -> None:
    if obs.text != expected.text:
        report.problems.append(f"{what} is not deterministic: the observation text differs")
    elif _actions(obs) != _actions(expected):
        report.problems.append(f"{what} is not deterministic: the admissible actions differ")


def _check_step_limit(
    domain: Domain,
    task: Task,
    limit: int,
    rng: random.Random,
    report: _Report,
    envs: list[TextEnv],
) -> None:
    label = f"task {task.id!r}"
    env = report.call(f"{label}: make_env()", lambda: domain.make_env(task))
    envs.append(env)
    wrapped = StepLimit(env, limit)
    obs: Observation | None = report.call(f"{label}: reset()", wrapped.reset)
    for step in range(1, limit + 1):
        action = _pick(obs, rng) if isinstance(obs, Observation) else "look"
        what = f"{label}: step({action!r}) at step {step}"
        tr = _check_transition(report.call(what, partial(wrapped.step, action)), what, report)
        if tr is None or tr.done:
            return
        obs = tr.observation
    report.problems.append(f"{label}: not done after step_limit={limit} steps under StepLimit")
