"""The JSON bodies of an OpenAI-compatible ``/chat/completions`` call: the one sent, the one read.

The request body is serialised here once per call, the way the openai SDK itself writes JSON
(UTF-8, no spaces, no NaN), and posted as bytes through the SDK's transport. Handing the SDK a
ready body skips its per-call transformation of every message against the request's type
description, a cost that grows with the conversation (about 10 ms at 60 messages). The messages,
the bulk of a body, are written by the standard library's C string encoder one message at a time
(half the cost of ``json.dumps`` on the list of message objects); everything else goes through
``json.dumps``. Retries of the call reuse the same bytes.

The answer is read leniently from the raw bytes: a body without usable ``choices`` is a
retryable :class:`~alma.llm.endpoint.Failure`, never an exception.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any, cast

from alma.llm.endpoint import Failure, malformed
from alma.llm.tokens import approx_message_tokens, approx_tokens
from alma.types import Usage

OpenAIMessage = dict[str, str]


@dataclass(frozen=True)
class ChatBody:
    """What a 200 chat completion body says; ``usage`` None when it reports no usable usage."""

    text: str
    usage: Usage | None
    model: str | None


def request_body(
    model: str,
    conversation: list[OpenAIMessage],
    options: Mapping[str, Any],
    extra_body: Mapping[str, Any] | None = None,
) -> bytes:
    """The request's JSON bytes: model, messages, the sampling ``options``, then ``extra_body``.

    ``extra_body`` keys win over the others, as the SDK's ``extra_body`` does. The bytes are
    exactly those of ``json.dumps`` on the same object (compact, UTF-8, no NaN).
    """
    rest: dict[str, Any] = {**options, **extra_body} if extra_body else dict(options)
    messages = None
    # only messages of exactly a role and a content (what alma sends) take the fast writer
    own_keys = "model" not in rest and "messages" not in rest
    if own_keys and sum(map(len, conversation)) == 2 * len(conversation):
        messages = _messages_json(conversation)
    if messages is None:
        body: dict[str, Any] = {"model": model, "messages": conversation, **rest}
        return _dumps(body).encode()
    tail = "," + _dumps(rest)[1:] if rest else "}"
    return f'{{"model":{_dumps(model)},"messages":[{messages}]{tail}'.encode()


def _messages_json(conversation: list[OpenAIMessage]) -> str | None:
    """The messages array's items, each ``{"role":...,"content":...}``; None unless every
    message has exactly those two keys with text values."""
    try:
        return ",".join(
            [
                f'{{"role":{encode_basestring(m["role"])},'
                f'"content":{encode_basestring(m["content"])}}}'
                for m in conversation
            ]
        )
    except (KeyError, TypeError):  # other keys, or a value that is not text
        return None


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def read_chat_body(raw: bytes) -> ChatBody | Failure:
    """The answer in a 200 chat completion body, or why the body is unusable (retryable)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        return malformed(f"not JSON ({error})")
    if not isinstance(body, dict):
        return malformed(f"a JSON {type(body).__name__}, not an object")
    choices = body.get("choices")
    if not isinstance(choices, list):
        if body.get("error"):
            return malformed(f"an error in a 200 answer: {body['error']}")
        return malformed("no 'choices' list")
    if not choices:
        return Failure("empty choices list", "malformed", status=200)
    first = choices[0]
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        return malformed("the first choice has no 'message' object")
    text = _content_text(message.get("content"))
    if text is None:
        return malformed("the message's 'content' is neither text nor null")
    model = body.get("model")
    return ChatBody(text, read_usage(body.get("usage")), model if isinstance(model, str) else None)


def read_usage(block: object) -> Usage | None:
    """Usage from a ``usage`` block, or None unless it counts prompt and completion tokens."""
    if not isinstance(block, dict):
        return None
    prompt, completion = block.get("prompt_tokens"), block.get("completion_tokens")
    if not (_count(prompt) and _count(completion)):
        return None
    details = block.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    cached_count = cast(int, cached) if _count(cached) else 0
    return Usage(cast(int, prompt), cast(int, completion), cached_count)


def estimate_usage(conversation: list[OpenAIMessage], options: dict[str, Any], text: str) -> Usage:
    """Tokens of a request and its answer, from the text (for endpoints that report none)."""
    prompt = approx_message_tokens(message["content"] for message in conversation)
    response_format = options.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        prompt += approx_tokens(json.dumps(response_format["json_schema"]["schema"]))
    return Usage(prompt, approx_tokens(text) if text else 0)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _content_text(content: object) -> str | None:
    """The message text: a string, null (no text), or OpenAI's list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(part, dict) for part in content):
        return "".join(str(part.get("text", "")) for part in content)
    return None
