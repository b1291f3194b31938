"""``alma learn``, ``alma archive`` and ``alma show``: the search and its results on screen."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alma.config import AlmaConfig, load_config
from alma.domains.registry import configured_domain, prepare_tasks
from alma.errors import BudgetExceededError, UsageError
from alma.evaluate.protocol import EvalResult, select_tasks
from alma.evaluate.records import evaluation_summary
from alma.memory.loading import DesignSource
from alma.run import Run, claim_domain
from alma.search.archive import Archive, DesignRecord
from alma.search.loop import Learner, Progress, Summary
from alma.store import DATABASE, RunStore

#: what a resumed run may change: how far it goes and where its models are, not what it means
RESUMABLE = {
    ("learn", "iterations"),
    ("budget", "usd"),
    ("budget", "tokens"),
    ("llm", "base_url"),
    ("llm", "cache"),
    ("sandbox", "unsafe_no_sandbox"),
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


async def run_learn(
    config: AlmaConfig, domain_name: str, run_dir: Path | None, console: Console | None
) -> LearnOutcome:
    domain = configured_domain(config, domain_name)
    learn = config.learn
    build, deploy = select_tasks(
        domain, learn.split, config.eval, quick=learn.quick, seed=config.run.seed
    )  # every evaluation of the search plays these: make their games now, with a progress bar
    await asyncio.to_thread(prepare_tasks, domain, [*build, *deploy], progress=console is not None)
    async with Run(config, run_dir, prefix="learn") as run:
        claim_domain(run, domain.name)
        # a spinner on a terminal; elsewhere (a log file, a pipe) a line at each change of stage
        status = console.status("starting") if console is not None and console.is_terminal else None
        progress = Progress()
        spent = run.ledger
        shown = {"stages": ""}

        def show(state: Progress) -> None:
            if console is None:
                return
            stages = ", ".join(f"{key} {stage}" for key, stage in state.stages.items())
            best = f"best {state.best[0]} {state.best[1]:.3f}" if state.best else "no score yet"
            where = f"iteration {state.iteration}/{state.iterations} | {stages or 'between steps'}"
            line = f"{where} | ${spent.total.cost_usd:.4f}, {spent.total.tokens:,} tokens | {best}"
            if status is not None:
                status.update(line)
            elif where != shown["stages"]:
                shown["stages"] = where
                console.print(escape(line), highlight=False)

        progress.notify = show
        learner = Learner(run, domain, progress=progress)

        def best_so_far(iteration: int) -> None:
            if console is not None:
                rows = design_rows(learner.archive)
                table = archive_table(learner.archive, rows, limit=5)
                table.title = f"after iteration {iteration}: best designs"
                console.print(table)

        progress.iteration_done = best_so_far
        try:
            if status is not None:
                with status:
                    summary = await learner.learn()
            else:
                summary = await learner.learn()
        except BudgetExceededError as error:
            summary = learner.summary(stopped=error.message)
        return LearnOutcome(run.path, summary)


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


def archive_table(archive: Archive, rows: list[dict[str, Any]], limit: int | None = None) -> Table:
    reference = archive.reference_score()
    title = "designs" + (f" (reference score {reference:.3f})" if reference is not None else "")
    table = Table(title=title)
    for column in ("id", "name", "parent", "origin", "it", "status", "score", "gain", "$"):
        table.add_column(column)
    for row in rows[:limit]:
        score = "-" if row["score"] is None else f"{row['score']:.3f} ± {row['stderr'] or 0:.3f}"
        gain = "-" if row["gain"] is None else f"{row['gain']:+.3f}"
        cost = "-" if row["cost_usd"] is None else f"{row['cost_usd']:.4f}"
        table.add_row(
            row["id"],
            row["name"],
            (row["parent"] or "-")[:12],
            row["origin"],
            str(row["iteration"]),
            row["status"],
            score,
            gain,
            cost,
        )
    return table


def show_design(console: Console, archive: Archive, design_id: str, as_json: bool) -> None:
    record = find_record(archive, design_id)
    analyses = [a.analysis for a in archive.analyses(record.id)]
    verifications = [
        {"attempt": v.attempt, "passed": v.passed, "report": v.report}
        for v in archive.verifications(record.id)
    ]
    evaluations = [
        {
            "role": e.role,
            "key": e.key,
            "split": e.split,
            "score": e.score,
            "error": e.error,
            **evaluation_summary(archive.store, e.key),
        }
        for e in archive.evaluations(record.id)
    ]
    if as_json:
        data = {
            **record_row(archive, record),
            "source": record.design().source,
            "lineage": archive.lineage(record.id),
            "analyses_of_it": analyses,
            "verifications": verifications,
            "evaluations": evaluations,
        }
        console.print_json(json.dumps(data, default=str))
        return
    row = record_row(archive, record)
    console.print(f"[bold]{record.name}[/] {record.id} ({record.origin}, {record.status})")
    console.print(f"idea: {record.idea or '-'}", highlight=False)
    console.print(f"lineage: {' -> '.join(archive.lineage(record.id))}")
    for evaluation in evaluations:
        score = evaluation["score"]
        verdict = f"{score:.3f}" if score is not None else f"no score ({evaluation['error']})"
        console.print(
            f"evaluation ({evaluation['role']}) on {evaluation.get('domain', '?')}/"
            f"{evaluation['split']}: {verdict}",
            markup=False,
            highlight=False,
        )
        for role, usage in evaluation.get("usage", {}).items():
            console.print(
                f"  {role:<6} {usage['calls']} calls, {usage['tokens']:,} tokens, "
                f"${usage['cost_usd']:.4f}, {usage['retries']} retries, "
                f"{usage['errors']} failed calls",
                highlight=False,
            )
    for attempt in verifications:
        verdict = "passed" if attempt["passed"] else "failed"
        console.print(f"verification attempt {attempt['attempt']}: {verdict}")
    if analyses:
        console.print("analysis of this design (latest):")
        console.print_json(json.dumps(analyses[-1]))
    console.print(f"gain over parent: {row['gain']}")
    console.rule("code")
    console.print(record.design().source, markup=False, highlight=False)
