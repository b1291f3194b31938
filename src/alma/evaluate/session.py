"""Evaluations inside a run (``alma eval`` and ``alma compare``), their progress counted in
episodes (see :mod:`alma.progress`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from alma.config import AlmaConfig
from alma.domains.registry import configured_domain, domain_label, prepare_tasks
from alma.errors import BudgetExceededError
from alma.evaluate.compare import ComparisonRow, compare
from alma.evaluate.protocol import Evaluator
from alma.evaluate.results import EvalResult
from alma.evaluate.tasks import select_tasks
from alma.memory.loading import DesignSource, resolve_design
from alma.progress import Counter
from alma.run import Run, claim_domain
from alma.sandbox.runner import started_factory
from alma.types import Split


@dataclass
class Outcome:
    run_dir: Path
    results: list[EvalResult] = field(default_factory=list)
    rows: list[ComparisonRow] = field(default_factory=list)
    stopped: str | None = None  # why the work stopped early (the budget)


async def run_evaluations(
    config: AlmaConfig,
    domain_name: str,
    specs: Sequence[str | DesignSource],
    split: Split,
    *,
    quick: bool,
    run_dir: Path | None,
    comparison: bool,
) -> Outcome:
    domain = configured_domain(config, domain_name)
    # fail on a bad name before any work
    designs = [spec if isinstance(spec, DesignSource) else resolve_design(spec) for spec in specs]
    tasks = select_tasks(domain, split, config.eval, quick=quick, seed=config.run.seed)
    build, deploy = tasks
    await asyncio.to_thread(prepare_tasks, domain, [*build, *deploy])
    factory = await started_factory(config, run_dir)  # its worker boots while the run opens
    per_design = len(build) + config.eval.repeats * len(deploy)
    count = len(designs) + (comparison and all(d.name != "no_memory" for d in designs))
    try:
        async with Run(config, run_dir, prefix="compare" if comparison else "eval") as run:
            claim_domain(run, domain.name)
            outcome = Outcome(run.path)
            evaluator = Evaluator(run, domain, runner_factory=factory)
            progress = Counter(f"{domain_label(domain)}/{split} episodes", per_design * count)

            with progress:
                try:
                    if comparison:
                        outcome.rows = await compare(
                            evaluator,
                            designs,
                            split,
                            quick=quick,
                            on_episode=progress.advance,
                            tasks=tasks,
                        )
                        outcome.results = [row.result for row in outcome.rows]
                    else:
                        outcome.results = [
                            await evaluator.evaluate(
                                designs[0],
                                split,
                                quick=quick,
                                on_episode=progress.advance,
                                tasks=tasks,
                            )
                        ]
                except BudgetExceededError as error:
                    outcome.stopped = error.message
            return outcome
    finally:
        await factory.close()  # the spare worker, if no design took it
