"""A run's tables as files for pandas, a spreadsheet or an experiment tracker.

Four tables, each one file per format (``designs``, ``evaluations``, ``episodes``, ``ledger``),
with the columns of :data:`TABLES` in that order (documented in ``docs/report.md``). Every row
starts with ``run`` (the run folder's name) so exports of several runs can be stacked. Missing
values are empty in CSV and ``null`` in JSON and Parquet; times are seconds since the epoch (UTC).

CSV and JSON need nothing beyond alma; Parquet needs ``pyarrow`` (the ``parquet`` extra).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from alma.errors import MissingDependencyError, UsageError
from alma.report import metrics
from alma.report.data import RunData, read_ledger, read_run
from alma.report.files import write_whole

Format = Literal["csv", "json", "parquet"]
FORMATS: tuple[Format, ...] = ("csv", "json", "parquet")
ColumnType = Literal["string", "integer", "float", "boolean"]


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    description: str


def _c(name: str, kind: ColumnType, description: str) -> Column:
    return Column(name, kind, description)


_RUN = _c("run", "string", "name of the run folder")

TABLES: dict[str, tuple[Column, ...]] = {
    "designs": (
        _RUN,
        _c("design_id", "string", "first 12 hex digits of the sha256 of the code"),
        _c("name", "string", "the design's class name"),
        _c("origin", "string", "reference (hand-made), generated (meta agent) or imported (yours)"),
        _c("parent_id", "string", "the design it was derived from; empty for seeds"),
        _c("iteration", "integer", "search iteration that made it (0: seeds)"),
        _c(
            "status",
            "string",
            "pending, verified, failed_verification, evaluated, evaluation_failed",
        ),
        _c("idea", "string", "one-line idea of the design"),
        _c("created", "float", "when it was archived"),
        _c("times_chosen", "integer", "times parent selection picked it"),
        _c("train_evaluation", "string", "key of its train evaluation (in evaluations)"),
        _c("score", "float", "train score: mean success rate over the deploy repeats"),
        _c("stderr", "float", "standard error of the score over the repeats"),
        _c("ci_low", "float", "lower end of the 95% bootstrap interval over tasks"),
        _c("ci_high", "float", "upper end of that interval"),
        _c("cost_usd", "float", "dollars its train evaluation cost"),
        _c("gain_over_parent", "float", "score minus its parent's score"),
        _c("gain_over_no_memory", "float", "paired mean gain over no_memory, per task"),
        _c("p_no_memory", "float", "two-sided paired-bootstrap p-value of that gain"),
        _c("best_reference", "string", "the best reference design other than no_memory"),
        _c("gain_over_best_reference", "float", "paired mean gain over that design"),
        _c("p_best_reference", "float", "two-sided paired-bootstrap p-value of that gain"),
        _c("agent_tokens_per_episode", "float", "acting agent's tokens per episode"),
        _c("memory_tokens_per_episode", "float", "memory's model and embedding tokens per episode"),
        _c("agent_usd_per_episode", "float", "acting agent's dollars per episode"),
        _c("memory_usd_per_episode", "float", "memory's dollars per episode"),
        _c("memory_chars", "float", "characters memory returned per deploy episode, on average"),
        _c("failed_episodes", "integer", "episodes of its train evaluation that did not succeed"),
        _c("errored_episodes", "integer", "of those, episodes that could not finish (error)"),
        _c("failed_memory_calls", "integer", "retrieve and update calls that raised"),
        _c("failed_verifications", "integer", "verification rounds of its code that failed"),
        _c("error", "string", "why its train evaluation gave no score"),
    ),
    "evaluations": (
        _RUN,
        _c("key", "string", "the evaluation's key (design and settings)"),
        _c("design_id", "string", "the design evaluated"),
        _c("design_name", "string", "its name"),
        _c(
            "roles",
            "string",
            "roles it is linked under (train, eval_in_distribution...), comma-separated",
        ),
        _c("domain", "string", "the domain"),
        _c("split", "string", "train, eval_in_distribution or eval_out_of_distribution"),
        _c("status", "string", "done, design_failed, incomplete, interrupted or running"),
        _c("rollout", "string", "batched or sequential"),
        _c("score", "float", "mean success rate over the deploy repeats (done only)"),
        _c("stderr", "float", "standard error over the repeats"),
        _c("ci_low", "float", "lower end of the 95% bootstrap interval over tasks"),
        _c("ci_high", "float", "upper end of that interval"),
        _c("n_episodes", "integer", "episodes played (build and deploy)"),
        _c("tasks", "integer", "deploy tasks scored"),
        _c("cost_usd", "float", "dollars it cost (agent and memory)"),
        _c("agent_tokens", "float", "acting agent's tokens"),
        _c("memory_tokens", "float", "memory's tokens"),
        _c("agent_usd", "float", "acting agent's dollars"),
        _c("memory_usd", "float", "memory's dollars"),
        _c("agent_calls", "float", "acting agent's model calls"),
        _c("memory_calls", "float", "memory's model and embedding calls"),
        _c("failed_memory_calls", "integer", "retrieve and update calls that raised"),
        _c("episode_errors", "integer", "episodes that could not finish"),
        _c("error", "string", "why it gave no score"),
        _c("started", "float", "when it (last) started"),
        _c("finished", "float", "when it finished"),
        _c("seconds", "float", "wall time it took"),
    ),
    "episodes": (
        _RUN,
        _c("id", "integer", "the episode's row id in the run database"),
        _c("evaluation_key", "string", "the evaluation it belongs to (empty: played alone)"),
        _c("domain", "string", "the domain"),
        _c("task_id", "string", "the task"),
        _c("split", "string", "the task's split"),
        _c("phase", "string", "build or deploy"),
        _c("repeat", "integer", "deploy repeat (0 in the build half)"),
        _c("success", "boolean", "whether the task was solved"),
        _c("score", "float", "the episode's score"),
        _c("steps", "integer", "actions taken"),
        _c("reason", "string", "how it ended: success, step_limit, error..."),
        _c("memory_chars", "integer", "characters memory returned for it (0 in the build half)"),
        _c("ts", "float", "when it was recorded"),
    ),
    "ledger": (
        _RUN,
        _c("id", "integer", "the call's row id"),
        _c("ts", "float", "when it was recorded"),
        _c("scope", "string", "what it belonged to: eval:<key>, meta:<step>..."),
        _c("purpose", "string", "role that spent: meta, agent or memory"),
        _c("model", "string", "the model"),
        _c("kind", "string", "chat, embed, or retry (a retried attempt, no tokens)"),
        _c("prompt_tokens", "integer", "prompt tokens"),
        _c("completion_tokens", "integer", "completion tokens"),
        _c("cached_tokens", "integer", "prompt tokens served from the provider's cache"),
        _c("latency_s", "float", "seconds the call took"),
        _c("cost_usd", "float", "dollars"),
        _c("from_cache", "boolean", "answered from alma's own cache (free)"),
        _c("error", "string", "why it failed (or, for a retry, its cause)"),
        _c("estimated", "boolean", "tokens estimated from text (the endpoint sent no usage)"),
    ),
}


def export_run(run_dir: Path, fmt: str, out_dir: Path) -> list[Path]:
    """Write the run's four tables in ``fmt`` (csv, json or parquet) into ``out_dir``; returns
    the files written.

    Raises :class:`~alma.errors.UsageError` for an unknown format or a folder that is not a
    run, :class:`~alma.errors.MissingDependencyError` for parquet without pyarrow, and
    :class:`~alma.errors.StorageError` when a file cannot be written.
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    writer = _WRITERS[fmt]
    if fmt == "parquet":
        _parquet_module()  # fail before reading anything
    run = read_run(Path(run_dir))
    tables = table_rows(run)
    out_dir = Path(out_dir)
    written = []
    for name, rows in tables.items():
        target = out_dir / f"{name}.{fmt}"
        writer(target, TABLES[name], rows)
        written.append(target)
    return written


