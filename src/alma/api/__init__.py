"""alma as a library: the front door the command line uses, usable from Python and notebooks.

Every function that does work is a coroutine (``await`` it in a notebook, ``asyncio.run`` it in
a script) and writes a run directory, exactly as the matching command does::

    import asyncio
    from alma import api

    config = api.configure(agent_model="scripted", memory_model="scripted")
    outcome = asyncio.run(api.compare(config, "toy", ["no_memory", "reasoning_bank"]))
    for row in outcome.rows:
        print(row.result.design_name, row.result.score, row.gain, row.p_value)

Progress (episodes played, games generated, the search's stage) goes to ``on_progress`` as
:class:`alma.progress.ProgressEvent` values; nothing is drawn below this module. Errors are
:class:`alma.errors.AlmaError` values with a one-line message and a hint.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from alma.agent.play import PlayResult, play_one
from alma.api.installed import (
    domain_install_steps,
    domain_installed,
    domains,
    embedded_models,
    install_model,
    models,
    prepare_domain,
    settings_table,
)
from alma.config import AlmaConfig, load_config
from alma.domains.base import PrepareReport
from alma.evaluate.compare import ComparisonRow
from alma.evaluate.results import EvalResult
from alma.evaluate.session import Outcome, run_evaluations
from alma.memory.check import CheckReport
from alma.memory.loading import DesignSource, reference_names
from alma.progress import Listener, listening
from alma.sandbox.session import check_file
from alma.search.archive import Archive
from alma.search.session import (
    IterationHook,
    LearnOutcome,
    design_details,
    design_rows,
    find_record,
    open_archive,
    record_in_archive,
    resume_config,
    run_domain,
    run_learn,
)
from alma.store import RunStore
from alma.types import Split

__all__ = [
    "AlmaConfig",
    "CheckReport",
    "ComparisonRow",
    "DesignSource",
    "EvalResult",
    "LearnOutcome",
    "Outcome",
    "PlayResult",
    "PrepareReport",
    "RunView",
    "analyse_scaling",
    "analyse_shift",
    "analyse_transfer",
    "check",
    "compare",
    "configure",
    "domain_install_steps",
    "domain_installed",
    "domains",
    "embedded_models",
    "estimate",
    "evaluate",
    "export",
    "install_model",
    "learn",
    "models",
    "open_run",
    "overrides",
    "play",
    "prepare_domain",
    "reference_names",
    "report",
    "resume",
    "resumed_settings",
    "settings_table",
]


def overrides(
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
    max_steps: int | None = None,
    unsafe: bool = False,
    in_process: bool = False,
    executor: str | None = None,
    ray_address: str | None = None,
    eval: dict[str, Any] | None = None,
    learn: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The settings a caller chose, nested like ``alma.toml``; None leaves a setting as the file
    (or the default) has it. ``eval`` and ``learn`` take keys of those sections."""
    return {
        "agent": {"max_steps": max_steps},
        "eval": eval or {},
        "learn": learn or {},
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
        "executor": {"kind": executor, "address": ray_address},
    }


def configure(config_path: Path | None = None, **chosen: Any) -> AlmaConfig:
    """The settings of a run: defaults, then ``config_path`` (or ``./alma.toml``), then the
    keyword arguments of :func:`overrides`."""
    return load_config(config_path, overrides(**chosen))


async def evaluate(
    config: AlmaConfig,
    domain: str,
    design: str | DesignSource,
    split: Split = "eval_in_distribution",
    *,
    quick: bool = False,
    run_dir: Path | None = None,
    on_progress: Listener | None = None,
) -> Outcome:
    """Score one design (a reference design's name, a ``.py`` file, or a
    :class:`DesignSource`) with the evaluation protocol. When ``run_dir`` is a learn run and the
    design one of its archive's, the evaluation is also listed with the design."""
    with listening(on_progress):
        outcome = await run_evaluations(
            config, domain, [design], split, quick=quick, run_dir=run_dir, comparison=False
        )
    if isinstance(design, DesignSource) and run_dir is not None:
        for result in outcome.results:
            if result.scored:
                record_in_archive(run_dir, result)
    return outcome


