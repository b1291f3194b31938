"""Winning routes: the actions of won episodes, shown again in later episodes of the domain.

No model calls: everything is kept in one key-value store. Each won episode adds its route (the
actions it took, deduplicated and clipped); the store keeps at most ``capacity`` routes per
domain, replacing a random one when full, so early and late wins both stay represented.
``retrieve`` returns the routes of the same domain, shortest first, and the last actions of
recent lost episodes, marked as failures.
"""

from __future__ import annotations

from typing import Any

from alma.memory import MemoryDesign, Toolkit
from alma.types import Episode, EpisodeStart


class WinningRoutes(MemoryDesign):
    """Keeps up to ``capacity`` winning routes per domain and shows the ``shown`` shortest."""

    def __init__(self, toolkit: Toolkit, capacity: int = 20, shown: int = 3) -> None:
        super().__init__(toolkit)
        self.capacity = capacity
        self.shown = shown

    async def retrieve(self, start: EpisodeStart) -> dict[str, Any]:
        notes = self.toolkit.kv("routes").get(start.domain, {"wins": [], "losses": []})
        wins = sorted(notes["wins"], key=len)[: self.shown]
        memory: dict[str, Any] = {}
        if wins:
            memory["routes_that_won"] = [" -> ".join(route) for route in wins]
        if notes["losses"]:
            memory["mistakes_to_avoid"] = notes["losses"][-self.shown :]
        return memory

    async def update(self, episode: Episode) -> None:
        if not episode.steps:
            return  # the episode never started: nothing to learn
        store = self.toolkit.kv("routes")
        notes = store.get(episode.start.domain, {"wins": [], "losses": []})
        if episode.outcome.success:
            route = list(dict.fromkeys(step.action for step in episode.steps))[:25]
            if len(notes["wins"]) < self.capacity:
                notes["wins"].append(route)
            else:  # full: replace a random route (reservoir-like, reproducible via toolkit.rng)
                notes["wins"][self.toolkit.rng.randrange(self.capacity)] = route
        else:
            last = [step.action for step in episode.steps[-3:]]
            loss = {"success": False, "last_actions": last}
            notes["losses"] = [*notes["losses"], loss][-self.capacity :]
        store.set(episode.start.domain, notes)
