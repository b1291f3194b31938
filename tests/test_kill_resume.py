"""A kill -9 campaign on ``alma learn``: killed at random moments (and once while the first
generated design is being evaluated), then resumed, the run ends with the same archive and scores
as a run never interrupted; every evaluation is done once and no finished episode is played
again."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

LEARN = [
    "learn", "--domain", "toy", "--iterations", "2", "--parents-per-iteration", "2", "--quick",
    "--agent-model", "scripted@0.05", "--max-steps", "3", "--seed-designs", "baselines",
]  # fmt: skip
EPISODES_PER_EVALUATION = 2 + 3 * 3  # quick: 2 build tasks, 3 deploy tasks three times


def alma(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "alma", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def finish(process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    _, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err.decode()


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    # its sandbox workers notice their parent died and end too: nothing of the run lingers
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    raise AssertionError("a process of the killed run outlived it")


def query(run_dir: Path, sql: str) -> list[tuple[object, ...]]:
    if not (run_dir / "alma.sqlite").exists():
        return []
    with sqlite3.connect(run_dir / "alma.sqlite", timeout=30) as db:
        try:
            return list(db.execute(sql).fetchall())
        except sqlite3.OperationalError:  # a table not made yet
            return []


def archive(run_dir: Path) -> list[tuple[object, ...]]:
    designs = query(
        run_dir,
        "SELECT d.id, d.status, d.parent, d.iteration, e.score FROM designs d LEFT JOIN"
        " design_evaluations e ON e.design_id = d.id AND e.role = 'train' ORDER BY d.id",
    )
    return designs


def first_generated_evaluating(run_dir: Path) -> bool:
    return bool(
        query(
            run_dir,
            "SELECT 1 FROM evaluations e JOIN designs d ON d.id = e.design_id WHERE"
            " d.origin = 'generated' AND d.iteration = 0 AND e.status = 'running' AND"
            " (SELECT COUNT(*) FROM episodes WHERE label = e.key) > 0",
        )
    )


def agent_calls(run_dir: Path) -> int:
    rows = query(
        run_dir, "SELECT COUNT(*) FROM llm_calls WHERE purpose = 'agent' AND kind = 'chat'"
    )
    return int(rows[0][0]) if rows else 0


def test_killed_and_resumed_learn_ends_as_if_never_interrupted(tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    finish(alma(*LEARN, "--run-dir", str(whole)))

    run_dir = tmp_path / "killed"
    rng = random.Random(16)
    kills = 0
    # the first kill lands while the first generated design is being evaluated
    process = alma(*LEARN, "--run-dir", str(run_dir))
    deadline = time.monotonic() + 60
    while not first_generated_evaluating(run_dir):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    kill(process)
    kills += 1
    for _ in range(4):  # then at random moments of the resumed runs
        process = alma("learn", "--resume", str(run_dir))
        time.sleep(rng.uniform(0.8, 3.0))
        if process.poll() is not None:
            break
        kill(process)
        kills += 1
    finish(alma("learn", "--resume", str(run_dir)))

    assert archive(run_dir) == archive(whole)
    statuses = query(run_dir, "SELECT status FROM evaluations")
    assert statuses and {status for (status,) in statuses} == {"done"}
    # no finished episode was played twice: one row per (evaluation, phase, repeat, task)
    rows = query(run_dir, "SELECT label, task_id, data FROM episodes")
    slots = Counter(
        (label, task, json.loads(data)["phase"], json.loads(data)["repeat"])
        for label, task, data in rows
    )
    assert max(slots.values()) == 1
    per_evaluation = Counter(slot[0] for slot in slots)
    assert set(per_evaluation.values()) == {EPISODES_PER_EVALUATION}
    # model calls beyond the uninterrupted run's: only the steps of episodes cut by a kill
    # (at most 8 episodes in flight, 3 steps each)
    extra = agent_calls(run_dir) - agent_calls(whole)
    assert 0 <= extra <= kills * 8 * 3, (extra, kills)
