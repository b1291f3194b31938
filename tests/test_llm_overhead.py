"""The lean call path: the request body, the cache key, the prepared SDK request, and that a
call is on disk, with its exact usage, the moment it returns."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from pydantic import BaseModel

from alma.llm.cache import CachedLLM, ResponseCache, cache_key
from alma.llm.chat_body import request_body
from alma.llm.endpoint import REQUEST_OPTIONS, PreparedPost
from alma.store import RunStore
from alma.types import Completion, Message, Usage
from fake_openai import FakeOpenAI, answer, hang, rate_limited


class Move(BaseModel):
    action: str


class CountingLLM:
    """Answers every call with one move, and counts the calls."""

    def __init__(self, model: str = "m") -> None:
        self.model = model
        self.calls = 0

    async def complete(self, messages: Any, **options: Any) -> Completion:
        self.calls += 1
        return Completion(
            text='{"action": "wait"}',
            usage=Usage(7, 3),
            parsed=Move(action="wait"),
            model=self.model,
        )


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


# --------------------------------------------------------------------------- the request body

AWKWARD = [
    "plain",
    "",
    'quotes " and \\ backslashes / slashes',
    "controls \n \t \r \x00 \x1f \x7f",
    "Tu joues à un jeu. 日本語も。 emoji 😀, line sep \u2028 para sep \u2029",
    "</script> & <b>",
]


def dumped(model: str, conversation: Any, options: Any, extra: Any = None) -> bytes:
    body = {"model": model, "messages": conversation, **options, **(extra or {})}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


@pytest.mark.parametrize("text", AWKWARD)
def test_the_body_is_byte_for_byte_json_dumps(text: str) -> None:
    conversation = [
        {"role": "system", "content": text},
        {"role": "user", "content": text + text},
        {"role": "assistant", "content": "ok"},
    ]
    options = {"temperature": 0.25, "seed": 3, "response_format": {"type": "json_object"}}
    extra = {"top_k": 5, "temperature": 0.0}
    assert request_body(f"m-{text}", conversation, options, extra) == dumped(
        f"m-{text}", conversation, options, extra
    )
    assert request_body("m", conversation, {}) == dumped("m", conversation, {})
    assert request_body("m", [], {}) == dumped("m", [], {})


@pytest.mark.parametrize(
    ("conversation", "extra"),
    [
        ([{"role": "user", "content": "hi", "name": "bob"}], None),  # a third key
        ([{"role": "user", "content": None}], None),  # content that is not text
        ([{"role": "user", "text": "hi"}], None),  # two keys, not role and content
        ([{"role": "user", "content": "hi"}], {"messages": []}),  # extra_body replaces them
        ([{"role": "user", "content": "hi"}], {"model": "other"}),
    ],
)
def test_unusual_messages_and_overrides_are_written_as_json_dumps_would(
    conversation: Any, extra: Any
) -> None:
    raw = request_body("m", conversation, {"temperature": 0.5}, extra)
    assert raw == dumped("m", conversation, {"temperature": 0.5}, extra)
    assert json.loads(raw)["messages"] == (extra or {}).get("messages", conversation)


def test_a_value_json_cannot_carry_is_refused() -> None:
    with pytest.raises(ValueError):
        request_body("m", [{"role": "user", "content": "x"}], {"temperature": float("nan")})


# --------------------------------------------------------------------------- the cache key


def key(
    *contents: str,
    roles: tuple[str, ...] = (),
    model: str = "m",
    schema: type[BaseModel] | None = None,
    temperature: float | None = 0.0,
    max_tokens: int | None = None,
    seed: int | None = None,
) -> str:
    """The key of a call of ``contents`` (as users, unless ``roles`` says otherwise)."""
    messages = [
        Message(roles[i] if i < len(roles) else "user", text)  # type: ignore[arg-type]
        for i, text in enumerate(contents)
    ]
    return cache_key(model, messages, schema, temperature, max_tokens, seed)


def test_the_key_is_the_same_for_the_same_call() -> None:
    assert key("a", "b") == key("a", "b")
    assert key("a", "b", schema=Move) == key("a", "b", schema=Move)
    assert len(key("a")) == 64


def test_the_key_changes_with_any_part_of_the_call() -> None:
    base = key("ab", "c")
    others = [
        key("a", "bc"),  # the same characters, split elsewhere
        key("abc"),
        key("ab", "c", ""),
        key("ab", "c", roles=("system", "user")),
        key("ab", "c", model="m2"),
        key("ab", "c", schema=Move),
        key("ab", "c", temperature=0.5),
        key("ab", "c", temperature=0),  # 0 and 0.0 are told apart, as before
        key("ab", "c", max_tokens=5),
        key("ab", "c", seed=1),
        key("ab", "c\0"),
        key("ab\01\0c"),
    ]
    assert len({base, *others}) == len(others) + 1


def test_a_text_with_lone_surrogates_still_has_a_key() -> None:
    assert key("\ud800") != key("\udc00")


async def test_a_cached_call_hits_after_reopening(tmp_path: Path) -> None:
    inner = CountingLLM()
    cache = ResponseCache(tmp_path / "c.sqlite")
    messages = [Message("system", "rules"), Message("user", "look")]
    first = await CachedLLM(inner, cache).complete(messages, schema=Move, seed=4)
    cache.close()
    again = ResponseCache(tmp_path / "c.sqlite")
    second = await CachedLLM(inner, again).complete(messages, schema=Move, seed=4)
    again.close()
    assert inner.calls == 1
    assert second.from_cache and second.parsed == first.parsed


# --------------------------------------------------------------------------- the prepared request


def received_headers(fake: FakeOpenAI, index: int) -> dict[str, str]:
    return {name.lower(): value for name, value in fake.chat_requests[index].headers.items()}


async def test_the_prepared_request_is_the_one_post_sends(fake: FakeOpenAI) -> None:
    fake.script(answer("a"), answer("b"), answer("c"))
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    post = PreparedPost(client, "/chat/completions")
    assert post.reuses
    short, long = (
        json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]}).encode()
        for text in ("hi", "a much longer message, " * 40)
    )
    try:
        await client.post(
            "/chat/completions", cast_to=httpx2.Response, content=short, options=REQUEST_OPTIONS
        )
        await post(long)
        await post(short)  # the same prepared request, a shorter body: its own length
    finally:
        await client.close()
    sdk, ours_long, ours_short = (received_headers(fake, i) for i in range(3))
    assert ours_short == sdk
    assert ours_long["content-length"] == str(len(long))
    assert fake.chat_requests[1].body == json.loads(long)
    assert fake.chat_requests[2].body == json.loads(short)


async def test_a_client_with_a_key_callable_goes_through_post_each_time(fake: FakeOpenAI) -> None:
    fake.script(answer("a"), answer("b"))
    keys = iter(["sk-first", "sk-second"])

    async def api_key() -> str:
        return next(keys)

    client = openai.AsyncOpenAI(api_key=api_key, base_url=fake.base_url, max_retries=0)
    post = PreparedPost(client, "/chat/completions")
    body = b'{"model":"m","messages":[]}'
    try:
        assert not post.reuses
        await post(body)
        await post(body)
    finally:
        await client.close()
    assert [received_headers(fake, i)["authorization"] for i in range(2)] == [
        "Bearer sk-first",
        "Bearer sk-second",
    ]


async def test_failures_come_back_as_the_sdks_errors(fake: FakeOpenAI) -> None:
    fake.script(rate_limited(retry_after="1"), hang(2.0))
    client = openai.AsyncOpenAI(
        api_key="sk-test", base_url=fake.base_url, max_retries=0, timeout=0.3
    )
    post = PreparedPost(client, "/chat/completions")
    body = b'{"model":"m","messages":[]}'
    try:
        with pytest.raises(openai.RateLimitError) as limited:
            await post(body)
        assert limited.value.response.headers["retry-after"] == "1"
        with pytest.raises(openai.APITimeoutError):
            await post(body)
    finally:
        await client.close()
    refused = openai.AsyncOpenAI(api_key="k", base_url="http://127.0.0.1:9/v1", max_retries=0)
    try:
        with pytest.raises(openai.APIConnectionError) as error:
            await PreparedPost(refused, "/chat/completions")(body)
        assert isinstance(error.value.__cause__, httpx2.ConnectError)
    finally:
        await refused.close()


# --------------------------------------------------------------------------- durability

CALL_THEN_DIE = """
import asyncio, os, signal, sys
from pathlib import Path
from pydantic import BaseModel
from alma.llm.cache import CachedLLM, ResponseCache
from alma.llm.ledger import Ledger, Metered
from alma.llm.openai_provider import OpenAIProvider
from alma.store import RunStore
from alma.types import Message

