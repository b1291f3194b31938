"""Evaluations and their episodes in the run database."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from alma.evaluate.results import EvalResult
from alma.llm.ledger import Ledger
from alma.memory.loading import DesignSource
from alma.memory.runner import CallResult
from alma.store import RunStore
from alma.types import Episode, Task, to_dict

#: statuses of an evaluation that is over for good: reused, never run again
FINAL = ("done", "design_failed", "failed")


@dataclass(frozen=True)
class Recorded:
    """A finished episode of an earlier attempt at an evaluation, and its retrieve call."""

    episode: Episode
    retrieve: CallResult | None


SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
    key TEXT PRIMARY KEY,
    design_id TEXT NOT NULL,
    design_name TEXT NOT NULL,
    domain TEXT NOT NULL,
    split TEXT NOT NULL,
    status TEXT NOT NULL,
    score REAL,
    stderr REAL,
    cost_usd REAL,
    result TEXT,
    source TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL
);
"""


class EvaluationRecords:
    def __init__(self, store: RunStore) -> None:
        self.store = store
        store.ensure_schema(SCHEMA)

    def finished(self, key: str) -> EvalResult | None:
        marks = ", ".join("?" * len(FINAL))
        rows = self.store.query(
            f"SELECT result FROM evaluations WHERE key=? AND status IN ({marks})", (key, *FINAL)
        )
        return EvalResult.from_dict(json.loads(rows[0]["result"])) if rows else None

    def start(
        self, result: EvalResult, design: DesignSource
    ) -> dict[tuple[str, int, str], Recorded]:
        """Mark the evaluation running; returns the episodes an earlier attempt finished, by
        (phase, repeat, task id). Episodes that could not finish are dropped, to be played again."""
        self.store.execute(
            "INSERT INTO evaluations(key, design_id, design_name, domain, split, status, source,"
            " started) VALUES (?, ?, ?, ?, ?, 'running', ?, ?) ON CONFLICT(key) DO UPDATE SET"
            " status='running', started=excluded.started",
            (
                result.key,
                design.id,
                design.name,
                result.domain,
                result.split,
                design.source,
                time.time(),
            ),
        )
        self.store.execute("DELETE FROM episodes WHERE label=? AND reason='error'", (result.key,))
        recorded: dict[tuple[str, int, str], Recorded] = {}
        for row in self.store.query(
            "SELECT task_id, data FROM episodes WHERE label=? ORDER BY id", (result.key,)
        ):
            data = json.loads(row["data"])
            call = data.get("retrieve")
            retrieve = None
            if call is not None:
                retrieve = CallResult(
                    error=call.get("error"), seconds=call.get("seconds", 0.0), trace=""
                )
            episode = Episode.from_dict(data["episode"])
            recorded[(data["phase"], int(data["repeat"]), row["task_id"])] = Recorded(
                episode, retrieve
            )
        return recorded

    def finish(self, result: EvalResult, ledger: Ledger, *, status: str) -> None:
        if not result.usage:
            result.usage = {p: t.as_dict() for p, t in ledger.by_purpose.items()}
            result.cost_usd = ledger.total.cost_usd
        self.store.execute(
            "UPDATE evaluations SET status=?, score=?, stderr=?, cost_usd=?, result=?, finished=?"
            " WHERE key=?",
            (
                status,
                result.score,
                result.stderr,
                result.cost_usd,
                json.dumps(result.as_dict()),
                time.time(),
                result.key,
            ),
        )

    def add_episode(
        self,
        result: EvalResult,
        task: Task,
        episode: Episode,
        phase: str,
        repeat: int,
        retrieved: CallResult | None,
    ) -> None:
        data: dict[str, Any] = {"phase": phase, "repeat": repeat, "episode": to_dict(episode)}
        if retrieved is not None:
            data["retrieve"] = {
                "error": retrieved.error,
                "seconds": retrieved.seconds,
                "trace": retrieved.trace,
            }
        self.store.add_episode(result.domain, task, episode, label=result.key, data=data)


def evaluation_summary(store: RunStore, key: str) -> dict[str, Any]:
    """Where an evaluation's score came from and what it cost: its domain, status, and model
    calls per role (calls, tokens, dollars, retries, calls that failed for good)."""
    rows = store.query("SELECT domain, status, result FROM evaluations WHERE key=?", (key,))
    if not rows:
        return {}
    result = json.loads(rows[0]["result"] or "{}")
    keep = ("calls", "tokens", "cost_usd", "retries", "errors")
    usage = {
        role: {name: tally.get(name, 0) for name in keep}
        for role, tally in (result.get("usage") or {}).items()
        if tally.get("calls") or tally.get("retries")
    }
    return {"domain": rows[0]["domain"], "status": rows[0]["status"], "usage": usage}
