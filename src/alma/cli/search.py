"""``alma learn``, ``alma archive`` and ``alma show``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from alma import api
from alma.cli import views
from alma.cli.options import (
    AgentModel,
    BaseUrl,
    BudgetTokens,
    BudgetUsd,
    D,
    Embedder,
    Executor,
    JsonFlag,
    MaxSteps,
    MemoryModel,
    MetaModel,
    NoCache,
    Quick,
    RayAddress,
    Rollout,
    RunDir,
    Seed,
    Unsafe,
    chosen,
    err,
    out,
    print_json,
    progress_shown,
    say_models,
    state,
)
from alma.errors import BudgetExceededError


def learn(
    domain: Annotated[
        str | None,
        typer.Option("--domain", "-d", help="domain (see alma domains); a resumed run knows it"),
    ] = None,
    iterations: Annotated[
        int | None,
        typer.Option("--iterations", help=f"search iterations (default: {D.learn.iterations})"),
    ] = None,
    meta_model: MetaModel = None,
    agent_model: AgentModel = None,
    memory_model: MemoryModel = None,
    embedder: Embedder = None,
    base_url: BaseUrl = None,
    train_size: Annotated[
        int | None,
        typer.Option("--train-size", "--tasks", help="train tasks per evaluation (default: 20)"),
    ] = None,
    rollout: Rollout = None,
    quick: Quick = False,
    selector: Annotated[
        str | None,
        typer.Option(
            "--selector", help=f"alma, greedy, uniform or novelty (default: {D.learn.selector})"
        ),
    ] = None,
    parents: Annotated[
        int | None,
        typer.Option(
            "--parents-per-iteration",
            help=f"parents per iteration (default: {D.learn.parents_per_iteration})",
        ),
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(
            "--temperature", help=f"softness of parent selection (default: {D.learn.temperature})"
        ),
    ] = None,
    seed_designs: Annotated[
        str | None,
        typer.Option(
            "--seed-designs",
            help=f"none or baselines (the reference designs) (default: {D.learn.seed_designs})",
        ),
    ] = None,
    max_repairs: Annotated[
        int | None,
        typer.Option(
            "--max-repairs", help=f"repair rounds per design (default: {D.learn.max_repairs})"
        ),
    ] = None,
    seed_design: Annotated[
        list[Path] | None,
        typer.Option("--seed-design", help="your design file to start from (repeatable)"),
    ] = None,
    budget_usd: BudgetUsd = None,
    budget_tokens: BudgetTokens = None,
    no_cache: NoCache = False,
    seed: Seed = None,
    max_steps: MaxSteps = None,
    run_dir: RunDir = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="run directory to go on with")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="print what the search would run and spend, then stop"),
    ] = False,
    unsafe: Unsafe = False,
    executor: Executor = None,
    ray_address: RayAddress = None,
    as_json: JsonFlag = False,
) -> None:
    """Search for memory designs: analyse, implement, verify, evaluate, archive; repeat."""
    flags = chosen(locals())
    flags["learn"]["quick"] = True if quick else None
    if seed_design:  # absolute, so that a resumed run finds them from anywhere
        flags["learn"]["seed_files"] = [str(path.resolve()) for path in seed_design]
    if resume is None and domain is None:
        raise typer.BadParameter("name the domain to search on", param_hint="--domain")

    if resume is not None:
        config, domain = api.resumed_settings(resume, api.overrides(**flags), domain)
        run_dir = resume
    else:
        config = api.configure(state.config_path, **flags)
    assert domain is not None
    if dry_run:
        planned = api.estimate(config, domain)
        if as_json:
            print_json(planned)
        else:
            views.show_estimate(out, planned)
        return
    say_models(config, ("meta", "agent", "memory"), not as_json)

    def best_so_far(iteration: int, rows: list[dict[str, Any]]) -> None:
        if iteration < config.learn.iterations:  # the last one's table is the final one
            table = views.archive_table(rows, None, limit=5)
            table.title = f"after iteration {iteration}: best designs"
            err.print(table)

    def started(path: Path) -> None:
        state.resume_hint = f"go on with: alma learn --resume {path}"

    with progress_shown(not as_json) as listener:
        outcome = asyncio.run(
            api.learn(
                config,
                domain,
                run_dir=run_dir,
                on_progress=listener,
                on_iteration=None if as_json else best_so_far,
                on_start=started,
            )
        )
    summary = outcome.summary
    with api.open_run(outcome.run_dir) as run:
        rows = run.designs()
        if as_json:
            print_json(
                {
                    "run_dir": str(outcome.run_dir),
                    "iterations_done": summary.iterations_done,
                    "reference_score": summary.reference_score,
                    "stopped": summary.stopped,
                    "designs": rows,
                    "held_out": [row.as_dict() for row in summary.held_out],
                    "spend": outcome.spend,
                }
            )
        else:
            out.print(views.archive_table(rows, run.reference_score(), limit=15))
            if summary.held_out:
                split = f"held-out {outcome.config.learn.held_out} tasks"
                views.show_comparison(out, summary.held_out, split)
            views.show_spend(out, outcome.spend)
            out.print(f"run saved in {outcome.run_dir}; resume with --resume {outcome.run_dir}")
            out.print(f"report: {outcome.run_dir / 'report.html'} (offline; kept up to date)")
    if summary.stopped:
        raise BudgetExceededError(
            f"stopped: {summary.stopped}; the archive is saved",
            hint=f"raise the budget and run again with --resume {outcome.run_dir}",
        )


def archive(
    run_dir: Annotated[Path, typer.Argument(help="run directory of alma learn")],
    as_json: JsonFlag = False,
) -> None:
    """List the designs of a run, best first."""
    with api.open_run(run_dir) as run:
        rows = run.designs()
        if as_json:
            print_json(rows)
        else:
            out.print(views.archive_table(rows, run.reference_score()))


def show(
    run_dir: Annotated[Path, typer.Argument(help="run directory of alma learn")],
    design_id: Annotated[str, typer.Argument(help="design id (or its first characters)")],
    as_json: JsonFlag = False,
) -> None:
    """Print a design: code, lineage, analysis, verification history, evaluations."""
    with api.open_run(run_dir) as run:
        data = run.design(design_id)
    if as_json:
        print_json(data)
    else:
        views.show_design(out, data)
