"""A design that fails in every way the harness must survive (chosen by the task text)."""

import asyncio
from typing import Any

from alma.memory import MemoryDesign
from alma.types import Episode, EpisodeStart


class Faulty(MemoryDesign):
    def __init__(self, toolkit: Any) -> None:
        super().__init__(toolkit)
        self.calls = 0

    async def retrieve(self, start: EpisodeStart) -> dict[str, Any]:
        self.calls += 1
        mode = self.calls % 4
        if mode == 1:
            raise RuntimeError("retrieve exploded")
        if mode == 2:
            return {"not json": {1, 2, 3}}
        if mode == 3:
            await asyncio.sleep(60)  # past the time limit
        return {"tip": "take every key"}

    async def update(self, episode: Episode) -> None:
        raise ValueError("update exploded")
