"""The embedded local model through alma's whole model layer (real weights, real server)."""

import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from alma.agent.actor import Actor
from alma.cli import main
from alma.config import load_config
from alma.domains.registry import open_env
from alma.domains.toy import ToyDomain
from alma.errors import LLMError
from alma.llm.local import LocalLLM
from alma.llm.weights import models_dir, weights_status
from alma.run import Run
from alma.types import Message

pytestmark = pytest.mark.local_llm
MODELS_DIR = models_dir()  # read before each test points the user cache elsewhere


class Colour(BaseModel):
    colour: str
    confident: bool


def test_one_toy_episode_with_the_local_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(
        [
            "play",
            "--domain",
            "toy",
            "--task",
            "toy-train-000",
            "--agent-model",
            "local-small",
            "--max-steps",
            "6",
            "--json",
            "--run-dir",
            str(tmp_path / "run"),
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert 1 <= result["steps_used"] <= 6 and result["tokens"] > 0 and result["cost_usd"] == 0
    agent = result["ledger"]["by_purpose"]["agent"]
    assert agent["calls"] == result["steps_used"]
    # the conversation only grows, so the server reuses its cached prompt from step to step
    if result["steps_used"] >= 3:
        assert agent["cached_tokens"] > agent["prompt_tokens"] / 2


async def test_default_model_answers_a_schema_and_survives_a_dead_server(tmp_path: Path) -> None:
    config = load_config(overrides={"models": {"agent": "local"}})
    async with Run(config, tmp_path / "run") as run:
        llm = run.models.llm("local", "agent")

        def ask(thing: str) -> list[Message]:
            return [Message("user", f"What colour is {thing}? Answer in JSON.")]

        first = await llm.complete(ask("the sky on a clear day"), schema=Colour, max_tokens=40)
        assert isinstance(first.parsed, Colour) and first.cost_usd == 0
        local = run.models._providers["local"]
        assert isinstance(local, LocalLLM) and local.server is not None
        local.server.stop()  # the server dies mid-run: restarted once, the call retried
        again = await llm.complete(ask("fresh grass"), schema=Colour, max_tokens=40)
        assert isinstance(again.parsed, Colour)
        local.server.stop()  # a second death is an error
        with pytest.raises(LLMError):
            await llm.complete(ask("a ripe lemon"), schema=Colour, max_tokens=40)
        calls = run.ledger.by_purpose["agent"]
        assert calls.calls == 3 and calls.errors == 1 and calls.cost_usd == 0


async def test_constrained_local_small_answers_only_admissible_actions(tmp_path: Path) -> None:
    pytest.importorskip("xllamacpp")
    if not weights_status("local-small", cache_dir=MODELS_DIR)["installed"]:
        pytest.skip("local-small is not installed (alma models install local-small)")
    config = load_config(overrides={"models": {"agent": "local-small"}})
    assert config.agent.constrain_actions == "auto"
    domain = ToyDomain()
    task = domain.tasks("train")[1]
    async with Run(config, tmp_path / "run") as run:
        actor = Actor.configured(
            run.models.for_role("agent"),
            domain,
            config.agent.model_copy(update={"max_steps": 3}),
            config.models.agent,
        )
        episode = await actor.run(task, seed=3)
    assert episode.constrained and episode.outcome.steps >= 2 and episode.invalid_actions == 0
    env = open_env(domain, task)  # replay: each action was listed when it was taken
    try:
        observation = env.reset()
        for step in episode.steps:
            assert observation.actions and step.raw_action in observation.actions
            assert step.valid and step.action == step.raw_action
            observation = env.step(step.action).observation
    finally:
        env.close()
