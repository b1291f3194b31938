"""The original system's memory interface, as its designs import it.

``MemoStructure`` (``general_retrieve`` / ``general_update`` over a recorder), ``Sub_memo_layer``
(one layer of a structure) and ``Basic_Recorder`` (what an episode looks like to a design: the
``init`` dict, the ``steps`` list, the final ``reward``). Names and fields follow the original so
its designs run unchanged; the recorder is filled by :mod:`alma.memory.compat.adapter`.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Basic_Recorder:  # the original's name, imported by its designs
    """One episode as the original's designs read it."""

    init: dict[str, Any] = field(default_factory=dict)
    steps: list[Any] = field(default_factory=list)
    reward: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    memory_retrieved: dict[str, Any] = field(default_factory=dict)

    async def log_init(self, **fields: Any) -> None:
        async with self._lock:
            self.init = dict(fields)

    async def log_memo_retrieved(self, memory_retrieved: dict[str, Any], **_: Any) -> None:
        async with self._lock:
            self.memory_retrieved = memory_retrieved

    async def log_step(self, **fields: Any) -> None:
        async with self._lock:
            self.steps.append(dict(fields))

    async def set_reward(self, reward: float, **_: Any) -> None:
        async with self._lock:
            self.reward = reward


@dataclass
class Sub_memo_layer(ABC):  # the original's name, imported by its designs
    """One layer of a memory structure: its own database, retrieve and update."""

    layer_intro: str = (
        "Introduction of the structure of current defined Database(if any), corresponding "
        "Update and Retrieve method."
    )
    database: Any | None = None

    @abstractmethod
    async def retrieve(self, **kwargs: Any) -> Any:
        """The layer's retrieve step."""

    @abstractmethod
    async def update(self, **kwargs: Any) -> Any:
        """The layer's update step."""


class MemoStructure(ABC):
    """A memory design of the original system."""

    def __init__(self) -> None:
        self.database: Any | None = None

    @abstractmethod
    async def general_retrieve(self, recorder: Basic_Recorder) -> dict[str, Any]:
        """What the agent gets before an episode (the recorder holds only ``init``)."""

    @abstractmethod
    async def general_update(self, recorder: Basic_Recorder) -> None:
        """Learn from a finished episode."""
