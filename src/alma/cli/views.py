"""What the command line draws: tables, design pages, episodes, and progress (bars and a
spinner on a terminal, plain lines in a log file or a pipe)."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.status import Status
from rich.table import Table

from alma.api import ComparisonRow, EvalResult
from alma.progress import ProgressEvent
from alma.types import Episode

LOG_EVERY_S = 10.0
clock = time.monotonic  # read for the log lines (tests move it)


class ProgressView:
    """Draws :mod:`alma.progress` events on ``console``: on a terminal a bar per counter and a
    spinner for the status; elsewhere a line at each tenth of a counter (at most one every
    ``LOG_EVERY_S`` seconds, so quick work prints none) and a line at each change of stage."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.bars: dict[str, tuple[Progress, TaskID]] = {}
        self.started: dict[str, tuple[float, float]] = {}  # label: (started, last logged)
        self.spinner: Status | None = None
        self.stage = ""

    def __call__(self, event: ProgressEvent) -> None:
        if event.kind == "status":
            self._status(event)
        elif event.kind == "start":
            self.started[event.label] = (clock(), clock())
            if self.live:
                self._bar(event)
        elif event.kind == "advance":
            self._advance(event)
        elif event.label in self.bars:
            self.bars.pop(event.label)[0].stop()

    def _bar(self, event: ProgressEvent) -> None:
        counted = (
            (DownloadColumn(), TransferSpeedColumn())
            if event.unit == "bytes"
            else (MofNCompleteColumn(),)
        )
        bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            *counted,
            TimeElapsedColumn(),
            console=self.console,
        )
        task = bar.add_task(escape(event.label), total=event.total)
        bar.start()
        self.bars[event.label] = (bar, task)

    def _advance(self, event: ProgressEvent) -> None:
        if event.label in self.bars:
            bar, task = self.bars[event.label]
            bar.update(task, completed=event.done)
            return
        if self.live or event.unit == "bytes" or event.label not in self.started:
            return
        started, logged = self.started[event.label]
        now, done, total = clock(), event.done, event.total
        tenth = done * 10 // total > (done - 1) * 10 // total
        if tenth and now - logged >= LOG_EVERY_S:
            self.started[event.label] = (started, now)
            elapsed = datetime.timedelta(seconds=int(now - started))
            self.console.print(f"{event.label} {done}/{total} ({elapsed})", highlight=False)

    def _status(self, event: ProgressEvent) -> None:
        line = f"{event.label} | {event.detail}" if event.detail else event.label
        if self.live:
            if self.spinner is None:
                self.spinner = self.console.status(escape(line))
                self.spinner.start()
            else:
                self.spinner.update(escape(line))
        elif event.label != self.stage:
            self.stage = event.label
            self.console.print(line, markup=False, highlight=False)

    def close(self) -> None:
        if self.spinner is not None:
            self.spinner.stop()
            self.spinner = None
        for bar, _ in self.bars.values():
            bar.stop()
        self.bars.clear()


