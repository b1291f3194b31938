"""A scriptable fake of an OpenAI-compatible server, for tests.

``FakeOpenAI`` serves ``POST /v1/chat/completions`` and ``POST /v1/embeddings`` on 127.0.0.1 (a
free port) from a background thread. Each chat request takes the next behaviour from the script
(``fake.script(answer("hi"), status(429, retry_after="1"), ...)``); when the script is empty the
``default`` behaviour answers. Every request is recorded (path, headers, JSON body, arrival time),
and the server tracks how many requests were in flight at once.

    with FakeOpenAI() as fake:
        fake.script(status(500), answer('{"x": 1}', prompt_tokens=12, cached_tokens=4))
        provider = OpenAIProvider("m", base_url=fake.base_url, api_key="k")
        ...
        assert fake.requests[1].body["model"] == "m"

Faults: ``status(...)`` / ``rate_limited()`` / ``server_error()`` (HTTP errors), ``hang(s)``
(silence past the client's timeout), ``reset()`` (the socket is closed, with a TCP reset, without
an answer), ``truncated()`` (a 200 whose body stops half-way though its Content-Length says
more), ``malformed_body()`` (a 200 whose body is cut-off JSON), ``odd_body()`` (valid JSON of the
wrong shape), ``empty_choices()``, ``malformed_json()`` (an answer that is no JSON: breaks any
schema), ``answer(..., usage=False)`` (a good answer without a ``usage`` block).

Billing: ``fake.served_tokens`` is the running count of prompt + completion tokens of every
answer the server sent in full (chat answers as their ``Answer`` says, embeddings as reported),
what a real endpoint would bill; faults, hangs and cut-off bodies serve nothing.

Chaos: ``chaos(good, rate=0.3, seed=0, hang_s=5.0)`` is a behaviour that answers each request
with a fault with probability ``rate`` and otherwise with ``good(body)``. Faults are drawn, under
a lock, from one ``random.Random(seed)`` in request order: the n-th request always meets the
same fate, whatever the timing. The faults: 429 with Retry-After, 429 without, 500, 503, reset,
hang (``hang_s``), truncated body, malformed body, empty choices, a schema-breaking answer, and
a slow but good answer (``good(body)`` after ``slow_s``). ``good`` should be a pure function of
the body, so that a retried request (same body) gets the same answer; :func:`body_hash` keys a
table of answers by body (``lambda body: answer(table[body_hash(body)])``). Repair rounds
(after a schema-breaking answer) reach ``good`` too, with the repair conversation as body. The
``Chaos`` object counts what it did in ``.drawn`` (fault name -> times).

    fake = FakeOpenAI(default=chaos(lambda body: answer('{"ok": true}'), rate=0.3, seed=7))
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

# --------------------------------------------------------------------------- behaviours


@dataclass(frozen=True)
class Answer:
    """A 200 chat completion with ``text`` as the assistant message."""

    text: str
    prompt_tokens: int = 10
    completion_tokens: int = 5
    cached_tokens: int | None = None
    model: str | None = None  # None: echo the requested model
    delay_s: float = 0.0  # think time before answering (to observe concurrency)
    usage: bool = True  # False: no usage block in the body (tokens are still "billed")


@dataclass(frozen=True)
class Status:
    """An HTTP error with an OpenAI-shaped error body."""

    code: int
    message: str = "error"
    retry_after: str | None = None  # sent as the Retry-After header when given
    param: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Hang:
    """Accept the request, then say nothing for ``seconds`` (past the client's timeout)."""

    seconds: float = 5.0


@dataclass(frozen=True)
class RawBody:
    """A 200 with an arbitrary body (for protocol-level breakage)."""

    body: bytes
    content_type: str = "application/json"


@dataclass(frozen=True)
class Reset:
    """Close the connection with a TCP reset, answering nothing."""


@dataclass(frozen=True)
class Truncated:
    """A 200 chat answer whose body stops after ``fraction`` of its announced length."""

    text: str = "cut off"
    fraction: float = 0.5


Behaviour = Answer | Status | Hang | RawBody | Reset | Truncated
Dynamic = Callable[[dict[str, Any]], Behaviour]  # chooses a behaviour from the request body


def answer(text: str, **fields: Any) -> Answer:
    return Answer(text, **fields)


def status(code: int, message: str = "error", **fields: Any) -> Status:
    return Status(code, message, **fields)


def rate_limited(retry_after: str | None = None) -> Status:
    return Status(429, "Rate limit reached, slow down", retry_after=retry_after)


def server_error() -> Status:
    return Status(500, "The server had an error while processing your request")


def hang(seconds: float = 5.0) -> Hang:
    return Hang(seconds)


def malformed_json() -> Answer:
    """An assistant message that is not JSON at all."""
    return Answer('{"action": "go north", "reason": ')


def reset() -> Reset:
    return Reset()


def truncated(text: str = "cut off", fraction: float = 0.5) -> Truncated:
    return Truncated(text, fraction)


def malformed_body() -> RawBody:
    """A 200 whose body is JSON cut off mid-way (complete at the HTTP level)."""
    return RawBody(b'{"id": "chatcmpl-fake", "object": "chat.completion", "choices": [{"mes')


def odd_body() -> RawBody:
    """A 200 with valid JSON of the wrong shape."""
    return RawBody(b'{"id": "chatcmpl-fake", "choices": "none today"}')


def empty_choices() -> RawBody:
    body = {"id": "chatcmpl-fake", "object": "chat.completion", "model": "m", "choices": []}
    return RawBody(json.dumps(body).encode())


def reject_json_schema() -> Status:
    """The 400 servers without structured outputs send for ``response_format=json_schema``."""
    return Status(
        400,
        "response_format type 'json_schema' is not supported by this model",
        param="response_format",
    )


def unauthorized() -> Status:
    return Status(401, "Incorrect API key provided: sk-wrong")


# --------------------------------------------------------------------------- the server


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float  # time.monotonic()


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    queue: deque[Behaviour | Dynamic] = field(default_factory=deque)
    embedding_queue: deque[Behaviour] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    served_prompt: int = 0
    served_completion: int = 0


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # many concurrent clients connect at once in the budget benchmark


class FakeOpenAI:
    """A threaded fake OpenAI-compatible server on 127.0.0.1; see the module docstring."""

    def __init__(
        self, default: Behaviour | Dynamic | None = None, *, embedding_dim: int = 8
    ) -> None:
        self.default: Behaviour | Dynamic = default or Answer("ok")
        self.embedding_dim = embedding_dim
        self._state = _State()
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------
    def start(self) -> FakeOpenAI:
        server = _Server(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-openai"
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()  # releases hanging handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeOpenAI is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # scripting and inspection ---------------------------------------------
    def script(self, *behaviours: Behaviour | Dynamic) -> None:
        """Queue behaviours for the next chat requests, in order."""
        with self._state.lock:
            self._state.queue.extend(behaviours)

    def script_embeddings(self, *behaviours: Behaviour) -> None:
        """Queue faults for the next embedding requests (an ``Answer`` means a normal answer)."""
        with self._state.lock:
            self._state.embedding_queue.extend(behaviours)

    @property
    def pending(self) -> int:
        """Scripted behaviours not used yet."""
        with self._state.lock:
            return len(self._state.queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def max_in_flight(self) -> int:
        with self._state.lock:
            return self._state.max_in_flight

    @property
    def served_tokens(self) -> int:
        """Prompt + completion tokens of every answer sent in full: what an endpoint bills."""
        with self._state.lock:
            return self._state.served_prompt + self._state.served_completion

    @property
    def served(self) -> tuple[int, int]:
        """(prompt, completion) tokens served so far."""
        with self._state.lock:
            return self._state.served_prompt, self._state.served_completion

    # used by the handler ---------------------------------------------------
    def _record(self, request: RecordedRequest) -> None:
        with self._state.lock:
            self._state.requests.append(request)

    def _next_embedding(self) -> Behaviour | None:
        with self._state.lock:
            queue = self._state.embedding_queue
            return queue.popleft() if queue else None

    def _next(self, body: dict[str, Any]) -> Behaviour:
        with self._state.lock:
            chosen = self._state.queue.popleft() if self._state.queue else self.default
        return chosen(body) if callable(chosen) else chosen

    def _bill(self, prompt: int, completion: int) -> None:
        with self._state.lock:
            self._state.served_prompt += prompt
            self._state.served_completion += completion

    def _enter(self) -> None:
        with self._state.lock:
            self._state.in_flight += 1
            self._state.max_in_flight = max(self._state.max_in_flight, self._state.in_flight)

    def _leave(self) -> None:
        with self._state.lock:
            self._state.in_flight -= 1

    def _wait(self, seconds: float) -> None:
        self._closing.wait(seconds)


# --------------------------------------------------------------------------- responses


def completion_body(behaviour: Answer, request: dict[str, Any]) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": behaviour.prompt_tokens,
        "completion_tokens": behaviour.completion_tokens,
        "total_tokens": behaviour.prompt_tokens + behaviour.completion_tokens,
    }
    if behaviour.cached_tokens is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": behaviour.cached_tokens}
    body: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": behaviour.model or request.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": behaviour.text},
                "finish_reason": "stop",
            }
        ],
    }
    if behaviour.usage:
        body["usage"] = usage
    return body


