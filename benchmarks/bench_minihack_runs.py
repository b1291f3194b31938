"""Back-to-back ``alma eval --domain minihack --quick --agent-model scripted`` runs at the default
episode concurrency: each run's wall time, and whether any froze (ran past the timeout). NetHack's
game set-up once deadlocked two threads in most such runs; every run should now take seconds.

    .venv/bin/python benchmarks/bench_minihack_runs.py [--runs 10] [--timeout 120]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(folder: Path, index: int, timeout: float) -> float | None:
    """Wall seconds of one run, or None if it froze (it is then killed)."""
    command = [sys.executable, "-m", "alma", "eval", "--domain", "minihack", "--quick"]
    command += ["--agent-model", "scripted", "--memory", "no_memory", "--json"]
    command += ["--run-dir", str(folder / f"run-{index}")]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=folder, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        raise SystemExit(f"run {index} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        times = []
        for index in range(args.runs):
            seconds = one_run(Path(folder), index, args.timeout)
            shown = "FROZE (killed)" if seconds is None else f"{seconds:.2f} s"
            print(f"run {index + 1:>2}: {shown}", flush=True)
            times.append(seconds)
    finished = [s for s in times if s is not None]
    froze = len(times) - len(finished)
    if finished:
        print(
            f"{len(finished)} finished, {froze} froze; median {statistics.median(finished):.2f} s, "
            f"max {max(finished):.2f} s"
        )
    sys.exit(1 if froze else 0)


if __name__ == "__main__":
    main()
