"""Faults of the disk or a file (full, read-only, damaged, no permission), told apart from
alma's own errors and said in one line that names the file, with a hint."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from alma.errors import AlmaError, StorageError

# OSError numbers that blame the disk or a file, not alma, wherever they are met
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES})

_FULL_HINT = (
    "free some space (what was finished is saved) and run the same command again, "
    "or use a --run-dir on another disk"
)
READ_ONLY_HINT = "make the run folder writable, or use a writable copy of it (--run-dir)"
_PERMISSION_HINT = "give yourself read and write permission on it, or use another --run-dir"
_DAMAGED_HINT = (
    "restore the run folder from a copy, or start afresh with another --run-dir "
    "(`sqlite3 FILE .recover` may save what is left)"
)
_IO_HINT = "check the disk (its health, free space, mount); what was finished is saved"
_PATH_HINT = "check the path, its permissions and the disk it is on"

SQLITE_CANTOPEN = 14
# SQLite's primary result codes that blame the file or the disk, not the program
SQLITE_FAULTS: dict[int, tuple[str, str]] = {
    3: ("no permission", _PERMISSION_HINT),  # SQLITE_PERM
    5: ("it is locked by another process", "wait for that process to finish"),  # SQLITE_BUSY
    6: ("it is locked by another process", "wait for that process to finish"),  # SQLITE_LOCKED
    8: ("it is read-only", READ_ONLY_HINT),  # SQLITE_READONLY
    10: ("disk I/O error", _IO_HINT),  # SQLITE_IOERR
    11: ("the database is damaged", _DAMAGED_HINT),  # SQLITE_CORRUPT
    13: ("the disk is full", _FULL_HINT),  # SQLITE_FULL
    SQLITE_CANTOPEN: (
        "it cannot be opened",
        "check that its folder exists and that you may read and write it",
    ),
    26: ("the database is damaged", _DAMAGED_HINT),  # SQLITE_NOTADB
}
OS_FAULTS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("the disk is full", _FULL_HINT),
    errno.EDQUOT: ("the disk quota is used up", _FULL_HINT),
    errno.EROFS: ("the file system is read-only", READ_ONLY_HINT),
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
        reason, hint = SQLITE_FAULTS.get(primary_code(error), (str(error), _IO_HINT))
        detail = f" ({error})" if str(error) != reason else ""
        return StorageError(f"cannot {doing} {where}: {reason}{detail}", hint=hint)
    where = path or (Path(os.fsdecode(error.filename)) if error.filename else "a file")
    reason, hint = OS_FAULTS.get(error.errno or 0, (error.strerror or str(error), _PATH_HINT))
    return StorageError(f"cannot {doing} {where}: {reason}", hint=hint)


def is_storage_fault(error: BaseException) -> bool:
    """Whether ``error`` blames the disk or a file (full, read-only, damaged, no permission)
    rather than alma."""
    if isinstance(error, sqlite3.Error):
        return primary_code(error) in SQLITE_FAULTS
    return isinstance(error, OSError) and error.errno in OS_FAULTS


def primary_code(error: sqlite3.Error) -> int:
    """SQLite's primary result code (0 when the error did not come from SQLite itself)."""
    code = getattr(error, "sqlite_errorcode", None)
    return (code or 0) & 0xFF


def fault_behind(error: BaseException) -> AlmaError | None:
    """A full disk, a read-only or unreadable file or a damaged database behind ``error`` (or
    what caused it), as one line instead of a bug report; None when there is none."""
    seen: BaseException | None = error
    for _ in range(8):  # the error and what caused it
        if seen is None:
            return None
        if isinstance(seen, sqlite3.Error) and is_storage_fault(seen):
            return storage_fault(seen)
        if isinstance(seen, OSError) and seen.errno in STORAGE_ERRNOS:
            return storage_fault(seen)
        seen = seen.__cause__ or seen.__context__
    return None
