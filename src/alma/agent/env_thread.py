"""A daemon thread that runs one environment's calls in order.

Environment calls block (a game's step, a reset that starts a program), so they leave the event
loop. They go to a thread of the episode's own rather than to asyncio's default executor because
that executor's threads are waited for when the loop and then the interpreter shut down: one
step that never returns would keep a finished or interrupted run alive forever. A daemon thread
is not waited for. One thread per environment, calls in order, also means an environment is
never used by two threads at once, even after a call timed out and may still be running.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

_Job = tuple["Future[Any]", Callable[[], Any]]


class EnvThread:
    """Runs submitted calls one after the other on a daemon thread."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._pending = 0  # submitted calls not yet finished
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    @property
    def idle(self) -> bool:
        """Whether no call is running or waiting (a new call would start at once)."""
        with self._lock:
            return self._pending == 0

    def submit(self, call: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            self._pending += 1
        self._jobs.put((future, call))
        return future

    def stop(self) -> None:
        """End the thread once the calls already submitted are done (at once if none is)."""
        self._jobs.put(None)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, call = job
            if not future.set_running_or_notify_cancel():
                self._done()
                continue
            try:
                result = call()
            except BaseException as error:  # handed to the caller, whatever it is
                self._done()  # before the caller wakes up, so it finds the thread idle
                future.set_exception(error)
            else:
                self._done()
                future.set_result(result)

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1
