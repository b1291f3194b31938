"""``openai:<model>``: OpenAI, or any OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp
server, a LiteLLM proxy), on the official SDK's ``AsyncOpenAI``.

The SDK's own retries are off; this provider retries 408, 409, 429, 5xx, timeouts and connection
failures itself (see ``alma.llm.retry``), logs each retry on the ``alma.llm`` logger and turns
every failure into one ``alma.errors`` error with a one-line message and a hint.

Structured output: with a ``schema``, the native ``json_schema`` response format is asked first.
An endpoint that rejects it (HTTP 400/422 naming ``response_format`` or ``json_schema``) gets
``json_object`` mode with the schema stated in the system message from then on (the fallback is
remembered per provider). An answer that does not validate gets exactly one repair round; the
usage of that round is added to the completion's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, NoReturn, cast

import httpx2
import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from pydantic import BaseModel, ValidationError

from alma.errors import ConfigError, EndpointUnreachableError, LLMError, MalformedOutputError
from alma.llm.retry import BackoffPolicy, is_retryable_status, parse_retry_after
from alma.types import Completion, Message, Usage

logger = logging.getLogger("alma.llm")

StructuredMode = Literal["auto", "json_schema", "json_object"]
OpenAIMessage = dict[str, str]

DEFAULT_ENDPOINT = "https://api.openai.com/v1"
ENDPOINT_HINT = "check --base-url / OPENAI_BASE_URL and that the server is running"
# o1, o3-mini, o4-mini, gpt-5-nano, ... (optionally behind a "provider/" prefix)
REASONING_MODEL = re.compile(r"^(?:.*/)?(?:o\d|gpt-5)", re.IGNORECASE)
FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)\n?\s*```", re.DOTALL)
MESSAGE_CHARS = 300  # server messages and validation errors are cut to this in error messages

SCHEMA_INSTRUCTION = (
    "Answer with one JSON object only, no prose and no code fences, "
    "that validates against this JSON schema:\n{schema}"
)
REPAIR_INSTRUCTION = (
    "Your previous answer is not valid: {error}\n"
    "Reply with the corrected JSON object only, matching the requested schema."
)


class _RequestRejected(LLMError):
    """A non-retryable HTTP status; ``status`` and the server's message are kept for fallbacks."""

    def __init__(self, message: str, *, status: int, server_message: str, hint: str) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.server_message = server_message


@dataclass(frozen=True)
class _Failure:
    """One failed attempt worth retrying."""

    what: str  # "HTTP 429: slow down", "timed out after 60s", "connection failed: ..."
    status: int | None = None
    retry_after_s: float | None = None
    unreachable: bool = False


@dataclass(frozen=True)
class _Answer:
    text: str
    usage: Usage
    model: str


