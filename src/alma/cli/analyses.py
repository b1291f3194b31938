"""``alma analyse shift|transfer|scaling``: the paper's analyses of a finished search."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from alma import api
from alma.cli import views
from alma.cli.evaluation import stopped_by_budget, unscored
from alma.cli.options import JsonFlag, RunDir, check_split, out, print_json, progress_shown

RunArgument = Annotated[Path, typer.Argument(help="run directory of alma learn")]
SplitFlag = Annotated[str | None, typer.Option("--split", help="split to play (default below)")]


def _show(outcome: api.Outcome, split: str, as_json: bool) -> None:
    if as_json:
        print_json({"run_dir": str(outcome.run_dir), "rows": [r.as_dict() for r in outcome.rows]})
    else:
        views.show_comparison(out, outcome.rows, split)
        out.print(f"run saved in {outcome.run_dir}", highlight=False)
    stopped_by_budget(outcome.stopped, outcome.run_dir)
    unscored(outcome.results, outcome.run_dir)


def shift(run_dir: RunArgument, split: SplitFlag = None, as_json: JsonFlag = False) -> None:
    """The best learned and reference designs and no_memory out of distribution (or --split)."""
    chosen = check_split(split or "eval_out_of_distribution")
    with progress_shown(not as_json) as listener:
        outcome = asyncio.run(api.analyse_shift(run_dir, chosen, on_progress=listener))
    _show(outcome, chosen, as_json)


def transfer(
    run_dir: RunArgument,
    agent_model: Annotated[
        str, typer.Option("--agent-model", help="the other acting model to play the designs")
    ],
    split: SplitFlag = None,
    into: RunDir = None,
    as_json: JsonFlag = False,
) -> None:
    """The best designs played by another acting model (held-out split by default), new run."""
    chosen = check_split(split) if split else None
    with progress_shown(not as_json) as listener:
        outcome = asyncio.run(
            api.analyse_transfer(run_dir, agent_model, chosen, into=into, on_progress=listener)
        )
    _show(outcome, chosen or "the held-out split", as_json)


def scaling(
    run_dir: RunArgument,
    design: Annotated[
        str | None, typer.Option("--design", help="design id (default: the best learned)")
    ] = None,
    sizes: Annotated[
        str, typer.Option("--sizes", help="build tasks, comma-separated (default: 0,1,2,4)")
    ] = "0,1,2,4",
    split: SplitFlag = None,
    as_json: JsonFlag = False,
) -> None:
    """Success as memory grows: build halves of --sizes tasks, the same deploy tasks."""
    try:
        counts = [int(size) for size in sizes.split(",") if size.strip()]
    except ValueError:
        hint = "write whole numbers, e.g. 0,1,2,4"
        raise typer.BadParameter(hint, param_hint="--sizes") from None
    chosen = check_split(split) if split else None
    with progress_shown(not as_json) as listener:
        result = asyncio.run(
            api.analyse_scaling(run_dir, design, counts, chosen, on_progress=listener)
        )
    if as_json:
        print_json(
            {
                "run_dir": str(run_dir),
                "design": result.design,
                "split": result.split,
                "points": [point.as_dict() for point in result.points],
            }
        )
        return
    table = Table(
        title=f"{result.design} as its memory grows ({result.split})",
        caption="deploy score ± standard error over repeats, on the same deploy tasks",
        box=box.SIMPLE_HEAD,
        caption_justify="left",
    )
    for column in ("build tasks", result.design, "no_memory", "gain"):
        table.add_column(column, justify="right")
    for point in result.points:
        mine, none = point.design, point.reference
        table.add_row(
            str(point.build_tasks),
            f"{mine.score:.2f}±{mine.stderr:.2f}" if mine.scored else "-",
            f"{none.score:.2f}±{none.stderr:.2f}" if none.scored else "-",
            f"{mine.score - none.score:+.2f}" if mine.scored and none.scored else "-",
        )
    out.print(table)
