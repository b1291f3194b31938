import json
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from alma.errors import MalformedOutputError, UsageError
from alma.llm.scripted import Rule, ScriptedLLM, admissible_actions, fill_schema, scripted_from_spec
from alma.types import Message


class Step(BaseModel):
    thought: str
    action: str


def turn(room: str, actions: list[str]) -> str:
    listed = "\n".join(f"- {a}" for a in actions)
    return f"Observation:\nYou are in the {room}.\n\nAdmissible actions:\n{listed}\n"


def test_admissible_actions_parsed_from_the_last_list() -> None:
    prompt = turn("hall", ["go north"]) + "\n" + turn("kitchen", ["take key", "go south"])
    assert admissible_actions(prompt) == ["take key", "go south"]
    assert admissible_actions("no list here") == []


async def test_explorer_prefers_new_things() -> None:
    llm = ScriptedLLM()
    first = await llm.complete(
        [Message("user", turn("hall", ["look", "go north", "take lamp"]))], schema=Step
    )
    assert isinstance(first.parsed, Step) and first.parsed.action == "take lamp"
    history = [
        Message("user", turn("hall", ["go east", "go north"])),
        Message("assistant", json.dumps({"thought": "", "action": "go east"})),
        Message("user", turn("hall", ["go east", "go north"])),  # east was locked
    ]
    second = await llm.complete(history, schema=Step)
    assert second.parsed is not None and second.parsed.action == "go north"
    assert second.usage.prompt_tokens > 0 and second.usage.completion_tokens > 0


async def test_rules_win_and_bad_rules_fail_clearly() -> None:
    llm = ScriptedLLM(rules=[Rule("capital", "Paris"), Rule("json please", {"thought": 1})])
    answer = await llm.complete([Message("user", "the capital of France?")])
    assert answer.text == "Paris"
    with pytest.raises(MalformedOutputError, match="does not match Step"):
        await llm.complete([Message("user", "json please")], schema=Step)


class Insight(BaseModel):
    title: str = Field(min_length=3)
    score: int = Field(ge=2)
    tags: list[str] = Field(min_length=1)
    kind: str = "note"


class Bundle(BaseModel):
    items: list[Insight] = Field(min_length=2)
    ok: bool
    extra: Insight | None = None


async def test_any_schema_is_filled_validly() -> None:
    answer = await ScriptedLLM().complete([Message("user", "summarise this")], schema=Bundle)
    assert isinstance(answer.parsed, Bundle)
    assert len(answer.parsed.items) == 2 and answer.parsed.items[0].score == 2
    assert fill_schema({"type": "string", "maxLength": 5}, "abcdefgh") == "scrip"


async def test_policy_function_and_latency() -> None:
    llm = ScriptedLLM(lambda messages, schema: {"thought": "t", "action": "wait"}, latency_s=0.01)
    answer = await llm.complete([Message("user", "x")], schema=Step)
    assert answer.parsed == Step(thought="t", action="wait") and answer.latency_s == 0.01


def test_specs(tmp_path: Path) -> None:
    assert scripted_from_spec("").policy is not None
    assert scripted_from_spec("random").policy.__name__ == "random_policy"
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"match": "hi", "response": "hello"}]))
    assert len(scripted_from_spec(str(rules)).rules) == 1
    with pytest.raises(UsageError, match="neither a policy nor a rules file"):
        scripted_from_spec("nonsense")
    rules.write_text("[{}]")
    with pytest.raises(UsageError, match="invalid"):
        scripted_from_spec(str(rules))
