"""Progress of counted work (episodes played, games generated), shown the same way everywhere.

On a terminal, a bar. In a log file or a pipe, where a bar shows only at the end, a plain line
at each tenth of the work done, at most one every ``LOG_EVERY_S`` seconds (so quick work prints
none).
"""

from __future__ import annotations

import datetime
import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

LOG_EVERY_S = 10.0
clock = time.monotonic  # read for the log lines (tests move it)


class Counter:
    """``with Counter(label, total, console) as counter: ... counter.advance()``.

    ``label`` is rich markup; with ``console`` None nothing is shown."""

    def __init__(self, label: str, total: int, console: Console | None) -> None:
        self.label = label
        self.total = max(total, 1)
        self.console = console
        self.live = console is not None and console.is_terminal
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not self.live,
            transient=False,
        )
        self.task = self.bar.add_task(label, total=total)
        self.done = 0
        self.started = self.logged = clock()

    def __enter__(self) -> Counter:
        self.bar.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.bar.stop()

    def advance(self) -> None:
        self.bar.advance(self.task)
        self.done += 1
        if self.console is None or self.live:
            return
        now = clock()
        tenth = self.done * 10 // self.total > (self.done - 1) * 10 // self.total
        if tenth and now - self.logged >= LOG_EVERY_S:
            self.logged = now
            elapsed = datetime.timedelta(seconds=int(now - self.started))
            self.console.print(
                f"{self.label} {self.done}/{self.total} ({elapsed})", highlight=False
            )
