"""A design whose retrieve never returns."""

import asyncio
from typing import Any

from alma.memory import MemoryDesign
from alma.types import Episode, EpisodeStart


class Stuck(MemoryDesign):
    async def retrieve(self, start: EpisodeStart) -> dict[str, Any]:
        while True:
            await asyncio.sleep(3600)

    async def update(self, episode: Episode) -> None:
        return None
