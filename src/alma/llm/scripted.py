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
import importlib
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Sequence
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

#: The header under which the acting agent lists the admissible actions. A model knows only
#: the prompt it is given, so this double reads the header as text rather than importing it
#: from the agent (a test keeps the two equal).
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
        wait: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.model = model
        self.policy = policy or default_policy
        # a policy that takes ``seed`` gets each call's seed (to vary as sampling would)
        self._seeded = "seed" in inspect.signature(self.policy).parameters
        self.rules: list[tuple[re.Pattern[str], str | dict[str, Any]]] = [
            (re.compile(rule.pattern, re.S), rule.response) for rule in rules
        ]
        self.latency_s = latency_s
        self.wait = wait  # how the latency is waited out
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
            await self.wait(self.latency_s)
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


MEMORY_HEADER = "Notes from your memory"
MEMORY_END = "\nEach turn shows"
_FAILED = frozenset({"failure", "failed", "fail", "lost", "loss"})
_MENTIONED_ACTION = re.compile(
    r"\b(?:(?:go|goes|going|went|head|heading) (north|south|east|west)"
    r"|((?:take|open) [a-z]+(?: [a-z]+)?? (?:key|door)))\b"
)
_BACK = {"north": "south", "south": "north", "east": "west", "west": "east"}
_COLOUR_OF = re.compile(r"^(?:take|open) ([a-z]+) (?:key|door)$")


def recall_policy(messages: Sequence[Message], schema: type[BaseModel] | None) -> Answer:
    """The explorer, steered by the memory notes in the system prompt.

    It collects the actions the notes mention (``"go west"``, ``"take green key"``, ``"open
    green door"``), leaving out what they mark as failed (a JSON object whose ``outcome`` or
    ``success`` says so). Among the actions it has tried least here, it takes the goal first,
    then keys and doors of a colour the notes mention, then exits in the directions the notes
    mention most, then the rest as the explorer would. Without notes it is the explorer.
    """
    if schema is not None and "action" not in schema.model_fields:
        return default_policy(messages, schema)
    hints = memory_hints(_memory_notes(messages))
    actions = admissible_actions(_last_user(messages))
    if not hints or not actions:
        return explorer_policy(messages, schema)
    tried = _tried_here(messages)
    goal = _goal(messages)
    colours = {m.group(1) for a in hints if (m := _COLOUR_OF.match(a))}
    # a way back cancels the way there: what remains points where the notes went
    heading = {
        f"go {d}": hints.get(f"go {d}", 0) - hints.get(f"go {back}", 0) for d, back in _BACK.items()
    }

    def rank(action: str) -> tuple[int, int, int, int]:
        verb = action.split(" ", 1)[0]
        colour = _COLOUR_OF.match(action)
        if verb == "take" and goal and action == f"take {goal}":
            tier = 0
        elif colour is not None and colour.group(1) in colours:
            tier = 1 if verb == "take" else 2
        elif verb == "go":
            tier = 3 if heading.get(action, 0) > 0 else 4
        elif verb in ("take", "open"):
            tier = 5
        else:
            tier = 9
        return (tried.get(action, 0), tier, -heading.get(action, 0), actions.index(action))

    choice = min(actions, key=rank)
    return {"thought": f"my notes point to {choice!r}", "action": choice}


def memory_hints(notes: str) -> dict[str, int]:
    """How often the notes mention each action, leaving out episodes they mark as failed."""
    counts: dict[str, int] = {}
    for text in _note_texts(notes):
        for direction, other in _MENTIONED_ACTION.findall(text.lower()):
            action = f"go {direction}" if direction else other
            counts[action] = counts.get(action, 0) + 1
    return counts


def _note_texts(notes: str) -> list[str]:
    """The strings of the notes; a section that is JSON gives those outside failed episodes."""
    texts: list[str] = []
    for section in re.split(r"\n\n(?=\[)", notes):
        body = section.split("\n", 1)[1] if section.startswith("[") and "\n" in section else section
        try:
            _collect(json.loads(body), texts)
        except json.JSONDecodeError:  # free text, or JSON cut short by the prompt's cap
            texts.append(body)
    return texts


def _collect(node: Any, texts: list[str]) -> None:
    if isinstance(node, dict):
        outcome = str(node.get("outcome", "")).lower()
        if outcome in _FAILED or node.get("success") is False:
            return
        for value in node.values():
            _collect(value, texts)
    elif isinstance(node, list):
        for value in node:
            _collect(value, texts)
    elif isinstance(node, str):
        texts.append(node)


def _memory_notes(messages: Sequence[Message]) -> str:
    system = next((m.content for m in messages if m.role == "system"), "")
    start = system.find(MEMORY_HEADER)
    if start < 0:
        return ""
    notes = system[system.find("\n", start) + 1 :]
    end = notes.rfind(MEMORY_END)
    return notes[:end] if end >= 0 else notes


def _tried_here(messages: Sequence[Message]) -> dict[str, int]:
    """How often each action was taken in the current room since a door last opened there
    (an open door makes old rooms worth another look)."""
    room = _place(_last_user(messages))
    tried: dict[tuple[str, str], int] = {}
    opened = 0
    place = ""
    for message in messages:
        if message.role == "user":
            if "You unlock" in message.content:
                opened += 1
            place = _place(message.content)
        elif message.role == "assistant":
            key = (f"{place}#{opened}", _action_of(message.content))
            tried[key] = tried.get(key, 0) + 1
    here = f"{room}#{opened}"
    return {action: count for (where, action), count in tried.items() if where == here}


def _goal(messages: Sequence[Message]) -> str:
    first = next((m.content for m in messages if m.role == "user"), "")
    match = re.search(r"Find the ([a-z ]+?) and take it", first)
    return match.group(1) if match else ""


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

#: What ``scripted:<name>`` answers with: a policy, or the ``module:function`` of one that is
#: imported when first asked for (the meta agent's double builds on this module's policies).
POLICIES: dict[str, Policy | str] = {
    "explorer": default_policy,
    "first": first_action_policy,
    "random": random_policy,
    "recall": recall_policy,
    "meta": "alma.llm.scripted_meta:meta_policy",
}


def register_policy(name: str, policy: Policy | str) -> None:
    """Make ``scripted:<name>`` answer with ``policy`` (a function or its ``module:function``),
    e.g. a test double of one's own."""
    POLICIES[name] = policy


def named_policy(name: str) -> Policy:
    """The policy registered as ``name``, imported if it was registered by its path."""
    entry = POLICIES[name]
    if not isinstance(entry, str):
        return entry
    module, _, function = entry.partition(":")
    policy: Policy = getattr(importlib.import_module(module), function)
    POLICIES[name] = policy
    return policy


def scripted_from_spec(argument: str | None, *, latency_s: float = 0.0) -> ScriptedLLM:
    """``scripted``, ``scripted:<policy>`` (explorer, first, random, recall, or meta: the meta
    agent's double) or ``scripted:<rules.json>``.

    A rules file is a JSON list of ``{"match": regex, "response": text or object}``; calls that no
    rule matches fall back to the explorer policy.
    """
    if not argument or argument in POLICIES:
        return ScriptedLLM(named_policy(argument or "explorer"), latency_s=latency_s)
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
