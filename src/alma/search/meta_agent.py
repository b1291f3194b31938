"""The meta agent: analyse a design, implement its successor, write a first one, repair one.

Each step is one structured call to the meta model (the caller passes it metered with purpose
``meta``): a system message with the meta agent's role, the domain description and the contract
reference (identical across steps, so endpoints can reuse their prompt cache), and a user message
rendered from ``prompts/<step>.txt``. Answers are validated pydantic objects: :class:`Analysis`
for ``analyse``, :class:`Implementation` for the three steps that write code.

``analyse`` reads a bounded sample of the parent's episodes. The sample is what gives way when
the prompt would outgrow ``token_budget``: fewer steps per trajectory, shorter observations and
memory dumps, then fewer episodes; the contract and the parent's code are always shown whole.
"""

from __future__ import annotations

import ast
import contextlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, field_validator

from alma.errors import MalformedOutputError
from alma.llm.base import LLM
from alma.llm.tokens import approx_message_tokens, approx_tokens
from alma.search.reference import (
    contract_reference,
    memory_chars,
    prompt_template,
    target_memory_chars,
)
from alma.types import Message

# --------------------------------------------------------------------------- schemas

Label = Literal["useful", "potentially useful", "irrelevant", "empty"]


class RetrievedPart(BaseModel):
    part: str = Field(description="a part of what retrieve returned: a key, or a kind of item")
    label: Label = Field(description="how the part served the agent")
    why: str = Field(description="the evidence, citing episode numbers")


class Change(BaseModel):
    priority: int = Field(description="1 for the most important change, then 2, 3, ...")
    what: str = Field(description="what to change in the code, specifically")
    why: str = Field(description="why, from the evidence")


class Analysis(BaseModel):
    """The meta agent's reading of a design's code and evaluation."""

    learned_from_memory: str = Field(
        description="what the agent took from memory and whether it helped"
    )
    retrieved_parts: list[RetrievedPart] = Field(
        description="each part of what retrieve returned, labelled"
    )
    content_problems: list[str] = Field(description="problems with what memory stores and returns")
    structure_problems: list[str] = Field(
        description="problems with how memory is organised, retrieved and updated"
    )
    changes: list[Change] = Field(description="prioritised changes, at most five")

    @field_validator("changes")
    @classmethod
    def _by_priority(cls, changes: list[Change]) -> list[Change]:
        return sorted(changes, key=lambda change: change.priority)


class Implementation(BaseModel):
    """A memory design as the meta agent wrote it.

    The steps that write code (implement, from scratch, repair) are answered as text, not JSON:
    a ``name:`` line, an ``idea:`` line, then the module in a fenced ``python`` block (see
    :func:`parse_implementation`). Code inside a JSON string is hard for small models to write
    (every newline and quote escaped) and costs tokens; a code block is what they write best.
    """

    name: str = Field(description="short snake_case name of the design")
    idea: str = Field(description="one line: what the design does or what is new in it")
    code: str = Field(description="the complete Python module, plain code without fences")

    @field_validator("name")
    @classmethod
    def _snake_case(cls, name: str) -> str:
        return snake_case(name)

    @field_validator("idea")
    @classmethod
    def _one_line(cls, idea: str) -> str:
        return one_line(idea)

    @field_validator("code")
    @classmethod
    def _plain_code(cls, code: str) -> str:
        return strip_fences(code)


_HEADER = re.compile(r"^[ \t*#>-]*(name|idea)[ \t*]*:[ \t*]*(.*)$", re.I | re.M)
_OPEN_FENCE = re.compile(r"^[ \t]*```[\w+-]*[ \t]*$", re.M)


