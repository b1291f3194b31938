"""The reference memory designs, one module each, written against the public toolkit only.

``BASELINES`` maps each name to ``"module:Class"``; ``load_baseline(name)`` imports the class.
"""

from __future__ import annotations

import importlib

from alma.errors import UsageError
from alma.memory.base import MemoryDesign

BASELINES: dict[str, str] = {
    "no_memory": "alma.memory.baselines.no_memory:NoMemory",
    "trajectory_retrieval": "alma.memory.baselines.trajectory_retrieval:TrajectoryRetrieval",
    "reasoning_bank": "alma.memory.baselines.reasoning_bank:ReasoningBank",
    "dynamic_cheatsheet": "alma.memory.baselines.dynamic_cheatsheet:DynamicCheatsheet",
    "g_memory": "alma.memory.baselines.g_memory:GMemory",
}


def load_baseline(name: str) -> type[MemoryDesign]:
    """The design class of a baseline, by name (see ``BASELINES``)."""
    target = BASELINES.get(name)
    if target is None:
        raise UsageError(
            f"unknown baseline memory design {name!r}",
            hint=f"choose one of: {', '.join(BASELINES)}",
        )
    module_name, class_name = target.split(":")
    design = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(design, type) and issubclass(design, MemoryDesign)):
        raise TypeError(f"{target} is not a MemoryDesign subclass")
    return design


__all__ = ["BASELINES", "load_baseline"]
