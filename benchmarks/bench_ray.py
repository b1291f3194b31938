"""Episodes per second on Ray against the local executor, and how Ray grows with nodes.

A fixed-latency scripted model (``scripted@SECONDS``) and the toy domain, so episodes wait on the
model as they would on an endpoint. Each figure is one evaluation of the ``no_memory`` design
(``--tasks`` tasks: half build, half deploy three times), timed from its start to its score;
starting Ray and the players is not counted.

1. equal concurrency on one machine: the local executor with ``--concurrency`` episodes at once
   against one Ray node whose one player plays as many (target: Ray >= 0.9 of local);
2. growth with nodes: 1, 2, 3 simulated nodes (Ray's cluster utilities, one CPU each), one
   player of ``--concurrency`` episodes on each (target: >= 0.8 of linear).

    python benchmarks/bench_ray.py [--latency 0.05] [--tasks 40] [--concurrency 8] [--nodes 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
from ray.cluster_utils import Cluster

from alma.config import load_config
from alma.domains.toy import ToyDomain
from alma.evaluate.protocol import Evaluator
from alma.memory.loading import reference_design
from alma.run import Run


async def episodes_per_second(
    root: Path, executor: dict[str, Any], latency: float, tasks: int, concurrency: int
) -> float:
    config = load_config(
        overrides={
            "models": {"agent": f"scripted@{latency:g}", "embedder": "hash"},
            "eval": {"tasks": tasks, "max_episodes_concurrency": concurrency},
            "executor": executor,
        }
    )
    async with Run(config, Path(tempfile.mkdtemp(dir=root))) as run:
        evaluator = Evaluator(run, ToyDomain())  # players start here, before the clock
        started = time.perf_counter()
        result = await evaluator.evaluate(reference_design("no_memory"), "train")
        seconds = time.perf_counter() - started
    assert result.status == "done", result.error
    return result.n_episodes / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per model call")
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8, help="episodes at once per node")
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    per_player = {"kind": "ray", "episodes_per_player": args.concurrency, "job_cpus": 0.1}

    def measure(executor: dict[str, Any], concurrency: int) -> float:
        return asyncio.run(
            episodes_per_second(root, executor, args.latency, args.tasks, concurrency)
        )

    local = measure({"kind": "local"}, args.concurrency)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    rates: list[float] = []
    try:
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, log_to_driver=False, include_dashboard=False)
        for nodes in range(1, args.nodes + 1):
            if nodes > 1:
                cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            rates.append(measure(per_player, args.concurrency * nodes))
    finally:
        ray.shutdown()
        cluster.shutdown()
    figures = {
        "latency_s": args.latency,
        "tasks": args.tasks,
        "concurrency_per_node": args.concurrency,
        "local_episodes_per_s": round(local, 2),
        "ray_episodes_per_s_by_nodes": [round(rate, 2) for rate in rates],
        "ray_over_local_one_node": round(rates[0] / local, 3),
        "scaling_over_linear": [round(rate / (rates[0] * n), 3) for n, rate in enumerate(rates, 1)],
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
