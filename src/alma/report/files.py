"""Writing the report's and the exports' files: whole or not at all, a failure as one line."""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path

from alma.errors import StorageError
from alma.storage_faults import storage_fault


def write_whole(target: Path, payload: bytes) -> Path:
    """Write ``target`` so that a reader (a refreshed browser tab, a script) never sees half a
    file; a failure is a :class:`~alma.errors.StorageError` naming the file."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(payload)
        partial.replace(target)
    except OSError as error:
        with suppress(OSError):
            partial.unlink(missing_ok=True)
        raise _fault(error, target) from error
    return target


def _fault(error: OSError, target: Path) -> StorageError:
    fault = storage_fault(error, target, doing="write")
    if fault.hint and "--run-dir" in fault.hint:  # the file written here is not a run's
        fault.hint = "choose another output path, in a folder you may write"
    return fault
