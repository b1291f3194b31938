"""The design archive: every memory design of a run, with its lineage and what happened to it.

The archive lives in the run database (``alma.sqlite``) next to the evaluations it points to:

- ``designs``: code, origin, parent, iteration, one-line idea and status of each design, stored
  once per id (the id is the hash of the code, so the same code is never evaluated twice);
  a readable copy goes to ``<run dir>/designs/<id>.py``;
- ``design_evaluations``: links a design to an evaluation (by its key in ``evaluations``) under a
  role; the ``train`` role gives the score that parent selection uses;
- ``analyses``, ``verifications``: what the meta agent said about a parent, and each static check,
  smoke run and repair attempt of new code;
- ``selections`` and ``selection_parents``: the parents picked at each iteration with their
  probabilities (how often a design was chosen is counted from these);
- ``loop_state``: one JSON document the loop checkpoints (its iteration, the selector's RNG state).

Every write is one transaction, so a process killed at any moment leaves the archive as it was
before or after that write, never in between; a new :class:`Archive` on the same run directory
sees everything written so far.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alma.memory.loading import DesignSource
from alma.search.archive_records import (
    DESIGN_STATUSES,
    ORIGINS,
    RECORD_QUERY,
    SCHEMA,
    SELECTION_ROLE,
    AnalysisRecord,
    DesignRecord,
    DesignStatus,
    EvaluationLink,
    SelectionRecord,
    VerificationRecord,
    design_record,
    evaluation_link,
    selection_record,
)
from alma.store import RunStore

if TYPE_CHECKING:
    import sqlite3

    from alma.evaluate.results import EvalResult

__all__ = [
    "DESIGN_STATUSES",
    "SELECTION_ROLE",
    "AnalysisRecord",
    "Archive",
    "DesignRecord",
    "DesignStatus",
    "EvaluationLink",
    "SelectionRecord",
    "VerificationRecord",
]

DESIGNS_DIR = "designs"
_REFERENCE_KEY = "archive.reference_score"


class Archive:
    """Every design of a run and its history, in the run's database (``store``)."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.designs_dir = store.path / DESIGNS_DIR
        store.ensure_schema(SCHEMA)

    # ------------------------------------------------------------------ designs
    def add_design(
        self,
        design: DesignSource,
        *,
        parent: str | None,
        iteration: int,
        idea: str,
        status: DesignStatus = "pending",
    ) -> bool:
        """Archive new code; ``False`` (and nothing changes) when its id is already archived.

        ``parent`` must be archived already. The readable copy ``designs/<id>.py`` is written
        before the row is committed, so every archived design has its file.
        """
        _check_status(status)
        if design.origin not in ORIGINS:
            raise ValueError(f"unknown origin {design.origin!r}; one of {', '.join(ORIGINS)}")
        idea = " ".join(idea.split())  # one line
        with self.store.transaction() as db:
            if _exists(db, design.id):
                return False
            if parent is not None and not _exists(db, parent):
                raise ValueError(f"parent {parent!r} of design {design.id} is not archived")
            self._write_copy(design, parent, idea)
            db.execute(
                "INSERT INTO designs(id, name, source, origin, parent, iteration, idea, status,"
                " created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    design.id,
                    design.name,
                    design.source,
                    design.origin,
                    parent,
                    iteration,
                    idea,
                    status,
                    time.time(),
                ),
            )
        return True

    def set_status(self, design_id: str, status: DesignStatus) -> None:
        _check_status(status)
        with self.store.transaction() as db:
            self._require(db, design_id)
            db.execute("UPDATE designs SET status=? WHERE id=?", (status, design_id))

    def design_path(self, design_id: str) -> Path:
        return self.designs_dir / f"{design_id}.py"

    def source(self, design_id: str) -> DesignSource:
        rows = self.store.query("SELECT name, source, origin FROM designs WHERE id=?", (design_id,))
        if not rows:
            raise KeyError(design_id)
        row = rows[0]
        return DesignSource(row["name"], row["source"], row["origin"])

    def __contains__(self, design_id: object) -> bool:
        return bool(self.store.query("SELECT 1 FROM designs WHERE id=?", (design_id,)))

    def __len__(self) -> int:
        return int(self.store.query("SELECT COUNT(*) AS n FROM designs")[0]["n"])

    # ------------------------------------------------------------------ evaluations
    def record_evaluation(self, design_id: str, result: EvalResult, *, role: str) -> None:
        """Link a finished evaluation to a design under ``role`` (one per role; later replaces).

        A ``train`` evaluation also settles the design's status: ``evaluated``, or
        ``evaluation_failed`` when the result carries an error.
        """
        if result.design_id != design_id:
            raise ValueError(
                f"evaluation {result.key} is of design {result.design_id}, not {design_id}"
            )
        with self.store.transaction() as db:
            self._require(db, design_id)
            db.execute(
                "INSERT INTO design_evaluations(design_id, role, eval_key, split, score, stderr,"
                " cost_usd, error, recorded) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(design_id, role) DO UPDATE SET eval_key=excluded.eval_key,"
                " split=excluded.split, score=excluded.score, stderr=excluded.stderr,"
                " cost_usd=excluded.cost_usd, error=excluded.error, recorded=excluded.recorded",
                (
                    design_id,
                    role,
                    result.key,
                    result.split,
                    result.score,  # read as a score only when there is no error
                    result.stderr,
                    result.cost_usd,
                    result.error,
                    time.time(),
                ),
            )
            if role == SELECTION_ROLE:
                status = "evaluation_failed" if result.error is not None else "evaluated"
                db.execute("UPDATE designs SET status=? WHERE id=?", (status, design_id))

    def evaluation(self, design_id: str, role: str = SELECTION_ROLE) -> EvaluationLink | None:
        rows = self.store.query(
            "SELECT * FROM design_evaluations WHERE design_id=? AND role=?", (design_id, role)
        )
        return evaluation_link(rows[0]) if rows else None

    def evaluations(self, design_id: str) -> list[EvaluationLink]:
        rows = self.store.query(
            "SELECT * FROM design_evaluations WHERE design_id=? ORDER BY rowid",
            (design_id,),
        )
        return [evaluation_link(row) for row in rows]

    def score(self, design_id: str) -> float | None:
        """The design's train score; ``None`` without a successful train evaluation."""
        link = self.evaluation(design_id)
        return link.score if link is not None and link.error is None else None

    def gain(self, design_id: str) -> float | None:
        """Train score over the parent's; ``None`` when either is missing."""
        record = self.get(design_id)
        if record is None or record.parent is None or record.score is None:
            return None
        parent = self.score(record.parent)
        return None if parent is None else record.score - parent

    def reference_score(self) -> float | None:
        """The no-memory design's train score, against which selection measures designs."""
        value = self.store.get_meta(_REFERENCE_KEY)
        return None if value is None else float(value)

    def set_reference_score(self, score: float) -> None:
        self.store.set_meta(_REFERENCE_KEY, float(score))

    # ------------------------------------------------------------------ queries
    def designs(self, status: DesignStatus | None = None) -> list[DesignRecord]:
        """Every design (or those with ``status``) in the order they were archived."""
        if status is None:
            rows = self.store.query(RECORD_QUERY + " ORDER BY d.rowid", (SELECTION_ROLE,))
        else:
            _check_status(status)
            rows = self.store.query(
                RECORD_QUERY + " WHERE d.status=? ORDER BY d.rowid",
                (SELECTION_ROLE, status),
            )
        return [design_record(row) for row in rows]

    def get(self, design_id: str) -> DesignRecord | None:
        rows = self.store.query(RECORD_QUERY + " WHERE d.id=?", (SELECTION_ROLE, design_id))
        return design_record(rows[0]) if rows else None

    def candidates(self) -> list[DesignRecord]:
        """Designs parent selection may pick: evaluated, with a train score."""
        return [record for record in self.designs("evaluated") if record.score is not None]

    def best(self, n: int = 1) -> list[DesignRecord]:
        """The ``n`` best candidates: highest score, then lowest error, then earliest."""
        ranked = sorted(
            self.candidates(),
            key=lambda r: (-(r.score or 0.0), r.stderr or 0.0, r.iteration, r.created, r.id),
        )
        return ranked[: max(n, 0)]

    def lineage(self, design_id: str) -> list[str]:
        """Ids from the oldest ancestor down to ``design_id`` itself."""
        parents = {
            row["id"]: row["parent"] for row in self.store.query("SELECT id, parent FROM designs")
        }
        if design_id not in parents:
            raise KeyError(design_id)
        chain: list[str] = []
        current: str | None = design_id
        while current is not None and current not in chain:
            chain.append(current)
            current = parents.get(current)
        return chain[::-1]

    def children(self, design_id: str) -> list[str]:
        rows = self.store.query(
            "SELECT id FROM designs WHERE parent=? ORDER BY rowid", (design_id,)
        )
        return [row["id"] for row in rows]

    # ------------------------------------------------------------------ analyses
    def add_analysis(self, design_id: str, iteration: int, analysis: dict[str, Any]) -> int:
        text = json.dumps(analysis)
        with self.store.transaction() as db:
            self._require(db, design_id)
            cursor = db.execute(
                "INSERT INTO analyses(design_id, iteration, analysis, created) VALUES (?, ?, ?, ?)",
                (design_id, iteration, text, time.time()),
            )
            return int(cursor.lastrowid or 0)

    def analyses(self, design_id: str | None = None) -> list[AnalysisRecord]:
        sql = "SELECT design_id, iteration, analysis, created FROM analyses"
        params: tuple[Any, ...] = ()
        if design_id is not None:
            sql, params = sql + " WHERE design_id=?", (design_id,)
        rows = self.store.query(sql + " ORDER BY id", params)
        return [
            AnalysisRecord(
                row["design_id"], row["iteration"], json.loads(row["analysis"]), row["created"]
            )
            for row in rows
        ]

    # ------------------------------------------------------------------ verification
    def add_verification(
        self, subject: str, attempt_no: int, passed: bool, report: dict[str, Any], source: str
    ) -> int:
        """Record one verification round of ``source``.

        ``subject`` is the design id the code has (or will have) in the archive, or any label
        the loop gives a repair chain whose code never passes; ``attempt_no`` 0 is the first
        check, 1.. the repair rounds.
        """
        text = json.dumps(report)
        with self.store.transaction() as db:
            cursor = db.execute(
                "INSERT INTO verifications(subject, attempt, passed, report, source, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (subject, attempt_no, int(passed), text, source, time.time()),
            )
            return int(cursor.lastrowid or 0)

    def verifications(self, subject: str | None = None) -> list[VerificationRecord]:
        sql = "SELECT subject, attempt, passed, report, source, created FROM verifications"
        params: tuple[Any, ...] = ()
        if subject is not None:
            sql, params = sql + " WHERE subject=?", (subject,)
        rows = self.store.query(sql + " ORDER BY id", params)
        return [
            VerificationRecord(
                row["subject"],
                row["attempt"],
                bool(row["passed"]),
                json.loads(row["report"]),
                row["source"],
                row["created"],
            )
            for row in rows
        ]

    # ------------------------------------------------------------------ selections
    def add_selection(
        self,
        iteration: int,
        parents: list[str],
        probabilities: dict[str, float],
        *,
        state: dict[str, Any] | None = None,
    ) -> None:
        """Record the parents picked at ``iteration`` (replacing an earlier pick for it).

        With ``state``, the loop state is saved in the same transaction, so the recorded pick
        and the checkpointed RNG state that produced it can never disagree after a crash.
        """
        if len(set(parents)) != len(parents):
            raise ValueError(f"parents picked twice at iteration {iteration}: {parents}")
        parents_text = json.dumps(list(parents))
        probabilities_text = json.dumps({k: float(v) for k, v in probabilities.items()})
        state_text = json.dumps(state) if state is not None else None
        now = time.time()
        with self.store.transaction() as db:
            for design_id in parents:
                self._require(db, design_id)
            db.execute("DELETE FROM selection_parents WHERE iteration=?", (iteration,))
            db.execute(
                "INSERT INTO selections(iteration, parents, probabilities, created)"
                " VALUES (?, ?, ?, ?) ON CONFLICT(iteration) DO UPDATE SET"
                " parents=excluded.parents, probabilities=excluded.probabilities,"
                " created=excluded.created",
                (iteration, parents_text, probabilities_text, now),
            )
            db.executemany(
                "INSERT INTO selection_parents(iteration, position, design_id) VALUES (?, ?, ?)",
                [(iteration, position, design_id) for position, design_id in enumerate(parents)],
            )
            if state_text is not None:
                _save_state(db, state_text, now)

    def selection(self, iteration: int) -> SelectionRecord | None:
        rows = self.store.query("SELECT * FROM selections WHERE iteration=?", (iteration,))
        return selection_record(rows[0]) if rows else None

    def selections(self) -> list[SelectionRecord]:
        return [
            selection_record(row)
            for row in self.store.query("SELECT * FROM selections ORDER BY iteration")
        ]

    def times_chosen(self, design_id: str) -> int:
        rows = self.store.query(
            "SELECT COUNT(*) AS n FROM selection_parents WHERE design_id=?", (design_id,)
        )
        return int(rows[0]["n"])

    # ------------------------------------------------------------------ loop state
    def save_state(self, state: dict[str, Any]) -> None:
        """Checkpoint the loop (replaces the previous checkpoint); ``state`` must be JSON-able."""
        text = json.dumps(state)
        with self.store.transaction() as db:
            _save_state(db, text, time.time())

    def load_state(self) -> dict[str, Any] | None:
        rows = self.store.query("SELECT state FROM loop_state WHERE id=1")
        if not rows:
            return None
        state: dict[str, Any] = json.loads(rows[0]["state"])
        return state

    # ------------------------------------------------------------------ internals
    def _require(self, db: sqlite3.Connection, design_id: str) -> None:
        if not _exists(db, design_id):
            raise ValueError(f"design {design_id!r} is not archived")

    def _write_copy(self, design: DesignSource, parent: str | None, idea: str) -> None:
        header = [
            f"# alma memory design {design.id}",
            f"# name: {' '.join(design.name.split())}",
            f"# origin: {design.origin}",
            f"# parent: {parent or '-'}",
            f"# idea: {idea or '-'}",
        ]
        text = "\n".join(header) + "\n\n" + design.source.rstrip("\n") + "\n"
        self.store.write_text(f"{DESIGNS_DIR}/{design.id}.py", text)  # whole or not at all


def _check_status(status: str) -> None:
    if status not in DESIGN_STATUSES:
        raise ValueError(f"unknown design status {status!r}; one of {', '.join(DESIGN_STATUSES)}")


def _exists(db: sqlite3.Connection, design_id: str) -> bool:
    return db.execute("SELECT 1 FROM designs WHERE id=?", (design_id,)).fetchone() is not None


def _save_state(db: sqlite3.Connection, text: str, now: float) -> None:
    db.execute(
        "INSERT INTO loop_state(id, state, saved) VALUES (1, ?, ?)"
        " ON CONFLICT(id) DO UPDATE SET state=excluded.state, saved=excluded.saved",
        (text, now),
    )
