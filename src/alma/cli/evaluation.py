"""``alma play``, ``alma eval``, ``alma compare`` and ``alma check``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from alma import api
from alma.cli import views
from alma.cli.options import (
    AgentModel,
    BaseUrl,
    BudgetTokens,
    BudgetUsd,
    DomainOption,
    Embedder,
    EpisodesConcurrency,
    Executor,
    InProcess,
    JsonFlag,
    MaxSteps,
    MemoryModel,
    NoCache,
    Quick,
    RayAddress,
    RetrieveConcurrency,
    Rollout,
    RunDir,
    Seed,
    SplitOption,
    Tasks,
    Unsafe,
    UpdateConcurrency,
    check_split,
    out,
    print_json,
    progress_shown,
    say_models,
    settings,
)
from alma.errors import AlmaError, BudgetExceededError
from alma.types import Episode, to_dict


def play(
    domain: DomainOption,
    task: Annotated[str | None, typer.Option("--task", help="task id (default: by seed)")] = None,
    split: Annotated[str, typer.Option("--split", help="split to draw the task from")] = "train",
    agent_model: AgentModel = None,
    base_url: BaseUrl = None,
    budget_usd: BudgetUsd = None,
    budget_tokens: BudgetTokens = None,
    no_cache: NoCache = False,
    seed: Seed = None,
    max_steps: MaxSteps = None,
    run_dir: RunDir = None,
    render: Annotated[
        bool, typer.Option("--render", help="draw the game after each step (if it can)")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Play one episode of a domain with the acting agent (no memory)."""
    config = settings(locals())
    say_models(config, ("agent",), not as_json)
    drawn: list[str] = []

    def draw(frame: str) -> None:  # as the agent plays
        title = "start" if not drawn else f"after step {len(drawn)}"
        drawn.append(frame)
        out.print(f"[bold]{title}[/]")
        out.print(frame, markup=False, highlight=False)

    with progress_shown(not as_json) as listener:
        result = asyncio.run(
            api.play(
                config,
                domain,
                task_id=task,
                split=check_split(split),
                run_dir=run_dir,
                render=render,
                on_frame=None if as_json else draw,
                on_progress=listener,
            )
        )
    episode: Episode = result.episode
    if as_json:
        print_json(
            {
                "run_dir": str(result.run_dir),
                "domain": domain,
                "task": result.task_id,
                "split": split,
                "model": config.models.agent,
                "success": episode.outcome.success,
                "reason": episode.outcome.reason,
                "steps_used": episode.outcome.steps,
                "tokens": episode.usage.total_tokens,
                "cost_usd": episode.cost_usd,
                "ledger": result.ledger,
                "episode": to_dict(episode),
                **({"frames": list(result.frames)} if render else {}),
            }
        )
    else:
        views.show_episode(out, episode, result.task_id)
        out.print(f"run saved in {result.run_dir}")
    finish(episode)


def finish(episode: Episode) -> None:
    """Turn an episode that ended early into the right exit code."""
    if episode.outcome.reason == "budget":
        raise BudgetExceededError(
            f"stopped: {episode.outcome.error}; the partial episode and the ledger are saved",
            hint="raise --budget-usd / --budget-tokens to go further",
        )
    if episode.outcome.reason == "error":
        raise AlmaError(
            f"episode failed: {episode.outcome.error}; what ran is saved",
            hint="run with --debug or --verbose for details",
        )


def evaluate(
    domain: DomainOption,
    memory: Annotated[str | None, typer.Option("--memory", help="reference design name")] = None,
    design: Annotated[
        str | None, typer.Option("--design", help="design file (.py), or an id in --run-dir")
    ] = None,
    split: SplitOption = "eval_in_distribution",
    rollout: Rollout = None,
    quick: Quick = False,
    tasks: Tasks = None,
    agent_model: AgentModel = None,
    memory_model: MemoryModel = None,
    embedder: Embedder = None,
    base_url: BaseUrl = None,
    budget_usd: BudgetUsd = None,
    budget_tokens: BudgetTokens = None,
    no_cache: NoCache = False,
    seed: Seed = None,
    max_steps: MaxSteps = None,
    max_episodes_concurrency: EpisodesConcurrency = None,
    max_update_concurrency: UpdateConcurrency = None,
    max_retrieve_concurrency: RetrieveConcurrency = None,
    run_dir: RunDir = None,
    unsafe: Unsafe = False,
    executor: Executor = None,
    ray_address: RayAddress = None,
    in_process: InProcess = False,
    as_json: JsonFlag = False,
) -> None:
    """Score one memory design with the evaluation protocol (build, then deploy x3)."""
    if (memory is None) == (design is None):
        raise typer.BadParameter("give exactly one of --memory NAME or --design FILE.py")
    config = settings(locals())
    say_models(config, ("agent", "memory"), not as_json)
    (chosen,) = designs_named([memory or design or ""], run_dir)
    with progress_shown(not as_json) as listener:
        outcome = asyncio.run(
            api.evaluate(
                config,
                domain,
                chosen,
                check_split(split),
                quick=quick,
                run_dir=run_dir,
                on_progress=listener,
            )
        )
    if not outcome.results:  # the budget stopped the evaluation before it was recorded
        if as_json:
            print_json({"run_dir": str(outcome.run_dir), "stopped": outcome.stopped})
        stopped_by_budget(outcome.stopped, outcome.run_dir)
    result = outcome.results[0]
    if as_json:
        print_json({**result.as_dict(), "run_dir": str(outcome.run_dir)})
    else:
        views.show_result(out, result)
        out.print(f"run saved in {outcome.run_dir}")
    stopped_by_budget(outcome.stopped, outcome.run_dir)
    unscored(outcome.results, outcome.run_dir)


