"""One self-contained HTML page for one or more runs: no request leaves it (a content security
policy forbids any), styles, script and plots are inline, and it opens from a file in any
browser.

A page shows, per run: a summary (settings, models, dates, tokens and dollars by role, retries
and failed calls); the lineage tree next to the selected design's idea, analysis, verification,
code and diff from its parent; the best score over iterations and every evaluation with its
interval; a sortable design table with gains over ``no_memory`` and the best reference design;
held-out scores; a per-task heat map; why episodes and evaluations failed; and score against
cost with its Pareto front. Several runs of one domain also get one table and overlaid curves.
"""

from __future__ import annotations

import difflib
import json
import logging
import time
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from typing import Any

from alma import __version__
from alma.errors import AlmaError, UsageError
from alma.report import metrics, svg
from alma.report.assets import SCRIPT, STYLE
from alma.report.cells import (
    cell,
    date_text,
    duration_text,
    num_text,
    score_text,
    usd_text,
)
from alma.report.data import Design, RunData, read_run
from alma.report.files import write_whole
from alma.report.metrics import DesignMetrics
from alma.report.sections import (
    best_design,
    comparison_cells,
    cost_section,
    design_table_section,
    failures_section,
    heat_map_section,
    held_out_section,
    lineage_section,
    scores_section,
    summary_section,
)

LIVE_REPORT = "report.html"  # the page ``alma learn`` keeps up to date in the run folder
log = logging.getLogger("alma.report")
_POLICY = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def write_report(run_dirs: Sequence[Path], out: Path) -> Path:
    """Write the report of ``run_dirs`` (one or more runs of one domain) to ``out``.

    Raises :class:`~alma.errors.UsageError` when no run is given, a folder is not a run, or the
    runs are of different domains; :class:`~alma.errors.StorageError` when a run cannot be read
    or ``out`` cannot be written.
    """
    if not run_dirs:
        raise UsageError("no run to report", hint="give one or more run folders")
    runs = [read_run(Path(path)) for path in run_dirs]
    page = render(runs)
    return write_whole(Path(out), page.encode("utf-8"))


def live_report(run_dir: Path) -> Callable[[int, list[dict[str, Any]]], None]:
    """A hook for ``alma learn`` (its ``on_iteration``) that rewrites ``<run_dir>/report.html``
    after each iteration, so a browser tab refreshed during a long search shows the run as it
    stands. A page that cannot be written is logged and skipped: it never stops the search."""

    def refresh(iteration: int, rows: list[dict[str, Any]]) -> None:
        try:
            write_report([run_dir], Path(run_dir) / LIVE_REPORT)
        except AlmaError as error:
            log.warning("%s not refreshed after iteration %d: %s", LIVE_REPORT, iteration, error)

    return refresh


def render(runs: Sequence[RunData]) -> str:
    """The page's HTML for ``runs``."""
    domains = sorted({run.domain for run in runs})
    if len(domains) > 1:
        listed = ", ".join(f"{run.name} ({run.domain or '?'})" for run in runs)
        raise UsageError(
            f"runs of different domains cannot share a report: {listed}",
            hint="report each domain's runs separately",
        )
    data: dict[str, Any] = {"runs": []}
    bodies = []
    tables = [metrics.design_metrics(run) for run in runs]
    for index, (run, rows) in enumerate(zip(runs, tables, strict=True)):
        bodies.append(_run_section(index, run, rows, hidden=index > 0))
        data["runs"].append(_design_data(run, rows))
    nav = ""
    if len(runs) > 1:
        buttons = "".join(
            f'<button data-tab="run-{i}"{" class=active" if i == 0 else ""}>{escape(r.name)}'
            "</button>"
            for i, r in enumerate(runs)
        )
        nav = f'<nav class="tabs">{buttons}</nav>'
    names = ", ".join(run.name for run in runs)
    head = (
        f"<h1>alma report: {escape(names)}</h1><p>domain {escape(domains[0] or '?')} · "
        f"{len(runs)} run{'s' if len(runs) > 1 else ''} · written "
        f"{date_text(time.time())} by alma {escape(__version__)}</p>{nav}"
    )
    comparison = _comparison(runs, tables) if len(runs) > 1 else ""
    blob = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">'
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>alma report: {escape(names)}</title><style>{STYLE}</style></head><body>"
        f'<header class="top">{head}</header><main>{comparison}{"".join(bodies)}</main>'
        f'<script type="application/json" id="alma-data">{blob}</script>'
        f"<script>{SCRIPT}</script></body></html>"
    )


