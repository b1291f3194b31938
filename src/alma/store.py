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
from pathlib import Path
from typing import Any

import tomli_w

from alma.errors import StorageError, UsageError
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
            if _primary(error) != _SQLITE_CANTOPEN:
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
            if _primary(error) == _SQLITE_CANTOPEN:  # SQLite's words hide the cause
                raise self._cannot_open() from error
            raise storage_fault(error, self.database) from error

    def _cannot_open(self) -> StorageError:
        if self.database.exists() and not os.access(self.database, os.R_OK):
            reason, hint = _OS_FAULTS[errno.EACCES]
        elif self.path.is_dir() and not os.access(self.path, os.W_OK):
            reason, hint = "the run folder is read-only", _READ_ONLY_HINT  # no room for WAL files
        else:
            reason, hint = _SQLITE_FAULTS[_SQLITE_CANTOPEN]
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
    if error.errno in _OS_FAULTS:
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


# ---------------------------------------------------------------------------- storage faults

_FULL_HINT = (
    "free some space (what was finished is saved) and run the same command again, "
    "or use a --run-dir on another disk"
)
_READ_ONLY_HINT = "make the run folder writable, or use a writable copy of it (--run-dir)"
_PERMISSION_HINT = "give yourself read and write permission on it, or use another --run-dir"
_DAMAGED_HINT = (
    "restore the run folder from a copy, or start afresh with another --run-dir "
    "(`sqlite3 FILE .recover` may save what is left)"
)
_IO_HINT = "check the disk (its health, free space, mount); what was finished is saved"
_PATH_HINT = "check the path, its permissions and the disk it is on"

_SQLITE_CANTOPEN = 14
# SQLite's primary result codes that blame the file or the disk, not the program
_SQLITE_FAULTS: dict[int, tuple[str, str]] = {
    3: ("no permission", _PERMISSION_HINT),  # SQLITE_PERM
    5: ("it is locked by another process", "wait for that process to finish"),  # SQLITE_BUSY
    6: ("it is locked by another process", "wait for that process to finish"),  # SQLITE_LOCKED
    8: ("it is read-only", _READ_ONLY_HINT),  # SQLITE_READONLY
    10: ("disk I/O error", _IO_HINT),  # SQLITE_IOERR
    11: ("the database is damaged", _DAMAGED_HINT),  # SQLITE_CORRUPT
    13: ("the disk is full", _FULL_HINT),  # SQLITE_FULL
    _SQLITE_CANTOPEN: (
        "it cannot be opened",
        "check that its folder exists and that you may read and write it",
    ),
    26: ("the database is damaged", _DAMAGED_HINT),  # SQLITE_NOTADB
}
_OS_FAULTS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("the disk is full", _FULL_HINT),
    errno.EDQUOT: ("the disk quota is used up", _FULL_HINT),
    errno.EROFS: ("the file system is read-only", _READ_ONLY_HINT),
    errno.EACCES: ("permission denied", _PERMISSION_HINT),
    errno.EPERM: ("operation not permitted", _PERMISSION_HINT),
    errno.EIO: ("disk I/O error", _IO_HINT),
}


def storage_fault(
    error: sqlite3.Error | OSError, path: Path | None = None, *, doing: str = "use"
) -> StorageError:
    """``error`` as one line naming the file (``path``, or the one an OSError names) and a hint.

    Faults of the disk or the file (see :func:`is_storage_fault`) get plain words, with SQLite's
    own in parentheses ("file is not a database"); any other OSError is told by its
    ``strerror``.
    """
    if isinstance(error, sqlite3.Error):
        where = path or "a database"
        reason, hint = _SQLITE_FAULTS.get(_primary(error), (str(error), _IO_HINT))
        detail = f" ({error})" if str(error) != reason else ""
        return StorageError(f"cannot {doing} {where}: {reason}{detail}", hint=hint)
    where = path or (Path(os.fsdecode(error.filename)) if error.filename else "a file")
    reason, hint = _OS_FAULTS.get(error.errno or 0, (error.strerror or str(error), _PATH_HINT))
    return StorageError(f"cannot {doing} {where}: {reason}", hint=hint)


def is_storage_fault(error: BaseException) -> bool:
    """Whether ``error`` blames the disk or a file (full, read-only, damaged, no permission)
    rather than alma."""
    if isinstance(error, sqlite3.Error):
        return _primary(error) in _SQLITE_FAULTS
    return isinstance(error, OSError) and error.errno in _OS_FAULTS


def _primary(error: sqlite3.Error) -> int:
    """SQLite's primary result code (0 when the error did not come from SQLite itself)."""
    code = getattr(error, "sqlite_errorcode", None)
    return (code or 0) & 0xFF