def designs_named(names: list[str], run_dir: Path | None) -> list[str | api.DesignSource]:
    """Each name as a design: a reference design's name or a ``.py`` file stay as they are; any
    other name, with ``--run-dir`` a learn run, is the id (or its first characters) of one of
    its archived designs, which is then labelled by its name."""
    if run_dir is None or not (run_dir / "alma.sqlite").is_file():
        return list(names)
    chosen: list[str | api.DesignSource] = []
    with api.open_run(run_dir) as run:
        for name in names:
            if name in api.reference_names() or Path(name).is_file():
                chosen.append(name)
            else:
                chosen.append(run.source(name))
    return chosen


def stopped_by_budget(stopped: str | None, run_dir: Path) -> None:
    """Exit 3 with the budget line when the budget stopped the work."""
    if stopped:
        raise BudgetExceededError(
            f"stopped: {stopped}; finished episodes are saved in {run_dir}",
            hint="raise --budget-usd / --budget-tokens and run the same command with "
            f"--run-dir {run_dir}: only the missing episodes are played",
        )


def unscored(results: list[Any], run_dir: Path) -> None:
    """Exit 1 with one line when an evaluation gave no score (a broken design, or episodes that
    could not finish)."""
    for result in results:
        if result.status == "incomplete":
            raise AlmaError(
                f"the evaluation of {result.design_name} is incomplete, so it has no score: "
                f"{result.error}",
                hint=f"fix the cause and run the same command with --run-dir {run_dir}: only "
                "the episodes that did not finish are played again",
            )
    for result in results:
        if result.status == "design_failed":
            raise AlmaError(
                f"the design {result.design_name} failed: {result.error}",
                hint="`alma check FILE.py` runs it on its own; see the run database for details",
            )


def compare(
    domain: DomainOption,
    memories: Annotated[
        str,
        typer.Option(
            "--memories", help="comma-separated design names, .py files or ids in --run-dir"
        ),
    ],
    split: SplitOption = "eval_in_distribution",
    rollout: Rollout = None,
    quick: Quick = False,
    tasks: Tasks = None,
    agent_model: AgentModel = None,
    memory_model: MemoryModel = None,
    embedder: Embedder = None,
    base_url: BaseUrl = None,
    budget_usd: BudgetUsd = None,
    budget_tokens: BudgetTokens = None,
    no_cache: NoCache = False,
    seed: Seed = None,
    max_steps: MaxSteps = None,
    max_episodes_concurrency: EpisodesConcurrency = None,
    run_dir: RunDir = None,
    unsafe: Unsafe = False,
    executor: Executor = None,
    ray_address: RayAddress = None,
    in_process: InProcess = False,
    as_json: JsonFlag = False,
) -> None:
    """Evaluate several designs on identical tasks; compare each with no_memory."""
    names = [name.strip() for name in memories.split(",") if name.strip()]
    if not names:
        raise typer.BadParameter("name at least one design", param_hint="--memories")
    config = settings(locals())
    say_models(config, ("agent", "memory"), not as_json)
    with progress_shown(not as_json) as listener:
        outcome = asyncio.run(
            api.compare(
                config,
                domain,
                designs_named(names, run_dir),
                check_split(split),
                quick=quick,
                run_dir=run_dir,
                on_progress=listener,
            )
        )
    if as_json:
        print_json({"run_dir": str(outcome.run_dir), "rows": [r.as_dict() for r in outcome.rows]})
    else:
        views.show_comparison(out, outcome.rows, split)
        out.print(f"run saved in {outcome.run_dir}")
    stopped_by_budget(outcome.stopped, outcome.run_dir)
    unscored(outcome.results, outcome.run_dir)


def check(
    design: Annotated[Path, typer.Argument(help="design file (.py)")],
    unsafe: Unsafe = False,
    as_json: JsonFlag = False,
) -> None:
    """Verify a design: static checks, then a smoke run in the sandbox."""
    report = asyncio.run(api.check(settings(locals()), design))
    if as_json:
        print_json(report.as_dict())
    else:
        verdict = "[green]passed[/]" if report.passed else "[red]failed[/]"
        out.print(f"[bold]{escape(str(design))}[/]: {verdict} ({report.seconds:.2f} s)")
        for finding in report.findings:
            colour = "red" if finding.severity == "error" else "yellow"
            where = f"{design}:{finding.line}: " if finding.line else ""
            out.print(
                f"  [{colour}]{finding.severity}[/] {where}{finding.message}", highlight=False
            )
        for step, result in report.smoke.items():
            mark = "[green]ok[/]" if result == "ok" else f"[red]{result}[/]"
            out.print(f"  smoke {step}: {mark}", highlight=False)
    if not report.passed:
        raise typer.Exit(1)
