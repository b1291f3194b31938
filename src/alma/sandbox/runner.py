"""The sandbox's policy: a ``DesignRunner`` whose design lives in a worker process.

Each runner owns one worker (:mod:`alma.sandbox.client`), whose model and embedding calls are
served with the run's metered services (:mod:`alma.sandbox.proxy`), so the budget and the
ledger see them and the worker never holds a key. A call that breaks any rule (a crash, a
timeout, a memory blow-up, a protocol violation, a forbidden operation) becomes a recorded
failure; the worker is then restarted from the last snapshot of the memory (taken after the
build phase and at each copy), so the evaluation goes on. ``SandboxFactory`` starts the runners
(refusing code it cannot isolate) and keeps a spare worker booting ahead of the next design.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alma.config import AlmaConfig
from alma.errors import UsageError
from alma.memory.loading import DesignSource
from alma.memory.runner import (
    BudgetWatch,
    CallResult,
    DesignFailedError,
    DesignRunner,
    InProcessFactory,
    check_retrieved,
)
from alma.memory.toolkit import Services
from alma.sandbox.client import WorkerClient, WorkerFailure, launch
from alma.sandbox.isolation import Limits, Mechanism, choose, describe, private_folders
from alma.sandbox.launch import Profile
from alma.sandbox.proxy import CallProxy, budget_stop
from alma.types import Episode, EpisodeStart, to_dict

log = logging.getLogger("alma.sandbox")

START_TIMEOUT_S = 30.0


class UnsafeDesignError(UsageError):
    """Generated or imported code with no isolation available and no explicit opt-out."""


@dataclass(frozen=True)
class SandboxSettings:
    """How workers are isolated, limited and waited for."""

    mechanism: Mechanism
    limits: Limits = field(default_factory=Limits)
    retrieve_timeout_s: float = 120.0
    update_timeout_s: float = 300.0
    hidden: tuple[Path, ...] = ()  # folders the worker must not see (home, run dir, cwd, /tmp)
    vector_backend: str = "numpy"  # engine of the design's vector stores

    @property
    def profile(self) -> Profile:
        return Profile(self.mechanism, self.limits, self.hidden)


class SandboxRunner:
    """A design in a worker process; failures become recorded errors, not exceptions."""

    def __init__(
        self, design: DesignSource, services: Services, seed: int, settings: SandboxSettings
    ) -> None:
        self.design = design
        self.services = BudgetWatch.around(services)  # shared with the runner's forks
        self.seed = seed
        self.settings = settings
        self.client: WorkerClient | None = None
        self.snapshot: str | None = None  # base64 pickle of the memory, taken by the worker
        self.restarts = 0
        self._restarting = asyncio.Lock()

    async def start(self, spare: asyncio.Task[WorkerClient] | None = None) -> None:
        """Start a worker (or take a spare one already started) and load the design, or the
        last snapshot of its memory."""
        client = await spare if spare is not None else await launch(self.settings.profile)
        client.proxy = CallProxy(self.services)
        self.client = client
        fields = {
            "name": self.design.name,
            "source": self.design.source,
            "seed": self.seed,
            "vector_backend": self.settings.vector_backend,
        }
        try:
            await client.request("init", START_TIMEOUT_S, origin=self.design.origin, **fields)
            if self.snapshot is not None:
                await client.request("restore", START_TIMEOUT_S, state=self.snapshot, **fields)
        except WorkerFailure as failure:
            await client.close()
            raise DesignFailedError(
                f"design {self.design.name!r} could not start in the sandbox: {failure.message}",
                hint="run `alma check` on the design for details",
            ) from None

    async def _call(self, op: str, timeout_s: float, **fields: Any) -> tuple[Any, str | None, str]:
        """The call's value, or the reason it failed (the worker restarted if it died)."""
        client = self.client
        if client is None or client.failure is not None:
            client = await self._recover(client)
        try:
            answer = await client.request(op, timeout_s, **fields)
        except WorkerFailure as failure:
            await self._recover(client)
            return None, f"{failure.kind}: {failure.message}", failure.trace[-2000:]
        self.services.check()  # the design may have caught it; the run must still stop
        stop = budget_stop(answer)
        if stop is not None:
            raise stop
        if not answer.get("ok"):
            error = answer.get("error", {})
            kind = error.get("kind", "crash")
            message = f"{kind}: {error.get('message', '')}"
            return None, message, str(error.get("traceback", ""))[-2000:]
        return answer.get("value"), None, ""

    async def _recover(self, failed: WorkerClient | None) -> WorkerClient:
        """Replace a dead worker once, however many calls saw it die."""
        async with self._restarting:
            if self.client is failed:
                if failed is not None:
                    await failed.close()
                    self.restarts += 1
                    log.info("restarting the worker of %s (%d)", self.design.name, self.restarts)
                await self.start()
            assert self.client is not None
            return self.client

    async def retrieve(self, start: EpisodeStart) -> CallResult:
        started = time.perf_counter()
        value, error, trace = await self._call(
            "retrieve", self.settings.retrieve_timeout_s, start=to_dict(start)
        )
        if error is None:
            try:
                value = check_retrieved(value)
            except TypeError as problem:
                error = f"protocol: {problem}"
        elapsed = time.perf_counter() - started
        return CallResult(value if error is None else {}, error, elapsed, trace)

    async def update(self, episode: Episode) -> CallResult:
        started = time.perf_counter()
        _, error, trace = await self._call(
            "update", self.settings.update_timeout_s, episode=to_dict(episode)
        )
        return CallResult({}, error, time.perf_counter() - started, trace)

    async def checkpoint(self) -> None:
        """Keep a snapshot of the memory, so a restarted worker resumes from here."""
        value, error, _ = await self._call("snapshot", self.settings.update_timeout_s)
        if error is not None or not isinstance(value, str):
            raise DesignFailedError(
                f"the built memory cannot be copied: {error}",
                hint="keep the design's state in toolkit stores or plain picklable attributes",
            )
        self.snapshot = value

    async def reload(self) -> None:
        await self.checkpoint()
        _, error, _ = await self._call(
            "restore",
            self.settings.update_timeout_s,
            state=self.snapshot,
            name=self.design.name,
            source=self.design.source,
        )
        if error is not None:
            raise DesignFailedError(f"the memory's snapshot does not load back: {error}")

    async def fork(self) -> SandboxRunner:
        await self.checkpoint()
        copy = SandboxRunner(self.design, self.services, self.seed, self.settings)
        copy.snapshot = self.snapshot
        await copy.start()
        return copy

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None


