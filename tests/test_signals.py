"""SIGTERM and SIGHUP stop alma the way Ctrl-C does: work saved, workers closed, one line."""

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alma.cli import restore_handlers, stop_like_ctrl_c

SLOW_EVAL = [
    *("eval", "--domain", "toy", "--memory", "no_memory"),
    *("--agent-model", "scripted@0.05", "--tasks", "10"),
]


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, their children...)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for_episodes(database: Path, process: subprocess.Popen[bytes], at_least: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the evaluation ended before the signal"
        if database.exists():
            try:
                with sqlite3.connect(database) as db:
                    if db.execute("SELECT COUNT(*) FROM episodes").fetchone()[0] >= at_least:
                        return
            except sqlite3.OperationalError:
                pass  # the tables are not made yet
        time.sleep(0.05)
    raise AssertionError("no episodes were recorded in time")


@pytest.mark.parametrize(
    ("signum", "code", "ctrl_c_ignored"),
    [
        (signal.SIGTERM, 143, False),
        (signal.SIGHUP, 129, False),
        (signal.SIGTERM, 143, True),  # started in the background, where Ctrl-C is ignored
    ],
)
def test_signal_stops_an_evaluation_like_ctrl_c(
    tmp_path: Path, signum: signal.Signals, code: int, ctrl_c_ignored: bool
) -> None:
    run = tmp_path / "run"

    def ignore_ctrl_c() -> None:
        if ctrl_c_ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    process = subprocess.Popen(
        [sys.executable, "-m", "alma", *SLOW_EVAL, "--run-dir", str(run)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        preexec_fn=ignore_ctrl_c,
    )
    try:
        wait_for_episodes(run / "alma.sqlite", process, at_least=2)
        workers = descendants(process.pid)
        for _ in range(100):  # on a loaded machine the worker may still be starting
            if workers:
                break
            time.sleep(0.1)
            workers = descendants(process.pid)
        assert workers, "the design runs in a worker process"
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    name = signal.Signals(signum).name
    lines = err.decode().splitlines()
    assert process.returncode == code, err.decode()
    assert lines[-1] == f"interrupted by {name}: what was finished is saved in the run directory"
    assert "Traceback" not in err.decode() and "error" not in err.decode()
    with sqlite3.connect(run / "alma.sqlite") as db:
        status = db.execute("SELECT status FROM evaluations").fetchone()[0]
        saved = db.execute("SELECT COUNT(*) FROM episodes").fetchone()[0]
    assert status == "interrupted" and 2 <= saved < 20
    assert not [pid for pid in workers if alive(pid)]  # every worker was closed


@pytest.mark.parametrize("ctrl_c_ignored", [False, True])
def test_signal_without_an_event_loop_raises_keyboard_interrupt(ctrl_c_ignored: bool) -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    if ctrl_c_ignored:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    received: list[signal.Signals] = []
    try:
        previous = stop_like_ctrl_c(received)
        try:
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGTERM)
                time.sleep(5)  # never reached: the handler runs before the next instruction
        finally:
            restore_handlers(previous)
        assert received == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) == before[0]
        ignored = signal.SIG_IGN if ctrl_c_ignored else before[1]
        assert signal.getsignal(signal.SIGINT) == ignored
        assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    finally:
        signal.signal(signal.SIGINT, before[1])


def test_signal_inside_asyncio_run_cancels_the_main_task() -> None:
    """As Ctrl-C inside ``asyncio.run``: the main task is cancelled (its cleanup runs, and may
    await), then KeyboardInterrupt."""
    cleaned: list[str] = []

    async def work() -> None:
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)  # cleanup may still await
            cleaned.append("cancelled")
            raise

    received: list[signal.Signals] = []
    previous = stop_like_ctrl_c(received)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            asyncio.run(work())
    finally:
        restore_handlers(previous)
    assert cleaned == ["cancelled"] and received == [signal.SIGHUP]
    assert time.monotonic() - started < 2


def test_an_interrupted_search_says_how_to_resume(tmp_path: Path) -> None:
    run = tmp_path / "search"
    args = ["learn", "--domain", "toy", "--agent-model", "scripted@0.05", "--tasks", "10"]
    process = subprocess.Popen(
        [sys.executable, "-m", "alma", *args, "--run-dir", str(run)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        wait_for_episodes(run / "alma.sqlite", process, at_least=2)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = err.decode().splitlines()
    assert process.returncode == 130, err.decode()
    assert lines[-2:] == [
        "interrupted: what was finished is saved in the run directory",
        f"hint: go on with: alma learn --resume {run}",
    ]
