"""An unreliable endpoint never changes a score: ``alma eval`` against a fake server that answers
30 % of requests with a fault (429 with and without Retry-After, 500, 503, reset, hang, truncated
or malformed body, empty choices, schema breaks, slow answers) either gives exactly the
fault-free score or ends ``incomplete`` with a clear line, never another score with exit 0.

The fake's good answers are the scripted explorer's, a pure function of the conversation, so the
fault-free score is known and every retry of a request gets the same answer.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from alma.cli import main
from alma.llm.scripted import explorer_policy
from alma.types import Message
from fake_openai import Answer, FakeOpenAI, chaos

REPAIR = "Your previous answer is not valid"
SETTINGS = "[llm]\nmax_retries = 5\nbackoff_base_s = 0.005\nbackoff_max_s = 0.02\ntimeout_s = 1.0\n"


def explorer(body: dict[str, Any]) -> Answer:
    """What the scripted explorer answers to this conversation (a repair round gets the answer
    the original request should have had)."""
    messages = [Message(m["role"], m["content"]) for m in body["messages"]]
    if messages[-1].content.startswith(REPAIR):
        messages = messages[:-2]
    from alma.agent.conversation import AgentStep

    return Answer(json.dumps(explorer_policy(messages, AgentStep)), prompt_tokens=50)


def evaluate(
    capsys: pytest.CaptureFixture[str], fake: FakeOpenAI, run_dir: Path
) -> tuple[int, dict[str, Any], str]:
    args = ["eval", "--domain", "toy", "--memory", "trajectory_retrieval", "--quick"]
    args += ["--agent-model", "openai:fake-model", "--memory-model", "scripted"]
    args += ["--base-url", fake.base_url, "--no-cache", "--max-steps", "6"]
    code = main([*args, "--run-dir", str(run_dir), "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.strip() else {}, captured.err


def invalid_steps(run_dir: Path) -> int:
    with sqlite3.connect(run_dir / "alma.sqlite") as db:
        rows = db.execute("SELECT data FROM episodes").fetchall()
    return sum(
        not step["valid"] for (data,) in rows for step in json.loads(data)["episode"]["steps"]
    )


@pytest.fixture
def settings(tmp_path: Path) -> None:
    with (tmp_path / "alma.toml").open("a") as file:
        file.write(SETTINGS)


def test_chaos_gives_the_fault_free_score_or_an_incomplete_evaluation(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, settings: None
) -> None:
    with FakeOpenAI(default=explorer) as fake:
        code, clean, _ = evaluate(capsys, fake, tmp_path / "clean")
    assert code == 0 and clean["status"] == "done"

    outcomes = []
    for seed in range(3):
        run_dir = tmp_path / f"chaos-{seed}"
        faults = chaos(explorer, rate=0.3, seed=seed, hang_s=2.0)
        with FakeOpenAI(default=faults) as fake:
            code, result, err = evaluate(capsys, fake, run_dir)
        assert sum(n for fault, n in faults.drawn.items() if fault != "good") >= 5
        if code == 0:
            # the only way to another score: an answer that broke the schema twice in a row,
            # which the agent pays for as an invalid step, as the benchmarks count it
            if invalid_steps(run_dir) == 0:
                assert result["score"] == clean["score"]
                assert result["per_task"] == clean["per_task"]
            assert result["usage"]["agent"]["retries"] > 0  # the retries are on the record
            outcomes.append("score")
        else:
            assert code == 1 and result["status"] == "incomplete" and result["score"] is None
            assert "incomplete" in err and "Traceback" not in err
            outcomes.append("incomplete")
    assert "score" in outcomes


def test_an_outage_is_never_a_score_and_a_rerun_plays_only_what_is_missing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, settings: None
) -> None:
    run_dir = tmp_path / "run"
    outage = chaos(explorer, rate=1.0, seed=0, hang_s=2.0)
    outage.faults = ("503",)
    with FakeOpenAI(default=outage) as fake:
        code, result, err = evaluate(capsys, fake, run_dir)
    assert code == 1 and result["status"] == "incomplete" and result["score"] is None
    assert "HTTP 503" in err and "incomplete" in err
    with sqlite3.connect(run_dir / "alma.sqlite") as db:
        (status,) = db.execute("SELECT status FROM evaluations").fetchone()
    assert status == "incomplete"

    with FakeOpenAI(default=explorer) as fake:  # the endpoint is back
        code, result, _ = evaluate(capsys, fake, run_dir)
    with FakeOpenAI(default=explorer) as fake:
        code_clean, clean, _ = evaluate(capsys, fake, tmp_path / "clean")
    assert code == code_clean == 0 and result["score"] == clean["score"]
    assert result["resumed_episodes"] == 0  # nothing had finished: nothing was reused

    # and once done, the evaluation is reused as it is: not a single request is sent
    with FakeOpenAI(default=explorer) as fake:
        code, again, _ = evaluate(capsys, fake, run_dir)
        assert code == 0 and again["reused"] and fake.chat_requests == []
