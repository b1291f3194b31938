"""``[agent] constrain_actions``: the step schema's action is an enum of the admissible actions."""

import asyncio
import json
from collections.abc import Sequence
from dataclasses import asdict
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from alma.agent.actor import Actor, constrains_actions
from alma.agent.conversation import AgentStep, step_schema
from alma.config import AlmaConfig, load_config
from alma.domains.toy import ToyDomain
from alma.errors import ConfigError
from alma.evaluate.protocol import Evaluator
from alma.llm.openai_provider import OpenAIProvider, with_schema_instruction
from alma.llm.scripted import ScriptedLLM, admissible_actions, explorer_policy
from alma.memory.loading import reference_design
from alma.run import Run
from alma.types import Episode, Message
from fake_openai import Answer, FakeOpenAI

TOY = ToyDomain()
TASK = TOY.tasks("train")[0]


def test_the_step_schema_is_an_enum_of_exactly_the_admissible_actions() -> None:
    actions = ("go north", "take blue key", "open red door", "look")
    schema = step_schema(actions)
    assert issubclass(schema, AgentStep) and schema.__name__ == "AgentStep"
    fields = schema.model_json_schema()["properties"]
    assert fields["action"]["enum"] == list(actions)
    assert fields["thought"]["maxLength"] == 300  # the thought stays short
    assert schema(thought="a key", action="take blue key").action == "take blue key"
    with pytest.raises(ValidationError):
        schema(thought="a key", action="take the blue key")
    assert step_schema(actions) is schema  # one model per set of actions
    assert step_schema(("go north", "go north")).model_json_schema()["properties"]["action"][
        "enum"
    ] == ["go north"]
    assert step_schema(None) is AgentStep and step_schema(()) is AgentStep


@pytest.mark.parametrize(
    ("setting", "spec", "expected"),
    [
        ("auto", "local", True),
        ("auto", "local-small", True),
        ("auto", "local:/models/any.gguf", True),
        ("auto", "openai:gpt-5-nano@low", False),
        ("auto", "scripted", False),
        ("auto", "my-registered-model", False),
        (True, "openai:gpt-5-nano", True),
        (True, "scripted:first", True),
        (False, "local-small", False),
    ],
)
def test_auto_is_on_for_the_embedded_models_only(
    setting: bool | str, spec: str, expected: bool
) -> None:
    assert constrains_actions(setting, spec) is expected  # type: ignore[arg-type]
    agent = AlmaConfig.model_validate({"agent": {"constrain_actions": setting}}).agent
    actor = Actor.configured(ScriptedLLM(), TOY, agent, spec)
    assert actor.constrain_actions is expected


def test_the_setting_is_auto_by_default_and_checked() -> None:
    assert AlmaConfig().agent.constrain_actions == "auto"
    with pytest.raises(ConfigError, match="constrain_actions"):
        load_config(overrides={"agent": {"constrain_actions": "sometimes"}})


class Recording:
    """A game policy that records the schema of every call; answers ``answer`` when given."""

    def __init__(self, answer: str | None = None) -> None:
        self.answer = answer
        self.calls: list[tuple[list[str], type[BaseModel] | None]] = []

    def __call__(self, messages: Sequence[Message], schema: type[BaseModel] | None) -> Any:
        self.calls.append((admissible_actions(messages[-1].content), schema))
        if self.answer is not None:
            return {"thought": "dancing", "action": self.answer}
        return explorer_policy(messages, schema)


def play(policy: Recording, constrain: bool, max_steps: int = 4) -> Episode:
    actor = Actor(ScriptedLLM(policy), TOY, max_steps=max_steps, constrain_actions=constrain)
    return asyncio.run(actor.run(TASK, seed=1))


def test_each_step_asks_for_the_actions_of_its_own_observation() -> None:
    policy = Recording()
    episode = play(policy, constrain=True, max_steps=6)
    assert episode.constrained and len(policy.calls) == episode.outcome.steps == 6
    for listed, schema in policy.calls:
        assert schema is not None and listed
        assert schema.model_json_schema()["properties"]["action"]["enum"] == listed
    assert episode.invalid_actions == 0
    unconstrained = Recording()
    assert not play(unconstrained, constrain=False).constrained
    assert all(schema is AgentStep for _, schema in unconstrained.calls)


def test_an_answer_outside_the_admissible_actions_is_rejected() -> None:
    constrained = play(Recording(answer="dance wildly"), constrain=True)
    # validation refused it: nothing was sent to the game, each step is invalid
    assert constrained.invalid_actions == 4
    assert all(not step.valid and step.action == "" for step in constrained.steps)
    assert constrained.final_observation == constrained.start.observation
    free = play(Recording(answer="dance wildly"), constrain=False)
    # unconstrained, the answer reaches the game as it was written (and matches nothing)
    assert free.invalid_actions == 4
    assert all(step.action == "dance wildly" for step in free.steps)


