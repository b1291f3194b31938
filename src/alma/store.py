"""The run directory and its SQLite database.

``runs/<name>/alma.sqlite`` (WAL mode) holds everything a run computed; each write is committed
at once so a killed process loses nothing already recorded. Layers above add their own tables
with :meth:`RunStore.ensure_schema`; this module owns only the core ones.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tomli_w

from alma.errors import UsageError
from alma.types import Episode, Task, to_dict

DATABASE = "alma.sqlite"

_CORE_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS llm_calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    scope TEXT NOT NULL DEFAULT '',
    purpose TEXT NOT NULL,
    model TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'chat',
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    latency_s REAL NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    from_cache INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE TABLE IF NOT EXISTS episodes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    domain TEXT NOT NULL,
    task_id TEXT NOT NULL,
    split TEXT NOT NULL,
    success INTEGER NOT NULL,
    score REAL NOT NULL,
    steps INTEGER NOT NULL,
    reason TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS episodes_label ON episodes(label);
"""


class RunStore:
    """One run directory: ``alma.sqlite``, ``config.toml`` and whatever layers add."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(
                f"cannot create run directory {self.path}: {error.strerror}",
                hint="choose another --run-dir",
            ) from None
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.path / DATABASE, check_same_thread=False, isolation_level=None, timeout=30
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self.ensure_schema(_CORE_SCHEMA)

    # ------------------------------------------------------------------ plumbing
    def ensure_schema(self, ddl: str) -> None:
        with self._lock:
            self._db.executescript(ddl)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement; returns the last row id."""
        with self._lock:
            cursor = self._db.execute(sql, params)
            return int(cursor.lastrowid or 0)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, params).fetchall())

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ meta
    def set_meta(self, key: str, value: Any) -> None:
        self.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, json.dumps(value)),
        )

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self.query("SELECT value FROM meta WHERE key=?", (key,))
        return json.loads(rows[0]["value"]) if rows else default

    def write_config(self, data: dict[str, Any]) -> None:
        """Keep what was asked for next to the data, as ``config.toml``."""
        (self.path / "config.toml").write_text(tomli_w.dumps(data), encoding="utf-8")

    # ------------------------------------------------------------------ episodes
    def add_episode(
        self,
        domain: str,
        task: Task,
        episode: Episode,
        *,
        label: str = "",
        data: dict[str, Any] | None = None,
    ) -> int:
        """Record one played episode; ``data`` (the episode itself by default) is kept as JSON."""
        outcome = episode.outcome
        return self.execute(
            "INSERT INTO episodes(ts, label, domain, task_id, split, success, score, steps, "
            "reason, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                time.time(),
                label,
                domain,
                task.id,
                task.split,
                int(outcome.success),
                outcome.score,
                outcome.steps,
                outcome.reason,
                json.dumps(data if data is not None else to_dict(episode)),
            ),
        )


def new_run_dir(root: Path, prefix: str) -> Path:
    """A fresh ``root/<prefix>-YYYYmmdd-HHMMSS`` path (suffixed ``-2``, ``-3``... if taken)."""
    base = Path(root) / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"
    candidate, counter = base, 1
    while candidate.exists():
        counter += 1
        candidate = base.with_name(f"{base.name}-{counter}")
    return candidate