def show_result(console: Console, result: EvalResult) -> None:
    deploy = len(result.deploy_tasks)
    if result.scored:
        verdict = (
            f"[bold]{result.score:.3f} ± {result.stderr:.3f}[/] "
            f"(repeats {', '.join(f'{r:.2f}' for r in result.repeats)}; "
            f"95% CI over {deploy} tasks [{result.ci95[0]:.2f}, {result.ci95[1]:.2f}])"
        )
    else:
        verdict = f"[red]no score ({result.status.replace('_', ' ')})[/]"
    console.print(
        f"[bold]{result.design_name}[/] ({result.design_id}) on {result.domain}"
        f"{escape(f'[{result.tasks_source}]') if result.tasks_source else ''}/{result.split}, "
        f"{result.rollout}: {verdict}"
        + (" [dim](from an earlier identical evaluation)[/]" if result.reused else "")
    )
    for purpose in ("agent", "memory"):
        usage = result.usage.get(purpose, {})
        console.print(
            f"  {purpose:<6} {int(usage.get('calls', 0)):>6} calls "
            f"{int(usage.get('tokens', 0)):>10,} tokens  ${float(usage.get('cost_usd', 0.0)):.4f}"
        )
    memory = result.memory
    resumed = (
        f" ({result.resumed_episodes} from an earlier attempt)" if result.resumed_episodes else ""
    )
    skipped = f", {result.skipped_calls} skipped" if result.skipped_calls else ""
    console.print(
        f"  {result.n_episodes} episodes{resumed} in {result.seconds:.1f} s; memory: "
        f"{memory.retrieve_calls} retrieves ({memory.retrieve_errors} failed), "
        f"{memory.update_calls} updates ({memory.update_errors} failed){skipped}, "
        f"{memory.truncated} truncated"
    )
    for error in memory.errors:
        console.print(f"  [yellow]{escape(error)}[/]", highlight=False)
    if result.error:
        what = "design failed" if result.status == "design_failed" else result.status
        console.print(f"  [red]{what}[/]: {escape(result.error)}", highlight=False)


ID_CHARS = 8  # ids as tables show them: enough to tell designs apart, and to type


def show_comparison(console: Console, rows: Sequence[ComparisonRow], split: str) -> None:
    table = Table(
        title=f"designs on {split}",
        caption="score: deploy success rate ± its standard error over repeats; 95% CI over "
        "tasks; gain: over no_memory, paired by task, with its p-value; tokens and $ per episode",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
        caption_justify="left",
    )
    table.add_column("design", overflow="fold", ratio=1)
    for column in ("score", "95% CI", "gain", "p", "tokens", "$"):
        table.add_column(column, justify="right", no_wrap=True)
    for row in rows:
        result = row.result
        gain = row.versus_reference
        scored = result.scored
        tokens = row.per_episode("agent", "tokens") + row.per_episode("memory", "tokens")
        dollars = row.per_episode("agent", "cost_usd") + row.per_episode("memory", "cost_usd")
        table.add_row(
            escape(result.design_name)
            + ("" if scored else f" [red]({result.status.replace('_', ' ')})[/]"),
            f"{result.score:.2f}±{result.stderr:.2f}" if scored else "-",
            f"{result.ci95[0]:.2f}-{result.ci95[1]:.2f}" if scored else "-",
            "-" if gain is None else f"{gain.gain:+.2f}",
            "-" if gain is None else _p_value(gain.p_value),
            _count(tokens),
            f"{dollars:.4f}",
        )
    console.print(table)


