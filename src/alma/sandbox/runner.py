"""The parent side of the sandbox: a ``DesignRunner`` whose design lives in a worker process.

Each runner owns one worker. Requests go out as JSON lines; the worker's model and embedding
calls come back and are served with the run's metered services (so the budget and the ledger
see them, and the worker never holds a key). A call that breaks any rule (a crash, a timeout,
a memory blow-up, a protocol violation, a forbidden operation) becomes a recorded failure; the
worker is then restarted from the last snapshot of the memory (taken after the build phase and
at each copy), so the evaluation goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import subprocess
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, RootModel

from alma.config import AlmaConfig
from alma.errors import AlmaError, BudgetExceededError, UsageError
from alma.memory.loading import DesignSource
from alma.memory.runner import (
    CallResult,
    DesignFailedError,
    DesignRunner,
    InProcessFactory,
    check_retrieved,
    describe_failure,
)
from alma.memory.toolkit import Services
from alma.sandbox.isolation import Limits, Mechanism, choose, describe, private_folders
from alma.sandbox.launch import Profile, Spawned, spawn, take_early
from alma.sandbox.rpc import MAX_LINE, ProtocolError, decode, encode, pack_array
from alma.types import Episode, EpisodeStart, Message, to_dict

log = logging.getLogger("alma.sandbox")

START_TIMEOUT_S = 30.0


class UnsafeDesignError(UsageError):
    """Generated or imported code with no isolation available and no explicit opt-out."""


class WorkerFailure(Exception):
    def __init__(self, kind: str, message: str, trace: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.trace = trace


def schema_model(schema: dict[str, Any]) -> type[BaseModel]:
    """A model that asks the endpoint for ``schema`` and hands back the JSON object as is;
    the worker validates it against the design's own pydantic class."""

    class Forwarded(RootModel[dict[str, Any]]):
        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return schema

    Forwarded.__name__ = str(schema.get("title", "Answer"))
    return Forwarded


class Process:
    """A spawned worker as the event loop sees it: its pipes as streams, its end as a wait."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        stdin: asyncio.WriteTransport,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
        transports: list[asyncio.BaseTransport],
    ) -> None:
        self.popen = popen
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.transports = transports

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def kill(self) -> None:
        self.popen.kill()

    async def wait(self) -> int:
        delay = 0.001
        while (code := self.popen.poll()) is None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        return code

    def close(self) -> None:
        for transport in self.transports:
            transport.close()


async def attach(popen: subprocess.Popen[bytes]) -> Process:
    """Connect a spawned worker's pipes to the running event loop."""
    loop = asyncio.get_running_loop()
    transports: list[asyncio.BaseTransport] = []

    async def reading(pipe: object) -> asyncio.StreamReader:
        reader = asyncio.StreamReader(limit=MAX_LINE)
        transport, _ = await loop.connect_read_pipe(
            functools.partial(asyncio.StreamReaderProtocol, reader), pipe
        )
        transports.append(transport)
        return reader

    stdout = await reading(popen.stdout)
    stderr = await reading(popen.stderr)
    stdin, _ = await loop.connect_write_pipe(asyncio.Protocol, popen.stdin)
    transports.append(stdin)
    return Process(popen, stdin, stdout, stderr, transports)


