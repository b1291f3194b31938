"""The design worker: runs one memory design in its own (isolated) process.

Started by the parent as ``python -I -B -m alma.sandbox.worker <scratch dir>``, usually inside
bubblewrap or a network namespace. It speaks the JSON-lines protocol of :mod:`alma.sandbox.rpc`;
its toolkit's model and embedding calls go back to the parent. Once the libraries are imported
and before any design code runs, an audit hook refuses what a memory design never needs:
sockets, subprocesses, signals to other processes, native code through ctypes, and writing
files outside the scratch folder. The hook only classifies and hardens; the boundary is the
process isolation around the worker.
"""

from __future__ import annotations

import asyncio
import base64
import os
import pickle
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from alma.errors import BudgetExceededError, LLMError, MalformedOutputError
from alma.memory.base import MemoryDesign
from alma.memory.loading import DesignSource, load_class
from alma.memory.toolkit import Toolkit
from alma.sandbox.rpc import MAX_LINE, ProtocolError, decode, encode, unpack_array
from alma.types import Completion, Episode, EpisodeStart, Message, Usage

FORBIDDEN_EVENTS = {
    "socket.connect": "opening a network connection",
    "socket.bind": "binding a network socket",
    "socket.sendto": "sending on the network",
    "subprocess.Popen": "starting a subprocess",
    "os.system": "running a shell command",
    "os.exec": "replacing the process",
    "os.posix_spawn": "starting a process",
    "os.spawn": "starting a process",
    "os.fork": "forking",
    "os.forkpty": "forking",
    "os.kill": "sending a signal",
    "os.killpg": "sending a signal",
    "ctypes.dlopen": "loading native code",
    "ctypes.dlsym": "loading native code",
    "ctypes.cdata": "reading raw memory",
    "pty.spawn": "starting a process",
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class Forbidden(PermissionError):
    """A design tried something the sandbox refuses."""


class Guard:
    """The audit hook: refuses forbidden operations and remembers each attempt."""

    def __init__(self, scratch: str) -> None:
        self.scratch = os.path.realpath(scratch)
        self.attempts: list[str] = []
        self.active = False

    def _writable(self, path: object) -> bool:
        if isinstance(path, int):
            return True  # an already open descriptor
        if isinstance(path, bytes):
            path = path.decode(errors="replace")
        full = os.path.realpath(str(path))
        return full == self.scratch or full.startswith(self.scratch + os.sep)

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active:
            return
        what = FORBIDDEN_EVENTS.get(event)
        if what is None and event == "open" and len(args) >= 3:
            path, mode, flags = args[0], args[1], args[2]
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            if writes and not self._writable(path):
                what = f"writing {path} (only the scratch folder is writable)"
        changes = event in ("os.remove", "os.rename", "os.rmdir", "os.mkdir")
        if what is None and changes and args and not self._writable(args[0]):
            what = f"changing {args[0]} (only the scratch folder is writable)"
        if what is not None:
            self.attempts.append(f"{event}: {what}")
            raise Forbidden(f"forbidden in the sandbox: {what}")


class RemoteServices:
    """The toolkit's services inside the worker: every call goes to the parent."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: type[BaseModel] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        value = await self.worker.call(
            "llm",
            messages=[[m.role, m.content] for m in messages],
            schema=schema.model_json_schema() if schema is not None else None,
            temperature=temperature,
            max_tokens=max_tokens,
        )
        parsed = None
        if schema is not None:
            try:
                parsed = schema.model_validate(value["parsed"])
            except ValidationError as error:
                raise MalformedOutputError(
                    f"the memory model's answer does not match {schema.__name__}: "
                    f"{error.errors()[0]['msg']}"
                ) from None
        usage = Usage(**value.get("usage", {}))
        return Completion(text=value["text"], usage=usage, parsed=parsed, model=value["model"])

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        return unpack_array(await self.worker.call("embed", texts=list(texts)))


class Worker:
    def __init__(self, scratch: str, output: Any) -> None:
        self.guard = Guard(scratch)
        self.output = output
        self.design: MemoryDesign | None = None
        self.services = RemoteServices(self)
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.next_call = 0

    # ------------------------------------------------------------------ wire
    def send(self, message: dict[str, Any]) -> None:
        self.guard.active = False  # our own writes are not the design's
        try:
            self.output.write(encode(message))
            self.output.flush()
        finally:
            self.guard.active = True

    async def call(self, op: str, **fields: Any) -> Any:
        self.next_call += 1
        number = self.next_call
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[number] = future
        self.send({"call": number, "op": op, **fields})
        return await future

    def answer(self, message: dict[str, Any]) -> None:
        future = self.pending.pop(int(message["call"]), None)
        if future is None or future.done():
            return
        if message.get("ok"):
            future.set_result(message.get("value"))
            return
        error = message.get("error", {})
        text = str(error.get("message", "the parent refused the call"))
        if error.get("kind") == "budget":
            future.set_exception(BudgetExceededError(text))
        else:
            future.set_exception(LLMError(text))

    # ------------------------------------------------------------------ requests
    async def handle(self, request: dict[str, Any]) -> None:
        number = request.get("id")
        before = len(self.guard.attempts)
        try:
            value = await self.dispatch(request)
            if len(self.guard.attempts) > before:  # tried, caught it, went on: still reported
                raise Forbidden(self.guard.attempts[before])
            self.send({"id": number, "ok": True, "value": value})
        except BaseException as error:  # everything the design does wrong is reported
            if isinstance(error, asyncio.CancelledError):
                raise
            self.send({"id": number, "ok": False, "error": self.describe(error, before)})

    def describe(self, error: BaseException, before: int) -> dict[str, Any]:
        kind = "crash"
        if len(self.guard.attempts) > before or isinstance(error, Forbidden):
            kind = "forbidden"
        elif isinstance(error, MemoryError):
            kind = "memory"
        elif isinstance(error, BudgetExceededError):
            kind = "budget"
        message = f"{type(error).__name__}: {error}"
        if kind == "forbidden" and len(self.guard.attempts) > before:
            message = self.guard.attempts[before]
        trace = "".join(traceback.format_exception(error)[-6:])
        return {"kind": kind, "message": message[:1000], "traceback": trace[-4000:]}

    async def dispatch(self, request: dict[str, Any]) -> Any:
        op = request.get("op")
        if op == "init":
            source = DesignSource(
                request["name"], request["source"], request.get("origin", "imported")
            )
            cls = load_class(source)
            toolkit = Toolkit(
                self.services,
                seed=int(request.get("seed", 0)),
                vector_backend=str(request.get("vector_backend", "numpy")),
            )
            self.design = cls(toolkit)
            return {"class": cls.__name__}
        if op == "ping":
            return "pong"
        if self.design is None and op != "restore":
            raise ProtocolError(f"{op!r} before init")
        if op == "retrieve":
            assert self.design is not None
            return await self.design.retrieve(EpisodeStart(**request["start"]))
        if op == "update":
            assert self.design is not None
            await self.design.update(Episode.from_dict(request["episode"]))
            return None
        if op == "snapshot":
            return base64.b64encode(pickle.dumps(self.design)).decode()
        if op == "restore":
            if request.get("name") is not None:  # the class must exist before unpickling
                load_class(DesignSource(request["name"], request["source"]))
            design: MemoryDesign = pickle.loads(base64.b64decode(request["state"]))
            design.toolkit.bind(self.services)
            self.design = design
            return None
        raise ProtocolError(f"unknown op {op!r}")


async def serve(scratch: str, output: Any) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    worker = Worker(scratch, output)
    sys.addaudithook(worker.guard)
    worker.guard.active = True
    tasks: set[asyncio.Task[None]] = set()
    while True:
        line = await reader.readline()
        if not line:
            break
        message = decode(line)
        if "call" in message:
            worker.answer(message)
            continue
        if message.get("op") == "close":
            worker.send({"id": message.get("id"), "ok": True, "value": None})
            break
        task = asyncio.create_task(worker.handle(message))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def main() -> None:
    scratch = sys.argv[1] if len(sys.argv) > 1 else os.getcwd()
    # the protocol gets a private copy of stdout; fd 1 then points at stderr, so whatever a
    # design prints goes to the log instead of into the protocol
    output = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    os.chdir(scratch)
    asyncio.run(serve(scratch, output))


if __name__ == "__main__":
    main()
