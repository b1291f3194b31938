"""Running an original-format design as an alma ``MemoryDesign``.

:func:`load_original` makes the modules the original's designs import (``agents.memo_structure``,
``eval_envs.base_envs``, ``utils.hire_agent``) resolve to this layer, then executes the design's
source as a module of its own (registered, so its instances pickle by reference and a built
memory can be copied). :class:`OriginalDesign` turns alma's calls into the original's: an
``EpisodeStart`` or ``Episode`` becomes a ``Basic_Recorder`` shaped as the original's harness
fills it for that domain, and every model call the design makes goes to the toolkit.
"""

from __future__ import annotations

import hashlib
import sys
import types
from typing import Any, ClassVar

from alma.errors import UsageError
from alma.memory.base import MemoryDesign
from alma.memory.compat import interface, models
from alma.memory.toolkit import Toolkit
from alma.types import Episode, EpisodeStart

#: The modules of the original system this layer provides, and the names each one maps.
PROVIDED: dict[str, tuple[str, ...]] = {
    "agents.memo_structure": ("MemoStructure", "Sub_memo_layer"),
    "eval_envs.base_envs": ("Basic_Recorder",),
    "utils.hire_agent": ("Agent", "Embedding"),
}


class OriginalLoadError(UsageError):
    """An original-format design's code failed to load."""


def install() -> None:
    """Register the original's module names (and their parent packages) in ``sys.modules``."""
    sources = {
        "agents.memo_structure": interface,
        "eval_envs.base_envs": interface,
        "utils.hire_agent": models,
    }
    for name, names in PROVIDED.items():
        if name in sys.modules:
            continue
        parent_name, _, child = name.partition(".")
        parent = sys.modules.get(parent_name)
        if parent is None:
            parent = types.ModuleType(parent_name)
            parent.__path__ = []  # a package, so submodules resolve
            sys.modules[parent_name] = parent
        module = types.ModuleType(name)
        for attribute in names:
            setattr(module, attribute, getattr(sources[name], attribute))
        sys.modules[name] = module
        setattr(parent, child, module)


def module_name(source: str) -> str:
    return "alma_original_" + hashlib.sha256(source.encode()).hexdigest()[:12]


def load_original(source: str) -> types.ModuleType:
    """The original design's module, executed once per source."""
    install()
    name = module_name(source)
    module = sys.modules.get(name)
    if module is not None:
        return module
    module = types.ModuleType(name)
    module.__file__ = f"<original design {name}>"
    sys.modules[name] = module
    try:
        exec(compile(source, module.__file__, "exec"), module.__dict__)
    except Exception as error:
        sys.modules.pop(name, None)
        raise OriginalLoadError(
            f"the original-format design failed to load: {type(error).__name__}: {error}",
            hint="alma maps MemoStructure, Sub_memo_layer, Basic_Recorder, Agent and Embedding;"
            " anything else the file imports must be installed",
        ) from None
    return module


# --------------------------------------------------------------------------- recorders


def recorder_init(start: EpisodeStart) -> dict[str, Any]:
    """``recorder.init`` as the original's harness fills it for the domain."""
    if start.domain == "alfworld":
        observation = start.observation
        if "Your task is to:" not in observation:
            observation += f"\n\nYour task is to: {start.task_description}"
        return {"obs": observation, "actions_list": []}
    if start.domain == "minihack":
        return {
            "long_term_context": start.observation,
            "short_term_context": "",
            "action_dict": {},
            "goal": start.task_description,
        }
    return {"obs": start.observation, "goal": start.task_description}


def recorder_steps(episode: Episode) -> list[dict[str, Any]]:
    """``recorder.steps``: per step the action taken and what the environment answered."""
    results = [step.observation for step in episode.steps[1:]] + [episode.final_observation]
    steps: list[dict[str, Any]] = []
    last = len(episode.steps) - 1
    for number, (step, result) in enumerate(zip(episode.steps, results, strict=True)):
        done = number == last and episode.outcome.reason in ("success", "done")
        record: dict[str, Any] = {"action_took": step.action}
        if episode.start.domain == "minihack":
            record.update(long_term_context=result, short_term_context="")
        else:
            record["obs"] = result
        record.update(scores=step.reward, dones=done)
        if episode.start.domain == "alfworld":
            record["actions_list"] = []
        steps.append(record)
    return steps


def start_recorder(start: EpisodeStart) -> interface.Basic_Recorder:
    return interface.Basic_Recorder(init=recorder_init(start))


def episode_recorder(episode: Episode) -> interface.Basic_Recorder:
    return interface.Basic_Recorder(
        init=recorder_init(episode.start),
        steps=recorder_steps(episode),
        reward=float(episode.outcome.score),
        memory_retrieved=dict(episode.memory),
    )


# --------------------------------------------------------------------------- the design


class OriginalDesign(MemoryDesign):
    """Base of an imported design: set ``original_class`` to the original's ``MemoStructure``
    subclass; retrieve and update call its ``general_retrieve`` and ``general_update``."""

    original_class: ClassVar[type[Any]]

    def __init__(self, toolkit: Toolkit) -> None:
        super().__init__(toolkit)
        self.original = self.original_class()

    async def retrieve(self, start: EpisodeStart) -> dict[str, Any]:
        with models.bound(self.toolkit):
            value: Any = await self.original.general_retrieve(start_recorder(start))
        return {} if value is None else value  # the harness checks it is a JSON-able dict

    async def update(self, episode: Episode) -> None:
        with models.bound(self.toolkit):
            await self.original.general_update(episode_recorder(episode))