@dataclass
class Worker:
    """One worker process and the plumbing around it."""

    process: Process
    spawned: Spawned
    services: Services | None = None
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=40))
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    next_id: int = 0
    failure: WorkerFailure | None = None
    reader: asyncio.Task[None] | None = None
    helpers: set[asyncio.Task[Any]] = field(default_factory=set)

    def write(self, message: dict[str, Any]) -> None:
        self.process.stdin.write(encode(message))

    async def request(self, op: str, timeout_s: float, **fields: Any) -> Any:
        if self.failure is not None:
            raise self.failure
        self.next_id += 1
        number = self.next_id
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[number] = future
        try:
            self.write({"id": number, "op": op, **fields})
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise WorkerFailure("timeout", f"{op} took longer than {timeout_s:g} s") from None
        finally:
            self.pending.pop(number, None)

    # ------------------------------------------------------------------ reading
    async def read_loop(self) -> None:
        try:
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    break
                message = decode(line)
                if "call" in message:
                    task = asyncio.create_task(self.serve_call(message))
                    self.helpers.add(task)
                    task.add_done_callback(self.helpers.discard)
                    continue
                future = self.pending.get(int(message.get("id", -1)))
                if future is None:
                    raise ProtocolError(f"an answer to no request: {str(message)[:80]}")
                if not future.done():
                    future.set_result(message)
            await self.process.wait()
            self.fail(self.exit_failure())
        except (ProtocolError, ValueError, asyncio.LimitOverrunError) as error:
            self.fail(WorkerFailure("protocol", f"the worker broke the protocol: {error}"))
            self.kill()

    def exit_failure(self) -> WorkerFailure:
        code = self.process.returncode
        tail = "\n".join(self.stderr_tail)
        if code is not None and code < 0:
            kind = "memory" if "MemoryError" in tail else "crash"
            return WorkerFailure(kind, f"the worker was killed by signal {-code}", tail)
        return WorkerFailure("crash", f"the worker exited (code {code})", tail)

    async def read_stderr(self) -> None:
        while True:
            line = await self.process.stderr.readline()
            if not line:
                return
            self.stderr_tail.append(line.decode(errors="replace").rstrip()[:500])

    def fail(self, failure: WorkerFailure) -> None:
        if self.failure is None:
            self.failure = failure
        for future in self.pending.values():
            if not future.done():
                future.set_exception(self.failure)

    # ------------------------------------------------------------------ the toolkit's calls
    async def serve_call(self, message: dict[str, Any]) -> None:
        number = message.get("call")
        try:
            value = await self.run_call(message)
            reply: dict[str, Any] = {"call": number, "ok": True, "value": value}
        except BudgetExceededError as error:
            reply = {
                "call": number,
                "ok": False,
                "error": {"kind": "budget", "message": error.message},
            }
        except AlmaError as error:
            reply = {
                "call": number,
                "ok": False,
                "error": {"kind": "model", "message": error.message},
            }
        except Exception as error:
            reply = {
                "call": number,
                "ok": False,
                "error": {"kind": "model", "message": describe_failure(error)},
            }
        if self.failure is None and self.process.returncode is None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                self.write(reply)

    async def run_call(self, message: dict[str, Any]) -> Any:
        if self.services is None:
            raise ProtocolError("a model call before the design was loaded")
        if message.get("op") == "llm":
            messages = [Message(role, content) for role, content in message["messages"]]
            schema = message.get("schema")
            completion = await self.services.complete(
                messages,
                schema=schema_model(schema) if isinstance(schema, dict) else None,
                temperature=message.get("temperature"),
                max_tokens=message.get("max_tokens"),
            )
            parsed = completion.parsed.model_dump() if completion.parsed is not None else None
            usage = completion.usage
            return {
                "text": completion.text,
                "parsed": parsed,
                "model": completion.model,
                "usage": {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "cached_tokens": usage.cached_tokens,
                },
            }
        if message.get("op") == "embed":
            texts = [str(text) for text in message.get("texts", [])]
            return pack_array(await self.services.embed(texts))
        raise ProtocolError(f"unknown call {message.get('op')!r}")

    # ------------------------------------------------------------------ ending
    def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def close(self) -> None:
        if self.process.returncode is None and self.failure is None:
            with contextlib.suppress(Exception):
                await self.request("close", 5.0)
        self.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.process.wait(), 5.0)
        for task in (self.reader, *self.helpers):
            if task is not None:
                task.cancel()
        self.process.close()
        self.spawned.release()


@dataclass(frozen=True)
class SandboxSettings:
    mechanism: Mechanism
    limits: Limits = field(default_factory=Limits)
    retrieve_timeout_s: float = 120.0
    update_timeout_s: float = 300.0
    hidden: tuple[Path, ...] = ()  # folders the worker must not see (home, run dir, cwd, /tmp)
    vector_backend: str = "numpy"  # engine of the design's vector stores

    @property
    def profile(self) -> Profile:
        return Profile(self.mechanism, self.limits, self.hidden)


