"""The sample of a design's episodes that the meta agent reads when it analyses the design.

:func:`sample_episodes` takes a bounded sample of an evaluation's deploy episodes (typed
:class:`alma.types.Episode` values, read through the run store), failures and successes
alternately. :func:`fit_sample` renders it within a token budget: when the prompt would
outgrow it, the sample gives way first, with fewer steps per trajectory, shorter observations
and memory dumps, then fewer episodes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from alma.llm.tokens import approx_tokens
from alma.search.proposal import clip, clip_middle
from alma.store import RunStore
from alma.types import Episode

Item = TypeVar("Item")


@dataclass(frozen=True)
class Detail:
    """How much of each episode the sample shows."""

    max_steps: int  # trajectory lines; longer ones keep their beginning and end
    observation_chars: int  # per step (0: actions only)
    thought_chars: int  # per step (0: no thoughts)
    memory_chars: int  # the memory dump of each episode
    start_chars: int  # the first observation


#: From the most detailed to the most compact; the sample uses the first that fits.
DETAILS: tuple[Detail, ...] = (
    Detail(40, 300, 160, 3000, 600),
    Detail(30, 200, 100, 2000, 400),
    Detail(20, 120, 0, 1200, 300),
    Detail(12, 80, 0, 600, 200),
    Detail(8, 0, 0, 300, 120),
)
#: When not every episode fits, prefer the most detailed level that still shows this many
#: episodes (or this share of the sample, whichever is more).
MIN_EPISODES = 6
MIN_SHARE = 0.25
#: Prompt tokens kept free for the sample's header and the token estimate's slack.
SAFETY_TOKENS = 64


@dataclass(frozen=True)
class EpisodeStep:
    action: str
    result: str  # what the environment answered
    thought: str = ""
    valid: bool = True


@dataclass(frozen=True)
class EpisodeView:
    """An episode as the caller described it, in one shape.

    Accepted input: an :class:`alma.types.Episode` (:meth:`from_episode`), its JSON form
    (``start``, ``steps``, ``outcome``, ``final_observation``, ``memory``,
    ``memory_truncated``), or a flat dict with
    ``task``, ``success``, ``observation``, ``actions`` (a list of strings) or ``steps`` (a list of
    step dicts, or a count), ``memory``, ``reason``; other scalar keys (``phase``, ``repeat``...)
    are shown in the episode's header.
    """

    task: str
    success: bool
    observation: str = ""
    reason: str = ""
    step_count: int = 0
    steps: tuple[EpisodeStep, ...] = ()
    final_observation: str = ""
    memory: Any = None
    memory_truncated: bool = False
    error: str = ""
    invalid_actions: int = 0
    extras: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> EpisodeView:
        start = _mapping(data.get("start"))
        outcome = _mapping(data.get("outcome"))
        task = _text(data.get("task", start.get("task_description", "")))
        observation = _text(data.get("observation", start.get("observation", "")))
        success = bool(data.get("success", outcome.get("success", False)))
        reason = _text(data.get("reason", outcome.get("reason", "")))
        final = _text(data.get("final_observation", ""))
        raw_steps = data.get("steps")
        step_dicts = (
            [_step_mapping(s) for s in raw_steps] if isinstance(raw_steps, list | tuple) else []
        )
        if not step_dicts and isinstance(data.get("actions"), list | tuple):
            step_dicts = [_step_mapping(action) for action in data["actions"]]
        results = [_text(s.get("observation", "")) for s in step_dicts[1:]] + [final]
        results = results[: len(step_dicts)]
        steps = tuple(
            EpisodeStep(
                action=_text(s.get("action", "")),
                result=_text(s.get("result", result)),
                thought=_text(s.get("thought", "")),
                valid=bool(s.get("valid", True)),
            )
            for s, result in zip(step_dicts, results, strict=True)
        )
        count = raw_steps if isinstance(raw_steps, int) else outcome.get("steps", len(steps))
        extras = tuple(
            (str(key), clip(str(value), 60))
            for key, value in data.items()
            if key not in _KNOWN_KEYS and isinstance(value, str | int | float | bool)
        )
        return EpisodeView(
            task=task,
            success=success,
            observation=observation,
            reason=reason,
            step_count=_count(count) if isinstance(count, int | float) else len(steps),
            steps=steps,
            final_observation=final,
            memory=data.get("memory"),
            memory_truncated=bool(data.get("memory_truncated", False)),
            error=_text(data.get("error", outcome.get("error")) or ""),
            invalid_actions=_count(data.get("invalid_actions")),
            extras=extras,
        )

    @staticmethod
    def from_episode(episode: Episode, **extras: str | int | float | bool) -> EpisodeView:
        """A recorded episode, with ``extras`` (``phase="deploy"``...) shown in its header.

        The same view :meth:`from_dict` makes of the episode's JSON form, without the round
        trip through it.
        """
        steps = episode.steps
        results = [step.observation for step in steps[1:]] + [episode.final_observation]
        results = results[: len(steps)]
        outcome = episode.outcome
        shown = {"constrained": episode.constrained, **extras}
        return EpisodeView(
            task=episode.start.task_description,
            success=outcome.success,
            observation=episode.start.observation,
            reason=outcome.reason,
            step_count=_count(outcome.steps),
            steps=tuple(
                EpisodeStep(step.action, result, step.thought, step.valid)
                for step, result in zip(steps, results, strict=True)
            ),
            final_observation=episode.final_observation,
            memory=episode.memory,
            memory_truncated=episode.memory_truncated,
            error=outcome.error or "",
            invalid_actions=_count(episode.invalid_actions),
            extras=tuple((key, clip(str(value), 60)) for key, value in shown.items()),
        )


_KNOWN_KEYS = frozenset(
    (
        "start", "outcome", "task", "observation", "success", "reason", "final_observation",
        "steps", "actions", "memory", "memory_truncated", "error", "usage", "cost_usd",
        "invalid_actions",
    )
)  # fmt: skip


def _step_mapping(value: Any) -> Mapping[str, Any]:
    """A step as a dict; a bare string is an action."""
    return {"action": value} if isinstance(value, str) else _mapping(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def interleave(views: Sequence[EpisodeView]) -> list[EpisodeView]:
    """Failures and successes alternately (failures first), each in the given order, so a
    sample cut short keeps both kinds."""
    return _alternate(views, lambda view: view.success)


def _alternate(items: Sequence[Item], success: Callable[[Item], bool]) -> list[Item]:
    failures = [item for item in items if not success(item)]
    successes = [item for item in items if success(item)]
    ordered: list[Item] = []
    for index in range(max(len(failures), len(successes))):
        ordered += failures[index : index + 1] + successes[index : index + 1]
    return ordered


def sample_episodes(store: RunStore, eval_key: str | None, limit: int) -> list[EpisodeView]:
    """Up to ``limit`` deploy episodes of the evaluation ``eval_key`` (none without one),
    failures and successes alternately, each kind by repeat and task (not in the order they
    finished, which depends on timing: the same evaluation always gives the same sample)."""
    if eval_key is None or limit <= 0:
        return []
    deploy = sorted(
        store.episodes(eval_key, phase="deploy"), key=lambda stored: (stored.repeat, stored.task_id)
    )
    chosen = _alternate(deploy, lambda stored: stored.episode.outcome.success)[:limit]
    return [EpisodeView.from_episode(stored.episode, phase=stored.phase) for stored in chosen]


def as_view(episode: EpisodeView | Episode | Mapping[str, Any]) -> EpisodeView:
    """An episode in any accepted form (see :class:`EpisodeView`) as a view."""
    if isinstance(episode, EpisodeView):
        return episode
    if isinstance(episode, Episode):
        return EpisodeView.from_episode(episode)
    return EpisodeView.from_dict(episode)


def memory_dump(memory: Any) -> str:
    """What memory returned, compactly: one ``[key] value`` line per key, values as JSON."""
    if not isinstance(memory, Mapping):
        return memory if isinstance(memory, str) else _json(memory)
    return "\n".join(
        f"[{key}] {value if isinstance(value, str) else _json(value)}"
        for key, value in memory.items()
    )


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def render_episode(
    view: EpisodeView, number: int, detail: Detail, shown_memories: dict[str, int]
) -> str:
    """One episode of the sample. ``shown_memories`` maps memory dumps already shown to the
    episode that showed them, so a memory repeated across episodes is printed once."""
    outcome = "SUCCESS" if view.success else "FAILURE"
    facts = [f"{view.step_count} steps"]
    if view.reason:
        facts.insert(0, view.reason)
    if view.invalid_actions:
        facts.append(f"{view.invalid_actions} not admissible")
    facts += [f"{key}={value}" for key, value in view.extras]
    lines = [f"### Episode {number}: {outcome} ({', '.join(facts)})"]
    lines.append(f"Task: {clip(view.task, 400)}")
    if view.observation and detail.start_chars:
        lines.append(f"First observation: {clip(view.observation, detail.start_chars)}")
    lines.append(_memory_section(view, number, detail, shown_memories))
    lines.append("Trajectory (action -> what the environment answered):")
    lines += _trajectory(view, detail)
    if view.error:
        lines.append(f"Error: {clip(view.error, 300)}")
    return "\n".join(lines)


def _memory_section(
    view: EpisodeView, number: int, detail: Detail, shown_memories: dict[str, int]
) -> str:
    memory = view.memory
    if memory is None or memory == {} or memory == "":
        return "Memory returned: nothing ({})"
    dump = memory_dump(memory)
    keys = ", ".join(str(key) for key in memory) if isinstance(memory, Mapping) else "-"
    cut = "; cut to the agent's cap" if view.memory_truncated else ""
    header = f"Memory returned (keys: {keys}; {len(dump)} characters as JSON{cut})"
    if dump in shown_memories:
        return f"{header}: the same as in episode {shown_memories[dump]}"
    shown_memories[dump] = number
    body = dump if len(dump) <= detail.memory_chars else clip_middle(dump, detail.memory_chars)
    return f"{header}:\n{body}"


def _trajectory(view: EpisodeView, detail: Detail) -> list[str]:
    if not view.steps:
        return ["(no steps recorded)"]
    # runs of the same action with the same answer become one line
    runs: list[tuple[int, int, EpisodeStep]] = []
    for index, step in enumerate(view.steps, 1):
        if runs and (runs[-1][2].action, runs[-1][2].result) == (step.action, step.result):
            runs[-1] = (runs[-1][0], index, runs[-1][2])
        else:
            runs.append((index, index, step))
    lines = [_step_line(first, last, step, detail) for first, last, step in runs]
    if len(lines) > detail.max_steps:
        head = detail.max_steps // 2
        tail = detail.max_steps - head
        omitted = len(lines) - head - tail
        lines = [*lines[:head], f"... ({omitted} lines omitted) ...", *lines[-tail:]]
    return lines


def _step_line(first: int, last: int, step: EpisodeStep, detail: Detail) -> str:
    number = f"{first}" if first == last else f"{first}-{last}"
    line = f"{number}. {clip(step.action, 120) or '(no action)'}"
    if not step.valid:
        line += " [not an admissible action]"
    if detail.observation_chars and step.result:
        line += f" -> {clip(step.result, detail.observation_chars)}"
    if first != last:
        line += f" (x{last - first + 1})"
    if detail.thought_chars and step.thought:
        line += f"  [thought: {clip(step.thought, detail.thought_chars)}]"
    return line


@dataclass(frozen=True)
class Sample:
    """The rendered sample and what it shows."""

    text: str
    shown: int
    total: int
    detail: Detail | None


def fit_sample(views: Sequence[EpisodeView], room_tokens: int) -> Sample:
    """The most informative rendering of ``views`` within ``room_tokens``.

    The first (most detailed) level of :data:`DETAILS` that shows every episode wins; when none
    does, the most detailed level that shows at least ``MIN_EPISODES`` (or ``MIN_SHARE`` of
    them); else the most compact level with as many episodes as fit.
    """
    ordered = interleave(views)
    total = len(ordered)
    if total == 0:
        return Sample("(no episodes were recorded for this design)", 0, 0, None)
    renders = [fill(ordered, detail, room_tokens) for detail in DETAILS]
    chosen = next((r for r in renders if r.shown == total), None)
    if chosen is None:
        enough = min(total, max(MIN_EPISODES, math.ceil(total * MIN_SHARE)))
        chosen = next((r for r in renders if r.shown >= enough), renders[-1])
    return chosen


def fill(ordered: Sequence[EpisodeView], detail: Detail, room_tokens: int) -> Sample:
    """As many of ``ordered`` as fit in ``room_tokens`` at ``detail``, in order."""
    parts: list[str] = []
    used = 0
    shown_memories: dict[str, int] = {}
    for number, view in enumerate(ordered, 1):
        text = render_episode(view, number, detail, shown_memories)
        cost = approx_tokens(text + "\n\n")
        if used + cost > room_tokens:
            break
        parts.append(text)
        used += cost
    text = "\n\n".join(parts) if parts else "(no room left for episodes in the prompt budget)"
    return Sample(text, len(parts), len(ordered), detail)


def sample_note(sample: Sample) -> str:
    if sample.total == 0:
        return "No episodes were recorded."
    shown = (
        f"All {sample.total} sampled episodes"
        if sample.shown == sample.total
        else f"{sample.shown} of {sample.total} sampled episodes (the prompt has no room for more)"
    )
    note = f"{shown}, failures and successes alternating."
    detail = sample.detail
    if detail is None or sample.shown == 0:
        return note
    observations = (
        f"environment answers to {detail.observation_chars} characters"
        if detail.observation_chars
        else "actions only (no environment answers)"
    )
    return (
        f"{note} Each shows the task, what memory returned (up to {detail.memory_chars} "
        f"characters) and the trajectory: at most {detail.max_steps} lines, repeated steps "
        f"merged, {observations}."
    )
