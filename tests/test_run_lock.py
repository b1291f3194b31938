"""One process at a time in a run folder: a second one is refused, naming the first."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alma.cli import main
from alma.errors import RunInUseError
from alma.run_lock import LOCK_FILE, RunLock
from alma.store import new_run_dir

EVAL = ["eval", "--domain", "toy", "--memory", "no_memory"]

HOLDER = """
import sys
from pathlib import Path
from alma.run_lock import RunLock

lock = RunLock(Path(sys.argv[1]), "alma learn")
print("held", flush=True)
sys.stdin.read()  # hold it until told to stop (or killed)
"""


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def hold(run: Path) -> subprocess.Popen[str]:
    """Another process holding the run folder."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def test_second_lock_is_refused_naming_the_holder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    first = RunLock(run, "alma eval")
    assert (run / LOCK_FILE).read_text() == f"{os.getpid()} alma eval\n"
    with pytest.raises(RunInUseError) as refused:
        RunLock(run, "alma learn")
    holder = f"process {os.getpid()} (alma eval)"
    assert refused.value.message == f"run folder {run} is in use by {holder}"
    assert refused.value.hint == "wait for it to finish, or use another --run-dir"
    assert (run / LOCK_FILE).read_text() == f"{os.getpid()} alma eval\n"  # untouched
    first.release()
    first.release()  # twice is harmless
    assert (run / LOCK_FILE).read_text() == ""
    again = RunLock(run, "alma learn")
    assert again.held
    again.release()


def test_eval_is_refused_while_another_process_holds_the_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    holder = hold(run)
    try:
        code, out, err = run_cli(capsys, *EVAL, "--quick", "--run-dir", str(run))
        assert code == 1 and out == ""
        assert err.splitlines() == [
            f"error: run folder {run} is in use by process {holder.pid} (alma learn)",
            "hint: wait for it to finish, or use another --run-dir",
        ]
        assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE]  # no work was done
        # reading needs no lock
        code, _, err = run_cli(capsys, "archive", str(run))
        assert code == 2 and "is not a run directory" in err  # (nothing written yet)
    finally:
        holder.kill()  # kill -9: the OS frees the lock; nothing stale is left
        holder.wait()
        for stream in (holder.stdin, holder.stdout, holder.stderr):
            if stream is not None:
                stream.close()
    code, out, err = run_cli(capsys, *EVAL, "--quick", "--json", "--run-dir", str(run))
    assert code == 0, err
    assert json.loads(out)["score"] is not None


def test_two_evaluations_on_one_folder_do_not_duplicate_work(tmp_path: Path) -> None:
    run = tmp_path / "run"
    slow = [*EVAL, "--agent-model", "scripted@0.05", "--tasks", "10", "--run-dir", str(run)]
    first = subprocess.Popen(
        [sys.executable, "-m", "alma", *slow, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 60
        while not (run / LOCK_FILE).is_file() or not (run / LOCK_FILE).read_text():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        second = subprocess.run(
            [sys.executable, "-m", "alma", *slow],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )
        still_running = first.poll() is None
        _, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGKILL)
            first.wait()
    assert still_running, "the first evaluation ended before the second was refused"
    assert second.returncode == 1
    assert second.stderr.splitlines()[0] == (
        f"error: run folder {run} is in use by process {first.pid} (alma eval)"
    )
    assert "Traceback" not in second.stderr
    assert first.returncode == 0, err.decode()
    with sqlite3.connect(run / "alma.sqlite") as db:
        evaluations = db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
        episodes = db.execute("SELECT COUNT(*) FROM episodes").fetchone()[0]
    assert evaluations == 1 and episodes == 5 + 3 * 5  # build half + three deploy repeats


def test_fresh_run_folders_made_in_the_same_second_are_distinct(tmp_path: Path) -> None:
    made = {new_run_dir(tmp_path, "eval") for _ in range(5)}
    assert len(made) == 5 and all(path.is_dir() for path in made)
