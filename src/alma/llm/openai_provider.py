"""``openai:<model>``: OpenAI, or any OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp
server, a LiteLLM proxy), on the official SDK's ``AsyncOpenAI``.

The SDK's own retries, request transformation and parsing are off: the request body is written
once per call (:mod:`alma.llm.chat_body`) and posted as bytes through the SDK's transport (its
auth headers, timeouts and error types) on a request the SDK prepared once per provider
(:class:`alma.llm.endpoint.PreparedPost`), so the cost of a call stays small and flat in the
length of the conversation. Each request goes through
:class:`alma.llm.endpoint.RetryingEndpoint`, which retries 408, 409, 429, 5xx, timeouts, dropped
connections and malformed 200 bodies, and the raw answer is read leniently (a body without
usable ``choices`` is a retryable failure, never an exception of the SDK's). Nothing but
``alma.errors`` errors leaves :meth:`OpenAIProvider.complete` (and ``CancelledError``).

Structured output: with a ``schema``, the native ``json_schema`` response format is asked first.
An endpoint that rejects it (HTTP 400/422 naming ``response_format`` or ``json_schema``) gets
``json_object`` mode with the schema stated in the system message from then on (the fallback is
remembered per provider). An answer that does not validate gets exactly one repair round; the
usage of that round is added to the completion's. If the repair fails too, the
``MalformedOutputError`` carries the usage of both answers and the last raw text.

Token usage: the endpoint's ``usage`` block when it has integer ``prompt_tokens`` and
``completion_tokens``; otherwise an estimate from the text (``alma.llm.tokens``: about four
characters a token plus five a message, over every message sent, the schema instruction and the
``json_schema`` response format included; the answer's text for the completion), flagged
``usage_estimated``, with one warning per provider.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import httpx2
from openai import AsyncOpenAI
from pydantic import BaseModel, ValidationError

from alma.errors import AlmaError, ConfigError, LLMError, MalformedOutputError
from alma.llm.chat_body import (
    OpenAIMessage,
    estimate_usage,
    read_chat_body,
    request_body,
)
from alma.llm.endpoint import (
    Failure,
    PreparedPost,
    RequestRejected,
    RetryingEndpoint,
    truncate,
)
from alma.llm.retry import BackoffPolicy
from alma.types import Completion, Message, Usage

logger = logging.getLogger("alma.llm")

StructuredMode = Literal["auto", "json_schema", "json_object"]

DEFAULT_ENDPOINT = "https://api.openai.com/v1"
# o1, o3-mini, o4-mini, gpt-5-nano, ... (optionally behind a "provider/" prefix)
REASONING_MODEL = re.compile(r"^(?:.*/)?(?:o\d|gpt-5)", re.IGNORECASE)
FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)\n?\s*```", re.DOTALL)
CHAT_PATH = "/chat/completions"

SCHEMA_INSTRUCTION = (
    "Answer with one JSON object only, no prose and no code fences, "
    "that validates against this JSON schema:\n{schema}"
)
REPAIR_INSTRUCTION = (
    "Your previous answer is not valid: {error}\n"
    "Reply with the corrected JSON object only, matching the requested schema."
)


@dataclass(frozen=True)
class _Answer:
    text: str
    usage: Usage
    model: str
    estimated: bool = False


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
        self._warned_no_usage = False
        self._client = AsyncOpenAI(
            api_key=_resolve_api_key(api_key, base_url),
            base_url=base_url,
            timeout=timeout_s,
            max_retries=0,
            http_client=http_client,
        )
        self._post = PreparedPost(self._client, CHAT_PATH)
        self._requests = RetryingEndpoint(
            f"model {model!r}", self.endpoint, timeout_s, max_retries, self.backoff, semaphore
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
        try:
            if schema is None:
                answer, parsed = await self._chat(conversation, options), None
            else:
                answer, parsed = await self._structured(conversation, schema, options)
        except AlmaError:
            raise
        except Exception as error:  # a bug or an SDK surprise: still one alma error
            raise LLMError(
                f"model {self.model!r} at {self.endpoint}: unexpected "
                f"{type(error).__name__}: {truncate(str(error), 200)}",
                hint="run with --debug for the traceback",
            ) from error
        return Completion(
            text=answer.text,
            usage=answer.usage,
            parsed=parsed,
            latency_s=time.perf_counter() - started,
            model=answer.model,
            usage_estimated=answer.estimated,
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
        return options

    # ------------------------------------------------------------------ structured output
    async def _structured(
        self, conversation: list[OpenAIMessage], schema: type[BaseModel], options: dict[str, Any]
    ) -> tuple[_Answer, BaseModel]:
        first = await self._structured_answer(conversation, schema, options, gated=True)
        try:
            return first, parse_answer(first.text, schema)
        except ValidationError as error:
            problem = describe_validation_error(error)
        logger.info(
            "model %s: invalid %s answer, one repair round: %s",
            self.model,
            schema.__name__,
            truncate(problem),
        )
        repair = [
            *conversation,
            {"role": "assistant", "content": first.text},
            {"role": "user", "content": REPAIR_INSTRUCTION.format(error=problem)},
        ]
        try:  # the call is under way (its first answer is in): the budget may not stop it now
            second = await self._structured_answer(repair, schema, options, gated=False)
        except LLMError as error:
            error.usage = first.usage + error.usage  # the first answer was served all the same
            error.usage_estimated = error.usage_estimated or first.estimated
            raise
        estimated = first.estimated or second.estimated
        total = _Answer(second.text, first.usage + second.usage, second.model, estimated)
        try:
            return total, parse_answer(second.text, schema)
        except ValidationError as error:
            logger.debug("model %s: unrepairable answer: %r", self.model, second.text)
            raise MalformedOutputError(
                f"model {self.model!r} gave no valid {schema.__name__} after one repair round: "
                f"{truncate(describe_validation_error(error))}",
                hint="try a stronger model, or an endpoint with native json_schema output; "
                "the raw answer is logged at DEBUG on the 'alma.llm' logger",
                usage=total.usage,
                usage_estimated=total.estimated,
                text=second.text,
            ) from None

    async def _structured_answer(
        self,
        conversation: list[OpenAIMessage],
        schema: type[BaseModel],
        options: dict[str, Any],
        *,
        gated: bool,
    ) -> _Answer:
        if not self._json_schema_rejected:
            try:
                return await self._chat(
                    conversation,
                    {**options, "response_format": json_schema_format(schema)},
                    gated=gated,
                )
            except RequestRejected as error:
                if self.structured == "json_schema" or not _rejects_json_schema(error):
                    raise
                logger.info(
                    "model %s: endpoint rejects json_schema output (%s); "
                    "using json_object from now on",
                    self.model,
                    error.server_message,
                )
                self._json_schema_rejected = True
        return await self._chat(
            with_schema_instruction(conversation, schema),
            {**options, "response_format": {"type": "json_object"}},
            gated=gated,
        )

    # ------------------------------------------------------------------ one chat request
    async def _chat(
        self, conversation: list[OpenAIMessage], options: dict[str, Any], *, gated: bool = True
    ) -> _Answer:
        """One answer to ``conversation``, retried as ``RetryingEndpoint`` does.

        The body is written once; every attempt posts the same bytes."""
        body = request_body(self.model, conversation, options, self.extra_body)

        return await self._requests.request(
            functools.partial(self._post, body),
            functools.partial(self._read, conversation, options),
            gated=gated,
        )

    def _read(
        self, conversation: list[OpenAIMessage], options: dict[str, Any], raw: bytes
    ) -> _Answer | Failure:
        """The answer in the raw body of a 200, or why it is unusable (retried)."""
        answer = read_chat_body(raw)
        if isinstance(answer, Failure):
            return answer
        model = answer.model or self.model
        if answer.usage is not None:
            return _Answer(answer.text, answer.usage, model)
        self._warn_no_usage()
        usage = estimate_usage(conversation, options, answer.text)
        return _Answer(answer.text, usage, model, estimated=True)

    def _warn_no_usage(self) -> None:
        if not self._warned_no_usage:
            self._warned_no_usage = True
            logger.warning(
                "endpoint %s sends no token usage; counting estimated tokens "
                "(about 4 characters a token)",
                self.endpoint,
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


def _rejects_json_schema(error: RequestRejected) -> bool:
    text = error.server_message.lower()
    return error.status in (400, 422) and ("response_format" in text or "json_schema" in text)
