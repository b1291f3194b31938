"""The learning loop's state that others read: the order children archive in (:class:`Turn`),
what the loop is doing (:class:`Progress`, for display) and what it ends with
(:class:`Summary`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from alma.evaluate.compare import ComparisonRow
from alma.search.archive import DesignRecord

Stage = str  # analysing, implementing, verifying, repairing, evaluating, done, failed


@dataclass(frozen=True)
class Turn:
    """A child's place in the order its iteration archives designs (its parents' order), so a
    run's archive does not depend on which child finished first: when two children write the
    same code, the first parent in the selection is always the one recorded, resumed or not."""

    earlier: tuple[asyncio.Event, ...]  # set when each earlier child has archived or given up
    mine: asyncio.Event

    @staticmethod
    def line(count: int) -> list[Turn]:
        events = [asyncio.Event() for _ in range(count)]
        return [Turn(tuple(events[:index]), event) for index, event in enumerate(events)]

    async def wait(self) -> None:
        for event in self.earlier:
            await event.wait()

    def done(self) -> None:
        self.mine.set()


@dataclass
class Progress:
    """What the loop is doing, for display: the iteration and each design in flight."""

    iteration: int = 0
    iterations: int = 0
    stages: dict[str, Stage] = field(default_factory=dict)
    best: tuple[str, float] | None = None
    notify: Callable[[Progress], None] | None = None
    iteration_done: Callable[[int], None] | None = None  # e.g. print the best designs so far

    def set(self, key: str, stage: Stage) -> None:
        self.stages[key] = stage
        if self.notify is not None:
            self.notify(self)

    def clear(self) -> None:
        self.stages.clear()
        if self.notify is not None:
            self.notify(self)


@dataclass
class Summary:
    iterations_done: int
    reference_score: float | None
    designs: list[DesignRecord]
    stopped: str | None = None
    held_out: list[ComparisonRow] = field(default_factory=list)  # the final comparison
