"""The seam between the harness and a memory design: ``DesignRunner``.

The harness never calls a design directly. A runner calls ``retrieve`` / ``update`` with a
wall-clock limit, checks what comes back, and turns any failure of the design into a recorded
error instead of an exception, so one bad design costs one failed call, never the evaluation.
Only the budget running out passes through, always as ``BudgetExceededError``, even when the
design caught it (``BudgetWatch``).

Runners come from a ``RunnerFactory``. ``InProcessFactory`` runs the design in this process, for
tests and for code you trust: a hang that never yields to the event loop cannot be interrupted
here, and nothing is isolated. The harness runs every design through the sandbox
(:mod:`alma.sandbox.runner`), whose factory has the same shape.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import re
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel

from alma.errors import AlmaError, BudgetExceededError
from alma.memory.base import MemoryDesign
from alma.memory.loading import DesignSource, load_class
from alma.memory.toolkit import Services, Toolkit
from alma.types import Completion, Episode, EpisodeStart, Message

_DESIGN_FRAME = re.compile(r'File "<design [^"]*>", line (\d+)')


@dataclass(frozen=True)
class CallResult:
    """What one retrieve or update gave: a value, or the reason it failed."""

    value: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    trace: str = ""  # the end of the design's traceback, when it crashed

    @property
    def line(self) -> int | None:
        """The design's line where the call failed (its innermost frame in the design)."""
        lines = _DESIGN_FRAME.findall(self.trace)
        return int(lines[-1]) if lines else None

    def where(self, source: str) -> str:
        """`` (line N: <that line of the source>)``, or nothing when the line is unknown."""
        number = self.line
        lines = source.splitlines()
        if number is None or not 0 < number <= len(lines):
            return ""
        return f" (line {number}: {lines[number - 1].strip()[:120]})"


class DesignFailedError(AlmaError):
    """The design cannot be used at all (it fails to load, construct or copy)."""


class DesignRunner(Protocol):
    async def retrieve(self, start: EpisodeStart) -> CallResult: ...

    async def update(self, episode: Episode) -> CallResult: ...

    async def checkpoint(self) -> None:
        """Remember the memory as it is now (the sandbox restarts a dead worker from here)."""

    async def fork(self) -> DesignRunner: ...

    async def reload(self) -> None:
        """Go on with a copy of the memory made through a snapshot (tests that it copies)."""

    async def close(self) -> None: ...


class RunnerFactory(Protocol):
    """Where the harness gets its runners: the sandbox, or this process for trusted code."""

    @property
    def description(self) -> str:
        """One line saying how designs are isolated (recorded with the run)."""
        ...

    async def start(self, design: DesignSource, services: Services, seed: int) -> DesignRunner:
        """A runner with ``design`` built (seeded with ``seed``) on ``services``; raises
        ``DesignFailedError`` when the design cannot even start."""
        ...

    def prewarm(self) -> None:
        """Get ready for the next ``start`` ahead of time, where that helps (call it from inside
        the event loop, before work that can overlap with it)."""

    async def close(self) -> None:
        """Release what ``prewarm`` got ready and no ``start`` took."""


