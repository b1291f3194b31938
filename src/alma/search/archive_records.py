"""What the archive keeps: its tables and the records it reads back from them.

The tables live in the run database next to the evaluations they point to (see
:mod:`alma.search.archive` for what each holds and how it is written); the frozen records here
are what the loop, the selectors and reports read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from alma.memory.loading import DesignSource, Origin

if TYPE_CHECKING:
    import sqlite3

DesignStatus = Literal[
    "pending", "verified", "failed_verification", "evaluated", "evaluation_failed"
]
DESIGN_STATUSES: tuple[DesignStatus, ...] = get_args(DesignStatus)
ORIGINS: tuple[Origin, ...] = get_args(Origin)
SELECTION_ROLE = "train"  # the evaluation role whose score parent selection uses

SCHEMA = """
CREATE TABLE IF NOT EXISTS designs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    origin TEXT NOT NULL,
    parent TEXT REFERENCES designs(id),
    iteration INTEGER NOT NULL,
    idea TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS designs_parent ON designs(parent);
CREATE TABLE IF NOT EXISTS design_evaluations (
    design_id TEXT NOT NULL REFERENCES designs(id),
    role TEXT NOT NULL,
    eval_key TEXT NOT NULL,
    split TEXT NOT NULL,
    score REAL NOT NULL,
    stderr REAL NOT NULL,
    cost_usd REAL NOT NULL,
    error TEXT,
    recorded REAL NOT NULL,
    PRIMARY KEY (design_id, role)
);
CREATE TABLE IF NOT EXISTS analyses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    design_id TEXT NOT NULL REFERENCES designs(id),
    iteration INTEGER NOT NULL,
    analysis TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS analyses_design ON analyses(design_id);
CREATE TABLE IF NOT EXISTS verifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    report TEXT NOT NULL,
    source TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS verifications_subject ON verifications(subject);
CREATE TABLE IF NOT EXISTS selections (
    iteration INTEGER PRIMARY KEY,
    parents TEXT NOT NULL,
    probabilities TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS selection_parents (
    iteration INTEGER NOT NULL REFERENCES selections(iteration),
    position INTEGER NOT NULL,
    design_id TEXT NOT NULL REFERENCES designs(id),
    PRIMARY KEY (iteration, position)
);
CREATE INDEX IF NOT EXISTS selection_parents_design ON selection_parents(design_id);
CREATE TABLE IF NOT EXISTS loop_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state TEXT NOT NULL,
    saved REAL NOT NULL
);
"""

RECORD_QUERY = """
SELECT d.id, d.name, d.source, d.origin, d.parent, d.iteration, d.idea, d.status, d.created,
       e.score AS score, e.stderr AS stderr, e.cost_usd AS cost_usd, e.error AS error,
       e.eval_key AS eval_key,
       (SELECT COUNT(*) FROM selection_parents p WHERE p.design_id = d.id) AS times_chosen
FROM designs d
LEFT JOIN design_evaluations e ON e.design_id = d.id AND e.role = ?
"""


@dataclass(frozen=True)
class DesignRecord:
    """One archived design as the loop, the selectors and reports see it.

    ``score`` and ``stderr`` come from the design's ``train`` evaluation and are ``None`` until
    it has one that succeeded; ``cost`` is that evaluation's dollars (0 without one).
    """

    id: str
    name: str
    origin: Origin
    parent: str | None
    iteration: int
    idea: str
    status: DesignStatus
    score: float | None
    stderr: float | None
    cost: float
    times_chosen: int
    error: str | None = None  # why the train evaluation failed
    eval_key: str | None = None  # the train evaluation's key in ``evaluations``
    created: float = 0.0
    source: str = field(default="", repr=False)

    def design(self) -> DesignSource:
        return DesignSource(self.name, self.source, self.origin)


@dataclass(frozen=True)
class EvaluationLink:
    """An evaluation recorded for a design under a role (``train``, ``eval_in_distribution``...)."""

    design_id: str
    role: str
    key: str  # the evaluation's key in the ``evaluations`` table
    split: str
    score: float
    stderr: float
    cost: float
    error: str | None
    recorded: float


@dataclass(frozen=True)
class AnalysisRecord:
    design_id: str
    iteration: int
    analysis: dict[str, Any]
    created: float


@dataclass(frozen=True)
class VerificationRecord:
    subject: str  # the design id, or a label of an attempt that never became a design
    attempt: int
    passed: bool
    report: dict[str, Any]
    source: str = field(repr=False)
    created: float = 0.0


@dataclass(frozen=True)
class SelectionRecord:
    iteration: int
    parents: tuple[str, ...]
    probabilities: dict[str, float]
    created: float


def design_record(row: sqlite3.Row) -> DesignRecord:
    failed = row["error"] is not None
    return DesignRecord(
        id=row["id"],
        name=row["name"],
        origin=row["origin"],
        parent=row["parent"],
        iteration=row["iteration"],
        idea=row["idea"],
        status=row["status"],
        score=None if failed or row["score"] is None else float(row["score"]),
        stderr=None if failed or row["stderr"] is None else float(row["stderr"]),
        cost=float(row["cost_usd"] or 0.0),
        times_chosen=int(row["times_chosen"]),
        error=row["error"],
        eval_key=row["eval_key"],
        created=row["created"],
        source=row["source"],
    )


def evaluation_link(row: sqlite3.Row) -> EvaluationLink:
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


def selection_record(row: sqlite3.Row) -> SelectionRecord:
    return SelectionRecord(
        iteration=row["iteration"],
        parents=tuple(json.loads(row["parents"])),
        probabilities=json.loads(row["probabilities"]),
        created=row["created"],
    )
