"""The search inside a run (``alma learn``) and what a run's archive holds (``alma archive``,
``alma show``), as plain data; the command line draws it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alma import progress
from alma.config import AlmaConfig, load_config
from alma.domains.registry import configured_domain, prepare_tasks
from alma.errors import BudgetExceededError, UsageError
from alma.evaluate.records import evaluation_summary
from alma.evaluate.results import EvalResult
from alma.evaluate.tasks import select_tasks
from alma.memory.loading import DesignSource
from alma.run import Run, claim_domain
from alma.search.archive import Archive, DesignRecord
from alma.search.loop import Learner
from alma.search.state import Progress, Summary
from alma.store import DATABASE, RunStore

#: what a resumed run may change: how far it goes and where its models are, not what it means
RESUMABLE = {
    ("learn", "iterations"),
    ("budget", "usd"),
    ("budget", "tokens"),
    ("llm", "base_url"),
    ("llm", "cache"),
    ("sandbox", "unsafe_no_sandbox"),
    ("executor", "kind"),
    ("executor", "address"),
}


def resume_config(run_dir: Path, overrides: dict[str, Any]) -> AlmaConfig:
    """A run's own settings (its ``config.toml``), with what the command line may change.

    A flag that would change what the run means (another model, seed, task count, rollout...)
    is refused: the archive's scores would no longer be comparable with each other."""
    if not (run_dir / DATABASE).is_file():
        raise UsageError(f"{run_dir} is not a run directory", hint="give the folder a run wrote")
    stored = load_config(run_dir / "config.toml").model_dump()
    for section, values in overrides.items():
        for key, value in (values or {}).items():
            if value is None or (section, key) in RESUMABLE:
                continue
            was = stored.get(section, {}).get(key)
            if value != was:
                raise UsageError(
                    f"{run_dir} was started with {section}.{key} = {was!r}; a resumed run keeps "
                    f"its settings, so {value!r} is refused",
                    hint="drop the flag to go on with the run, or start a new run with it",
                )
    return load_config(run_dir / "config.toml", overrides)


def run_domain(run_dir: Path, asked: str | None) -> str:
    """The domain of a run to resume: the one it recorded (another one is refused)."""
    store = RunStore(run_dir)
    try:
        recorded = store.get_meta("domain")
    finally:
        store.close()
    if recorded is None:
        if asked is None:
            raise UsageError(f"{run_dir} does not record its domain", hint="name it with --domain")
        return asked
    if asked is not None and asked != recorded:
        raise UsageError(
            f"{run_dir} is a run of the {recorded!r} domain, not {asked!r}",
            hint="drop --domain to go on with the run, or start a new run for another domain",
        )
    return str(recorded)


@dataclass
class LearnOutcome:
    run_dir: Path
    summary: Summary
    config: AlmaConfig  # the run's settings (a resumed run's own)
    spend: dict[str, Any] = field(default_factory=dict)  # the run's ledger: by role and total


#: called after each iteration with its number and the archive's rows, best first
IterationHook = Callable[[int, list[dict[str, Any]]], None]


async def run_learn(
    config: AlmaConfig,
    domain_name: str,
    run_dir: Path | None,
    on_iteration: IterationHook | None = None,
    on_start: Callable[[Path], None] | None = None,
) -> LearnOutcome:
    """The search in a run (``run_dir``, or a new one); ``on_start`` gets the run's folder as
    soon as it is open, ``on_iteration`` the archive after each iteration."""
    domain = configured_domain(config, domain_name)
    learn = config.learn
    tasks = select_tasks(
        domain, learn.split, config.eval, quick=learn.quick, seed=config.run.seed
    )  # every evaluation of the search plays these: make their games now
    await asyncio.to_thread(prepare_tasks, domain, [*tasks[0], *tasks[1]])
    async with Run(config, run_dir, prefix="learn") as run:
        if on_start is not None:
            on_start(run.path)
        claim_domain(run, domain.name)
        state = Progress()
        spent = run.ledger

        def show(state: Progress) -> None:
            stages = ", ".join(f"{key} {stage}" for key, stage in state.stages.items())
            best = f"best {state.best[0]} {state.best[1]:.3f}" if state.best else "no score yet"
            where = f"iteration {state.iteration}/{state.iterations} | {stages or 'between steps'}"
            figures = f"${spent.total.cost_usd:.4f}, {spent.total.tokens:,} tokens | {best}"
            progress.status(where, figures)

        state.notify = show
        learner = Learner(run, domain, progress=state, tasks=tasks)
        if on_iteration is not None:
            state.iteration_done = lambda number: on_iteration(number, design_rows(learner.archive))
        try:
            summary = await learner.learn()
        except BudgetExceededError as error:
            summary = learner.summary(stopped=error.message)
        return LearnOutcome(run.path, summary, config, run.ledger.summary())


def open_archive(run_dir: Path, *, read_only: bool = False) -> tuple[RunStore, Archive]:
    """The run's store and archive; ``read_only`` for commands that only read, so that a run on
    a read-only disk can still be shown (see :class:`RunStore`)."""
    if not (run_dir / DATABASE).is_file():
        raise UsageError(f"{run_dir} is not a run directory", hint="give the folder a run wrote")
    store = RunStore(run_dir, read_only=read_only)
    try:
        return store, Archive(store)
    except BaseException:
        store.close()
        raise


def find_record(archive: Archive, design_id: str) -> DesignRecord:
    matches = [d for d in archive.designs() if d.id.startswith(design_id)]
    if len(matches) != 1:
        what = "no design" if not matches else f"{len(matches)} designs"
        raise UsageError(
            f"{what} with an id starting {design_id!r}", hint="`alma archive DIR` lists the ids"
        )
    return matches[0]


def archived_design(run_dir: Path, design_id: str) -> DesignSource:
    """The code of an archived design, to evaluate it again (on another split, say)."""
    store, archive = open_archive(run_dir)
    try:
        return find_record(archive, design_id).design()
    finally:
        store.close()


def record_in_archive(run_dir: Path, result: EvalResult) -> None:
    """Link an evaluation of an archived design to it, under its split's name."""
    store, archive = open_archive(run_dir)
    try:
        if archive.get(result.design_id) is not None and result.split != "train":
            archive.record_evaluation(result.design_id, result, role=result.split)
    finally:
        store.close()


def design_rows(archive: Archive) -> list[dict[str, Any]]:
    records = sorted(
        archive.designs(), key=lambda d: (d.score is None, -(d.score or 0.0), d.created)
    )
    return [record_row(archive, d) for d in records]


def record_row(archive: Archive, record: DesignRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "parent": record.parent,
        "origin": record.origin,
        "iteration": record.iteration,
        "status": record.status,
        "score": record.score,
        "stderr": record.stderr,
        "gain": archive.gain(record.id),
        "cost_usd": record.cost,
        "times_chosen": record.times_chosen,
        "idea": record.idea,
    }


def design_details(archive: Archive, design_id: str) -> dict[str, Any]:
    """Everything the archive knows of one design (``alma show``)."""
    record = find_record(archive, design_id)
    return {
        **record_row(archive, record),
        "source": record.design().source,
        "lineage": archive.lineage(record.id),
        "analyses_of_it": [a.analysis for a in archive.analyses(record.id)],
        "verifications": [
            {"attempt": v.attempt, "passed": v.passed, "report": v.report}
            for v in archive.verifications(record.id)
        ],
        "evaluations": [
            {
                "role": e.role,
                "key": e.key,
                "split": e.split,
                "score": e.score,
                "error": e.error,
                **evaluation_summary(archive.store, e.key),
            }
            for e in archive.evaluations(record.id)
        ],
    }
