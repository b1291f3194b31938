"""Internal values shared by every layer: messages, completions, tasks, episodes.

All are frozen dataclasses; ``to_dict`` / ``from_dict`` give their JSON form (used by the run
store, ``--json`` output and, later, the sandbox RPC).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic import BaseModel

Role = Literal["system", "user", "assistant"]
Purpose = Literal["meta", "agent", "memory"]
Split = Literal["train", "eval_in_distribution", "eval_out_of_distribution"]
SPLITS: tuple[Split, ...] = get_args(Split)
PURPOSES: tuple[Purpose, ...] = get_args(Purpose)


def to_dict(value: Any) -> dict[str, Any]:
    """The JSON-able dict of a dataclass value (nested dataclasses included): what
    :func:`dataclasses.asdict` gives, without its deep copy of every leaf (these values are
    frozen, their leaves plain), at about a fifth of its cost for an episode of 30 steps."""
    if _field_names(type(value)) is None:
        raise TypeError("to_dict() should be called on dataclass instances")
    plain: dict[str, Any] = _plain(value)
    return plain


_ATOMS = frozenset({str, int, float, bool, type(None)})
_FIELDS: dict[type, tuple[str, ...] | None] = {}


def _field_names(cls: type) -> tuple[str, ...] | None:
    try:
        return _FIELDS[cls]
    except KeyError:
        names = None
        if dataclasses.is_dataclass(cls):
            names = tuple(f.name for f in dataclasses.fields(cls))
        _FIELDS[cls] = names
        return names


def _plain(value: Any) -> Any:
    cls = type(value)
    if cls in _ATOMS:
        return value
    names = _field_names(cls)
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if cls is tuple or cls is list:
        return cls(_plain(item) for item in value)
    if cls is dict:
        return {_plain(key): _plain(item) for key, item in value.items()}
    return dataclasses.asdict(_Box(value))["value"]  # anything else as asdict treats it


@dataclass(frozen=True)
class _Box:
    value: Any


# --------------------------------------------------------------------------- LLM values


@dataclass(frozen=True)
class Message:
    role: Role
    content: str

    def as_openai(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
        )


@dataclass(frozen=True)
class Completion:
    """One model answer. ``parsed`` is the validated schema object when a schema was asked."""

    text: str
    usage: Usage = field(default_factory=Usage)
    parsed: BaseModel | None = None
    cost_usd: float = 0.0
    latency_s: float = 0.0
    from_cache: bool = False
    model: str = ""
    usage_estimated: bool = False  # the endpoint sent no usage; ``usage`` is estimated from text


# --------------------------------------------------------------------------- domain values


@dataclass(frozen=True)
class Task:
    """One seeded environment instance. ``id`` is stable: the same id is always the same game."""

    id: str
    split: Split
    description: str
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Observation:
    text: str
    actions: tuple[str, ...] | None = None  # admissible actions, when the domain knows them
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Transition:
    observation: Observation
    reward: float = 0.0
    done: bool = False
    success: bool = False
    info: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- episode values

OutcomeReason = Literal["success", "done", "step_limit", "budget", "error", "interrupted"]


@dataclass(frozen=True)
class EpisodeStart:
    """What a memory design sees before an episode: never the task id or split."""

    domain: str
    task_description: str
    observation: str


@dataclass(frozen=True)
class Step:
    observation: str  # what the agent saw before acting
    thought: str
    action: str  # the action sent to the environment (after matching)
    reward: float = 0.0
    raw_action: str = ""  # what the model wrote
    valid: bool = True  # False when the action matched no admissible action


@dataclass(frozen=True)
class Outcome:
    success: bool
    score: float
    steps: int
    reason: OutcomeReason = "done"
    error: str | None = None


@dataclass(frozen=True)
class Episode:
    start: EpisodeStart
    steps: tuple[Step, ...]
    outcome: Outcome
    final_observation: str = ""
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    invalid_actions: int = 0
    memory: dict[str, Any] = field(default_factory=dict)  # what memory returned at the start
    memory_truncated: bool = False  # the rendered memory was cut to the prompt's cap
    constrained: bool = False  # actions were held to the admissible ones (constrain_actions)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Episode:
        return Episode(
            start=EpisodeStart(**data["start"]),
            steps=tuple(Step(**s) for s in data["steps"]),
            outcome=Outcome(**data["outcome"]),
            final_observation=data.get("final_observation", ""),
            usage=Usage(**data.get("usage", {})),
            cost_usd=data.get("cost_usd", 0.0),
            invalid_actions=data.get("invalid_actions", 0),
            memory=data.get("memory", {}),
            memory_truncated=data.get("memory_truncated", False),
            constrained=data.get("constrained", False),
        )
