"""A design that fails now and then, never twice in a row: its score stands."""

from typing import Any

from alma.memory import MemoryDesign
from alma.types import Episode, EpisodeStart


class Flaky(MemoryDesign):
    def __init__(self, toolkit: Any) -> None:
        super().__init__(toolkit)
        self.calls = 0

    async def retrieve(self, start: EpisodeStart) -> dict[str, Any]:
        self.calls += 1
        if self.calls % 3 == 0:
            raise RuntimeError("retrieve hiccup")
        return {"tip": "take every key"}

    async def update(self, episode: Episode) -> None:
        return None
