"""``scripted``: a deterministic model for tests, benchmarks and trying the pipeline offline.

It answers from, in order: the user's rules (a regex on the last user message → an answer), a
policy function, or the built-in policy. The built-in policy plays text games (any schema with an
``action`` field: it explores the admissible actions listed in the prompt, preferring to take
things, open doors and go where it has not been) and fills any other schema with a small valid
object. Token counts are estimated from the text, so the ledger and budgets behave as with a real
model; ``latency_s`` simulates a slow endpoint.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from alma.errors import MalformedOutputError, UsageError
from alma.llm.tokens import approx_message_tokens, approx_tokens
from alma.types import Completion, Message, Usage

Answer = str | dict[str, Any] | BaseModel
Policy = Callable[[Sequence[Message], type[BaseModel] | None], Answer]

ACTIONS_HEADER = "Admissible actions:"


@dataclass(frozen=True)
class Rule:
    """Answer ``response`` when ``pattern`` matches the last user message."""

    pattern: str
    response: str | dict[str, Any]


class ScriptedLLM:
    def __init__(
        self,
        policy: Policy | None = None,
        *,
        rules: Sequence[Rule] = (),
        latency_s: float = 0.0,
        model: str = "scripted",
    ) -> None:
        self.model = model
        self.policy = policy or default_policy
        # a policy that takes ``seed`` gets each call's seed (to vary as sampling would)
        self._seeded = "seed" in inspect.signature(self.policy).parameters
        self.rules: list[tuple[re.Pattern[str], str | dict[str, Any]]] = [
            (re.compile(rule.pattern, re.S), rule.response) for rule in rules
        ]
        self.latency_s = latency_s
        self.calls = 0

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: type[BaseModel] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
    ) -> Completion:
        self.calls += 1
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        answer = self._answer(messages, schema, seed)
        text = _as_text(answer)
        parsed = None
        if schema is not None:
            try:
                parsed = schema.model_validate_json(text)
            except ValidationError as error:
                raise MalformedOutputError(
                    f"scripted answer does not match {schema.__name__}: {error.errors()[0]['msg']}",
                    hint="fix the rule or policy that produced it",
                    usage=Usage(approx_message_tokens(m.content for m in messages), 0),
                    text=text,
                ) from None
        usage = Usage(
            prompt_tokens=approx_message_tokens(m.content for m in messages),
            completion_tokens=approx_tokens(text),
        )
        return Completion(
            text=text, usage=usage, parsed=parsed, model=self.model, latency_s=self.latency_s
        )

    def _answer(
        self, messages: Sequence[Message], schema: type[BaseModel] | None, seed: int | None
    ) -> Answer:
        last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        for pattern, response in self.rules:
            if pattern.search(last_user):
                return response
        if self._seeded:
            return self.policy(messages, schema, seed=seed)  # type: ignore[call-arg]
        return self.policy(messages, schema)


def _as_text(answer: Answer) -> str:
    if isinstance(answer, BaseModel):
        return answer.model_dump_json()
    if isinstance(answer, dict):
        return json.dumps(answer)
    return answer


# --------------------------------------------------------------------------- built-in policies


def default_policy(messages: Sequence[Message], schema: type[BaseModel] | None) -> Answer:
    if schema is not None and "action" in schema.model_fields:
        return explorer_policy(messages, schema)
    if schema is not None:
        filled: dict[str, Any] = fill_schema(schema.model_json_schema(), _last_user(messages))
        return filled
    return "ok"


def first_action_policy(messages: Sequence[Message], schema: type[BaseModel] | None) -> Answer:
    actions = admissible_actions(_last_user(messages))
    action = actions[0] if actions else "look"
    return {"thought": "taking the first admissible action", "action": action}


def random_policy(messages: Sequence[Message], schema: type[BaseModel] | None) -> Answer:
    """A uniformly random admissible action, seeded by the conversation (so reproducible)."""
    actions = admissible_actions(_last_user(messages)) or ["look"]
    digest = hashlib.sha256("".join(m.content for m in messages).encode()).digest()
    action = actions[int.from_bytes(digest[:4], "big") % len(actions)]
    return {"thought": "picking at random", "action": action}


def explorer_policy(messages: Sequence[Message], schema: type[BaseModel] | None) -> Answer:
    """Explore like a careful player: take items, open doors, then go somewhere new."""
    current = _last_user(messages)
    actions = admissible_actions(current)
    if not actions:
        return {"thought": "no actions listed; looking around", "action": "look"}
    room = _place(current)
    tried: dict[tuple[str, str], int] = {}
    opened = 0
    place = ""
    for message in messages:
        if message.role == "user":
            place = _place(message.content)
        elif message.role == "assistant":
            action = _action_of(message.content)
            if action.startswith(("open ", "unlock ")):
                opened += 1
            key = (place, action) if opened == 0 else (f"{place}#{opened}", action)
            tried[key] = tried.get(key, 0) + 1
    here = room if opened == 0 else f"{room}#{opened}"

    def rank(action: str) -> tuple[int, int, int]:
        verb = action.split(" ", 1)[0]
        order = {"take": 0, "pick": 0, "open": 1, "unlock": 1, "go": 2}.get(verb, 3)
        if verb in ("look", "inventory", "drop", "wait", "idle"):
            order = 9
        return (tried.get((here, action), 0), order, actions.index(action))

    choice = min(actions, key=rank)
    return {"thought": f"{room or 'here'}: trying {choice!r}", "action": choice}


def admissible_actions(prompt: str) -> list[str]:
    """The actions listed after the last ``Admissible actions:`` header, one per ``- `` line."""
    index = prompt.rfind(ACTIONS_HEADER)
    if index < 0:
        return []
    actions: list[str] = []
    for line in prompt[index + len(ACTIONS_HEADER) :].splitlines()[1:]:
        line = line.strip()
        if not line.startswith("- "):
            if actions:
                break
            continue
        actions.append(line[2:].strip())
    return actions


@lru_cache(maxsize=4096)
def _place(prompt: str) -> str:
    match = re.search(r"You are (?:in|at|on) ([^.\n]+)", prompt)
    return match.group(1).strip() if match else ""


@lru_cache(maxsize=4096)
def _action_of(text: str) -> str:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text.strip()
    return str(data.get("action", "")) if isinstance(data, dict) else text.strip()


def _last_user(messages: Sequence[Message]) -> str:
    return next((m.content for m in reversed(messages) if m.role == "user"), "")


def fill_schema(schema: dict[str, Any], context: str, defs: dict[str, Any] | None = None) -> Any:
    """A small valid instance of a JSON schema, with strings drawn from ``context``."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return fill_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], context, defs)
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            options = [o for o in schema[combinator] if o.get("type") != "null"]
            return fill_schema(options[0] if options else schema[combinator][0], context, defs)
    if "default" in schema:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "string")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: fill_schema(sub, context, defs) for name, sub in properties.items()}
    if kind == "array":
        count = schema.get("minItems", 0)
        return [fill_schema(schema.get("items", {}), context, defs) for _ in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return float(schema.get("minimum", 0.0))
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    words = " ".join(context.split()[:12]) or "scripted"
    text = f"scripted note: {words}"
    return text[: schema.get("maxLength", len(text))].ljust(schema.get("minLength", 0), ".")


# --------------------------------------------------------------------------- from a spec string

POLICIES: dict[str, Policy] = {
    "explorer": default_policy,
    "first": first_action_policy,
    "random": random_policy,
}


def register_policy(name: str, policy: Policy) -> None:
    """Make ``scripted:<name>`` answer with ``policy`` (layers above add their own test doubles,
    e.g. the meta agent's, without this module importing them)."""
    POLICIES[name] = policy


def scripted_from_spec(argument: str | None, *, latency_s: float = 0.0) -> ScriptedLLM:
    """``scripted``, ``scripted:<policy>`` (explorer, first, random) or ``scripted:<rules.json>``.

    A rules file is a JSON list of ``{"match": regex, "response": text or object}``; calls that no
    rule matches fall back to the explorer policy.
    """
    if not argument or argument in POLICIES:
        return ScriptedLLM(POLICIES[argument or "explorer"], latency_s=latency_s)
    path = Path(argument)
    if not path.is_file():
        names = ", ".join(POLICIES)
        raise UsageError(
            f"scripted model: {argument!r} is neither a policy nor a rules file",
            hint=f"use scripted, scripted:<{names}> or scripted:/path/to/rules.json",
        )
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
        rules = [Rule(entry["match"], entry["response"]) for entry in entries]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise UsageError(
            f"scripted rules file {path} is invalid: {error}",
            hint='write a JSON list of {"match": "<regex>", "response": ...}',
        ) from None
    return ScriptedLLM(rules=rules, latency_s=latency_s)
