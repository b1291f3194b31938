"""Allocates 10 GB in update, spins forever in retrieve."""

from typing import Any

from alma.memory import MemoryDesign


class Resources(MemoryDesign):
    async def retrieve(self, start: Any) -> dict[str, Any]:
        while True:
            pass

    async def update(self, episode: Any) -> None:
        self.hoard = bytearray(10 * 1024**3)
