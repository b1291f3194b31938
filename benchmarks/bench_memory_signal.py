"""Does memory measurably help? The five reference designs compared on the same tasks.

Runs ``alma compare`` of no_memory, trajectory_retrieval, reasoning_bank, dynamic_cheatsheet and
g_memory (on the toy memory test bed by default, 20 tasks: 10 build, 10 deploy three times) and
prints, side by side, each design's success ± standard error with its 95 % interval, its gain
over no_memory with the paired bootstrap interval and p-value, tokens per episode and the wall
time of the whole comparison.

Target on the embedded default (quiet 2-core machine): no_memory between 0.1 and 0.6, at least
one design's gain with p < 0.05, the whole benchmark within 30 minutes.

    .venv/bin/python benchmarks/bench_memory_signal.py                       # embedded default
    .venv/bin/python benchmarks/bench_memory_signal.py --domain babaisai --tasks 20
    .venv/bin/python benchmarks/bench_memory_signal.py --agent-model scripted:recall --embedder hash
    .venv/bin/python benchmarks/bench_memory_signal.py --profile cottages --think off
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DESIGNS = "no_memory,trajectory_retrieval,reasoning_bank,dynamic_cheatsheet,g_memory"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", default="toy")
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--split", default="eval_in_distribution")
    parser.add_argument("--agent-model", default="local")
    parser.add_argument("--embedder", default="local")
    parser.add_argument("--designs", default=DESIGNS)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default=None, help="a toy profile, e.g. cottages")
    parser.add_argument("--think", choices=("on", "off"), default="on")
    parser.add_argument("--run-dir", type=Path, default=None, help="keep the run (and resume it)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="alma-signal-"))
    run_dir = args.run_dir or folder / "run"
    settings = folder / "alma.toml"
    profile = f'[domains.toy]\nprofile = "{args.profile}"\n' if args.profile else ""
    think = "false" if args.think == "off" else "true"
    settings.write_text(f"{profile}[agent]\nthink = {think}\n", encoding="utf-8")
    command = [
        sys.executable, "-m", "alma", "--config", str(settings), "compare", "--domain", args.domain,
        "--memories", args.designs, "--tasks", str(args.tasks), "--split", args.split,
        "--agent-model", args.agent_model, "--embedder", args.embedder,
        "--seed", str(args.seed), "--run-dir", str(run_dir), "--json",
    ]  # fmt: skip
    if args.max_steps:
        command += ["--max-steps", str(args.max_steps)]
    print("$ " + " ".join(command[1:]), flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0 and not done.stdout.strip():
        sys.exit(f"alma compare failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    rows = json.loads(done.stdout)["rows"]

    print(f"\n{args.domain}/{args.split}, {args.tasks} tasks, agent {args.agent_model}")
    header = f"{'design':<22} {'score':>13} {'95% CI':>13} {'gain':>7} {'gain 95% CI':>16}"
    print(header + f" {'p':>6} {'tok/ep':>8} {'status':>14}")
    print("-" * (len(header) + 31))
    for row in rows:
        score = "-" if row["score"] is None else f"{row['score']:.3f} ± {row['stderr']:.3f}"
        ci = "-" if row["score"] is None else f"[{row['ci95'][0]:.2f}, {row['ci95'][1]:.2f}]"
        gain = "-" if row["gain"] is None else f"{row['gain']:+.3f}"
        gain_ci = (
            "-" if row["gain_ci95"] is None else "[{:+.2f}, {:+.2f}]".format(*row["gain_ci95"])
        )
        p_value = "-" if row["p_value"] is None else f"{row['p_value']:.3f}"
        print(
            f"{row['design']:<22} {score:>13} {ci:>13} {gain:>7} {gain_ci:>16} {p_value:>6}"
            f" {row['tokens_per_episode']:>8,.0f} {row.get('status', 'done'):>14}"
        )
    reference = next(r for r in rows if r["design"] == "no_memory")
    significant = [r["design"] for r in rows if r["p_value"] is not None and r["p_value"] < 0.05]
    band = reference["score"] is not None and 0.1 <= reference["score"] <= 0.6
    print(f"\nwall time {seconds / 60:.1f} min (target < 30); no_memory in [0.1, 0.6]: {band};")
    print(f"gains with p < 0.05: {', '.join(significant) or 'none'}; run in {run_dir}")


if __name__ == "__main__":
    main()
