"""The parent's end of one worker process: its pipes, its requests and answers, its end.

A ``WorkerClient`` sends requests as JSON lines and matches the answers to them by number. The
worker's own model and embedding calls arrive on the same pipe; the client hands each to its
``CallProxy`` and writes back the reply. Anything that breaks the conversation (the process
dying, a timeout, a line that is not the protocol) becomes a ``WorkerFailure``, which every
pending request receives; what to do about it is the runner's business, not the client's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import subprocess
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from alma.sandbox.launch import Profile, Spawned, spawn, take_early
from alma.sandbox.proxy import CallProxy, refused
from alma.sandbox.rpc import MAX_LINE, ProtocolError, decode, encode


class WorkerFailure(Exception):
    """The worker can no longer answer: it crashed, timed out or broke the protocol."""

    def __init__(self, kind: str, message: str, trace: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.trace = trace


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
class WorkerClient:
    """One worker process and the plumbing around it.

    ``proxy`` serves the worker's model calls; it is set once the runner knows whose services
    they are (a worker started ahead of time has none yet and refuses such calls).
    """

    process: Process
    spawned: Spawned
    proxy: CallProxy | None = None
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=40))
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    next_id: int = 0
    failure: WorkerFailure | None = None
    reader: asyncio.Task[None] | None = None
    helpers: set[asyncio.Task[Any]] = field(default_factory=set)

    def write(self, message: dict[str, Any]) -> None:
        self.process.stdin.write(encode(message))

    async def request(self, op: str, timeout_s: float, **fields: Any) -> Any:
        """The worker's answer to one request (``{"ok": ..., "value" or "error": ...}``)."""
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

    async def serve_call(self, message: dict[str, Any]) -> None:
        """Answer one of the worker's model calls, unless the worker is gone by then."""
        if self.proxy is None:
            reply = refused(message, "a model call before the design was loaded")
        else:
            reply = await self.proxy.serve(message)
        if self.failure is None and self.process.returncode is None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                self.write(reply)

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


async def launch(profile: Profile) -> WorkerClient:
    """A worker process, started and importing (the one spawned at start-up if it fits); it
    serves model calls once given a proxy."""
    spawned = take_early(profile) or spawn(profile)
    try:
        process = await attach(spawned.popen)
    except BaseException:
        spawned.discard()
        raise
    client = WorkerClient(process, spawned)
    client.reader = asyncio.create_task(client.read_loop())
    stderr = asyncio.create_task(client.read_stderr())
    client.helpers.add(stderr)
    return client