def table_rows(run: RunData) -> dict[str, list[dict[str, Any]]]:
    """The four tables of a run, each a list of rows keyed by the columns of :data:`TABLES`."""
    return {
        "designs": _designs(run),
        "evaluations": _evaluations(run),
        "episodes": _episodes(run),
        "ledger": _ledger(run),
    }


def _designs(run: RunData) -> list[dict[str, Any]]:
    reference = metrics.best_reference(run)
    rows = []
    for r in metrics.design_metrics(run):
        d, e = r.design, r.train
        rows.append(
            {
                "run": run.name,
                "design_id": d.id,
                "name": d.name,
                "origin": d.origin,
                "parent_id": d.parent,
                "iteration": d.iteration,
                "status": d.status,
                "idea": d.idea,
                "created": d.created,
                "times_chosen": d.times_chosen,
                "train_evaluation": d.train_key,
                "score": e.score if e else None,
                "stderr": e.stderr if e else None,
                "ci_low": e.ci_low if e else None,
                "ci_high": e.ci_high if e else None,
                "cost_usd": e.cost_usd if e else None,
                "gain_over_parent": r.gain_over_parent,
                "gain_over_no_memory": r.vs_no_memory.gain if r.vs_no_memory else None,
                "p_no_memory": r.vs_no_memory.p_value if r.vs_no_memory else None,
                "best_reference": reference.name if reference is not None else None,
                "gain_over_best_reference": (
                    r.vs_best_reference.gain if r.vs_best_reference else None
                ),
                "p_best_reference": r.vs_best_reference.p_value if r.vs_best_reference else None,
                "agent_tokens_per_episode": r.tokens_per_episode["agent"],
                "memory_tokens_per_episode": r.tokens_per_episode["memory"],
                "agent_usd_per_episode": r.usd_per_episode["agent"],
                "memory_usd_per_episode": r.usd_per_episode["memory"],
                "memory_chars": r.memory_chars,
                "failed_episodes": r.failed_episodes,
                "errored_episodes": r.errored_episodes,
                "failed_memory_calls": r.failed_memory_calls,
                "failed_verifications": r.failed_verifications,
                "error": e.error if e else None,
            }
        )
    return rows


