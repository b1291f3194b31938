"""Requests to an OpenAI-compatible endpoint, retried until one gives a usable body.

Shared by the chat provider and the OpenAI embedder. Each attempt ends in one of three ways:

- a usable body (what the caller's ``read`` makes of the raw bytes of a 200);
- a retryable :class:`Failure`: 408, 409, 429, 5xx, a timeout, a refused or dropped connection,
  a body cut off mid-way, or a 200 whose body is no usable answer (not JSON, odd fields, no
  choices): retried with backoff (``alma.llm.retry``), each retry logged on ``alma.llm`` and told
  to the call hooks, and after the last attempt one ``LLMError`` naming the last cause;
- a final error: 401 (``ConfigError``) or another 4xx (:class:`RequestRejected`).

The SDK is asked for the raw response only, so no SDK parsing error can escape: the caller's
``read`` judges the body. :class:`PreparedPost` sends a ready body through the SDK at a cost that
does not depend on the body.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, NoReturn, TypeVar

import httpx2
import openai
from openai import AsyncOpenAI, RequestOptions

try:  # the SDK's own request building and sending, for the prepared path (else post() only)
    from openai._httpx2 import request_exceptions, timeout_exceptions
    from openai._models import FinalRequestOptions

    _SDK_PARTS = True
except ImportError:  # another SDK version: every call goes through post()
    _SDK_PARTS = False

from alma.errors import ConfigError, EndpointUnreachableError, LLMError
from alma.llm.retry import (
    BackoffPolicy,
    before_attempt,
    is_retryable_status,
    note_retry,
    parse_retry_after,
)

logger = logging.getLogger("alma.llm")

ENDPOINT_HINT = "check --base-url / OPENAI_BASE_URL and that the server is running"
MESSAGE_CHARS = 300  # server messages and validation errors are cut to this in error messages

# what the SDK's own endpoint methods ask of its transport: the API key as a bearer token
REQUEST_OPTIONS: RequestOptions = {"security": {"bearer_auth": True}}
# what makes a client prepare each request anew (a key callable, a provider, a workload identity)
_PER_REQUEST_AUTH = ("_api_key_provider", "_provider_runtime", "_workload_identity_auth")

FailureKind = Literal["status", "timeout", "unreachable", "dropped", "malformed"]
T = TypeVar("T")


@dataclass(frozen=True)
class Failure:
    """One failed attempt worth retrying."""

    what: str  # "HTTP 429: slow down", "timed out after 60s", "malformed body: not JSON", ...
    kind: FailureKind
    status: int | None = None
    retry_after_s: float | None = None


def malformed(problem: str) -> Failure:
    """A 200 whose body is no usable answer."""
    return Failure(f"malformed body: {truncate(problem, 160)}", "malformed", status=200)


class RequestRejected(LLMError):
    """A non-retryable HTTP status; ``status`` and the server's message are kept for fallbacks."""

    def __init__(self, message: str, *, status: int, server_message: str, hint: str) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.server_message = server_message


class PreparedPost:
    """POSTs ready JSON bytes to one path of an ``AsyncOpenAI`` client, as its ``post()`` would.

    ``post()`` rebuilds the whole request every time: the options model, the URL, every header
    (auth, platform, retry count, timeout), then wraps the answer in its own response type; about
    0.2 ms a call. Here the SDK builds that request once, at the first call (inside the event
    loop, as ``post()`` would); each call then sends a copy with the new body through the SDK's
    own send path (its transport and auth hooks), about 0.04 ms. A non-2xx answer becomes the
    SDK's ``APIStatusError`` subclass, a timeout ``APITimeoutError`` and a failed connection
    ``APIConnectionError`` (its cause kept), exactly as from ``post()``.

    A client whose requests depend on more than the client (an API-key callable, a provider, a
    workload identity, custom auth) goes through ``post()`` every time: nothing is reused there.
    """

    def __init__(self, client: AsyncOpenAI, path: str) -> None:
        self.client = client
        self.path = path
        fixed = all(getattr(client, name, True) is None for name in _PER_REQUEST_AUTH)
        parts = _SDK_PARTS and all(
            hasattr(client, name)
            for name in ("_build_request", "_prepare_request", "_send_request", "custom_auth")
        )
        self.reuses = parts and fixed and client.custom_auth is None  # False: post() every time
        self._template: httpx2.Request | None = None

    async def __call__(self, body: bytes) -> bytes:
        """The raw body of a 2xx answer to ``body``; SDK errors otherwise."""
        if not self.reuses:
            response = await self.client.post(
                self.path, cast_to=httpx2.Response, content=body, options=REQUEST_OPTIONS
            )
            return response.content
        template = self._template or self._prepare()
        request = httpx2.Request(
            template.method,
            template.url,
            headers=template.headers,
            content=body,
            extensions=dict(template.extensions),
        )
        client = self.client
        await client._prepare_request(request)
        try:
            response = await client._send_request(request, stream=False)
        except timeout_exceptions() as error:
            raise openai.APITimeoutError(request=request) from error
        except openai.OpenAIError:
            raise
        except request_exceptions() as error:
            raise openai.APIConnectionError(request=request) from error
        if not response.is_success:
            raise client._make_status_error_from_response(response)
        return response.content

    def _prepare(self) -> httpx2.Request:
        options = FinalRequestOptions.construct(method="post", url=self.path, **REQUEST_OPTIONS)
        template = self.client._build_request(options)
        del template.headers["content-length"]  # set anew from each body
        self._template = template
        return template