class OpenAIProvider:
    """An ``LLM`` on an OpenAI-compatible ``/chat/completions`` endpoint."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None,
        api_key: str | None,
        reasoning_effort: str | None = None,
        timeout_s: float = 60,
        max_retries: int = 5,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 30.0,
        semaphore: asyncio.Semaphore | None = None,
        structured: StructuredMode = "auto",
        extra_body: dict[str, Any] | None = None,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, not {max_retries}")
        self.model = model
        self.base_url = base_url
        self.reasoning_effort = reasoning_effort
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff = BackoffPolicy(base_s=backoff_base_s, max_s=backoff_max_s)
        self.semaphore = semaphore
        self.structured: StructuredMode = structured
        self.extra_body = dict(extra_body) if extra_body else None
        self._json_schema_rejected = structured == "json_object"
        self._reasoning = reasoning_effort is not None or bool(REASONING_MODEL.match(model))
        self._client = AsyncOpenAI(
            api_key=_resolve_api_key(api_key, base_url),
            base_url=base_url,
            timeout=timeout_s,
            max_retries=0,
            http_client=http_client,
        )

    @property
    def endpoint(self) -> str:
        return self.base_url or DEFAULT_ENDPOINT

    @property
    def uses_json_object(self) -> bool:
        """True once structured output goes through ``json_object`` mode (asked, or fallen back)."""
        return self._json_schema_rejected

    async def close(self) -> None:
        """Close the HTTP client (also one passed in as ``http_client``)."""
        await self._client.close()

    # ------------------------------------------------------------------ the LLM contract
    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: type[BaseModel] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
    ) -> Completion:
        started = time.perf_counter()
        conversation = [message.as_openai() for message in messages]
        options = self._options(temperature, max_tokens, seed)
        if schema is None:
            answer = _read_answer(await self._request(conversation, options), self.model)
            parsed = None
        else:
            answer, parsed = await self._structured(conversation, schema, options)
        return Completion(
            text=answer.text,
            usage=answer.usage,
            parsed=parsed,
            latency_s=time.perf_counter() - started,
            model=answer.model,
        )

    # ------------------------------------------------------------------ request options
    def _options(
        self, temperature: float | None, max_tokens: int | None, seed: int | None
    ) -> dict[str, Any]:
        options: dict[str, Any] = {}
        # reasoning models accept only their fixed sampling temperature: never send one
        if temperature is not None and not self._reasoning:
            options["temperature"] = temperature
        if max_tokens is not None:
            options["max_completion_tokens" if self._reasoning else "max_tokens"] = max_tokens
        if seed is not None:
            options["seed"] = seed
        if self.reasoning_effort is not None:
            options["reasoning_effort"] = self.reasoning_effort
        if self.extra_body:
            options["extra_body"] = self.extra_body
        return options

    # ------------------------------------------------------------------ structured output
    async def _structured(
        self, conversation: list[OpenAIMessage], schema: type[BaseModel], options: dict[str, Any]
    ) -> tuple[_Answer, BaseModel]:
        first = await self._structured_answer(conversation, schema, options)
        try:
            return first, parse_answer(first.text, schema)
        except ValidationError as error:
            problem = describe_validation_error(error)
        logger.info(
            "model %s: invalid %s answer, one repair round: %s",
            self.model,
            schema.__name__,
            _truncate(problem),
        )
        repair = [
            *conversation,
            {"role": "assistant", "content": first.text},
            {"role": "user", "content": REPAIR_INSTRUCTION.format(error=problem)},
        ]
        second = await self._structured_answer(repair, schema, options)
        total = _Answer(second.text, first.usage + second.usage, second.model)
        try:
            return total, parse_answer(second.text, schema)
        except ValidationError as error:
            logger.debug("model %s: unrepairable answer: %r", self.model, second.text)
            raise MalformedOutputError(
                f"model {self.model!r} gave no valid {schema.__name__} after one repair round: "
                f"{_truncate(describe_validation_error(error))}",
                hint="try a stronger model, or an endpoint with native json_schema output; "
                "the raw answer is logged at DEBUG on the 'alma.llm' logger",
            ) from None

    async def _structured_answer(
        self, conversation: list[OpenAIMessage], schema: type[BaseModel], options: dict[str, Any]
    ) -> _Answer:
        if not self._json_schema_rejected:
            try:
                response = await self._request(
                    conversation, {**options, "response_format": json_schema_format(schema)}
                )
                return _read_answer(response, self.model)
            except _RequestRejected as error:
                if self.structured == "json_schema" or not _rejects_json_schema(error):
                    raise
                logger.info(
                    "model %s: endpoint rejects json_schema output (%s); "
                    "using json_object from now on",
                    self.model,
                    error.server_message,
                )
                self._json_schema_rejected = True
        response = await self._request(
            with_schema_instruction(conversation, schema),
            {**options, "response_format": {"type": "json_object"}},
        )
        return _read_answer(response, self.model)

    # ------------------------------------------------------------------ retries
    async def _request(
        self, conversation: list[OpenAIMessage], options: dict[str, Any]
    ) -> ChatCompletion:
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            failure = await self._attempt(conversation, options)
            if isinstance(failure, ChatCompletion):
                return failure
            if attempt + 1 == attempts:
                self._raise_exhausted(failure, attempts)
            delay = self.backoff.delay(attempt, failure.retry_after_s)
            logger.warning(
                "model %s: %s; retry %d/%d in %.2fs",
                self.model,
                failure.what,
                attempt + 1,
                self.max_retries,
                delay,
            )
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self, conversation: list[OpenAIMessage], options: dict[str, Any]
    ) -> ChatCompletion | _Failure:
        """One HTTP request: the response, a retryable failure, or a raised final error."""
        try:
            if self.semaphore is None:
                return await self._send(conversation, options)
            async with self.semaphore:
                return await self._send(conversation, options)
        except openai.APITimeoutError:
            return _Failure(f"timed out after {self.timeout_s:g}s")
        except openai.APIConnectionError as error:
            return _Failure(f"connection failed: {_cause(error)}", unreachable=True)
        except openai.APIStatusError as error:
            return self._status_failure(error)

    async def _send(
        self, conversation: list[OpenAIMessage], options: dict[str, Any]
    ) -> ChatCompletion:
        response: ChatCompletion = await self._client.chat.completions.create(
            model=self.model,
            messages=cast("list[ChatCompletionMessageParam]", conversation),
            **options,
        )
        return response

    def _status_failure(self, error: openai.APIStatusError) -> _Failure:
        status = error.status_code
        message = _server_message(error)
        if status == 401:
            raise ConfigError(
                f"{self.endpoint} refused the API key (HTTP 401): {_truncate(message)}",
                hint="set OPENAI_API_KEY to a valid key for this endpoint",
            ) from None
        if not is_retryable_status(status):
            raise _RequestRejected(
                f"model {self.model!r} request rejected by {self.endpoint} "
                f"(HTTP {status}): {_truncate(message)}",
                status=status,
                server_message=message,
                hint=_rejection_hint(status),
            ) from None
        retry_after = parse_retry_after(error.response.headers)
        return _Failure(f"HTTP {status}: {_truncate(message, 120)}", status, retry_after)

    def _raise_exhausted(self, failure: _Failure, attempts: int) -> NoReturn:
        if failure.unreachable:
            raise EndpointUnreachableError(
                f"cannot reach the model endpoint {self.endpoint} after {attempts} attempts: "
                f"{failure.what}",
                hint=ENDPOINT_HINT,
            )
        status = f"HTTP {failure.status}" if failure.status is not None else "no HTTP status"
        raise LLMError(
            f"model {self.model!r} at {self.endpoint} failed after {attempts} attempts "
            f"(last: {status}; {failure.what})",
            hint=_exhausted_hint(failure),
        )


# ---------------------------------------------------------------------- pure helpers


def parse_answer(text: str, schema: type[BaseModel]) -> BaseModel:
    """The validated object in ``text``; tolerates code fences and prose around one JSON object.

    Raises ``pydantic.ValidationError`` (also for text that is not JSON at all).
    """
    return schema.model_validate_json(extract_json(text))


def extract_json(text: str) -> str:
    """The JSON part of a model answer: inside a ```json fence, or the outermost ``{...}``."""
    stripped = text.strip()
    fenced = FENCE.search(stripped)
    if fenced:
        return fenced.group(1).strip()
    if stripped.startswith(("{", "[")):
        return stripped
    start, end = stripped.find("{"), stripped.rfind("}")
    return stripped[start : end + 1] if 0 <= start < end else stripped


def describe_validation_error(error: ValidationError) -> str:
    """One line: ``field.path: message; ...`` for each problem."""
    problems = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "answer"
        problems.append(f"{where}: {item['msg']}")
    return "; ".join(problems)


@lru_cache(maxsize=256)
def schema_json(schema: type[BaseModel]) -> str:
    return json.dumps(schema.model_json_schema(), separators=(",", ":"))


def json_schema_format(schema: type[BaseModel]) -> dict[str, Any]:
    """The native ``response_format`` for ``schema`` (non-strict: any pydantic schema works)."""
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", schema.__name__)[:64] or "answer"
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": json.loads(schema_json(schema)), "strict": False},
    }


def with_schema_instruction(
    conversation: list[OpenAIMessage], schema: type[BaseModel]
) -> list[OpenAIMessage]:
    """The conversation with the schema stated in its system message.

    Appended to a leading system message if there is one (many chat templates accept only one
    system message, and only first), else added as a new first message.
    """
    instruction = SCHEMA_INSTRUCTION.format(schema=schema_json(schema))
    if conversation and conversation[0]["role"] == "system":
        head = {"role": "system", "content": f"{conversation[0]['content']}\n\n{instruction}"}
        return [head, *conversation[1:]]
    return [{"role": "system", "content": instruction}, *conversation]


def _read_answer(response: ChatCompletion, model: str) -> _Answer:
    if not response.choices:
        raise LLMError(f"model {model!r} returned no choices", hint="check the endpoint's logs")
    text = response.choices[0].message.content or ""
    return _Answer(text, _usage(response), response.model or model)


def _usage(response: ChatCompletion) -> Usage:
    usage = response.usage
    if usage is None:
        return Usage()
    details = usage.prompt_tokens_details
    cached = details.cached_tokens if details is not None else None
    return Usage(usage.prompt_tokens or 0, usage.completion_tokens or 0, cached or 0)


def _resolve_api_key(api_key: str | None, base_url: str | None) -> str:
    key = api_key or os.environ.get("OPENAI_API_KEY")
    if key:
        return key
    if base_url is not None:
        return "not-needed"  # local OpenAI-compatible servers usually ignore the key
    raise ConfigError(
        "OPENAI_API_KEY is not set",
        hint="export OPENAI_API_KEY=..., or point --base-url / OPENAI_BASE_URL at an "
        "OpenAI-compatible server",
    )


def _server_message(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail") or body.get("error")
        if message:
            return str(message)
    if isinstance(body, str) and body:
        return body
    return error.message


def _rejects_json_schema(error: _RequestRejected) -> bool:
    text = error.server_message.lower()
    return error.status in (400, 422) and ("response_format" in text or "json_schema" in text)


def _rejection_hint(status: int) -> str:
    if status == 404:
        return "check the model name and --base-url / OPENAI_BASE_URL"
    if status == 403:
        return "the API key may lack access to this model"
    return "the server's message above says what it did not accept"


def _exhausted_hint(failure: _Failure) -> str:
    if failure.status == 429:
        return "the endpoint is rate-limiting; lower llm.concurrency or raise llm.max_retries"
    if failure.status is None:
        return "raise llm.timeout_s, or check that the server is not overloaded"
    return "the server keeps failing; check its status or logs and try again later"


def _cause(error: openai.APIConnectionError) -> str:
    cause = error.__cause__
    text = str(cause) if cause is not None and str(cause) else error.message
    return _truncate(text, 160)


def _truncate(text: str, limit: int = MESSAGE_CHARS) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
