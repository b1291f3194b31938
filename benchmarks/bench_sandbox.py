"""Sandbox costs, side by side with running the same design in-process.

1. RPC overhead: median ``retrieve`` round trip of a trivial design, sandboxed vs in-process
   (target: under 2 ms added);
2. worker start-up: launching an isolated worker and loading a design (target: under 300 ms);
3. end to end: ``alma eval --quick`` on the toy domain with the scripted model, as a user runs
   it (a fresh process each time), sandboxed vs in-process (target: ratio under 1.3); also
   sandboxed with the worker spawned only after the CLI's imports (what the entry point's
   early worker saves).

    .venv/bin/python benchmarks/bench_sandbox.py [--calls 500] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from alma.llm.embeddings import HashEmbedder
from alma.llm.scripted import ScriptedLLM
from alma.memory.loading import reference_design
from alma.memory.runner import InProcessFactory
from alma.memory.toolkit import ModelServices
from alma.sandbox.isolation import available, describe
from alma.sandbox.runner import SandboxFactory, SandboxSettings
from alma.types import EpisodeStart

START = EpisodeStart("toy", "Find the coin and take it.", "You are in the hall.")


async def round_trips(factory: object, calls: int) -> float:
    services = ModelServices(ScriptedLLM(), HashEmbedder())
    runner = await factory.start(reference_design("no_memory"), services, 0)  # type: ignore[attr-defined]
    for _ in range(50):
        await runner.retrieve(START)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        await runner.retrieve(START)
        times.append((time.perf_counter() - started) * 1000)
    await runner.close()
    return statistics.median(times)


async def start_ups(settings: SandboxSettings, count: int) -> float:
    services = ModelServices(ScriptedLLM(), HashEmbedder())
    factory = SandboxFactory(settings)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        runner = await factory.start(reference_design("trajectory_retrieval"), services, 0)
        times.append((time.perf_counter() - started) * 1000)
        await runner.close()
    return statistics.median(times)


ENTRY = ["-m", "alma"]  # the ``alma`` entry point: spawns the first worker before the CLI imports
LATE_ENTRY = ["-c", "from alma.cli import main; main()"]  # the CLI alone: spawns it afterwards


def eval_seconds(extra: list[str], runs: int, entry: list[str] = ENTRY) -> float:
    times = []
    with tempfile.TemporaryDirectory() as folder:
        for index in range(runs):
            command = [
                sys.executable,
                *entry,
                "eval",
                "--domain",
                "toy",
                "--memory",
                "trajectory_retrieval",
                "--agent-model",
                "scripted",
                "--embedder",
                "hash",
                "--json",
                "--run-dir",
                str(Path(folder) / f"run-{index}"),
                *extra,
            ]
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, cwd=folder)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


async def main(calls: int, runs: int) -> int:
    mechanism = available()[0]
    print(f"isolation here: {describe(mechanism)}")
    hidden = (Path.home(), Path.cwd(), Path(tempfile.gettempdir()))
    settings = SandboxSettings(mechanism, hidden=hidden)
    local = await round_trips(InProcessFactory(), calls)
    boxed = await round_trips(SandboxFactory(settings), calls)
    added = boxed - local
    print(
        f"retrieve round trip : in-process {local:.3f} ms, sandboxed {boxed:.3f} ms, "
        f"added {added:.3f} ms"
    )
    startup = await start_ups(settings, 10)
    print(f"worker start-up     : median {startup:.0f} ms")
    inproc = eval_seconds(["--quick", "--in-process"], runs)
    sandboxed = eval_seconds(["--quick"], runs)
    late = eval_seconds(["--quick"], runs, LATE_ENTRY)
    ratio = sandboxed / inproc
    print(
        f"alma eval --quick   : in-process {inproc:.2f} s, sandboxed {sandboxed:.2f} s, "
        f"ratio {ratio:.2f} (worker spawned after the CLI's imports: {late:.2f} s, "
        f"ratio {late / inproc:.2f})"
    )
    bigger_in = eval_seconds(["--tasks", "30", "--in-process"], max(1, runs // 2))
    bigger_box = eval_seconds(["--tasks", "30"], max(1, runs // 2))
    print(
        f"alma eval --tasks 30: in-process {bigger_in:.2f} s, sandboxed {bigger_box:.2f} s, "
        f"ratio {bigger_box / bigger_in:.2f}"
    )
    ok = added < 2.0 and startup < 300 and ratio < 1.3
    print(f"targets: added < 2 ms, start-up < 300 ms, ratio < 1.3: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.calls, args.runs)))
