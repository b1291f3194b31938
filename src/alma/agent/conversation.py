"""The acting agent's conversation: its prompts (from the templates in ``prompts/``), the schema
of one answer, and the history of turns kept within a token budget.

The conversation is append-only, so an endpoint's prompt cache holds every turn but the newest:
the admissible actions are listed once, in the newest turn, and a past answer is kept as the
action it took (its thought was for that step only).
"""

from __future__ import annotations

import json
from functools import cache, lru_cache
from importlib import resources
from string import Template
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from alma.llm.tokens import approx_message_tokens
from alma.types import Message, Observation

ACTION_DESCRIPTION = "exactly one action to take now"
ACTIONS_HEADER = "Admissible actions:"  # heads the list of admissible actions in a turn


def _lean(schema: dict[str, Any]) -> None:
    """Sent with every step: no descriptions and no titles (the system prompt says what each
    field holds)."""
    schema.pop("description", None)
    for field in schema.get("properties", {}).values():
        field.pop("title", None)
        field.pop("description", None)


class AgentAction(BaseModel):
    """What the acting agent answers each step with ``[agent] think`` off: the action alone."""

    model_config = ConfigDict(json_schema_extra=_lean)

    action: str = Field(description=ACTION_DESCRIPTION)


class AgentStep(BaseModel):
    """What the acting agent answers each step: a short thought, then the action (in this
    order, so a model whose output the schema's grammar constrains thinks before it acts)."""

    model_config = ConfigDict(json_schema_extra=_lean)

    # bounded, so a small local model (whose output the schema's grammar constrains) cannot
    # spend most of a step writing: one or two sentences fit
    thought: str = Field(max_length=300, description="one or two short sentences of reasoning")
    action: str = Field(description=ACTION_DESCRIPTION)


Answer = AgentStep | AgentAction


def thought_of(answer: Answer) -> str:
    return answer.thought if isinstance(answer, AgentStep) else ""


@lru_cache(maxsize=1024)
def step_schema(
    actions: tuple[str, ...] | None, think: bool = True
) -> type[AgentStep] | type[AgentAction]:
    """The schema of one step's answer: :class:`AgentStep` (:class:`AgentAction` when the agent
    does not ``think``), with ``action`` an enum of ``actions`` when there are any. Cached by
    the actions, so a room seen again reuses its model (and the provider's cached JSON schema of
    it). Named as its base, so the request differs from an unconstrained one only in the enum."""
    base: type[AgentStep] | type[AgentAction] = AgentStep if think else AgentAction
    if not actions:
        return base
    unique = tuple(dict.fromkeys(actions))
    choice: Any = Literal.__getitem__(unique)
    # "enum" even for one action (pydantic writes a lone literal as "const" only)
    action = Field(description=ACTION_DESCRIPTION, json_schema_extra={"enum": list(unique)})
    return create_model(base.__name__, __base__=base, __doc__=base.__doc__, action=(choice, action))


@cache
def template(name: str) -> Template:
    text = resources.files("alma.agent").joinpath("prompts", f"{name}.txt").read_text("utf-8")
    return Template(text)


def system_prompt(instructions: str, memory_text: str, think: bool = True) -> str:
    memory_section = template("memory").substitute(memory=memory_text) if memory_text else ""
    return template("system").substitute(
        instructions=instructions.strip(),
        memory=memory_section,
        answer=template("answer_thought" if think else "answer_action").template.strip(),
    )


def kept_answer(action: str) -> str:
    """A past answer as the history keeps it: the action it took, in the answer's format (its
    thought served that step only; re-sending it would cost tokens every later step)."""
    return json.dumps({"action": action})


def first_text(task: str, first: Observation) -> str:
    """The first turn: the task, unless the first observation states it already."""
    turn = turn_text(first)
    if task.strip().rstrip(".").lower() in turn.lower():
        return turn
    return template("first_turn").substitute(task=task, turn=turn)


def turn_text(observation: Observation) -> str:
    """One turn as the conversation keeps it: the observation alone (:func:`newest_text` adds
    the step count and the admissible actions to the newest turn only)."""
    return observation.text.strip()


def newest_text(observation: Observation, step: int, limit: int) -> str:
    """What closes the newest turn: the step count and the admissible actions of
    ``observation``. Sent once, so history turns carry only what happened."""
    text = f"\n\nStep {step} of {limit}."
    if observation.actions is None:
        return text
    listed = "\n".join(f"- {action}" for action in observation.actions)
    return f"{text} {ACTIONS_HEADER}\n{listed}\n"


class History:
    """The conversation after the system prompt, kept within a token budget."""

    def __init__(self, budget: int, first: str) -> None:
        self.budget = budget
        self.first = first  # task and first observation, always kept
        self.turns: list[tuple[str, str, str]] = []  # (answer, action, next observation)
        self._sent: list[Message] = []  # the turns as messages, two a turn
        self.omitted: list[str] = []  # actions of the dropped steps
        self.note = ""
        self._turn_tokens = 0  # running total of the kept turns

    def add(self, answer: str, action: str, observation: str) -> None:
        self.turns.append((answer, action, observation))
        self._sent += (Message("assistant", answer), Message("user", observation))
        self._turn_tokens += approx_message_tokens((answer, observation))
        if self.tokens() > self.budget:
            self._trim()

    def tokens(self) -> int:
        return approx_message_tokens((self.first + self.note,)) + self._turn_tokens

    def _trim(self) -> None:
        # drop down to 60% of the budget at once, so the prompt prefix stays stable for a while
        while self.turns and self.tokens() > self.budget * 0.6:
            answer, action, observation = self.turns.pop(0)
            del self._sent[:2]
            self._turn_tokens -= approx_message_tokens((answer, observation))
            self.omitted.append(action)
            listed = ", ".join(self.omitted[-30:])
            self.note = template("omitted").substitute(
                count=len(self.omitted),
                actions=listed if len(self.omitted) <= 30 else f"..., {listed}",
            )

    def messages(self, system: str, newest: str = "") -> list[Message]:
        """The conversation, with ``newest`` (:func:`newest_text`) closing the newest turn: the
        turns before it stay as they were sent, so the endpoint's prompt cache holds
        all but the newest turn."""
        messages = [Message("system", system), Message("user", self.first + self.note)]
        messages += self._sent
        last = messages[-1]
        messages[-1] = Message("user", last.content + newest)
        return messages
