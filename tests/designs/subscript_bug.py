"""A design whose update has a bug on one line: the check names that line."""

from typing import Any

from alma.memory import MemoryDesign
from alma.types import Episode, EpisodeStart


class Buggy(MemoryDesign):
    def __init__(self, toolkit: Any) -> None:
        super().__init__(toolkit)
        self.seen: list[Any] = []

    async def retrieve(self, start: EpisodeStart) -> dict[str, Any]:
        return {"n": len(self.seen)}

    async def update(self, episode: Episode) -> None:
        self.seen.append(self["steps"])
