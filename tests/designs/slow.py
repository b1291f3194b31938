import asyncio
from typing import Any

from alma.memory import MemoryDesign
from alma.types import Episode, EpisodeStart


class Slow(MemoryDesign):
    async def retrieve(self, start: EpisodeStart) -> dict[str, Any]:
        await asyncio.sleep(0.3)
        return {}

    async def update(self, episode: Episode) -> None:
        await asyncio.sleep(0.3)
