"""No run leaves anything behind: its workers, their process-limit cgroups and scratch folders
go with it (normal end, error, Ctrl-C), and those of a run killed outright are swept by the
next run. Runs are real ``alma`` processes on the toy domain with the scripted model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from alma.sandbox.isolation import CGROUP_PREFIX, PIDS_ROOTS, SCRATCH_PREFIX

RUN = """
import sys
from stuck_domain import register
register()
from alma.__main__ import main
sys.argv[0] = "alma"
main()
"""
FAILING_DESIGN = """
from alma.memory import MemoryDesign


class Failing(MemoryDesign):
    def __init__(self, toolkit):
        raise RuntimeError("no memory today")

    async def retrieve(self, start):
        return {}

    async def update(self, episode):
        return None
"""


def litter(pid: int) -> list[str]:
    """The cgroups and scratch folders named after process ``pid``."""
    found = [str(p) for p in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}{pid}-*")]
    for root in PIDS_ROOTS:
        found += [str(p) for p in root.glob(f"{CGROUP_PREFIX}{pid}-*")]
    return found


def workers_of(pid: int) -> list[int]:
    """Processes (workers, their sandboxes) whose command line names a scratch folder of
    ``pid``'s."""
    mark = f"{SCRATCH_PREFIX}{pid}-".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if mark in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def start(tmp_path: Path, *args: str, domain: str = "toy") -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).parent),
        "STUCK_MARKER": str(tmp_path / "hung"),
    }
    command = [sys.executable, "-c", RUN, "eval", "--domain", domain, "--quick", *args]
    command += ["--run-dir", str(tmp_path / f"run-{time.monotonic_ns()}"), "--json"]
    return subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def finish(process: subprocess.Popen[bytes], timeout: float = 120) -> int:
    try:
        process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode


def wait_until_hung(process: subprocess.Popen[bytes], marker: Path) -> None:
    deadline = time.monotonic() + 60
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), process.communicate(timeout=5)


def test_a_finished_run_leaves_nothing(tmp_path: Path) -> None:
    process = start(tmp_path, "--memory", "no_memory")
    assert finish(process) == 0
    assert litter(process.pid) == [] and workers_of(process.pid) == []


def test_a_failed_run_leaves_nothing(tmp_path: Path) -> None:
    design = tmp_path / "failing.py"
    design.write_text(FAILING_DESIGN)
    process = start(tmp_path, "--design", str(design))
    assert finish(process) == 1
    assert litter(process.pid) == [] and workers_of(process.pid) == []


def test_an_interrupted_run_leaves_nothing(tmp_path: Path) -> None:
    process = start(tmp_path, "--memory", "no_memory", domain="stuck")
    wait_until_hung(process, tmp_path / "hung")
    process.send_signal(signal.SIGINT)
    assert finish(process, timeout=10) == 130
    assert litter(process.pid) == [] and workers_of(process.pid) == []


def test_a_killed_run_s_leftovers_are_swept_by_the_next(tmp_path: Path) -> None:
    killed = start(tmp_path, "--memory", "no_memory", domain="stuck")
    wait_until_hung(killed, tmp_path / "hung")
    assert workers_of(killed.pid)  # its worker is up, isolated, in a scratch folder of its own
    left = litter(killed.pid)
    assert left
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    deadline = time.monotonic() + 5  # a worker whose parent died exits by itself
    while workers_of(killed.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert workers_of(killed.pid) == []
    assert litter(killed.pid) == left  # nothing removed them yet

    later = start(tmp_path, "--memory", "no_memory")
    assert finish(later) == 0
    assert litter(killed.pid) == [] and litter(later.pid) == []


def test_the_folders_of_a_live_run_are_not_swept(tmp_path: Path) -> None:
    running = start(tmp_path, "--memory", "no_memory", domain="stuck")
    try:
        wait_until_hung(running, tmp_path / "hung")
        left = litter(running.pid)
        later = start(tmp_path, "--memory", "no_memory")
        assert finish(later) == 0
        assert litter(running.pid) == left and workers_of(running.pid)
    finally:
        running.kill()
        running.wait()
