"""Matching what the model wrote to the environment's admissible actions."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

_NOISE = re.compile(r"[^a-z0-9 ]+")


def normalise(action: str) -> str:
    text = action.strip().lower()
    text = _NOISE.sub(" ", text)
    return " ".join(text.split())


def match_action(
    raw: str, admissible: Sequence[str] | None, cutoff: float = 0.6
) -> tuple[str, bool]:
    """The action to send and whether it matched: exact, then normalised, then closest.

    With no admissible list the raw action is sent as is. An action that matches nothing is sent
    unchanged (the environment answers it) and reported as not matched.
    """
    action = raw.strip()
    if admissible is None:
        return action, True
    if action in admissible:
        return action, True
    wanted = normalise(action)
    by_normal = {normalise(candidate): candidate for candidate in admissible}
    if wanted in by_normal:
        return by_normal[wanted], True
    close = difflib.get_close_matches(wanted, list(by_normal), n=1, cutoff=cutoff)
    if close:
        return by_normal[close[0]], True
    return action, False