class SandboxFactory:
    """Starts sandboxed runners; refuses non-reference code without isolation."""

    def __init__(self, settings: SandboxSettings, *, allow_unsafe: bool = False) -> None:
        self.settings = settings
        self.allow_unsafe = allow_unsafe
        self.description = describe(settings.mechanism)
        self._spare: asyncio.Task[WorkerClient] | None = None
        log.info("sandbox: %s", self.description)

    def prewarm(self) -> None:
        """Start a worker now, so the next design finds its Python already up (call it from
        inside the event loop, before the work that can overlap with the start-up)."""
        if self._spare is None and self.settings.mechanism != "in_process":
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # not in the event loop: the first design starts its own worker
            self._spare = loop.create_task(launch(self.settings.profile))

    async def close(self) -> None:
        """Stop the spare worker, if one is waiting."""
        spare, self._spare = self._spare, None
        if spare is not None:
            with contextlib.suppress(Exception):
                await (await spare).close()

    async def start(self, design: DesignSource, services: Services, seed: int) -> DesignRunner:
        unisolated = self.settings.mechanism in ("none", "in_process")
        if unisolated and design.origin != "reference" and not self.allow_unsafe:
            raise UnsafeDesignError(
                f"no sandbox is available to run design {design.name!r} safely",
                hint="install bubblewrap (apt-get install bubblewrap), or pass "
                "--unsafe-no-sandbox to run it anyway",
            )
        if self.settings.mechanism == "in_process":
            trusted = InProcessFactory(
                self.settings.retrieve_timeout_s,
                self.settings.update_timeout_s,
                self.settings.vector_backend,
            )
            return await trusted.start(design, services, seed)
        runner = SandboxRunner(design, services, seed, self.settings)
        spare, self._spare = self._spare, None
        await runner.start(spare)
        return runner


def factory_from_config(config: AlmaConfig, run_dir: Path) -> SandboxFactory:
    """The sandbox a run uses: its settings, and the folders its workers must not see."""
    sandbox = config.sandbox
    limits = Limits(
        sandbox.memory_mb,
        sandbox.cpu_s,
        sandbox.processes,
        sandbox.open_files,
        sandbox.file_size_mb,
    )
    hidden = private_folders() | {run_dir.resolve()}
    settings = SandboxSettings(
        choose(sandbox.mode),
        limits,
        config.eval.retrieve_timeout_s,
        config.eval.update_timeout_s,
        tuple(sorted(hidden)),
        config.memory.vector_backend,
    )
    if sandbox.unsafe_no_sandbox:
        log.warning("--unsafe-no-sandbox: designs may run without isolation if none is available")
    return SandboxFactory(settings, allow_unsafe=sandbox.unsafe_no_sandbox)


async def started_factory(config: AlmaConfig, run_dir: Path | None) -> SandboxFactory:
    """The run's sandbox with a worker already booting (Python's start-up and imports take a
    few hundred milliseconds, which then overlap with the caller's own preparations).

    ``run_dir`` is the run's folder when known; otherwise all of ``config.run.root`` is hidden.
    """
    factory = factory_from_config(config, run_dir if run_dir is not None else config.run.root)
    factory.prewarm()
    await asyncio.sleep(0)  # let the launch task spawn the process now
    return factory