async def compare(
    config: AlmaConfig,
    domain: str,
    designs: Sequence[str | DesignSource],
    split: Split = "eval_in_distribution",
    *,
    quick: bool = False,
    run_dir: Path | None = None,
    on_progress: Listener | None = None,
) -> Outcome:
    """Evaluate several designs on the same tasks; each row compares one with ``no_memory``
    (evaluated too when not named)."""
    with listening(on_progress):
        return await run_evaluations(
            config, domain, list(designs), split, quick=quick, run_dir=run_dir, comparison=True
        )


async def learn(
    config: AlmaConfig,
    domain: str,
    *,
    run_dir: Path | None = None,
    on_progress: Listener | None = None,
    on_iteration: IterationHook | None = None,
    on_start: Callable[[Path], None] | None = None,
) -> LearnOutcome:
    """Search for memory designs; ``on_start(run_dir)`` learns where the run is as soon as it
    opens, ``on_iteration(number, rows)`` sees the archive after each iteration. The run folder's
    ``report.html`` is rewritten after each iteration and at the end (refresh a browser tab to
    follow a long search). To go on with a stopped run, see :func:`resume`."""
    from alma.report import live_report

    refresh: list[IterationHook] = []

    def started(path: Path) -> None:
        refresh.append(live_report(path))
        if on_start is not None:
            on_start(path)

    def iterated(number: int, rows: list[dict[str, Any]]) -> None:
        if on_iteration is not None:
            on_iteration(number, rows)
        for hook in refresh:
            hook(number, rows)

    with listening(on_progress):
        outcome = await run_learn(config, domain, run_dir, iterated, started)
    for hook in refresh:  # the final page, with the held-out comparison
        hook(outcome.summary.iterations_done, [])
    return outcome


async def resume(
    run_dir: Path,
    chosen: dict[str, Any] | None = None,
    *,
    domain: str | None = None,
    on_progress: Listener | None = None,
    on_iteration: IterationHook | None = None,
    on_start: Callable[[Path], None] | None = None,
) -> LearnOutcome:
    """Go on with the learn run in ``run_dir`` with its own settings (see
    :func:`resumed_settings`)."""
    config, name = resumed_settings(run_dir, chosen, domain)
    return await learn(
        config,
        name,
        run_dir=run_dir,
        on_progress=on_progress,
        on_iteration=on_iteration,
        on_start=on_start,
    )


def resumed_settings(
    run_dir: Path, chosen: dict[str, Any] | None = None, domain: str | None = None
) -> tuple[AlmaConfig, str]:
    """A learn run's own settings and domain; ``chosen`` (nested like :func:`overrides` returns)
    may only change how far it goes and where its models are, ``domain`` only repeat it."""
    return resume_config(run_dir, chosen or {}), run_domain(run_dir, domain)


async def check(config: AlmaConfig, path: Path) -> CheckReport:
    """Verify a design file: static checks, then a smoke run in the sandbox."""
    return await asyncio.to_thread(check_file, config, path)


async def play(
    config: AlmaConfig,
    domain: str,
    *,
    task_id: str | None = None,
    split: Split = "train",
    run_dir: Path | None = None,
    render: bool = False,
    on_frame: Callable[[str], None] | None = None,
    on_progress: Listener | None = None,
) -> PlayResult:
    """One episode of one task with the acting agent and no memory; with ``render`` the game
    is drawn after each step as it plays (each drawing to ``on_frame``)."""
    with listening(on_progress):
        return await play_one(
            config,
            domain,
            task_id=task_id,
            split=split,
            run_dir=run_dir,
            render=render,
            on_frame=on_frame,
        )