def parse_implementation(text: str) -> Implementation:
    """The design in a text answer: ``name:`` and ``idea:`` lines, then a fenced code block.

    Tolerant of what models do: Markdown around the labels, prose before or after, a missing
    closing fence (an answer cut at the token cap keeps its code, which verification then
    judges), no fence at all when the whole answer is code. A missing name comes from the design
    class, a missing idea from its docstring's first line. Raises
    :class:`MalformedOutputError` only when there is no code at all.
    """
    fields: dict[str, str] = {}
    first_fence = _OPEN_FENCE.search(text)
    header = text[: first_fence.start()] if first_fence else ""
    for match in _HEADER.finditer(header):
        fields.setdefault(match.group(1).lower(), match.group(2).strip().strip("`*"))
    if first_fence is None:
        code = text if _parses(text.strip()) and "class " in text else ""
    else:
        blocks = _FENCE.findall(text[first_fence.start() :])
        # the module, not a JSON or shell snippet next to it
        classy = [block for block in blocks if "class " in block]
        code = max(classy or blocks, key=len) if blocks else text[first_fence.end() :]
    code = code.strip("\n").rstrip()
    if not code:
        raise MalformedOutputError(
            "the meta model's answer holds no code block",
            hint="the answer must end with the module in a ```python block",
        )
    class_name = design_class_name(code)
    name = fields.get("name") or (class_name or "design")
    idea = fields.get("idea") or _docstring_line(code) or "(no idea given)"
    return Implementation(name=name, idea=idea, code=code + "\n")


def render_implementation(implementation: Implementation) -> str:
    """The text form :func:`parse_implementation` reads."""
    return (
        f"name: {implementation.name}\nidea: {implementation.idea}\n\n"
        f"```python\n{implementation.code.rstrip()}\n```\n"
    )


def _docstring_line(code: str) -> str:
    with contextlib.suppress(SyntaxError, ValueError):
        tree = ast.parse(code)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                return one_line(ast.get_docstring(node) or "")
    return ""


# --------------------------------------------------------------------------- text cleaning

_FENCE = re.compile(r"^[ \t]*```[\w+-]*[ \t]*\n(.*?)^[ \t]*```[ \t]*$", re.S | re.M)
NAME_CHARS = 60
IDEA_CHARS = 240


