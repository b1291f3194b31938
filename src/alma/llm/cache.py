"""Content-addressed response cache.

A call is cached when it is deterministic: temperature 0 or an explicit seed. The key is the
sha256 of the model, the messages, the schema and the sampling parameters, so any change to any
of them is a miss. A hit costs nothing and uses no tokens; the ledger marks it as a hit.

The key is hashed from the texts as they are, each message as its role, its length and its
content (a framing that no two different conversations share), not from a JSON rendering of the
call: JSON escaping cost three times as much as the hashing, on every call, hit or miss.

Each answer is committed when it is written (SQLite in WAL mode, ``synchronous=NORMAL``): once a
call has returned, its answer survives the process being killed; a power cut may lose the last
answers, which only costs calls made again.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ValidationError

from alma import paths
from alma.llm.base import LLM
from alma.types import Completion, Message, Usage


def default_cache_path() -> Path:
    return paths.cache_root() / "llm-cache.sqlite"


KEY_FORMAT = "alma-response-key/2"  # changes whenever the key's framing does


@lru_cache(maxsize=1024)
def _schema_text(schema: type[BaseModel]) -> str:
    """A schema's JSON schema as canonical text, made once per class (making it costs more
    than the rest of a key)."""
    return json.dumps(schema.model_json_schema(), sort_keys=True, separators=(",", ":"))


def cache_key(
    model: str,
    messages: Sequence[Message],
    schema: type[BaseModel] | None,
    temperature: float | None,
    max_tokens: int | None,
    seed: int | None,
) -> str:
    schema_text = _schema_text(schema) if schema is not None else ""
    head = (
        f"{KEY_FORMAT}\0{len(model)}\0{model}\0{len(schema_text)}\0{schema_text}\0"
        f"{temperature!r}\0{max_tokens!r}\0{seed!r}\0{len(messages)}\0"
    )
    parts = [head]
    for message in messages:
        parts.append(f"{message.role}\0{len(message.content)}\0")
        parts.append(message.content)
    text = "".join(parts)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class ResponseCache:
    """A SQLite table of answers by key; safe to share between threads and runs."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT, "
            "text TEXT NOT NULL, ts REAL NOT NULL)"
        )

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT text FROM responses WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, model: str, text: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses(key, model, text, ts) VALUES (?, ?, ?, ?)",
                (key, model, text, time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class CachedLLM:
    """Applies the default temperature, and serves deterministic calls from the cache.

    With ``cache=None`` it only applies the default temperature.
    """

    key = staticmethod(cache_key)  # how a call's key is made

    def __init__(
        self, inner: LLM, cache: ResponseCache | None, *, default_temperature: float = 0.0
    ) -> None:
        self.inner = inner
        self.cache = cache
        self.default_temperature = default_temperature
        self.model = inner.model

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: type[BaseModel] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
    ) -> Completion:
        if temperature is None:
            temperature = self.default_temperature
        deterministic = temperature == 0 or seed is not None
        key = None
        if self.cache is not None and deterministic:
            key = self.key(self.model, messages, schema, temperature, max_tokens, seed)
            hit = self._hit(key, schema)
            if hit is not None:
                return hit
        completion = await self.inner.complete(
            messages, schema=schema, temperature=temperature, max_tokens=max_tokens, seed=seed
        )
        if key is not None and self.cache is not None:
            text = completion.parsed.model_dump_json() if completion.parsed else completion.text
            self.cache.put(key, self.model, text)
        return completion

    def _hit(self, key: str, schema: type[BaseModel] | None) -> Completion | None:
        assert self.cache is not None
        text = self.cache.get(key)
        if text is None:
            return None
        parsed = None
        if schema is not None:
            try:
                parsed = schema.model_validate_json(text)
            except ValidationError:
                return None  # a stale entry for a changed schema: treat as a miss
        return Completion(
            text=text, usage=Usage(), parsed=parsed, model=self.model, from_cache=True
        )
