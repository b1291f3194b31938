"""Token estimates where no tokenizer is at hand: about four characters a token for English."""

from __future__ import annotations

from collections.abc import Iterable


def approx_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


def approx_message_tokens(contents: Iterable[str]) -> int:
    """Estimate for a chat prompt: the texts plus a few tokens of framing per message."""
    characters = messages = 0
    for content in contents:
        characters += len(content)
        messages += 1
    return (characters + 3) // 4 + 5 * messages