# ---------------------------------------------------------------------------- one run


def _run_section(index: int, run: RunData, rows: list[DesignMetrics], *, hidden: bool) -> str:
    best = best_design(rows)
    parts = [
        summary_section(run, rows, best),
        lineage_section(run, rows, best),
        scores_section(run),
        design_table_section(run, rows),
        held_out_section(run),
        heat_map_section(run, rows),
        failures_section(run),
        cost_section(run, rows),
    ]
    return (
        f'<section class="run" id="run-{index}" data-run="{index}"{" hidden" if hidden else ""}>'
        + "".join(parts)
        + "</section>"
    )


# ---------------------------------------------------------------------------- several runs


def _comparison(runs: Sequence[RunData], tables: Sequence[list[DesignMetrics]]) -> str:
    body, curves = [], []
    for i, (run, rows) in enumerate(zip(runs, tables, strict=True)):
        best = best_design(rows)
        versus = next((r.vs_no_memory for r in rows if best and r is best), None)
        tokens = sum(s.tokens for s in run.spend)
        dollars = sum(s.cost_usd for s in run.spend)
        cells = [
            f"<td class=l>{escape(run.name)}</td>",
            cell(str(len(run.designs)), len(run.designs)),
            cell(
                str(sum(r.score is not None for r in rows)), sum(r.score is not None for r in rows)
            ),
            cell(best.design.name if best else "-", best.design.name if best else "", "l"),
            cell(score_text(best) if best else "-", best.score if best else None),
            cell(num_text(run.reference_score), run.reference_score),
            *comparison_cells(versus),
            cell(f"{tokens:,}", tokens),
            cell(usd_text(dollars), dollars),
            cell(
                duration_text(run.ended - run.started) if run.started and run.ended else "-",
                (run.ended - run.started) if run.started and run.ended else None,
            ),
        ]
        body.append(f"<tr>{''.join(cells)}</tr>")
        points = metrics.best_so_far(run)
        curves.append(
            svg.Curve(
                run.name,
                [(p.iteration, p.score, p.ci_low, p.ci_high) for p in points],
                colour=svg.PALETTE[i % len(svg.PALETTE)],
            )
        )
    head = "".join(
        f'<th data-sort class="{c}">{n}</th>'
        for n, c in (
            ("run", "l"),
            ("designs", ""),
            ("scored", ""),
            ("best design", "l"),
            ("best score [95% CI]", ""),
            ("no_memory", ""),
            ("Δ no_memory", ""),
            ("p", ""),
            ("tokens", ""),
            ("dollars", ""),
            ("wall time", ""),
        )
    )
    chart = svg.step_chart(
        curves,
        title="best score over iterations, every run",
        x_label="iteration",
        y_label="train score",
    )
    return (
        '<section class="block"><h2>Runs side by side</h2>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        f"<h3>Best score over iterations</h3>{chart}<p class=muted>Pick a run above to see "
        "its details.</p></section>"
    )


# ---------------------------------------------------------------------------- design data


def _design_data(run: RunData, rows: list[DesignMetrics]) -> dict[str, Any]:
    designs: dict[str, Any] = {}
    for r in rows:
        d = r.design
        parent = run.design(d.parent)
        designs[d.id] = {
            "id": d.id,
            "name": d.name,
            "origin": d.origin,
            "status": d.status,
            "iteration": d.iteration,
            "idea": d.idea,
            "score": score_text(r),
            "parent": d.parent,
            "parent_name": parent.name if parent is not None else d.parent,
            "analysis": run.analyses.get((d.parent or "", d.iteration)),
            "verifications": [
                {"attempt": v.attempt, "passed": v.passed, "report": v.report}
                for v in run.verifications.get(d.id, [])
            ],
            "code": d.source,
            "diff": _diff(parent, d) if parent is not None else "",
        }
    best = best_design(rows)
    return {"designs": designs, "selected": best.design.id if best else None}


def _diff(parent: Design, child: Design) -> str:
    return "\n".join(
        difflib.unified_diff(
            parent.source.splitlines(),
            child.source.splitlines(),
            fromfile=f"{parent.name} ({parent.id})",
            tofile=f"{child.name} ({child.id})",
            lineterm="",
        )
    )