@dataclass
class RetryingEndpoint:
    """Sends requests to one endpoint with alma's retry policy; see the module docstring."""

    label: str  # how error messages name what was called, e.g. "model 'gpt-5-nano'"
    endpoint: str
    timeout_s: float
    max_retries: int
    backoff: BackoffPolicy
    semaphore: asyncio.Semaphore | None = None

    async def request(
        self,
        send: Callable[[], Awaitable[bytes]],
        read: Callable[[bytes], T | Failure],
        *,
        gated: bool = True,
    ) -> T:
        """The first usable body ``read`` makes of a 200 answer to ``send()``.

        ``gated``: ask the call hooks before every attempt (False for a repair round, which
        belongs to a call whose first answer already arrived and must be allowed to finish).
        """
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            outcome = await self._attempt(send, read, gated)
            if not isinstance(outcome, Failure):
                return outcome
            if attempt + 1 == attempts:
                self._raise_exhausted(outcome, attempts)
            delay = self.backoff.delay(attempt, outcome.retry_after_s)
            logger.warning(
                "%s: %s; retry %d/%d in %.2fs",
                self.label,
                outcome.what,
                attempt + 1,
                self.max_retries,
                delay,
            )
            note_retry(outcome.what)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self,
        send: Callable[[], Awaitable[bytes]],
        read: Callable[[bytes], T | Failure],
        gated: bool,
    ) -> T | Failure:
        try:
            if self.semaphore is None:
                if gated:
                    before_attempt()
                body = await send()
            else:
                async with self.semaphore:
                    if gated:  # after the wait: the budget may have been spent meanwhile
                        before_attempt()
                    body = await send()
        except openai.APITimeoutError:
            return Failure(f"timed out after {self.timeout_s:g}s", "timeout")
        except openai.APIConnectionError as error:
            return connection_failure(error)
        except openai.APIStatusError as error:
            return self._status_failure(error)
        except openai.OpenAIError as error:  # anything else the SDK raises on the way
            return Failure(f"client error: {truncate(str(error), 160)}", "dropped")
        return read(body)

    def _status_failure(self, error: openai.APIStatusError) -> Failure:
        status = error.status_code
        message = server_message(error)
        if status == 401:
            raise ConfigError(
                f"{self.endpoint} refused the API key (HTTP 401): {truncate(message)}",
                hint="set OPENAI_API_KEY to a valid key for this endpoint",
            ) from None
        if not is_retryable_status(status):
            raise RequestRejected(
                f"{self.label} request rejected by {self.endpoint} "
                f"(HTTP {status}): {truncate(message)}",
                status=status,
                server_message=message,
                hint=_rejection_hint(status),
            ) from None
        retry_after = parse_retry_after(error.response.headers)
        return Failure(f"HTTP {status}: {truncate(message, 120)}", "status", status, retry_after)

    def _raise_exhausted(self, failure: Failure, attempts: int) -> NoReturn:
        if failure.kind == "unreachable":
            raise EndpointUnreachableError(
                f"cannot reach the model endpoint {self.endpoint} after {attempts} attempts: "
                f"{failure.what}",
                hint=ENDPOINT_HINT,
            )
        raise LLMError(
            f"{self.label} at {self.endpoint} failed after {attempts} attempts "
            f"(last: {failure.what})",
            hint=_exhausted_hint(failure),
        )


def connection_failure(error: openai.APIConnectionError) -> Failure:
    """A refused connection means the endpoint is unreachable; anything later is a drop."""
    cause = error.__cause__
    detail = (str(cause) or type(cause).__name__) if cause is not None else error.message
    text = truncate(detail, 160)
    if isinstance(cause, httpx2.ConnectError):
        return Failure(f"connection failed: {text}", "unreachable")
    if isinstance(cause, httpx2.RemoteProtocolError) and "message body" in text:
        return Failure(f"truncated body: {text}", "dropped")
    return Failure(f"connection dropped: {text}", "dropped")


def server_message(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail") or body.get("error")
        if message:
            return str(message)
    if isinstance(body, str) and body:
        return body
    return error.message


def truncate(text: str, limit: int = MESSAGE_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _rejection_hint(status: int) -> str:
    if status == 404:
        return "check the model name and --base-url / OPENAI_BASE_URL"
    if status == 403:
        return "the API key may lack access to this model"
    return "the server's message above says what it did not accept"


def _exhausted_hint(failure: Failure) -> str:
    if failure.status == 429:
        return "the endpoint is rate-limiting; lower llm.concurrency or raise llm.max_retries"
    if failure.kind == "timeout":
        return "raise llm.timeout_s, or check that the server is not overloaded"
    if failure.kind == "malformed":
        return (
            "the endpoint answers with bodies that are not OpenAI responses; check that "
            "--base-url points at an OpenAI-compatible /v1 endpoint, and the server's logs"
        )
    if failure.kind == "dropped":
        return "the server drops connections mid-answer; check its logs, or lower llm.concurrency"
    return "the server keeps failing; check its status or logs and try again later"