class RunView:
    """A learn run's archive, read: ``with open_run(path) as run: run.designs()``."""

    def __init__(self, store: RunStore, archive: Archive) -> None:
        self.store = store
        self.archive = archive

    def designs(self) -> list[dict[str, Any]]:
        """Every design, best first."""
        return design_rows(self.archive)

    def design(self, design_id: str) -> dict[str, Any]:
        """One design (by id or its first characters): code, lineage, evaluations, ..."""
        return design_details(self.archive, design_id)

    def source(self, design_id: str) -> DesignSource:
        """The design's code, to evaluate it again."""
        return find_record(self.archive, design_id).design()

    def reference_score(self) -> float | None:
        return self.archive.reference_score()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> RunView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_run(run_dir: Path, *, read_only: bool = True) -> RunView:
    """A run written by ``learn`` (or an ``eval`` into a learn run), to read its archive."""
    store, archive = open_archive(run_dir, read_only=read_only)
    return RunView(store, archive)


# --------------------------------------------------------------------------- results


def report(run_dirs: Sequence[Path], out: Path) -> Path:
    """One offline HTML page on one or more runs of a domain; the path written."""
    from alma.report import write_report

    return write_report(run_dirs, out)


def export(run_dir: Path, fmt: str, out_dir: Path) -> list[Path]:
    """A run's designs, evaluations, episodes and ledger as ``fmt`` files (csv, json or parquet;
    the columns are in docs/report.md) in ``out_dir``; the paths written."""
    from alma.report import export_run

    return export_run(run_dir, fmt, out_dir)


# --------------------------------------------------------------------------- designs


def import_design(path: Path, name: str | None = None) -> DesignSource:
    """A design file written for the original ALMA system (a ``MemoStructure`` subclass), as the
    alma design that runs it through the compatibility layer in the sandbox (never here)."""
    from alma.memory.alma_format import import_design as imported

    return imported(path, name)


def export_design(run_dir: Path, design_id: str, fmt: str = "alma-original") -> str:
    """An archived design's code in another system's format (``alma-original``: the original
    ALMA format, for designs imported from it)."""
    from alma.errors import UsageError
    from alma.memory.alma_format import FORMAT
    from alma.memory.alma_format import export_design as exported

    if fmt != FORMAT:
        raise UsageError(f"unknown design format {fmt!r}", hint=f"use {FORMAT}")
    with open_run(run_dir) as run:
        return exported(run.source(design_id))


def estimate(config: AlmaConfig, domain: str) -> dict[str, Any]:
    """What ``learn`` would run and, at most, spend with these settings (nothing is run): the
    evaluations and episodes, and calls, tokens and dollars by role."""
    from alma.search.estimate import estimate_learn

    return estimate_learn(config, domain).as_dict()


# --------------------------------------------------------------------------- analyses


async def analyse_shift(
    run_dir: Path,
    split: Split = "eval_out_of_distribution",
    *,
    on_progress: Listener | None = None,
) -> Outcome:
    """Learning under distribution shift: the run's best learned and reference designs and
    ``no_memory`` on ``split``, with the run's settings (recorded in the run)."""
    from alma.search.analyses import shift

    with listening(on_progress):
        return await shift(run_dir, split)


async def analyse_transfer(
    run_dir: Path,
    agent_model: str,
    split: Split | None = None,
    *,
    into: Path | None = None,
    on_progress: Listener | None = None,
) -> Outcome:
    """The run's best designs played by another acting model, in a new run (``into``)."""
    from alma.search.analyses import transfer

    with listening(on_progress):
        return await transfer(run_dir, agent_model, split, into)


async def analyse_scaling(
    run_dir: Path,
    design_id: str | None = None,
    sizes: Sequence[int] = (0, 1, 2, 4),
    split: Split | None = None,
    *,
    on_progress: Listener | None = None,
) -> Any:
    """Success as memory grows: one design with build halves of ``sizes`` tasks on fixed
    deploy tasks, beside ``no_memory`` (recorded in the run); a :class:`Scaling`."""
    from alma.search.analyses import scaling

    with listening(on_progress):
        return await scaling(run_dir, design_id, tuple(sizes), split)