async def launch(settings: SandboxSettings) -> Worker:
    """A worker process, started and importing (the one spawned at start-up if it fits); it
    serves model calls once given services."""
    spawned = take_early(settings.profile) or spawn(settings.profile)
    try:
        process = await attach(spawned.popen)
    except BaseException:
        spawned.discard()
        raise
    worker = Worker(process, spawned)
    worker.reader = asyncio.create_task(worker.read_loop())
    stderr = asyncio.create_task(worker.read_stderr())
    worker.helpers.add(stderr)
    return worker


class SandboxRunner:
    """A design in a worker process; failures become recorded errors, not exceptions."""

    def __init__(
        self, design: DesignSource, services: Services, seed: int, settings: SandboxSettings
    ) -> None:
        self.design = design
        self.services = services
        self.seed = seed
        self.settings = settings
        self.worker: Worker | None = None
        self.snapshot: str | None = None  # base64 pickle of the memory, taken by the worker
        self.restarts = 0
        self._restarting = asyncio.Lock()

    async def start(self, spare: asyncio.Task[Worker] | None = None) -> None:
        """Start a worker (or take a spare one already started) and load the design, or the
        last snapshot of its memory."""
        self.worker = await spare if spare is not None else await launch(self.settings)
        self.worker.services = self.services
        fields = {
            "name": self.design.name,
            "source": self.design.source,
            "seed": self.seed,
            "vector_backend": self.settings.vector_backend,
        }
        try:
            await self.worker.request("init", START_TIMEOUT_S, origin=self.design.origin, **fields)
            if self.snapshot is not None:
                await self.worker.request("restore", START_TIMEOUT_S, state=self.snapshot, **fields)
        except WorkerFailure as failure:
            await self.worker.close()
            raise DesignFailedError(
                f"design {self.design.name!r} could not start in the sandbox: {failure.message}",
                hint="run `alma check` on the design for details",
            ) from None

    async def _call(self, op: str, timeout_s: float, **fields: Any) -> tuple[Any, str | None, str]:
        """The call's value, or the reason it failed (the worker restarted if it died)."""
        worker = self.worker
        if worker is None or worker.failure is not None:
            worker = await self._recover(worker)
        try:
            answer = await worker.request(op, timeout_s, **fields)
        except WorkerFailure as failure:
            await self._recover(worker)
            return None, f"{failure.kind}: {failure.message}", failure.trace[-2000:]
        budget_error = getattr(self.services, "budget_error", None)
        if budget_error is not None:  # the design caught it; the run must still stop
            raise budget_error
        if not answer.get("ok"):
            error = answer.get("error", {})
            kind = error.get("kind", "crash")
            if kind == "budget":
                raise BudgetExceededError(str(error.get("message", "budget reached")))
            message = f"{kind}: {error.get('message', '')}"
            return None, message, str(error.get("traceback", ""))[-2000:]
        return answer.get("value"), None, ""

    async def _recover(self, failed: Worker | None) -> Worker:
        """Replace a dead worker once, however many calls saw it die."""
        async with self._restarting:
            if self.worker is failed:
                if failed is not None:
                    await failed.close()
                    self.restarts += 1
                    log.info("restarting the worker of %s (%d)", self.design.name, self.restarts)
                await self.start()
            assert self.worker is not None
            return self.worker

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
        if self.worker is not None:
            await self.worker.close()
            self.worker = None


class SandboxFactory:
    """Starts sandboxed runners; refuses non-reference code without isolation."""

    def __init__(self, settings: SandboxSettings, *, allow_unsafe: bool = False) -> None:
        self.settings = settings
        self.allow_unsafe = allow_unsafe
        self.description = describe(settings.mechanism)
        self._spare: asyncio.Task[Worker] | None = None
        log.info("sandbox: %s", self.description)

    def prewarm(self) -> None:
        """Start a worker now, so the next design finds its Python already up (call it from
        inside the event loop, before the work that can overlap with the start-up)."""
        if self._spare is None and self.settings.mechanism != "in_process":
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # not in the event loop: the first design starts its own worker
            self._spare = loop.create_task(launch(self.settings))

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
