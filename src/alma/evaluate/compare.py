"""Several designs on identical tasks, with paired comparisons against ``no_memory``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from alma.evaluate.protocol import Evaluator
from alma.evaluate.results import EvalResult
from alma.evaluate.statistics import PairedComparison, paired_bootstrap
from alma.evaluate.tasks import Selection
from alma.memory.loading import DesignSource, reference_design
from alma.types import Split

REFERENCE = "no_memory"


@dataclass(frozen=True)
class ComparisonRow:
    result: EvalResult
    versus_reference: PairedComparison | None  # None for the reference itself

    def per_episode(self, purpose: str, key: str) -> float:
        deploy = max(1, self.result.n_episodes)
        return float(self.result.usage.get(purpose, {}).get(key, 0)) / deploy

    def as_dict(self) -> dict[str, Any]:
        gain = self.versus_reference
        return {
            "design": self.result.design_name,
            "design_id": self.result.design_id,
            "status": self.result.status,
            "score": self.result.score if self.result.scored else None,
            "stderr": self.result.stderr,
            "ci95": list(self.result.ci95),
            "gain": None if gain is None else gain.gain,
            "gain_ci95": None if gain is None else [gain.ci_low, gain.ci_high],
            "p_value": None if gain is None else gain.p_value,
            "tokens_per_episode": self.per_episode("agent", "tokens")
            + self.per_episode("memory", "tokens"),
            "memory_tokens_per_episode": self.per_episode("memory", "tokens"),
            "memory_usd_per_episode": self.per_episode("memory", "cost_usd"),
            "cost_usd": self.result.cost_usd,
            "failed_memory_calls": self.result.memory.failed_calls,
            "error": self.result.error,
            "error_line": self.result.error_line,
        }


async def compare(
    evaluator: Evaluator,
    designs: Sequence[DesignSource],
    split: Split,
    *,
    quick: bool = False,
    on_episode: Callable[[], None] | None = None,
    tasks: Selection | None = None,
) -> list[ComparisonRow]:
    """Evaluate each design (and ``no_memory`` if absent) on the same tasks; compare to it."""
    chosen = list(designs)
    if not any(design.name == REFERENCE for design in chosen):
        chosen.insert(0, reference_design(REFERENCE))
    results = []
    for design in chosen:
        results.append(
            await evaluator.evaluate(design, split, quick=quick, on_episode=on_episode, tasks=tasks)
        )
    reference = next(r for r in results if r.design_name == REFERENCE)
    rows = []
    for result in results:
        versus = None
        if result is not reference and result.scored and reference.scored:
            versus = paired_bootstrap(result.task_scores(), reference.task_scores())
        rows.append(ComparisonRow(result, versus))
    return rows
