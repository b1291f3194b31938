"""Token estimates where no tokenizer is at hand: about four characters a token for English."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import BaseModel


def approx_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


def approx_message_tokens(contents: Iterable[str]) -> int:
    """Estimate for a chat prompt: the texts plus a few tokens of framing per message."""
    characters = messages = 0
    for content in contents:
        characters += len(content)
        messages += 1
    return (characters + 3) // 4 + 5 * messages


def approx_prompt_tokens(contents: Iterable[str], schema: type[BaseModel] | None = None) -> int:
    """Estimate for a chat prompt and, when one is asked, its output schema."""
    tokens = approx_message_tokens(contents)
    if schema is not None:
        tokens += approx_tokens(json.dumps(schema.model_json_schema()))
    return tokens