def test_episodes_round_trip_constrained_and_old_ones_load() -> None:
    episode = play(Recording(), constrain=True, max_steps=2)
    data = json.loads(json.dumps(asdict(episode)))
    assert Episode.from_dict(data) == episode and Episode.from_dict(data).constrained
    del data["constrained"]  # an episode recorded before the field existed
    assert Episode.from_dict(data).constrained is False


async def test_the_evaluation_key_includes_the_resolved_setting(tmp_path: Path) -> None:
    keys = {}
    for name, agent, setting in [
        ("scripted-auto", "scripted", "auto"),
        ("scripted-off", "scripted", False),
        ("scripted-on", "scripted", True),
        ("local-auto", "local-small", "auto"),
        ("local-on", "local-small", True),
        ("local-off", "local-small", False),
        ("local-skip", "local-small", "skip"),
    ]:
        skip = setting == "skip"
        config = load_config(
            overrides={
                "models": {"agent": agent},
                "agent": {"constrain_actions": "auto" if skip else setting, "skip_no_ops": skip},
                "sandbox": {"mode": "in_process"},  # no worker: only the key is asked for
            }
        )
        async with Run(config, tmp_path / name) as run:
            evaluator = Evaluator(run, TOY)
            keys[name] = evaluator.evaluation_key(
                reference_design("no_memory"), "train", TOY.tasks("train")[:4], False
            )
    # what matters is the resolved setting, not how it was written
    assert keys["scripted-auto"] == keys["scripted-off"] != keys["scripted-on"]
    assert keys["local-auto"] == keys["local-on"] != keys["local-off"]
    assert keys["local-skip"] not in (keys["local-on"], keys["local-off"])  # never mixed


async def test_native_json_schema_keeps_the_prompt_append_only() -> None:
    """The enum travels in ``response_format``, never in the messages, and the admissible
    actions close only the newest turn: each request keeps the previous one's messages but its
    last, whose step count and actions are left out, so an endpoint's prompt cache stays warm;
    in ``json_object`` mode the schema goes into
    the system message and changes with the actions."""

    def answer(body: dict[str, Any]) -> Answer:
        messages = [Message(m["role"], m["content"]) for m in body["messages"]]
        return Answer(json.dumps(explorer_policy(messages, AgentStep)))

    with FakeOpenAI(default=answer) as fake:
        provider = OpenAIProvider("m", base_url=fake.base_url, api_key="k", max_retries=0)
        actor = Actor(provider, TOY, max_steps=4, constrain_actions=True)
        episode = await actor.run(TASK, seed=1)
        await provider.close()
        bodies = [request.body for request in fake.requests]
    assert episode.invalid_actions == 0 and len(bodies) == 4
    for before, after in pairwise(bodies):
        kept = len(before["messages"]) - 1
        assert after["messages"][:kept] == before["messages"][:kept]
        last = before["messages"][-1]["content"]
        assert after["messages"][kept]["content"] == last.split("\n\nStep ")[0]
    for body in bodies:  # the actions are listed once, in the newest turn
        listed = [m["role"] for m in body["messages"] if "Admissible actions:" in m["content"]]
        assert listed == ["user"] and "Admissible actions:" in body["messages"][-1]["content"]
    enums = [
        body["response_format"]["json_schema"]["schema"]["properties"]["action"]["enum"]
        for body in bodies
    ]
    assert len({tuple(e) for e in enums}) > 1  # the actions changed, the messages only grew
    as_object = [
        with_schema_instruction(body["messages"], step_schema(tuple(enum)))
        for body, enum in zip(bodies, enums, strict=True)
    ]
    systems = {messages[0]["content"] for messages in as_object}
    assert len(systems) == len({tuple(e) for e in enums})  # a new system message per action set


async def test_skip_no_ops_offers_no_action_that_changed_nothing_here() -> None:
    """An action that left an observation unchanged is not offered again in that observation
    (a small model's loop on `look` ends), while every other admissible action stays."""
    seen: list[tuple[str, ...]] = []

    def looker(messages: Sequence[Message], schema: type[BaseModel] | None) -> dict[str, Any]:
        assert schema is not None
        offered = tuple(schema.model_json_schema()["properties"]["action"]["enum"])
        seen.append(offered)
        return {"thought": "", "action": "look" if "look" in offered else offered[0]}

    actor = Actor(ScriptedLLM(looker), TOY, max_steps=3, constrain_actions=True, skip_no_ops=True)
    episode = await actor.run(TASK, seed=1)
    assert [step.action for step in episode.steps][:1] == ["look"]
    assert "look" in seen[0] and "look" not in seen[1]  # it changed nothing: not offered again
    assert set(seen[1]) == set(seen[0]) - {"look"}
    stays = Actor(ScriptedLLM(looker), TOY, max_steps=3, constrain_actions=True)
    repeated = await stays.run(TASK, seed=1)
    assert [step.action for step in repeated.steps] == ["look"] * 3  # without it: a loop
