"""The run directory and its SQLite database.

``runs/<name>/alma.sqlite`` (WAL mode) holds everything a run computed; each write is committed
at once so a killed process loses nothing already recorded. Layers above add their own tables
with :meth:`RunStore.ensure_schema`; this module owns only the core ones.

A fault of the disk or the file (damaged database, read-only folder, full disk, no permission)
leaves this module as a :class:`~alma.errors.StorageError` naming the file, never as a raw
``sqlite3`` or ``OSError`` exception; :func:`storage_fault` says which faults those are.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from alma.errors import StorageError, UsageError
from alma.storage_faults import (
    OS_FAULTS,
    READ_ONLY_HINT,
    SQLITE_CANTOPEN,
    SQLITE_FAULTS,
    is_storage_fault,
    primary_code,
    storage_fault,
)
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
    error TEXT,
    estimated INTEGER NOT NULL DEFAULT 0
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
    """One run directory: ``alma.sqlite``, ``config.toml`` and whatever layers add.

    ``read_only=True`` is for commands that only read (``alma archive``, ``alma show``): the
    database is opened as usual where the run folder is writable, read-only where it is not (a
    read-only disk, a copy without write permission), so such a run can still be listed.
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.database = self.path / DATABASE
        self._lock = threading.RLock()
        self.read_only = read_only and not _writable(self.path, self.database)
        if not self.read_only:
            make_run_dir(self.path)
        with self._named_faults():
            self._db = self._connect()
            self._db.row_factory = sqlite3.Row
            if not self.read_only:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
        self.ensure_schema(_CORE_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        if not self.read_only:
            return sqlite3.connect(
                self.database, check_same_thread=False, isolation_level=None, timeout=30
            )
        uri = self.database.absolute().as_uri() + "?mode=ro"
        db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA schema_version")  # SQLite opens the file at the first statement
        except sqlite3.OperationalError as error:
            db.close()
            if primary_code(error) != SQLITE_CANTOPEN:
                raise
            # a WAL database needs its -shm file; in a folder where it cannot be made, read the
            # database as it is on disk (nothing can be writing to it there)
            db = sqlite3.connect(
                uri + "&immutable=1", uri=True, check_same_thread=False, isolation_level=None
            )
        return db

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _named_faults(self) -> Iterator[None]:
        """Turn a fault of the database file or its disk into a StorageError naming the file."""
        try:
            yield
        except sqlite3.Error as error:
            if not is_storage_fault(error):
                raise  # a bug of alma's, not the disk's
            if primary_code(error) == SQLITE_CANTOPEN:  # SQLite's words hide the cause
                raise self._cannot_open() from error
            raise storage_fault(error, self.database) from error

    def _cannot_open(self) -> StorageError:
        if self.database.exists() and not os.access(self.database, os.R_OK):
            reason, hint = OS_FAULTS[errno.EACCES]
        elif self.path.is_dir() and not os.access(self.path, os.W_OK):
            reason, hint = "the run folder is read-only", READ_ONLY_HINT  # no room for WAL files
        else:
            reason, hint = SQLITE_FAULTS[SQLITE_CANTOPEN]
        return StorageError(f"cannot use {self.database}: {reason}", hint=hint)

    def ensure_schema(self, ddl: str) -> None:
        with self._lock, self._named_faults():
            if self.read_only:
                self._stand_in_for_missing_tables(ddl)
            else:
                self._db.executescript(ddl)

    def _stand_in_for_missing_tables(self, ddl: str) -> None:
        """A read-only database lacks the tables of layers that never wrote to it; empty
        temporary tables stand in for them, so a reader sees no rows instead of an error."""
        tables = "SELECT name FROM sqlite_master WHERE type='table'"
        existing = {row[0] for row in self._db.execute(tables)}
        for statement in _statements(ddl):
            created = _CREATE_TABLE.match(statement)
            if created is not None and created.group("name") not in existing:
                self._db.execute(_CREATE_TABLE.sub("CREATE TEMP TABLE IF NOT EXISTS", statement))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._named_faults():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite may have rolled back already (disk full)
                    with suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement; returns the last row id."""
        with self._lock, self._named_faults():
            cursor = self._db.execute(sql, params)
            return int(cursor.lastrowid or 0)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock, self._named_faults():
            return list(self._db.execute(sql, params).fetchall())

    def close(self) -> None:
        with self._lock, self._named_faults():
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
        self.write_text("config.toml", tomli_w.dumps(data))

    def write_text(self, name: str | Path, text: str) -> Path:
        """Write a file of the run (``name`` relative to it) whole or not at all: a partial file
        never replaces a complete one, and a failure names the file."""
        target = self.path / name
        partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(text, encoding="utf-8")
            os.replace(partial, target)
        except OSError as error:
            with suppress(OSError):
                partial.unlink(missing_ok=True)
            raise storage_fault(error, target, doing="write") from error
        return target

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

    def episodes(self, label: str, *, phase: str | None = None) -> list[StoredEpisode]:
        """The episodes recorded under ``label`` (an evaluation's key), in the order they were
        recorded; with ``phase``, only those of that phase of the evaluation (``deploy``...)."""
        sql = "SELECT task_id, split, data FROM episodes WHERE label=?"
        params: tuple[str, ...] = (label,)
        if phase is not None:
            sql, params = sql + " AND json_extract(data, '$.phase')=?", (label, phase)
        found: list[StoredEpisode] = []
        for row in self.query(sql + " ORDER BY id", params):
            data = json.loads(row["data"])
            nested = isinstance(data.get("episode"), dict)  # an evaluation's record
            found.append(
                StoredEpisode(
                    task_id=row["task_id"],
                    split=row["split"],
                    phase=str(data.get("phase", "")) if nested else "",
                    repeat=int(data.get("repeat", 0)) if nested else 0,
                    episode=Episode.from_dict(data["episode"] if nested else data),
                )
            )
        return found

    # ------------------------------------------------------------------ reading whole tables
    def table_names(self) -> set[str]:
        """The tables of the run database (and any read-only stand-ins for missing ones)."""
        rows = self.query(
            "SELECT name FROM sqlite_master WHERE type='table'"
            " UNION SELECT name FROM sqlite_temp_master WHERE type='table'"
        )
        return {row["name"] for row in rows}

    def table_rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of ``table`` in the order written, as plain dicts; none when the run never
        made that table (a layer that never wrote to it)."""
        if table not in self.table_names():  # also keeps the name out of reach of injection
            return []
        return [dict(row) for row in self.query(f'SELECT * FROM "{table}" ORDER BY rowid')]

    def episode_rows(
        self,
        data_fields: dict[str, str] | None = None,
        data_lengths: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Every episode in the order recorded, without its ``data`` document (the trajectory,
        often kilobytes); ``data_fields`` adds values read out of that document by JSON path
        (column name -> path, e.g. ``{"phase": "$.phase"}``), ``data_lengths`` the length in
        characters of the JSON text at a path (``NULL`` where the path is absent)."""
        columns = "id, ts, label, domain, task_id, split, success, score, steps, reason"
        params: list[str] = []
        for name, path in (data_fields or {}).items():
            columns += f", json_extract(data, ?) AS {_column_name(name)}"
            params.append(path)
        for name, path in (data_lengths or {}).items():
            columns += f", length(json_extract(data, ?)) AS {_column_name(name)}"
            params.append(path)
        rows = self.query(f"SELECT {columns} FROM episodes ORDER BY id", params)
        return [dict(row) for row in rows]

    def llm_call_totals(self) -> list[dict[str, Any]]:
        """Model calls summed per purpose and kind (``chat``, ``embed``, ``retry``...): rows,
        tokens, dollars, latency, rows served from the cache, with an error, or estimated."""
        return [
            dict(row)
            for row in self.query(
                "SELECT purpose, kind, COUNT(*) AS rows, SUM(prompt_tokens) AS prompt_tokens,"
                " SUM(completion_tokens) AS completion_tokens,"
                " SUM(cached_tokens) AS cached_tokens, SUM(cost_usd) AS cost_usd,"
                " SUM(latency_s) AS latency_s, SUM(from_cache) AS from_cache,"
                " SUM(error IS NOT NULL) AS errors, SUM(estimated) AS estimated,"
                " MIN(ts) AS first_ts, MAX(ts) AS last_ts"
                " FROM llm_calls GROUP BY purpose, kind ORDER BY purpose, kind"
            )
        ]


def _column_name(name: str) -> str:
    if not name.isidentifier():
        raise ValueError(f"not a column name: {name!r}")
    return name


@dataclass(frozen=True)
class StoredEpisode:
    """A recorded episode and where it was played: the phase (``build``, ``deploy``) and the
    repeat of an evaluation, or ``""`` and 0 for an episode played on its own."""

    task_id: str
    split: str
    phase: str
    repeat: int
    episode: Episode


def new_run_dir(root: Path, prefix: str) -> Path:
    """A fresh ``root/<prefix>-YYYYmmdd-HHMMSS`` directory (suffixed ``-2``, ``-3``... if taken),
    created here, so two processes started in the same second never share one."""
    base = Path(root) / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"
    make_run_dir(base.parent)
    candidate, counter = base, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            counter += 1
            candidate = base.with_name(f"{base.name}-{counter}")
        except OSError as error:
            raise _run_dir_error(candidate, error) from error


def make_run_dir(path: Path) -> None:
    """Create a run directory (and its parents) if needed."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _run_dir_error(path, error) from error


def _run_dir_error(path: Path, error: OSError) -> UsageError | StorageError:
    if error.errno in OS_FAULTS:
        return storage_fault(error, path, doing="create")
    return UsageError(  # a file in the way, a name too long: the path asked for is wrong
        f"cannot create run directory {path}: {error.strerror}", hint="choose another --run-dir"
    )


def _writable(folder: Path, database: Path) -> bool:
    return os.access(folder, os.W_OK) and (not database.exists() or os.access(database, os.W_OK))


_CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>\w+)", re.I)


def _statements(script: str) -> Iterator[str]:
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n;"):
                yield buffer.strip()
            buffer = ""
