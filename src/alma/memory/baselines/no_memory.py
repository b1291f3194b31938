"""The no-memory reference design."""

from __future__ import annotations

from typing import Any

from alma.memory import MemoryDesign
from alma.types import Episode, EpisodeStart


class NoMemory(MemoryDesign):
    """No memory at all: the agent starts every episode from scratch.

    The reference every other design is measured against (the "No Memory" row of ALMA,
    "Automated meta-Learning of Memory designs for Agentic systems"). Nothing is simplified:
    ``retrieve`` returns ``{}`` and ``update`` keeps nothing.
    """

    async def retrieve(self, start: EpisodeStart) -> dict[str, Any]:
        return {}

    async def update(self, episode: Episode) -> None:
        return None
