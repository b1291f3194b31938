"""A run directory read into plain values, for the report and the exports.

Everything comes from the run's database through :class:`~alma.store.RunStore` and
:class:`~alma.search.archive.Archive` (nothing is written) and from ``config.toml``. A run of
``alma eval`` (no archive) reads too: it simply has no designs.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alma.errors import UsageError
from alma.search.archive import SELECTION_ROLE, Archive, EvaluationLink
from alma.store import DATABASE, RunStore

ROLES = ("meta", "agent", "memory")  # who spends: the meta agent, the acting agent, the memory
RETRY_KIND = "retry"  # ledger rows that count a retried attempt, not a call
NO_MEMORY = "no_memory"


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of one design on one split, as recorded."""

    key: str
    design_id: str
    design_name: str
    domain: str
    split: str
    status: str  # done, design_failed, incomplete, interrupted, running
    rollout: str
    score: float | None  # None unless the evaluation is done
    stderr: float | None
    ci_low: float | None
    ci_high: float | None
    n_episodes: int
    cost_usd: float
    usage: dict[str, dict[str, float]]  # role -> tokens, cost_usd, calls, errors, retries
    per_task: dict[str, float]  # task id -> success rate over the deploy repeats
    failed_memory_calls: int
    episode_errors: int
    error: str | None
    started: float
    finished: float | None
    seconds: float

    def per_episode(self, role: str, what: str) -> float:
        """``tokens`` or ``cost_usd`` of ``role`` per episode played."""
        value = float(self.usage.get(role, {}).get(what, 0.0))
        return value / self.n_episodes if self.n_episodes else 0.0


@dataclass(frozen=True)
class Design:
    """One archived design and where it came from."""

    id: str
    name: str
    origin: str
    parent: str | None
    iteration: int
    status: str
    idea: str
    created: float
    times_chosen: int
    source: str = field(repr=False)
    train_key: str | None  # its train evaluation (the one parent selection uses)
    links: tuple[EvaluationLink, ...]  # every evaluation recorded for it, by role


@dataclass(frozen=True)
class Verification:
    attempt: int
    passed: bool
    report: dict[str, Any]


@dataclass(frozen=True)
class EpisodeRow:
    """An episode without its trajectory (that stays in the database)."""

    id: int
    ts: float
    evaluation_key: str
    domain: str
    task_id: str
    split: str
    phase: str
    repeat: int
    success: bool
    score: float
    steps: int
    reason: str
    memory_chars: int  # characters of what memory returned for it (0 in the build half)


@dataclass(frozen=True)
class RoleSpend:
    """What one role spent over the whole run, from the ledger."""

    role: str
    calls: int
    retries: int
    errors: int
    cache_hits: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class RunData:
    path: Path
    name: str
    domain: str
    config: dict[str, Any]
    reference_score: float | None
    designs: list[Design]
    evaluations: dict[str, Evaluation]  # by key, in the order started
    analyses: dict[tuple[str, int], dict[str, Any]]  # (analysed design, iteration) -> analysis
    verifications: dict[str, list[Verification]]  # by design id
    selections: list[tuple[int, tuple[str, ...]]]
    episodes: list[EpisodeRow]
    spend: list[RoleSpend]
    started: float | None
    ended: float | None
    _by_id: dict[str, Design] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_id = {d.id: d for d in self.designs}

    def design(self, design_id: str | None) -> Design | None:
        return self._by_id.get(design_id or "")

    def train(self, design: Design) -> Evaluation | None:
        return self.evaluations.get(design.train_key or "")

    def setting(self, section: str, key: str, default: Any = None) -> Any:
        value = self.config.get(section, {})
        return value.get(key, default) if isinstance(value, dict) else default


