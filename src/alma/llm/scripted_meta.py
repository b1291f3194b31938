"""A scripted meta model: the meta agent's four steps answered offline, deterministically.

``meta_policy`` is a policy for :class:`alma.llm.scripted.ScriptedLLM`. It recognises the step
from the first line of the user message and answers:

- analyse: an :class:`~alma.search.proposal.Analysis` built from the prompt (the design's
  name, its scores, the episodes and memory keys of the sample);
- implement and from scratch: one of the designs of :mod:`alma.llm.scripted_designs`: a real,
  working one with a variant parameter or, for about one request in three, an invalid one, so
  that verification and repair get exercised. The choice is a hash of the prompt, so the same
  request always gets the same answer whatever the order or concurrency of the calls; every
  other answer comes decorated with the Markdown and chatter models add around code;
- repair: the valid design the broken one was made from (same variant), or a hash-chosen valid
  design for code it does not know.

Any other request falls back to the built-in scripted policy. ``scripted:meta`` names this
policy (see :data:`alma.llm.scripted.POLICIES`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from alma.llm.scripted import Answer, ScriptedLLM, default_policy
from alma.llm.scripted_designs import (
    CLASS_TO_DESIGN,
    EXTERNAL_INDEX,
    UNFIXABLE,
    VALID_DESIGNS,
    VARIANT_LINE,
    choose_design,
    prompt_number,
)
from alma.types import Message

# --------------------------------------------------------------------------- the policy


def meta_policy(
    messages: Sequence[Message], schema: type[BaseModel] | None, seed: int | None = None
) -> Answer:
    """Answer the meta agent's steps (see the module docstring); anything else as usual.
    ``seed`` (the call's) varies what is written, as sampling varies a real model's answer."""
    prompt = next((m.content for m in reversed(messages) if m.role == "user"), "")
    fields = set(schema.model_fields) if schema is not None else set()
    if "learned_from_memory" in fields:
        return analysis_answer(prompt)
    if schema is None and prompt.startswith("# Repair"):
        return as_text(repair_answer(prompt), prompt_number(prompt))
    if schema is None and prompt.startswith(("# Implement", "# Write a first")):
        return as_text(implementation_answer(prompt, seed), prompt_number(prompt))
    return default_policy(messages, schema)


def implementation_answer(prompt: str, seed: int | None = None) -> dict[str, Any]:
    design, variant = choose_design(prompt, seed)
    name = design.fixed_by or design.name
    return {"name": f"{name}_v{variant}", "idea": design.idea, "code": design.source(variant)}


def as_text(answer: dict[str, Any], style: int) -> str:
    """The answer as a model writes it: the requested form, or (every other prompt) with the
    Markdown decoration and the chatter models add around it, which the parser must survive."""
    code = str(answer["code"]).rstrip()
    if (style // 7) % 2 == 0:
        return f"name: {answer['name']}\nidea: {answer['idea']}\n\n```python\n{code}\n```\n"
    return (
        f"Here is the design.\n\n**Name:** `{answer['name']}`\n**Idea:** {answer['idea']}\n\n"
        f"```python\n{code}\n```\n\nIt keeps to the contract.\n"
    )


def repair_answer(prompt: str) -> dict[str, Any]:
    if "class ExternalIndex" in prompt:  # beyond repair: the same design comes back
        return {"name": UNFIXABLE.name, "idea": UNFIXABLE.idea, "code": EXTERNAL_INDEX}
    known = next((name for marker, name in CLASS_TO_DESIGN.items() if marker in prompt), None)
    match = VARIANT_LINE.search(prompt)
    if known is None:
        design, variant = choose_design(prompt)
        known = design.fixed_by or design.name
    else:
        variant = int(match.group(1)) if match else 1
    fixed = VALID_DESIGNS[known]
    return {"name": f"{known}_v{variant}", "idea": fixed.idea, "code": fixed.source(variant)}


_NAME = re.compile(r"^# Analyse memory design `([^`]*)`", re.M)
_SCORE = re.compile(r"^- (score|reference): (\S+)", re.M)
_EPISODE = re.compile(r"^### Episode (\d+): (SUCCESS|FAILURE)", re.M)
_MEMORY_KEYS = re.compile(r"^Memory returned \(keys: ([^;]*);", re.M)


def analysis_answer(prompt: str) -> dict[str, Any]:
    """A fixed-form analysis whose facts come from the prompt."""
    name_match = _NAME.search(prompt)
    name = name_match.group(1) if name_match else "the design"
    scores: dict[str, float | None] = {}
    for key, value in _SCORE.findall(prompt):
        scores.setdefault(key, _float(value))
    score, reference = scores.get("score"), scores.get("reference")
    outcomes = [outcome for _, outcome in _EPISODE.findall(prompt)]
    successes = outcomes.count("SUCCESS")
    keys: dict[str, bool] = {}  # key -> seen in a successful episode
    for episode in re.split(r"^### Episode ", prompt, flags=re.M)[1:]:
        success = episode.split("\n", 1)[0].split(": ", 1)[-1].startswith("SUCCESS")
        for listed in _MEMORY_KEYS.findall(episode):
            for key in filter(None, (part.strip() for part in listed.split(","))):
                keys[key] = keys.get(key, False) or success
    parts = [
        {
            "part": key,
            "label": "useful" if seen_in_success else "potentially useful",
            "why": f"returned in the sample; {'also' if seen_in_success else 'never'} "
            "present in a successful episode",
        }
        for key, seen_in_success in keys.items()
    ] or [{"part": "memory output", "label": "empty", "why": "retrieve returned nothing"}]
    behind = score is not None and reference is not None and score <= reference
    first_change = (
        {
            "priority": 1,
            "what": "store the action sequences of successful episodes and return the closest",
            "why": f"{name} does not beat the no-memory reference",
        }
        if behind
        else {
            "priority": 1,
            "what": "rank retrieved items by similarity to the new task and return fewer",
            "why": f"{name} helps; sharper retrieval should help more",
        }
    )
    return {
        "learned_from_memory": (
            f"{len(outcomes)} episodes shown, {successes} solved; memory returned "
            f"{', '.join(keys) or 'nothing'}."
        ),
        "retrieved_parts": parts,
        "content_problems": ["advice is not tied to the task at hand"],
        "structure_problems": ["memory grows without merging similar items"],
        "changes": [
            first_change,
            {
                "priority": 2,
                "what": "record actions that failed and return them as mistakes to avoid",
                "why": "failed episodes repeat the same useless actions",
            },
        ],
    }


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def scripted_meta_llm(*, latency_s: float = 0.0) -> ScriptedLLM:
    """A scripted model answering the meta agent with :func:`meta_policy`."""
    return ScriptedLLM(meta_policy, latency_s=latency_s, model="scripted:meta")
