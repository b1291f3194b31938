"""Progress of counted work (episodes played, games generated, bytes downloaded) as events.

The library never draws anything: work that takes a while opens a :class:`Counter` and advances
it; each change goes, as a :class:`ProgressEvent`, to the listener of the current context (set
with :func:`listening`), or nowhere when none is set. The command line's listener draws bars on a
terminal and plain lines in a log file; a notebook or a service can pass its own callable to
:mod:`alma.api`. The listener travels with the context, so it reaches asyncio tasks and
``asyncio.to_thread`` calls started inside :func:`listening`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

EventKind = Literal["start", "advance", "end", "status"]


@dataclass(frozen=True)
class ProgressEvent:
    """One change: a counter started, advanced or ended, or a status: what the work is doing
    (``label``, which changes with each stage) and figures that change all the time
    (``detail``: a log prints a line when ``label`` changes, a spinner shows both)."""

    kind: EventKind
    label: str
    done: int = 0
    total: int = 0
    unit: str = ""  # "" for items, "bytes" for downloads
    detail: str = ""


Listener = Callable[[ProgressEvent], None]

_listener: ContextVar[Listener | None] = ContextVar("alma_progress", default=None)


@contextmanager
def listening(listener: Listener | None) -> Iterator[None]:
    """Send the progress of the work done inside to ``listener`` (None: to no one)."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def emit(event: ProgressEvent) -> None:
    listener = _listener.get()
    if listener is not None:
        listener(event)


def status(label: str, detail: str = "") -> None:
    """Say what the work is doing now (a spinner's text, or a line in a log)."""
    emit(ProgressEvent("status", label, detail=detail))


class Counter:
    """``with Counter(label, total) as counter: ... counter.advance()``; silent when
    ``enabled`` is false (a command printing JSON) or no listener is set."""

    def __init__(self, label: str, total: int, *, unit: str = "", enabled: bool = True) -> None:
        self.label = label
        self.total = max(total, 1)
        self.unit = unit
        self.done = 0
        self.listener = _listener.get() if enabled else None

    def _emit(self, kind: EventKind) -> None:
        if self.listener is not None:
            self.listener(ProgressEvent(kind, self.label, self.done, self.total, self.unit))

    def __enter__(self) -> Counter:
        self._emit("start")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._emit("end")

    def advance(self, amount: int = 1) -> None:
        self.done += amount
        self._emit("advance")
