"""The whole model stack a run builds (factory → metered → cached → provider) against the fake
OpenAI-compatible server: faults leave the ledger intact, play works over HTTP, embeddings too."""

import json
import sqlite3
from pathlib import Path

import pytest
from pydantic import BaseModel

from alma.cli import main
from alma.config import load_config
from alma.errors import LLMError
from alma.run import Run
from alma.types import Message
from fake_openai import FakeOpenAI, answer, rate_limited, server_error


class Verdict(BaseModel):
    ok: bool


def config_for(fake: FakeOpenAI, tmp_path: Path, **llm: object) -> object:
    overrides = {
        "models": {"agent": "openai:gpt-5-nano", "embedder": "openai:text-embedding-3-small"},
        "llm": {"base_url": fake.base_url, "max_retries": 1, "backoff_base_s": 0.01, **llm},
        "run": {"root": str(tmp_path / "runs")},
    }
    return load_config(overrides=overrides)


async def test_a_failing_call_keeps_what_the_ledger_already_has(tmp_path: Path) -> None:
    with FakeOpenAI() as fake:
        fake.script(
            answer('{"ok": true}', prompt_tokens=100, completion_tokens=7),
            server_error(),
            rate_limited(),
        )
        config = config_for(fake, tmp_path)
        async with Run(config, tmp_path / "run") as run:  # type: ignore[arg-type]
            llm = run.models.for_role("agent")
            first = await llm.complete([Message("user", "judge")], schema=Verdict)
            assert first.parsed == Verdict(ok=True)
            with pytest.raises(LLMError, match="2 attempts"):
                await llm.complete([Message("user", "again")], schema=Verdict)
    db = sqlite3.connect(tmp_path / "run" / "alma.sqlite")
    rows = db.execute("SELECT kind, prompt_tokens, error FROM llm_calls ORDER BY id").fetchall()
    assert rows[0] == ("chat", 100, None)
    assert rows[1] == (
        "retry",
        0,
        "HTTP 500: The server had an error while processing your request",
    )
    assert rows[2][:2] == ("chat", 0) and "LLMError" in rows[2][2] and "HTTP 429" in rows[2][2]


async def test_embedding_retries_are_on_the_record(tmp_path: Path) -> None:
    with FakeOpenAI(embedding_dim=8) as fake:
        fake.script_embeddings(rate_limited())
        config = config_for(fake, tmp_path)
        async with Run(config, tmp_path / "run") as run:  # type: ignore[arg-type]
            await run.models.embedder().embed(["a red key"])
            tally = run.ledger.by_purpose["memory"]
            assert (tally.calls, tally.retries) == (1, 1)
    db = sqlite3.connect(tmp_path / "run" / "alma.sqlite")
    rows = db.execute("SELECT kind, purpose, error FROM llm_calls ORDER BY id").fetchall()
    assert rows == [
        ("retry", "memory", "HTTP 429: Rate limit reached, slow down"),
        ("embed", "memory", None),
    ]


async def test_embeddings_are_metered_with_real_usage(tmp_path: Path) -> None:
    with FakeOpenAI(embedding_dim=8) as fake:
        config = config_for(fake, tmp_path)
        async with Run(config, tmp_path / "run") as run:  # type: ignore[arg-type]
            vectors = await run.models.embedder().embed(["a red key", "a blue door"])
            assert vectors.shape == (2, 8)
            assert run.ledger.by_purpose["memory"].calls == 1
            assert run.ledger.by_purpose["memory"].prompt_tokens > 0


def test_play_over_http(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with FakeOpenAI() as fake:
        fake.script(
            *[answer(json.dumps({"thought": "explore", "action": "look"})) for _ in range(3)]
        )
        fake.default = answer(json.dumps({"thought": "", "action": "inventory"}))
        code = main(
            [
                "play",
                "--domain",
                "toy",
                "--agent-model",
                "openai:gpt-5-nano",
                "--base-url",
                fake.base_url,
                "--json",
                "--run-dir",
                str(tmp_path / "run"),
            ]
        )
        result = json.loads(capsys.readouterr().out)
        requests = fake.chat_requests
    assert code == 0
    assert result["steps_used"] == 25 and result["reason"] == "step_limit"
    assert result["cost_usd"] > 0  # gpt-5-nano is priced
    assert requests[0].body["response_format"]["type"] == "json_schema"
    # each request keeps the previous one's messages (prompt-cache friendly) but the newest
    # turn's list of admissible actions, which only the newest turn carries
    first, second = requests[0].body["messages"], requests[1].body["messages"]
    assert second[: len(first) - 1] == first[:-1]
    assert first[-1]["content"].startswith(second[len(first) - 1]["content"])
    assert "Admissible actions:" in first[-1]["content"] and "Admissible actions:" not in str(
        second[: len(first)]
    )


def test_a_users_model_class_plays_through_a_python_spec(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = "python:user_models:FirstActionModel"
    args = ["play", "--domain", "toy", "--agent-model", spec, "--json"]
    code = main([*args, "--run-dir", str(tmp_path / "run")])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["model"] == spec and data["steps_used"] > 0
    assert data["episode"]["steps"][0]["action"] == data["episode"]["steps"][0]["raw_action"]
    for bad, says in [
        ("python:no_such_module_here:Model", "cannot import 'no_such_module_here'"),
        ("python:user_models:Missing", "has no class 'Missing'"),
        ("python:user_models:NotAModel", "is not a chat model"),
        ("python:user_models", "does not name a class"),
    ]:
        code = main(["play", "--domain", "toy", "--agent-model", bad, "--run-dir", str(tmp_path)])
        err = capsys.readouterr().err
        assert code == 2 and says in err and "Traceback" not in err, err
