"""The embedded model server: llama.cpp's OpenAI-compatible HTTP server inside this process.

``LocalServer`` loads a GGUF file with xllamacpp and serves it on 127.0.0.1; any
OpenAI-compatible client talks to it at ``base_url``. The server keeps one KV cache per slot
and reuses the longest common prefix of a new request (``cache_prompt``), so each step of a
conversation only processes the new tokens; requests land on the slot whose cached prompt is
most similar, and ``cache_reuse`` lets a shifted chunk of an earlier prompt be reused too.
``response_format`` with a JSON schema is enforced by grammar-constrained sampling. Each
server has its own random API key, so other users of the machine, and web pages in a browser,
cannot use it.

    with LocalServer(resolve_model_path("local"), alias="local") as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key=server.api_key)
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any

from alma.errors import AlmaError, MissingDependencyError
from alma.llm.weights import check_gguf

log = logging.getLogger("alma.llm")

HOST = "127.0.0.1"


class LocalServerError(AlmaError):
    """The embedded model server failed to start or stopped answering."""


def available_cpus() -> int:
    """CPUs this process may run on (affinity and cgroup-pinned sets included)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on ``port`` now (connections in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _import_xllamacpp() -> Any:
    try:
        import xllamacpp
    except ImportError as exc:
        raise MissingDependencyError(
            "the embedded local model needs the xllamacpp package",
            hint="pip install 'alma[local]'",
        ) from exc
    return xllamacpp


_running: weakref.WeakSet[LocalServer] = weakref.WeakSet()
_running_lock = threading.Lock()


@atexit.register
def _stop_all() -> None:
    with _running_lock:
        servers = list(_running)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


class LocalServer:
    """llama.cpp's server for one GGUF model, on 127.0.0.1, inside this process.

    ``n_ctx`` is the context of each slot (tokens one conversation can hold); the KV cache
    holds ``n_ctx * n_parallel`` tokens. ``n_parallel`` requests decode together (continuous
    batching); the default is one slot per CPU, at most 4. ``port`` None lets the OS choose a
    free port; a taken ``port`` falls back to a free one. ``default_max_tokens`` limits the
    answers of requests that set no ``max_tokens`` (a request's own value wins).
    ``cache_reuse`` is the smallest chunk (tokens) the server tries to reuse from a cached
    prompt by shifting it; 0 turns this off. ``cache_ram_mib`` bounds the host-memory cache
    of prompts evicted from their slot.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        alias: str | None = None,
        n_ctx: int = 8192,
        n_parallel: int | None = None,
        n_threads: int | None = None,
        port: int | None = None,
        default_max_tokens: int = 4096,
        cache_reuse: int = 256,
        cache_ram_mib: int = 2048,
        n_batch: int = 2048,
        start_timeout: float = 180.0,
        verbose: bool = False,
    ) -> None:
        if n_ctx < 256:
            raise ValueError("n_ctx must be at least 256")
        self.model_path = Path(model_path)
        self.alias = alias or self.model_path.stem
        self.n_ctx = n_ctx
        self.n_parallel = n_parallel if n_parallel is not None else min(4, available_cpus())
        self.n_threads = n_threads if n_threads is not None else available_cpus()
        if self.n_parallel < 1 or self.n_threads < 1:
            raise ValueError("n_parallel and n_threads must be at least 1")
        self.default_max_tokens = default_max_tokens
        self.cache_reuse = cache_reuse
        self.cache_ram_mib = cache_ram_mib
        self.n_batch = n_batch
        self.start_timeout = start_timeout
        self.verbose = verbose
        # a fresh key per server: other local users and web pages cannot use the model
        self._api_key = "alma-" + secrets.token_urlsafe(18)
        self._requested_port = port
        self._port: int | None = None
        self._server: Any = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ addresses

    @property
    def model(self) -> str:
        """The model name the server reports (and accepts) in OpenAI requests."""
        return self.alias

    @property
    def port(self) -> int:
        if self._port is None:
            raise LocalServerError("the local model server is not running")
        return self._port

    @property
    def root_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"{self.root_url}/v1"

    @property
    def api_key(self) -> str:
        """The key clients must send (``Authorization: Bearer <key>``)."""
        return self._api_key

    # ------------------------------------------------------------------ lifecycle

    def _params(self, port: int) -> Any:
        xlc = _import_xllamacpp()
        params = xlc.CommonParams()
        params.model.path = str(self.model_path)
        params.model_alias = {self.alias}
        params.hostnames = [HOST]
        params.api_keys = [self._api_key]
        params.port = port
        params.n_parallel = self.n_parallel
        params.n_ctx = self.n_ctx * self.n_parallel
        params.kv_unified = False  # each slot owns n_ctx tokens of the cache
        params.n_batch = self.n_batch
        params.n_predict = self.default_max_tokens
        params.cpuparams.n_threads = self.n_threads
        params.cpuparams_batch.n_threads = self.n_threads
        params.cont_batching = True
        params.cache_prompt = True
        params.n_cache_reuse = self.cache_reuse
        params.cache_ram_mib = self.cache_ram_mib
        params.ctx_shift = False  # an over-long conversation is an error, not a silent cut
        params.embedding = False
        params.ui = False
        params.endpoint_metrics = True
        params.endpoint_slots = True
        params.verbosity = 3 if self.verbose else 0
        params.warmup = True
        return params

    def _choose_port(self) -> int:
        wanted = self._port if self._port is not None else self._requested_port
        if wanted is None or wanted == 0:
            return 0
        if port_is_free(wanted):
            return wanted
        log.info("port %d is taken; the local model server takes a free one", wanted)
        return 0

    def start(self) -> LocalServer:
        """Loads the model and serves it; returns once the server answers ``/health``.

        Loading holds the interpreter lock (a few seconds for the default model), so other
        Python threads and the event loop pause meanwhile: start the server before
        latency-sensitive work. Serving requests does not hold it.
        """
        with self._lock:
            if self._server is not None:
                return self
            check_gguf(self.model_path)
            xlc = _import_xllamacpp()
            port = self._choose_port()
            started = time.monotonic()
            try:
                server = xlc.Server(self._params(port))
            except RuntimeError as exc:
                if port == 0 or port_is_free(port):
                    raise self._start_error(str(exc)) from exc
                # lost a race for the port between the probe and the bind: take any free one
                try:
                    server = xlc.Server(self._params(0))
                except RuntimeError as again:
                    raise self._start_error(str(again)) from again
            self._server = server
            try:
                self._port = _port_of(server.listening_address)
                remaining = self.start_timeout - (time.monotonic() - started)
                self._wait_healthy(remaining)
            except BaseException:
                self._server = None
                self._port = None
                raise
            with _running_lock:
                _running.add(self)
            log.info(
                "local model server for %s on %s (%d slots x %d tokens, %d threads) in %.1fs",
                self.model_path.name,
                self.base_url,
                self.n_parallel,
                self.n_ctx,
                self.n_threads,
                time.monotonic() - started,
            )
            return self

    def _start_error(self, detail: str) -> LocalServerError:
        return LocalServerError(
            f"the local model server could not start with {self.model_path.name} ({detail})",
            hint="check the file is a complete GGUF model (`alma models install local` "
            "reinstalls the default one) and that there is enough memory; "
            "--debug shows llama.cpp's log",
        )

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + max(timeout, 1.0)
        last = "no answer"
        while True:
            status, body = self._get("/health", timeout=2.0)
            if status == 200:
                return
            last = f"HTTP {status}: {body[:100]}" if status else body[:100]
            if time.monotonic() >= deadline:
                raise LocalServerError(
                    f"the local model server did not become ready within "
                    f"{self.start_timeout:.0f}s ({last})",
                    hint="a slow disk or a large model needs a longer start timeout",
                )
            time.sleep(0.1)

    def _get(self, path: str, *, timeout: float) -> tuple[int, str]:
        """GET on the server: (HTTP status or 0 when unreachable, body or reason)."""
        if self._port is None:
            return 0, "not running"
        request = urllib.request.Request(
            self.root_url + path, headers={"Authorization": f"Bearer {self._api_key}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return int(answer.status), answer.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")
        except (OSError, ValueError) as exc:
            return 0, str(exc)

    def is_alive(self) -> bool:
        """Whether the server is running and answers ``/health``."""
        with self._lock:
            if self._server is None:
                return False
        status, _ = self._get("/health", timeout=5.0)
        return status == 200

    def stop(self) -> None:
        """Stops serving and frees the model; finished requests are complete, others fail."""
        with self._lock:
            server, self._server = self._server, None
            with _running_lock:
                _running.discard(self)
            if server is not None:
                del server  # the last reference: llama.cpp's server shuts down and frees
                log.info("local model server on port %s stopped", self._port)

    def restart(self) -> LocalServer:
        """Stops and starts again, on the same port when it is still free."""
        with self._lock:
            self.stop()
            return self.start()

    def metrics(self) -> dict[str, float]:
        """llama.cpp's counters (tokens processed, predicted, throughput...), by name."""
        status, body = self._get("/metrics", timeout=5.0)
        if status != 200:
            raise LocalServerError(f"the local model server gave no metrics (HTTP {status})")
        values: dict[str, float] = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.partition(" ")
                with contextlib.suppress(ValueError):
                    values[name.removeprefix("llamacpp:")] = float(value)
        return values

    def slots(self) -> list[dict[str, Any]]:
        """The state of each slot (for diagnostics)."""
        status, body = self._get("/slots", timeout=5.0)
        if status != 200:
            raise LocalServerError(f"the local model server gave no slot state (HTTP {status})")
        data = json.loads(body)
        return list(data) if isinstance(data, list) else []

    def describe(self) -> dict[str, Any]:
        """The settings, JSON-able."""
        return {
            "model": self.alias,
            "model_path": str(self.model_path),
            "base_url": self.base_url if self._port is not None else None,
            "n_ctx": self.n_ctx,
            "n_parallel": self.n_parallel,
            "n_threads": self.n_threads,
            "default_max_tokens": self.default_max_tokens,
            "cache_reuse": self.cache_reuse,
            "cache_ram_mib": self.cache_ram_mib,
        }

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self._server is not None else "stopped"
        return f"LocalServer({self.model_path.name!r}, {where})"


def _port_of(address: str) -> int:
    """The port of an address such as ``http://127.0.0.1:41899``."""
    try:
        return int(address.rstrip("/").rsplit(":", 1)[1])
    except (IndexError, ValueError) as exc:
        raise LocalServerError(f"the local model server gave an odd address: {address!r}") from exc