def strip_fences(text: str) -> str:
    """Code without the Markdown fences (and surrounding prose) a model may wrap it in.

    Code that starts with a fence loses it (and the closing one); code that does not parse but
    contains fenced blocks becomes its longest block. Valid code is left alone, even when a
    string inside it contains backticks.
    """
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        body = stripped.rstrip()
        if body.endswith("```"):
            stripped = body[:-3]
        return stripped.strip("\n").rstrip() + "\n"
    if not _parses(stripped):
        blocks = _FENCE.findall(stripped)
        if blocks:
            return str(max(blocks, key=len)).strip("\n").rstrip() + "\n"
    return stripped + "\n" if stripped else ""


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def snake_case(name: str) -> str:
    """``KeyDoorMemory v2`` -> ``key_door_memory_v2``; never empty, starts with a letter."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name.strip())
    text = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if not text:
        return "design"
    if not text[0].isalpha():
        text = f"design_{text}"
    return text[:NAME_CHARS].rstrip("_")


def one_line(text: str, limit: int = IDEA_CHARS) -> str:
    """The first non-empty line, whitespace collapsed, clipped to ``limit`` characters."""
    for line in text.splitlines():
        if line.strip():
            return clip(line, limit)
    return ""


def clip(text: str, limit: int) -> str:
    """Whitespace collapsed, cut to ``limit`` characters with an ellipsis."""
    text = " ".join(text.split())
    if limit <= 0:
        return ""
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def clip_middle(text: str, limit: int) -> str:
    """Keep the head and the tail of a long text (line breaks kept), noting what was cut."""
    if len(text) <= limit:
        return text
    marker = "\n... ({} characters omitted) ...\n"
    room = max(0, limit - len(marker) - 8)
    head = room * 2 // 5
    tail = room - head
    omitted = len(text) - head - tail
    return text[:head] + marker.format(omitted) + (text[-tail:] if tail else "")


def design_class_name(code: str) -> str | None:
    """The name of the first class in ``code`` that lists ``MemoryDesign`` among its bases."""
    match = re.search(r"^class\s+(\w+)\s*\([^)]*MemoryDesign[^)]*\)", code, re.M)
    return match.group(1) if match else None


# --------------------------------------------------------------------------- episode sample


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

    Accepted input: the JSON form of :class:`alma.types.Episode` (``start``, ``steps``,
    ``outcome``, ``final_observation``, ``memory``, ``memory_truncated``), or a flat dict with
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
    failures = [view for view in views if not view.success]
    successes = [view for view in views if view.success]
    ordered: list[EpisodeView] = []
    for index in range(max(len(failures), len(successes))):
        ordered += failures[index : index + 1] + successes[index : index + 1]
    return ordered


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
    renders = [_fill(ordered, detail, room_tokens) for detail in DETAILS]
    chosen = next((r for r in renders if r.shown == total), None)
    if chosen is None:
        enough = min(total, max(MIN_EPISODES, math.ceil(total * MIN_SHARE)))
        chosen = next((r for r in renders if r.shown >= enough), renders[-1])
    return chosen


def _fill(ordered: Sequence[EpisodeView], detail: Detail, room_tokens: int) -> Sample:
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


# --------------------------------------------------------------------------- the agent


@dataclass(frozen=True)
class Temperatures:
    """Sampling temperature per step: careful reading, more varied writing, careful fixing."""

    analyse: float = 0.2
    implement: float = 0.7
    from_scratch: float = 0.8
    repair: float = 0.2


Answer = TypeVar("Answer", bound=BaseModel)

#: Analysis texts are clipped to these sizes in the implement prompt.
ANALYSIS_LIMITS = {"text": 1500, "item": 500, "items": 10, "changes": 8}


class MetaAgent:
    """The meta agent's four steps, each one structured call to ``llm``.

    ``token_budget`` bounds the prompt (system and user message, estimated with
    :func:`alma.llm.tokens.approx_tokens`) of ``analyse``, whose episode sample is cut to fit,
    and of ``repair``, whose error report is cut to fit. ``max_tokens`` and ``seed`` go to every
    call.
    """

    def __init__(
        self,
        llm: LLM,
        *,
        token_budget: int = 32_000,
        max_tokens: int | None = None,
        seed: int | None = None,
        temperatures: Temperatures | None = None,
    ) -> None:
        self.llm = llm
        self.token_budget = token_budget
        self.max_tokens = max_tokens
        self.seed = seed
        self.temperatures = temperatures or Temperatures()

    # ------------------------------------------------------------------ prompts
    def system_message(self, domain_description: str) -> Message:
        text = prompt_template("system").substitute(
            domain=domain_description.strip(), contract=contract_reference().strip()
        )
        return Message("system", text)

    def analyse_messages(
        self,
        parent_source: str,
        parent_name: str,
        score: float | None,
        reference_score: float | None,
        episodes: Sequence[Mapping[str, Any]],
        domain_description: str,
    ) -> list[Message]:
        system = self.system_message(domain_description)
        views = [EpisodeView.from_dict(episode) for episode in episodes]
        gain = (
            f"{score - reference_score:+.3f}"
            if score is not None and reference_score is not None
            else "unknown"
        )
        fields = {
            "name": parent_name,
            "score": _score(score),
            "reference_score": _score(reference_score),
            "gain": gain,
            "code": parent_source.strip("\n"),
        }

        def render(sample: Sample) -> Message:
            text = prompt_template("analyse").substitute(
                fields, sample=sample.text, sample_note=sample_note(sample)
            )
            return Message("user", text)

        empty = render(Sample("", 0, len(views), DETAILS[0]))
        fixed = approx_message_tokens(m.content for m in (system, empty))
        sample = fit_sample(views, self.token_budget - fixed - SAFETY_TOKENS)
        user = render(sample)
        # the estimate is conservative; this only guards against a note longer than reserved
        while sample.shown and _tokens(system, user) > self.token_budget:
            ordered = interleave(views)[: sample.shown - 1]
            assert sample.detail is not None
            smaller = _fill(ordered, sample.detail, self.token_budget)
            sample = Sample(smaller.text, smaller.shown, len(views), sample.detail)
            user = render(sample)
        return [system, user]

    def implement_messages(
        self,
        parent_source: str,
        analysis: Analysis,
        domain_description: str,
        *,
        parent_name: str = "parent",
    ) -> list[Message]:
        limits = ANALYSIS_LIMITS
        parts = [
            f"- [{part.label}] {clip(part.part, 120)}: {clip(part.why, limits['item'])}"
            for part in analysis.retrieved_parts[: limits["items"]]
        ]
        changes = [
            f"{index}. {clip(change.what, limits['item'] * 2)}\n"
            f"   Why: {clip(change.why, limits['item'])}"
            for index, change in enumerate(analysis.changes[: limits["changes"]], 1)
        ]
        text = prompt_template("implement").substitute(
            parent_name=parent_name,
            code=parent_source.strip("\n"),
            learned=clip(analysis.learned_from_memory, limits["text"]) or "(not stated)",
            parts="\n".join(parts) or "- (none listed)",
            content_problems=_bullets(analysis.content_problems),
            structure_problems=_bullets(analysis.structure_problems),
            changes="\n".join(changes)
            or "(no changes were planned: improve the weakest part of the design)",
            requirements=_requirements(),
        )
        return [self.system_message(domain_description), Message("user", text)]

    def from_scratch_messages(self, domain_description: str) -> list[Message]:
        text = prompt_template("from_scratch").substitute(requirements=_requirements())
        return [self.system_message(domain_description), Message("user", text)]

    def repair_messages(
        self,
        source: str,
        error_report: str,
        domain_description: str,
        *,
        name: str | None = None,
    ) -> list[Message]:
        system = self.system_message(domain_description)
        class_name = design_class_name(source)
        label = name or (snake_case(class_name) if class_name else "design")

        def render(error: str) -> Message:
            text = prompt_template("repair").substitute(
                name=label, code=source.strip("\n"), error=error
            )
            return Message("user", text)

        report = error_report.strip() or "(the verifier gave no details)"
        room = self.token_budget - _tokens(system, render(""))
        if approx_tokens(report) > room:
            report = clip_middle(report, max(400, room * 4 - 64))
        return [system, render(report)]

    # ------------------------------------------------------------------ steps
    async def analyse(
        self,
        parent_source: str,
        parent_name: str,
        score: float | None,
        reference_score: float | None,
        episodes: Sequence[Mapping[str, Any]],
        domain_description: str,
    ) -> Analysis:
        """Read a design's code and a sample of its episodes; plan its next version."""
        messages = self.analyse_messages(
            parent_source, parent_name, score, reference_score, episodes, domain_description
        )
        return await self._ask(messages, Analysis, self.temperatures.analyse)

    async def implement(
        self,
        parent_source: str,
        analysis: Analysis,
        domain_description: str,
        *,
        parent_name: str = "parent",
    ) -> Implementation:
        """Write the successor of a design from its analysis."""
        messages = self.implement_messages(
            parent_source, analysis, domain_description, parent_name=parent_name
        )
        return await self._write(messages, self.temperatures.implement)

    async def from_scratch(self, domain_description: str) -> Implementation:
        """Write a first design for a domain, from the contract alone."""
        messages = self.from_scratch_messages(domain_description)
        return await self._write(messages, self.temperatures.from_scratch)

    async def repair(
        self,
        source: str,
        error_report: str,
        domain_description: str,
        *,
        name: str | None = None,
    ) -> Implementation:
        """Fix a design that failed verification, given the verifier's report."""
        messages = self.repair_messages(source, error_report, domain_description, name=name)
        return await self._write(messages, self.temperatures.repair)

    async def _write(self, messages: list[Message], temperature: float) -> Implementation:
        """A step that writes code: a plain-text answer holding a code block."""
        completion = await self.llm.complete(
            messages, temperature=temperature, max_tokens=self.max_tokens, seed=self.seed
        )
        try:
            return parse_implementation(completion.text)
        except MalformedOutputError as error:
            raise MalformedOutputError(
                f"meta model {self.llm.model!r} gave no valid design: {error.message}",
                hint="use a stronger meta model, or raise learn.meta_max_tokens if it was cut",
            ) from None

    async def _ask(
        self, messages: list[Message], schema: type[Answer], temperature: float
    ) -> Answer:
        completion = await self.llm.complete(
            messages,
            schema=schema,
            temperature=temperature,
            max_tokens=self.max_tokens,
            seed=self.seed,
        )
        parsed = completion.parsed
        if not isinstance(parsed, schema):
            raise MalformedOutputError(
                f"meta model {self.llm.model!r} gave no valid {schema.__name__}",
                hint="use a stronger meta model, or one with structured output support",
            )
        return parsed


def _score(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not evaluated"
    return f"{value:.3f}"


def _bullets(items: Sequence[str]) -> str:
    limits = ANALYSIS_LIMITS
    lines = [f"- {clip(item, limits['item'])}" for item in items[: limits["items"]] if item]
    return "\n".join(lines) or "- (none listed)"


def _requirements() -> str:
    return (
        prompt_template("requirements")
        .substitute(memory_chars=memory_chars(), target_chars=target_memory_chars())
        .strip()
    )


def _tokens(*messages: Message) -> int:
    return approx_message_tokens(message.content for message in messages)
