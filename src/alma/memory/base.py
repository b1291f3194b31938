"""The memory-design contract.

A design is a class with two async methods. Before an episode, ``retrieve`` gets what the
episode starts with (domain, task description, first observation; never the task id or split)
and returns a JSON-able dict, which is rendered into the acting agent's prompt. After an
episode, ``update`` gets the whole episode (steps, outcome) to learn from. All state lives in
the instance and its toolkit, so a built memory can be copied with ``copy.deepcopy``-like
pickling.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from alma.memory.toolkit import Toolkit
from alma.types import Episode, EpisodeStart


class MemoryDesign(ABC):
    """Subclass this. ``self.toolkit`` gives llm, embed, vectors, kv, graph and rng."""

    def __init__(self, toolkit: Toolkit) -> None:
        self.toolkit = toolkit

    @abstractmethod
    async def retrieve(self, start: EpisodeStart) -> dict[str, Any]:
        """What the agent should know before acting; ``{}`` for nothing."""

    @abstractmethod
    async def update(self, episode: Episode) -> None:
        """Learn from a finished episode."""
