"""The meta agent: analyse a design, implement its successor, write a first one, repair one.

Each step is one call to the meta model (the caller passes it metered with purpose ``meta``):
a system message with the meta agent's role, the domain description and the contract
reference (identical across steps, so endpoints can reuse their prompt cache; see
:mod:`alma.search.reference`), and a user message rendered from ``prompts/<step>.txt``.
``analyse`` answers with a validated :class:`~alma.search.proposal.Analysis`; the three steps
that write code answer in text that :func:`~alma.search.proposal.parse_implementation` reads.

``analyse`` reads a bounded sample of the parent's episodes (:mod:`alma.search.episode_sample`).
The sample is what gives way when the prompt would outgrow ``token_budget``; the contract and
the parent's code are always shown whole.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from alma.errors import MalformedOutputError
from alma.llm.base import LLM
from alma.llm.tokens import approx_message_tokens, approx_tokens
from alma.search.episode_sample import (
    DETAILS,
    SAFETY_TOKENS,
    EpisodeView,
    Sample,
    as_view,
    fill,
    fit_sample,
    interleave,
    sample_note,
)
from alma.search.proposal import (
    Analysis,
    Implementation,
    clip,
    clip_middle,
    design_class_name,
    parse_implementation,
    snake_case,
)
from alma.search.reference import prompt_template, requirements_text, system_text
from alma.types import Episode, Message


@dataclass(frozen=True)
class Temperatures:
    """Sampling temperature per step: careful reading, more varied writing, careful fixing."""

    analyse: float = 0.2
    implement: float = 0.7
    from_scratch: float = 0.8
    repair: float = 0.2


Answer = TypeVar("Answer", bound=BaseModel)
#: An episode as ``analyse`` takes it: a view, a recorded episode, or a dict (see
#: :class:`~alma.search.episode_sample.EpisodeView`).
EpisodeInput = EpisodeView | Episode | Mapping[str, Any]

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
        return Message("system", system_text(domain_description))

    def analyse_messages(
        self,
        parent_source: str,
        parent_name: str,
        score: float | None,
        reference_score: float | None,
        episodes: Sequence[EpisodeInput],
        domain_description: str,
    ) -> list[Message]:
        system = self.system_message(domain_description)
        views = [as_view(episode) for episode in episodes]
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
            smaller = fill(ordered, sample.detail, self.token_budget)
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
            requirements=requirements_text(),
        )
        return [self.system_message(domain_description), Message("user", text)]

    def from_scratch_messages(self, domain_description: str) -> list[Message]:
        text = prompt_template("from_scratch").substitute(requirements=requirements_text())
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
        episodes: Sequence[EpisodeInput],
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


def _tokens(*messages: Message) -> int:
    return approx_message_tokens(message.content for message in messages)