def error_body(behaviour: Status) -> dict[str, Any]:
    kind = "rate_limit_error" if behaviour.code == 429 else "invalid_request_error"
    return {
        "error": {
            "message": behaviour.message,
            "type": kind,
            "param": behaviour.param,
            "code": None,
        }
    }


def embedding_vector(text: str, dim: int) -> list[float]:
    """A deterministic unit vector for ``text``."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    vector = np.random.default_rng(seed).standard_normal(dim)
    return [float(x) for x in vector / np.linalg.norm(vector)]


def embeddings_body(request: dict[str, Any], dim: int) -> dict[str, Any]:
    texts = request.get("input", [])
    texts = [texts] if isinstance(texts, str) else list(texts)
    data = [
        {"object": "embedding", "index": i, "embedding": embedding_vector(str(t), dim)}
        for i, t in enumerate(texts)
    ]
    tokens = sum(len(str(t).split()) for t in texts)
    return {
        "object": "list",
        "data": data,
        "model": request.get("model", "fake-embedding"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _make_handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # headers and body go out in two writes: without this, Nagle's algorithm and the
            # client's delayed ACK hold the body back ~40 ms
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = {"_unparsed": raw.decode(errors="replace")}
            fake._record(
                RecordedRequest(self.path, dict(self.headers.items()), body, time.monotonic())
            )
            fake._enter()
            try:
                self._route(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing to answer
            finally:
                fake._leave()

        def _route(self, body: dict[str, Any]) -> None:
            if self.path.rstrip("/").endswith("/chat/completions"):
                self._behave(fake._next(body), body)
            elif self.path.rstrip("/").endswith("/embeddings"):
                scripted = fake._next_embedding()
                if scripted is not None and not isinstance(scripted, Answer):
                    self._behave(scripted, body)
                    return
                payload = embeddings_body(body, fake.embedding_dim)
                self._json(200, payload)
                fake._bill(payload["usage"]["prompt_tokens"], 0)
            else:
                self._json(404, error_body(Status(404, f"no route {self.path}")))

        def _behave(self, behaviour: Behaviour, body: dict[str, Any]) -> None:
            if isinstance(behaviour, Answer):
                if behaviour.delay_s:
                    fake._wait(behaviour.delay_s)
                self._json(200, completion_body(behaviour, body))
                fake._bill(behaviour.prompt_tokens, behaviour.completion_tokens)
            elif isinstance(behaviour, Status):
                headers = list(behaviour.headers)
                if behaviour.retry_after is not None:
                    headers.append(("Retry-After", behaviour.retry_after))
                self._json(behaviour.code, error_body(behaviour), headers)
            elif isinstance(behaviour, Hang):
                fake._wait(behaviour.seconds)
                self._json(200, completion_body(Answer("too late"), body))
            elif isinstance(behaviour, Reset):
                self._reset()
            elif isinstance(behaviour, Truncated):
                data = json.dumps(completion_body(Answer(behaviour.text), body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: int(len(data) * behaviour.fraction)])
                self.wfile.flush()
                self.close_connection = True
            else:
                self._send(200, behaviour.body, behaviour.content_type, [])

        def _reset(self) -> None:
            """Drop the connection with an RST (SO_LINGER 0), as a crashed proxy would."""
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True

        def _json(
            self, code: int, payload: dict[str, Any], headers: list[tuple[str, str]] | None = None
        ) -> None:
            self._send(code, json.dumps(payload).encode(), "application/json", headers or [])

        def _send(
            self, code: int, data: bytes, content_type: str, headers: list[tuple[str, str]]
        ) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()

    return Handler


# --------------------------------------------------------------------------- chaos


def body_hash(body: dict[str, Any]) -> str:
    """A stable key of what a chat request asks: model, messages and response format."""
    asked = {key: body.get(key) for key in ("model", "messages", "response_format")}
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()[:16]


FAULTS: tuple[str, ...] = (
    "429_retry_after",
    "429",
    "500",
    "503",
    "reset",
    "hang",
    "truncated",
    "malformed_body",
    "empty_choices",
    "schema_breaking",
    "slow",
)


class Chaos:
    """A behaviour that answers a seeded fraction of requests with a fault; see the docstring."""

    def __init__(
        self,
        good: Dynamic,
        *,
        rate: float,
        seed: int,
        hang_s: float,
        faults: Sequence[str] = FAULTS,
        retry_after: str = "0.01",
        slow_s: float = 0.05,
    ) -> None:
        unknown = set(faults) - set(FAULTS)
        if unknown or not faults or not 0 <= rate <= 1:
            raise ValueError(f"bad chaos settings: rate={rate}, unknown faults {sorted(unknown)}")
        self.good = good
        self.rate = rate
        self.hang_s = hang_s
        self.faults = tuple(faults)
        self.retry_after = retry_after
        self.slow_s = slow_s
        self.drawn: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def draw(self) -> str | None:
        """The next request's fault, or None for a good answer (in request order)."""
        with self._lock:
            fault = self._rng.choice(self.faults) if self._rng.random() < self.rate else None
            self.drawn[fault or "good"] += 1
            return fault

    def __call__(self, body: dict[str, Any]) -> Behaviour:
        fault = self.draw()
        if fault is None:
            return self.good(body)
        if fault == "slow":
            good = self.good(body)
            return replace(good, delay_s=self.slow_s) if isinstance(good, Answer) else good
        return self._fault(fault)

    def _fault(self, fault: str) -> Behaviour:
        faults: dict[str, Behaviour] = {
            "429_retry_after": rate_limited(retry_after=self.retry_after),
            "429": rate_limited(),
            "500": server_error(),
            "503": Status(503, "The engine is currently overloaded"),
            "reset": Reset(),
            "hang": Hang(self.hang_s),
            "truncated": Truncated(),
            "malformed_body": malformed_body(),
            "empty_choices": empty_choices(),
            "schema_breaking": Answer('{"unexpected": "shape"}'),
        }
        return faults[fault]


def chaos(good: Dynamic, rate: float = 0.3, seed: int = 0, hang_s: float = 5.0) -> Chaos:
    """Answer a fraction ``rate`` of requests with a seeded fault, the rest with ``good``."""
    return Chaos(good, rate=rate, seed=seed, hang_s=hang_s)
