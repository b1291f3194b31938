"""Executors run rollouts. The local one bounds concurrent episodes in this process (model calls
on the event loop, environment steps in worker threads); a cluster executor can take its place
behind the same protocol."""

from __future__ import annotations

import asyncio
from typing import Protocol

from alma.agent.actor import Actor, Recall
from alma.types import Episode, Task


class Executor(Protocol):
    async def run(
        self, actor: Actor, task: Task, *, recall: Recall | None, seed: int | None
    ) -> Episode: ...


class LocalExecutor:
    def __init__(self, max_concurrency: int = 8) -> None:
        self.max_concurrency = max_concurrency
        self._slots = asyncio.Semaphore(max_concurrency)

    async def run(
        self, actor: Actor, task: Task, *, recall: Recall | None, seed: int | None
    ) -> Episode:
        async with self._slots:
            return await actor.run(task, recall=recall, seed=seed)
