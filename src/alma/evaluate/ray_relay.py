"""The way a deploy episode on a node reaches its memory, which stays with the driver.

Design code runs only in the driver's sandbox workers, so a node cannot call a memory's
``retrieve`` itself. One Ray actor, :class:`RetrieveRelay`, carries the question: the node asks
it (:meth:`RetrieveRelay.ask`, which waits for the answer), the driver collects the questions
(:meth:`RetrieveRelay.questions`, a long poll), answers each through the evaluation's lane
(recorded and guarded there, exactly as on one machine) and posts the memory back
(:meth:`RetrieveRelay.answer`). An answer of ``None`` tells the node its episode must stop (the
design was given up, the run is stopping): the driver keeps the reason.

The class is plain Python; :mod:`alma.evaluate.ray_executor` makes it a Ray actor.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from alma.types import EpisodeStart


@dataclass(frozen=True)
class Question:
    attempt: str  # the attempt of a job asking (see alma.evaluate.ray_executor)
    memory: str  # the memory its job names
    start: EpisodeStart


class RetrieveRelay:
    """Carries retrieve questions from nodes to the driver and the memories back."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[dict[str, Any] | None]] = {}
        self._queue: list[Question] = []
        self._arrived: asyncio.Event | None = None

    def _event(self) -> asyncio.Event:
        if self._arrived is None:  # made on the actor's own event loop
            self._arrived = asyncio.Event()
        return self._arrived

    async def ask(self, attempt: str, memory: str, start: EpisodeStart) -> dict[str, Any] | None:
        """The memory for this episode's start, or None when the episode must stop."""
        answer: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._waiting[attempt] = answer
        self._queue.append(Question(attempt, memory, start))
        self._event().set()
        try:
            return await answer
        finally:
            self._waiting.pop(attempt, None)

    async def questions(self, wait_s: float) -> list[Question]:
        """The questions asked since the last call, waiting up to ``wait_s`` for one."""
        arrived = self._event()
        if not self._queue:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), wait_s)
        taken, self._queue = self._queue, []
        arrived.clear()
        return taken

    def answer(self, attempt: str, memory: dict[str, Any] | None) -> None:
        waiting = self._waiting.get(attempt)
        if waiting is not None and not waiting.done():
            waiting.set_result(memory)