class Move(BaseModel):
    action: str

async def main() -> None:
    folder, base_url = Path(sys.argv[1]), sys.argv[2]
    provider = OpenAIProvider("gpt-5-nano", base_url=base_url, api_key="k", max_retries=0)
    ledger = Ledger(store=RunStore(folder / "run"))
    llm = Metered(CachedLLM(provider, ResponseCache(folder / "cache.sqlite")), ledger, "agent")
    messages = [Message("system", "rules"), Message("user", "where now?")]
    completion = await llm.complete(messages, schema=Move, seed=11)
    print(completion.parsed.action, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # nothing closed, nothing flushed

asyncio.run(main())
"""


def test_a_returned_call_survives_the_process_being_killed(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    fake.script(
        answer('{"action": "go"}', prompt_tokens=1234, completion_tokens=56, cached_tokens=789)
    )
    process = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CALL_THEN_DIE), str(tmp_path), fake.base_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr
    assert process.stdout.strip() == "go"
    with RunStore(tmp_path / "run") as store:
        rows = store.query(
            "SELECT purpose, model, kind, prompt_tokens, completion_tokens, cached_tokens, "
            "from_cache, error, estimated, cost_usd FROM llm_calls"
        )
    assert [tuple(row)[:9] for row in rows] == [
        ("agent", "gpt-5-nano", "chat", 1234, 56, 789, 0, None, 0)
    ]
    assert rows[0]["cost_usd"] > 0
    cache = ResponseCache(tmp_path / "cache.sqlite")
    try:
        assert len(cache) == 1
        messages = [Message("system", "rules"), Message("user", "where now?")]
        hit = asyncio.run(_replay(cache, messages))
    finally:
        cache.close()
    assert hit.from_cache and hit.parsed == Move(action="go")
    assert len(fake.chat_requests) == 1  # the replay asked nobody


async def _replay(cache: ResponseCache, messages: list[Message]) -> Any:
    return await CachedLLM(CountingLLM(model="gpt-5-nano"), cache).complete(
        messages, schema=Move, seed=11
    )