class BudgetWatch:
    """Services that remember the end of the budget.

    A design may catch every exception of its model calls. So that it cannot swallow the end of
    the budget, a runner wraps the services it is given in a watch and, after each call of the
    design, raises the ``BudgetExceededError`` the watch saw. Forks of a runner share its watch.
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self.budget_error: BudgetExceededError | None = None

    @classmethod
    def around(cls, services: Services) -> BudgetWatch:
        """``services`` watched (as they are, when they already are a watch)."""
        return services if isinstance(services, BudgetWatch) else cls(services)

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: type[BaseModel] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        try:
            return await self.services.complete(
                messages, schema=schema, temperature=temperature, max_tokens=max_tokens
            )
        except BudgetExceededError as error:
            self.budget_error = error
            raise

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        try:
            return await self.services.embed(texts)
        except BudgetExceededError as error:
            self.budget_error = error
            raise

    def check(self) -> None:
        """Raise the end of the budget if any call met it (the run must stop)."""
        if self.budget_error is not None:
            raise self.budget_error


def describe_failure(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= 500 else text[:497] + "..."


def check_retrieved(value: Any) -> dict[str, Any]:
    """A retrieve result must be a JSON-serialisable dict; raises TypeError if not."""
    if not isinstance(value, dict):
        raise TypeError(f"retrieve returned {type(value).__name__}, not a dict")
    try:
        json.dumps(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"retrieve returned something not JSON-serialisable: {error}") from None
    return value


class InProcessRunner:
    """A design run in this process (see the module's notes on what that cannot contain)."""

    def __init__(
        self,
        design: MemoryDesign,
        services: Services,
        *,
        retrieve_timeout_s: float,
        update_timeout_s: float,
    ) -> None:
        self.design = design
        self.services = BudgetWatch.around(services)
        self.retrieve_timeout_s = retrieve_timeout_s
        self.update_timeout_s = update_timeout_s

    async def _call(self, coroutine: Any, limit_s: float, what: str) -> CallResult:
        started = time.perf_counter()
        try:
            value = await asyncio.wait_for(coroutine, limit_s)
            if what == "retrieve":
                value = check_retrieved(value)
            result = CallResult(value or {}, None, time.perf_counter() - started)
        except BudgetExceededError:
            raise
        except TimeoutError:
            result = CallResult(
                {}, f"{what} took longer than {limit_s:g} s", time.perf_counter() - started
            )
        except Exception as exc:  # the design's fault, recorded not raised
            trace = "".join(traceback.format_exception(exc)[-4:])
            result = CallResult({}, describe_failure(exc), time.perf_counter() - started, trace)
        self.services.check()  # the design may have caught it; the run must still stop
        return result

    async def retrieve(self, start: EpisodeStart) -> CallResult:
        return await self._call(self.design.retrieve(start), self.retrieve_timeout_s, "retrieve")

    async def update(self, episode: Episode) -> CallResult:
        return await self._call(self.design.update(episode), self.update_timeout_s, "update")

    async def checkpoint(self) -> None:
        return None

    async def reload(self) -> None:
        self.design = (await self.fork()).design

    async def fork(self) -> InProcessRunner:
        try:
            copy: MemoryDesign = pickle.loads(pickle.dumps(self.design))
        except Exception as error:
            raise DesignFailedError(
                f"the built memory cannot be copied: {describe_failure(error)}",
                hint="keep the design's state in toolkit stores or plain picklable attributes",
            ) from None
        copy.toolkit.bind(self.services)
        return InProcessRunner(
            copy,
            self.services,
            retrieve_timeout_s=self.retrieve_timeout_s,
            update_timeout_s=self.update_timeout_s,
        )

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class InProcessFactory:
    """Runs designs in this process: for tests and trusted code, with no isolation at all."""

    retrieve_timeout_s: float = 120.0
    update_timeout_s: float = 300.0
    vector_backend: str = "numpy"

    @property
    def description(self) -> str:
        return "in-process: designs run inside alma itself, with NO isolation at all"

    def prewarm(self) -> None:
        return None  # nothing to start ahead of time

    async def close(self) -> None:
        return None

    async def start(self, design: DesignSource, services: Services, seed: int) -> InProcessRunner:
        cls = load_class(design)
        watched = BudgetWatch.around(services)
        try:
            instance = cls(Toolkit(watched, seed=seed, vector_backend=self.vector_backend))
        except Exception as error:
            raise DesignFailedError(
                f"design {design.name!r} failed to construct: {describe_failure(error)}",
                hint="the constructor must accept (toolkit) and not fail",
            ) from None
        return InProcessRunner(
            instance,
            watched,
            retrieve_timeout_s=self.retrieve_timeout_s,
            update_timeout_s=self.update_timeout_s,
        )