def read_run(run_dir: Path) -> RunData:
    """Everything the report and the exports show of the run in ``run_dir``."""
    run_dir = Path(run_dir)
    if not (run_dir / DATABASE).is_file():
        raise UsageError(
            f"{run_dir} is not a run directory (it has no {DATABASE})",
            hint="give a folder that `alma learn` or `alma eval` wrote",
        )
    with RunStore(run_dir, read_only=True) as store:
        archive = Archive(store)
        evaluations = _evaluations(store)
        links: dict[str, list[EvaluationLink]] = {}
        for row in store.table_rows("design_evaluations"):
            links.setdefault(row["design_id"], []).append(_link(row))
        designs = [
            Design(
                id=r.id,
                name=r.name,
                origin=r.origin,
                parent=r.parent,
                iteration=r.iteration,
                status=r.status,
                idea=r.idea,
                created=r.created,
                times_chosen=r.times_chosen,
                source=r.source,
                train_key=r.eval_key,
                links=tuple(links.get(r.id, ())),
            )
            for r in archive.designs()
        ]
        analyses = {(a.design_id, a.iteration): a.analysis for a in archive.analyses()}
        verifications: dict[str, list[Verification]] = {}
        for v in archive.verifications():
            verifications.setdefault(v.subject, []).append(
                Verification(v.attempt, v.passed, v.report)
            )
        selections = [(s.iteration, s.parents) for s in archive.selections()]
        episodes = _episodes(store)
        spend, first, last = _spend(store.llm_call_totals())
        domain = str(store.get_meta("domain") or "")
        reference = archive.reference_score()
    times = [t for t in (first, last) if t is not None]
    times += [d.created for d in designs] + [e.started for e in evaluations.values()]
    times += [e.finished for e in evaluations.values() if e.finished is not None]
    if not domain and evaluations:
        domain = next(iter(evaluations.values())).domain
    return RunData(
        path=run_dir,
        name=run_dir.resolve().name,
        domain=domain,
        config=_config(run_dir),
        reference_score=reference,
        designs=designs,
        evaluations=evaluations,
        analyses=analyses,
        verifications=verifications,
        selections=selections,
        episodes=episodes,
        spend=spend,
        started=min(times) if times else None,
        ended=max(times) if times else None,
    )


def read_ledger(run_dir: Path) -> list[dict[str, Any]]:
    """Every row of the run's ledger (model calls and retries), in the order recorded."""
    with RunStore(Path(run_dir), read_only=True) as store:
        return store.table_rows("llm_calls")


def _config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}  # the settings are shown when they can be read; the data does not need them


def _evaluations(store: RunStore) -> dict[str, Evaluation]:
    found: list[Evaluation] = []
    for row in store.table_rows("evaluations"):
        result: dict[str, Any] = json.loads(row["result"] or "{}")
        done = row["status"] == "done"
        ci = result.get("ci95") or (None, None)
        usage = {
            role: {
                what: float(tally.get(what, 0) or 0)
                for what in ("tokens", "cost_usd", "calls", "errors", "retries")
            }
            for role, tally in (result.get("usage") or {}).items()
        }
        per_task = {
            task: sum(map(bool, runs)) / len(runs)
            for task, runs in (result.get("per_task") or {}).items()
            if runs
        }
        memory = result.get("memory") or {}
        found.append(
            Evaluation(
                key=row["key"],
                design_id=row["design_id"],
                design_name=row["design_name"],
                domain=row["domain"],
                split=row["split"],
                status=row["status"],
                rollout=str(result.get("rollout", "")),
                score=float(row["score"]) if done and row["score"] is not None else None,
                stderr=float(row["stderr"]) if done and row["stderr"] is not None else None,
                ci_low=float(ci[0]) if done and ci[0] is not None else None,
                ci_high=float(ci[1]) if done and ci[1] is not None else None,
                n_episodes=int(result.get("n_episodes", 0) or 0),
                cost_usd=float(row["cost_usd"] or 0.0),
                usage=usage,
                per_task=per_task,
                failed_memory_calls=int(
                    result.get("failed_memory_calls")
                    or memory.get("retrieve_errors", 0) + memory.get("update_errors", 0)
                ),
                episode_errors=int(result.get("episode_errors", 0) or 0),
                error=(row["status"] != "done" and (result.get("error") or row["status"])) or None,
                started=float(row["started"]),
                finished=float(row["finished"]) if row["finished"] is not None else None,
                seconds=float(result.get("seconds", 0.0) or 0.0),
            )
        )
    found.sort(key=lambda e: e.started)
    return {e.key: e for e in found}