def _p_value(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _count(value: float) -> str:
    """A count for people: 950, 12.3k, 4.1M."""
    if value >= 1e6:
        return f"{value / 1e6:.1f}M"
    return f"{value / 1e3:.1f}k" if value >= 1e4 else f"{value:,.0f}"


def archive_table(
    rows: list[dict[str, Any]], reference: float | None, limit: int | None = None
) -> Table:
    title = "designs" + (f" (reference score {reference:.3f})" if reference is not None else "")
    paid = any(row["cost_usd"] for row in rows)  # free models (local, scripted): no $ column
    table = Table(
        title=title,
        caption="score: train success rate ± standard error over repeats; gain: over its "
        "parent; it: iteration"
        + ("; $: its evaluation's spend" if paid else "")
        + " (`alma show RUN ID` for the rest)",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
        caption_justify="left",
    )
    table.add_column("id", no_wrap=True)
    table.add_column("name", overflow="fold", ratio=1)
    table.add_column("parent", no_wrap=True)
    table.add_column("it", justify="right", no_wrap=True)
    table.add_column("status", overflow="fold")
    for column in ("score", "gain", *(("$",) if paid else ())):
        table.add_column(column, justify="right", no_wrap=True)
    for row in rows[:limit]:
        score = "-" if row["score"] is None else f"{row['score']:.2f}±{row['stderr'] or 0:.2f}"
        gain = "-" if row["gain"] is None else f"{row['gain']:+.2f}"
        cost = "-" if row["cost_usd"] is None else f"{row['cost_usd']:.4f}"
        parent = row["parent"][:ID_CHARS] if row["parent"] else _ORIGINS.get(row["origin"], "-")
        table.add_row(
            row["id"][:ID_CHARS],
            escape(row["name"]),
            parent,
            str(row["iteration"]),
            row["status"].replace("_", " "),
            score,
            gain,
            *((cost,) if paid else ()),
        )
    return table


_ORIGINS = {"reference": "(ref)", "imported": "(yours)"}  # designs without a parent


def show_estimate(console: Console, planned: dict[str, Any]) -> None:
    """``alma learn --dry-run``: the plan and its cost, at most."""
    console.print(
        f"{planned['domain']}: {planned['evaluations']} evaluations x "
        f"{planned['episodes_per_evaluation']} episodes = {planned['episodes']:,} episodes of at "
        f"most {planned['step_limit']} steps",
        highlight=False,
    )
    for role, spend in {**planned["by_role"], "total": planned["total"]}.items():
        model = planned["models"].get(role, "")
        console.print(
            f"{role:<6}{spend['calls']:>8,} calls {_count(spend['tokens']):>7} tokens  "
            f"${spend['cost_usd']:.2f}  {model}",
            highlight=False,
        )
    console.print(
        "at most: episodes counted to the step limit, meta steps to their prompt budget and "
        "every repair; memory designs' own model calls not included",
        highlight=False,
    )


def show_spend(console: Console, spend: dict[str, Any]) -> None:
    """What a run spent, by role, in one line each."""
    for role, tally in {**spend.get("by_purpose", {}), "total": spend.get("total", {})}.items():
        console.print(
            f"{role:<7}{int(tally.get('calls', 0)):>7,} calls {_count(tally.get('tokens', 0)):>7}"
            f" tokens  ${float(tally.get('cost_usd', 0.0)):.4f}",
            highlight=False,
        )


def show_design(console: Console, data: dict[str, Any]) -> None:
    """One design's page (``alma show``), from :meth:`alma.api.RunView.design`."""
    console.print(f"[bold]{data['name']}[/] {data['id']} ({data['origin']}, {data['status']})")
    console.print(f"idea: {data['idea'] or '-'}", highlight=False)
    console.print(f"lineage: {' -> '.join(data['lineage'])}")
    for evaluation in data["evaluations"]:
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
    for attempt in data["verifications"]:
        verdict = "passed" if attempt["passed"] else "failed"
        console.print(f"verification attempt {attempt['attempt']}: {verdict}")
    if data["analyses_of_it"]:
        console.print("analysis of this design (latest):")
        console.print_json(json.dumps(data["analyses_of_it"][-1]))
    gain = data["gain"]
    console.print(f"gain over parent: {'-' if gain is None else f'{gain:+.3f}'}")
    console.rule("code")
    console.print(data["source"], markup=False, highlight=False)


def show_episode(console: Console, episode: Episode, task_id: str) -> None:
    console.print(f"[bold]{task_id}[/]: {episode.start.task_description}")
    console.print(f"[dim]{episode.start.observation}[/]")
    for number, step in enumerate(episode.steps, 1):
        flag = "" if step.valid else " [red](no admissible match)[/]"
        console.print(f"[cyan]{number:>3}[/] > {step.action}{flag}   [dim]{step.thought}[/]")
    verdict = (
        "[green]success[/]" if episode.outcome.success else f"[red]{episode.outcome.reason}[/]"
    )
    console.print(
        f"{verdict} in {episode.outcome.steps} steps, {episode.usage.total_tokens:,} tokens, "
        f"${episode.cost_usd:.4f}, {episode.invalid_actions} invalid actions"
    )
