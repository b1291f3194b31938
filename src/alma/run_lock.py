"""One process at a time in a run folder.

Two processes writing one run would play the same episodes twice and interleave their
checkpoints. The process using a run holds an exclusive ``flock`` on ``<run>/alma.lock`` for as
long as it uses it, with its PID and command written there so that a second process can say who
is in the way. The OS drops the lock when its holder ends, however it ends, so a ``kill -9``
leaves nothing stale behind. The file is opened close-on-exec: worker processes never hold it.
It stays in the folder, emptied, when released: deleting it would let two processes lock two
different files of the same name.
"""

from __future__ import annotations

import fcntl
import logging
import os
from contextlib import suppress
from pathlib import Path
from typing import TextIO

from alma.errors import RunInUseError
from alma.storage_faults import storage_fault

LOCK_FILE = "alma.lock"

log = logging.getLogger(__name__)


class RunLock:
    """Hold ``<path>/alma.lock`` until :meth:`release` (or the process ends).

    Raises :class:`RunInUseError` at once, naming the holder, if another process holds it.
    """

    def __init__(self, path: Path, command: str) -> None:
        self.path = Path(path)
        self.file = self.path / LOCK_FILE
        try:
            # "a+" opens without truncating: the holder's PID stays readable until we hold it
            handle = self.file.open("a+", encoding="utf-8")
        except OSError as error:
            raise storage_fault(error, self.file, doing="lock") from error
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(handle)
            handle.close()
            raise RunInUseError(
                f"run folder {self.path} is in use by {holder}",
                hint="wait for it to finish, or use another --run-dir",
            ) from None
        except OSError as error:  # a file system without locks (some network mounts)
            log.warning("cannot lock %s (%s); nothing stops a second process", self.file, error)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()} {command}\n")
            handle.flush()
        except OSError as error:
            handle.close()
            raise storage_fault(error, self.file, doing="write") from error
        self._handle: TextIO | None = handle

    @property
    def held(self) -> bool:
        return self._handle is not None

    def release(self) -> None:
        """Let the next process in; safe to call twice."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        with suppress(OSError):  # an empty file: nobody is named as the holder any more
            handle.truncate(0)
        handle.close()  # closing drops the lock


def _holder(handle: TextIO) -> str:
    """``process 1234 (alma eval)`` from the lock file, or a vaguer phrase if it is empty
    (its holder has only just taken it)."""
    try:
        handle.seek(0)
        pid, _, command = handle.read(200).strip().partition(" ")
    except (OSError, UnicodeDecodeError):
        pid, command = "", ""
    if not pid.isdigit():
        return "another process"
    return f"process {pid}" + (f" ({command})" if command else "")