def _link(row: dict[str, Any]) -> EvaluationLink:
    return EvaluationLink(
        design_id=row["design_id"],
        role=row["role"],
        key=row["eval_key"],
        split=row["split"],
        score=row["score"],
        stderr=row["stderr"],
        cost=row["cost_usd"],
        error=row["error"],
        recorded=row["recorded"],
    )


def _episodes(store: RunStore) -> list[EpisodeRow]:
    rows = store.episode_rows(
        {"phase": "$.phase", "repeat": "$.repeat"}, {"memory_chars": "$.episode.memory"}
    )
    return [
        EpisodeRow(
            id=int(row["id"]),
            ts=float(row["ts"]),
            evaluation_key=row["label"],
            domain=row["domain"],
            task_id=row["task_id"],
            split=row["split"],
            phase=str(row["phase"] or ""),
            repeat=int(row["repeat"] or 0),
            success=bool(row["success"]),
            score=float(row["score"]),
            steps=int(row["steps"]),
            reason=row["reason"],
            memory_chars=_answer_chars(row["memory_chars"]) if row["phase"] == "deploy" else 0,
        )
        for row in rows
    ]


def _spend(rows: list[dict[str, Any]]) -> tuple[list[RoleSpend], float | None, float | None]:
    """Per role totals of the ledger, and the times of its first and last rows."""
    totals: dict[str, dict[str, float]] = {}
    first: float | None = None
    last: float | None = None
    for row in rows:
        tally = totals.setdefault(row["purpose"], {})
        if row["kind"] == RETRY_KIND:
            tally["retries"] = tally.get("retries", 0) + row["rows"]
        else:
            for name, column in (
                ("calls", "rows"),
                ("errors", "errors"),
                ("cache_hits", "from_cache"),
                ("prompt_tokens", "prompt_tokens"),
                ("completion_tokens", "completion_tokens"),
                ("cost_usd", "cost_usd"),
            ):
                tally[name] = tally.get(name, 0) + (row[column] or 0)
        first = row["first_ts"] if first is None else min(first, row["first_ts"])
        last = row["last_ts"] if last is None else max(last, row["last_ts"])
    order = [*ROLES, *sorted(set(totals) - set(ROLES))]
    spend = [
        RoleSpend(
            role=role,
            calls=int(totals.get(role, {}).get("calls", 0)),
            retries=int(totals.get(role, {}).get("retries", 0)),
            errors=int(totals.get(role, {}).get("errors", 0)),
            cache_hits=int(totals.get(role, {}).get("cache_hits", 0)),
            prompt_tokens=int(totals.get(role, {}).get("prompt_tokens", 0)),
            completion_tokens=int(totals.get(role, {}).get("completion_tokens", 0)),
            cost_usd=float(totals.get(role, {}).get("cost_usd", 0.0)),
        )
        for role in order
    ]
    return spend, first, last


__all__ = [
    "NO_MEMORY",
    "ROLES",
    "SELECTION_ROLE",
    "Design",
    "EpisodeRow",
    "Evaluation",
    "RoleSpend",
    "RunData",
    "Verification",
    "read_ledger",
    "read_run",
]


def _answer_chars(length: int | None) -> int:
    """Characters of what memory returned, as JSON text; an empty answer (``{}``) counts 0."""
    return 0 if length is None or length <= 2 else int(length)
