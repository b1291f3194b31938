"""How a retrieved memory dict becomes text in the acting agent's prompt, within a cap."""

from __future__ import annotations

import json
from typing import Any


def render_memory(memory: dict[str, Any], cap: int) -> tuple[str, bool]:
    """The memory dict as prompt text, cut to ``cap`` characters; returns (text, truncated)."""
    if not memory:
        return "", False
    parts = []
    for key, value in memory.items():
        body = value if isinstance(value, str) else json.dumps(value, indent=1, default=str)
        parts.append(f"[{key}]\n{body}")
    text = "\n\n".join(parts)
    if len(text) <= cap:
        return text, False
    marker = "\n...(memory truncated)"
    return text[: max(0, cap - len(marker))] + marker, True
