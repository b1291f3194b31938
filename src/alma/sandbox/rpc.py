"""The JSON-lines protocol between the harness (parent) and a design worker.

One JSON object per line, both ways, over the worker's stdin (parent → worker) and a private
copy of its stdout (worker → parent; the worker points its own fd 1 at stderr, so a design that
prints cannot break the protocol).

Parent → worker requests: ``{"id": n, "op": op, ...}`` with op in ``init`` (source, name,
seed), ``retrieve`` (start), ``update`` (episode), ``snapshot``, ``restore`` (state),
``close``. The worker answers each with ``{"id": n, "ok": true, "value": ...}`` or
``{"id": n, "ok": false, "error": {"kind": ..., "message": ..., "traceback": ...}}``.

Worker → parent calls (the toolkit's model and embedding calls): ``{"call": m, "op": "llm" |
"embed", ...}``; the parent answers ``{"call": m, "ok": true, "value": ...}`` or an error.

Vectors travel as base64 float32 with their shape, not as JSON number lists.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Literal

import numpy as np

MAX_LINE = 64 * 1024 * 1024  # a line longer than this is a protocol violation

FailureKind = Literal[
    "crash", "timeout", "memory", "protocol", "forbidden", "budget", "model", "load"
]


class ProtocolError(Exception):
    """The other side broke the protocol (garbage, a wrong id, a line too long)."""


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        snippet = line[:80].decode(errors="replace")
        raise ProtocolError(f"not a JSON line: {snippet!r} ({error})") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"not a JSON object: {type(message).__name__}")
    return message


def pack_array(array: np.ndarray) -> dict[str, Any]:
    data = np.ascontiguousarray(array, dtype=np.float32)
    return {"shape": list(data.shape), "b64": base64.b64encode(data.tobytes()).decode()}


def unpack_array(packed: dict[str, Any]) -> np.ndarray:
    raw = base64.b64decode(packed["b64"])
    return np.frombuffer(raw, dtype=np.float32).reshape(packed["shape"]).copy()