def _evaluations(run: RunData) -> list[dict[str, Any]]:
    roles: dict[str, list[str]] = {}
    for design in run.designs:
        for link in design.links:
            roles.setdefault(link.key, []).append(link.role)
    rows = []
    for e in run.evaluations.values():
        usage = e.usage
        rows.append(
            {
                "run": run.name,
                "key": e.key,
                "design_id": e.design_id,
                "design_name": e.design_name,
                "roles": ",".join(roles.get(e.key, [])),
                "domain": e.domain,
                "split": e.split,
                "status": e.status,
                "rollout": e.rollout,
                "score": e.score,
                "stderr": e.stderr,
                "ci_low": e.ci_low,
                "ci_high": e.ci_high,
                "n_episodes": e.n_episodes,
                "tasks": len(e.per_task),
                "cost_usd": e.cost_usd,
                "agent_tokens": usage.get("agent", {}).get("tokens", 0.0),
                "memory_tokens": usage.get("memory", {}).get("tokens", 0.0),
                "agent_usd": usage.get("agent", {}).get("cost_usd", 0.0),
                "memory_usd": usage.get("memory", {}).get("cost_usd", 0.0),
                "agent_calls": usage.get("agent", {}).get("calls", 0.0),
                "memory_calls": usage.get("memory", {}).get("calls", 0.0),
                "failed_memory_calls": e.failed_memory_calls,
                "episode_errors": e.episode_errors,
                "error": e.error,
                "started": e.started,
                "finished": e.finished,
                "seconds": e.seconds,
            }
        )
    return rows


def _episodes(run: RunData) -> list[dict[str, Any]]:
    return [
        {
            "run": run.name,
            "id": e.id,
            "evaluation_key": e.evaluation_key,
            "domain": e.domain,
            "task_id": e.task_id,
            "split": e.split,
            "phase": e.phase,
            "repeat": e.repeat,
            "success": e.success,
            "score": e.score,
            "steps": e.steps,
            "reason": e.reason,
            "memory_chars": e.memory_chars,
            "ts": e.ts,
        }
        for e in run.episodes
    ]


def _ledger(run: RunData) -> list[dict[str, Any]]:
    names = [c.name for c in TABLES["ledger"][1:]]
    rows = []
    for call in read_ledger(run.path):
        row: dict[str, Any] = {"run": run.name}
        for name in names:
            row[name] = call.get(name)
        row["from_cache"] = bool(row["from_cache"])
        row["estimated"] = bool(row["estimated"])
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------- writers


def _write_csv(target: Path, columns: Sequence[Column], rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([c.name for c in columns])
    flags = {c.name for c in columns if c.type == "boolean"}
    names = [c.name for c in columns]
    for row in rows:
        values = [row[name] for name in names]
        if flags:
            values = [_flag(v) if n in flags else v for n, v in zip(names, values, strict=True)]
        writer.writerow(values)  # None is written as an empty field
    write_whole(target, buffer.getvalue().encode("utf-8"))


def _flag(value: Any) -> Any:
    return value if value is None else ("true" if value else "false")


def _write_json(target: Path, columns: Sequence[Column], rows: list[dict[str, Any]]) -> None:
    """A JSON array of objects, one row a line."""
    names = [c.name for c in columns]
    lines = (json.dumps({n: row[n] for n in names}, allow_nan=False) for row in rows)
    text = "[\n" + ",\n".join(lines) + "\n]\n" if rows else "[]\n"
    write_whole(target, text.encode("utf-8"))


def _write_parquet(target: Path, columns: Sequence[Column], rows: list[dict[str, Any]]) -> None:
    pa, pq = _parquet_module()
    kinds = {
        "string": pa.string(),
        "integer": pa.int64(),
        "float": pa.float64(),
        "boolean": pa.bool_(),
    }
    schema = pa.schema([(c.name, kinds[c.type]) for c in columns])
    data = {c.name: [row[c.name] for row in rows] for c in columns}
    table = pa.Table.from_pydict(data, schema=schema)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    write_whole(target, sink.getvalue())


def _parquet_module() -> tuple[Any, Any]:
    try:
        import pyarrow as pa  # type: ignore[import-untyped, import-not-found, unused-ignore]
        import pyarrow.parquet as pq  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError as error:
        raise MissingDependencyError(
            "writing parquet needs pyarrow, which is not installed",
            hint="pip install 'alma[parquet]' (or pyarrow), or export as csv or json",
        ) from error
    return pa, pq


_WRITERS: dict[str, Callable[[Path, Sequence[Column], list[dict[str, Any]]], None]] = {
    "csv": _write_csv,
    "json": _write_json,
    "parquet": _write_parquet,
}
