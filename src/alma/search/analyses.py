"""The analyses of a finished search, as the original system's paper reports them.

- ``shift``: learning under distribution shift: the search's best learned design, the best
  reference design and ``no_memory`` on another split (by default out of distribution), with
  the run's own settings.
- ``transfer``: the same designs played by another acting model (a new run, the search's
  settings with that model), to see whether what was learned carries over.
- ``scaling``: success as memory grows: one design with build halves of 0, 2, 4, ... tasks and
  the same deploy tasks, so the only thing that changes is how much the memory has seen.

Cost efficiency (score against dollars, with its Pareto front) is in the report.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alma.config import AlmaConfig, load_config
from alma.domains.registry import configured_domain, prepare_tasks
from alma.errors import UsageError
from alma.evaluate.protocol import Evaluator
from alma.evaluate.results import EvalResult
from alma.evaluate.session import Outcome, run_evaluations
from alma.evaluate.tasks import select_tasks
from alma.memory.loading import DesignSource, reference_design
from alma.progress import Counter
from alma.run import Run, claim_domain
from alma.search.loop import FALLBACK_REFERENCE, REFERENCE
from alma.search.session import (
    find_record,
    open_archive,
    record_in_archive,
    resume_config,
    run_domain,
)
from alma.types import Split


def _designs(run_dir: Path) -> list[DesignSource]:
    """The search's answer: its best learned design and its best reference design (trajectory
    retrieval when none was evaluated)."""
    store, archive = open_archive(run_dir, read_only=True)
    try:
        ranked = archive.best(len(archive))
        learned = [d.design() for d in ranked if d.origin == "generated"]
        references = [d.design() for d in ranked if d.origin == "reference"]
    finally:
        store.close()
    references = [d for d in references if d.name != REFERENCE]
    if not learned:
        raise UsageError(
            f"{run_dir} has no evaluated learned design yet", hint="let the search run first"
        )
    return [learned[0], references[0] if references else reference_design(FALLBACK_REFERENCE)]


async def shift(run_dir: Path, split: Split = "eval_out_of_distribution") -> Outcome:
    """The best designs and ``no_memory`` on ``split``, in the run (linked to the designs)."""
    config, domain = resume_config(run_dir, {}), run_domain(run_dir, None)
    outcome = await run_evaluations(
        config,
        domain,
        list(_designs(run_dir)),
        split,
        quick=config.learn.quick,
        run_dir=run_dir,
        comparison=True,
    )
    for result in outcome.results:
        if result.scored:
            record_in_archive(run_dir, result)
    return outcome


async def transfer(
    run_dir: Path, agent_model: str, split: Split | None = None, into: Path | None = None
) -> Outcome:
    """The best designs and ``no_memory`` played by ``agent_model`` (memory calls too, unless
    the run named its own memory model), on the held-out split, in a new run ``into``."""
    stored = resume_config(run_dir, {})
    config = load_config(run_dir / "config.toml", {"models": {"agent": agent_model}})
    chosen = split or (stored.learn.held_out if stored.learn.held_out != "none" else "train")
    return await run_evaluations(
        config,
        run_domain(run_dir, None),
        list(_designs(run_dir)),
        chosen,
        quick=config.learn.quick,
        run_dir=into,
        comparison=True,
    )


@dataclass
class ScalingPoint:
    build_tasks: int
    design: EvalResult
    reference: EvalResult

    def as_dict(self) -> dict[str, Any]:
        return {
            "build_tasks": self.build_tasks,
            "design": self.design.as_dict(),
            "no_memory": self.reference.as_dict(),
        }


@dataclass
class Scaling:
    run_dir: Path
    design: str
    split: str
    points: list[ScalingPoint] = field(default_factory=list)


async def scaling(
    run_dir: Path,
    design_id: str | None = None,
    sizes: tuple[int, ...] = (0, 1, 2, 4),
    split: Split | None = None,
) -> Scaling:
    """One design (the best learned one by default) with growing build halves, the deploy
    tasks held fixed, beside ``no_memory`` on the same deploy tasks; stored in the run."""
    config: AlmaConfig = resume_config(run_dir, {})
    domain = configured_domain(config, run_domain(run_dir, None))
    chosen = split or (config.learn.held_out if config.learn.held_out != "none" else "train")
    store, archive = open_archive(run_dir, read_only=True)
    try:
        design = find_record(archive, design_id).design() if design_id else _designs(run_dir)[0]
    finally:
        store.close()
    build, deploy = select_tasks(domain, chosen, config.eval, quick=False, seed=config.run.seed)
    if max(sizes) > len(build) or min(sizes) < 0:
        raise UsageError(
            f"build sizes must be between 0 and {len(build)} (the split's build half)",
            hint="pass smaller --sizes, or more --tasks in the run's settings",
        )
    await asyncio.to_thread(prepare_tasks, domain, [*build, *deploy])
    result = Scaling(run_dir, design.name, chosen)
    async with Run(config, run_dir, prefix="learn") as run:
        claim_domain(run, domain.name)
        evaluator = Evaluator(run, domain)
        episodes = sum(2 * (size + config.eval.repeats * len(deploy)) for size in sizes)
        with Counter(f"{domain.name}/{chosen} scaling episodes", episodes) as counted:
            for size in sizes:
                tasks = (build[:size], deploy)
                played = [
                    await evaluator.evaluate(d, chosen, tasks=tasks, on_episode=counted.advance)
                    for d in (design, reference_design(REFERENCE))
                ]
                result.points.append(ScalingPoint(size, played[0], played[1]))
    return result
