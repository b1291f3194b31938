"""Evaluations on a Ray cluster: a local cluster of several nodes on this machine (Ray's own
cluster utilities), the scripted models and the toy domain. Same results as the local executor,
a killed player process and a removed node mid-evaluation, one budget across nodes, Ctrl-C,
resume across executors, and the one-line errors."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alma.cli import main
from alma.config import AlmaConfig, load_config
from alma.domains.toy import ToyDomain
from alma.errors import AlmaError, BudgetExceededError, ConfigError, MissingDependencyError
from alma.evaluate.protocol import Evaluator
from alma.evaluate.results import EvalResult
from alma.memory.loading import reference_design
from alma.run import Run

ray = pytest.importorskip("ray")

from alma.evaluate.ray_cluster import ClusterError  # noqa: E402
from alma.evaluate.ray_executor import RETRIES_KEY, RayExecutor  # noqa: E402

NODE_CPUS = 1
#: one player per node: 4 episodes, a quarter CPU each
RAY = {"kind": "ray", "episodes_per_player": 4, "job_cpus": 0.25}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A head (which plays nothing) and two worker nodes, this process their driver."""
    from ray.cluster_utils import Cluster

    made = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(2):
        made.add_node(num_cpus=NODE_CPUS)
    ray.init(address=made.address, log_to_driver=False, include_dashboard=False)
    made.wait_for_nodes()
    yield made
    ray.shutdown()
    made.shutdown()


def settings(executor: dict[str, Any] | None = None, **sections: Any) -> AlmaConfig:
    overrides: dict[str, Any] = {"models": {"agent": "scripted"}, **sections}
    overrides["executor"] = executor or {"kind": "local"}
    return load_config(overrides=overrides)


def ledger_totals(run_dir: Path) -> dict[str, Any]:
    """The run database's model calls, by purpose (everything but their latencies)."""
    with sqlite3.connect(run_dir / "alma.sqlite") as db:
        rows = db.execute(
            "SELECT purpose, kind, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), "
            "ROUND(SUM(cost_usd), 9), SUM(from_cache), COUNT(error) FROM llm_calls "
            "GROUP BY purpose, kind ORDER BY purpose, kind"
        ).fetchall()
    return {f"{row[0]}/{row[1]}": row[2:] for row in rows}


def episodes(run_dir: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(run_dir / "alma.sqlite") as db:
        return db.execute(
            "SELECT label, json_extract(data, '$.phase') phase, json_extract(data, '$.repeat') "
            "rep, task_id, success, steps, reason FROM episodes ORDER BY label, phase, rep, task_id"
        ).fetchall()


async def evaluate(config: AlmaConfig, run_dir: Path, design: str) -> EvalResult:
    async with Run(config, run_dir) as run:
        return await Evaluator(run, ToyDomain()).evaluate(
            reference_design(design), "train", quick=True
        )


def same(left: EvalResult, right: EvalResult, *, usage: bool = True) -> None:
    assert left.status == right.status == "done"
    assert left.per_task == right.per_task and left.score == right.score
    assert left.n_episodes == right.n_episodes == 2 + 3 * 3
    assert left.memory.retrieve_calls == right.memory.retrieve_calls
    if usage:
        assert _without_latency(left.usage) == _without_latency(right.usage)


def _without_latency(usage: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p: {k: v for k, v in t.items() if k != "latency_s"} for p, t in usage.items()}


@pytest.mark.parametrize("rollout", ["batched", "sequential"])
async def test_an_evaluation_on_ray_gives_the_local_results(
    cluster: Any, tmp_path: Path, rollout: str
) -> None:
    local = await evaluate(
        settings(eval={"rollout": rollout}), tmp_path / "local", "trajectory_retrieval"
    )
    config = settings(RAY, eval={"rollout": rollout})
    async with Run(config, tmp_path / "ray") as run:
        evaluator = Evaluator(run, ToyDomain())
        executor = evaluator.executor
        assert isinstance(executor, RayExecutor)
        assert len({seat.node for seat in executor.seats}) == 2  # a player on each node
        on_ray = await evaluator.evaluate(
            reference_design("trajectory_retrieval"), "train", quick=True
        )
    same(on_ray, local)
    assert ledger_totals(tmp_path / "ray") == ledger_totals(tmp_path / "local")
    assert episodes(tmp_path / "ray") == episodes(tmp_path / "local")


def test_a_short_learn_on_ray_gives_the_local_archive_and_ledger(
    cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def learn(name: str, executor: str) -> dict[str, Any]:
        config = tmp_path / f"{name}.toml"
        config.write_text(
            '[models]\nagent = "scripted"\nmeta = "scripted"\nembedder = "hash"\n'
            f"[executor]\n{executor}\n",
            encoding="utf-8",
        )
        args = ["--config", str(config), "learn", "--domain", "toy", "--quick", "--json"]
        code = main([*args, "--iterations", "1", "--run-dir", str(tmp_path / name)])
        data = json.loads(capsys.readouterr().out)
        assert code == 0, data
        return data

    local = learn("local", 'kind = "local"')
    address = cluster.address
    on_ray = learn(
        "ray", f'kind = "ray"\naddress = "{address}"\nepisodes_per_player = 4\njob_cpus = 0.25'
    )
    keep = ("id", "parent", "status", "score")
    assert [{k: d.get(k) for k in keep} for d in on_ray["designs"]] == [
        {k: d.get(k) for k in keep} for d in local["designs"]
    ]
    assert on_ray["reference_score"] == local["reference_score"]
    assert episodes(tmp_path / "ray") == episodes(tmp_path / "local")
    ray_calls, local_calls = ledger_totals(tmp_path / "ray"), ledger_totals(tmp_path / "local")
    # the meta agent's prompts show sampled episodes in the order they finished, which a
    # cluster does not keep: its calls are compared by count
    assert ray_calls.pop("meta/chat")[0] == local_calls.pop("meta/chat")[0]
    assert ray_calls == local_calls


async def _when_playing(executor: RayExecutor, episodes: int = 1) -> None:
    for _ in range(400):
        if await executor.busy() >= episodes:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no episode started on the cluster")


SLOW = {"agent": "scripted@0.03"}  # episodes long enough to hit mid-way


async def test_a_killed_player_process_has_its_jobs_played_again(
    cluster: Any, tmp_path: Path
) -> None:
    local = await evaluate(settings(models=SLOW), tmp_path / "local", "trajectory_retrieval")
    async with Run(settings(RAY, models=SLOW), tmp_path / "ray") as run:
        evaluator = Evaluator(run, ToyDomain())
        executor = evaluator.executor
        assert isinstance(executor, RayExecutor)
        playing = asyncio.create_task(
            evaluator.evaluate(reference_design("trajectory_retrieval"), "train", quick=True)
        )
        await _when_playing(executor)
        os.kill(executor.seats[0].pid, signal.SIGKILL)
        on_ray = await playing
        retried = run.store.get_meta(RETRIES_KEY, [])
    same(on_ray, local)
    assert executor.retries >= 1 and len(retried) == executor.retries
    assert all(row["attempt"] == 1 and "Actor" in row["cause"] for row in retried)
    assert episodes(tmp_path / "ray") == episodes(tmp_path / "local")  # nothing twice


async def test_a_node_removed_mid_evaluation_leaves_the_others_to_finish(
    cluster: Any, tmp_path: Path
) -> None:
    local = await evaluate(settings(models=SLOW), tmp_path / "local", "no_memory")
    try:
        async with Run(settings(RAY, models=SLOW), tmp_path / "ray") as run:
            evaluator = Evaluator(run, ToyDomain())
            executor = evaluator.executor
            assert isinstance(executor, RayExecutor)
            playing = asyncio.create_task(
                evaluator.evaluate(reference_design("no_memory"), "train", quick=True)
            )
            await _when_playing(executor, 2)
            doomed = executor.seats[0].node
            node = next(n for n in cluster.worker_nodes if n.node_id == doomed)
            cluster.remove_node(node)
            on_ray = await playing
    finally:
        cluster.add_node(num_cpus=NODE_CPUS)  # the next tests get two nodes again
        cluster.wait_for_nodes()
    same(on_ray, local)
    assert executor.retries >= 1
    assert all(seat.node != doomed for seat in executor.seats)
    assert episodes(tmp_path / "ray") == episodes(tmp_path / "local")


async def test_one_budget_holds_across_the_nodes(cluster: Any, tmp_path: Path) -> None:
    budget = 60_000  # tokens: a few episodes' worth
    config = settings(RAY, models=SLOW, budget={"tokens": budget})
    with pytest.raises(BudgetExceededError):
        async with Run(config, tmp_path / "ray") as run:
            evaluator = Evaluator(run, ToyDomain())
            executor = evaluator.executor
            assert isinstance(executor, RayExecutor)
            try:
                await evaluator.evaluate(reference_design("no_memory"), "train", quick=True)
            finally:
                await executor.drain()
                report = await executor.budget_report()
                spent = run.ledger.total
    # calls already sending when it ran out still finish: at most one per playing episode
    in_flight = 2 * 4
    with sqlite3.connect(tmp_path / "ray" / "alma.sqlite") as db:
        largest = db.execute("SELECT MAX(prompt_tokens + completion_tokens) FROM llm_calls")
        call = largest.fetchone()[0]
    assert budget <= spent.tokens <= budget + in_flight * call
    assert report["pending_attempts"] == 0 and report["tokens"] == spent.tokens, (report, spent)


async def test_ctrl_c_cancels_the_cluster_jobs_and_a_run_resumes_on_either_executor(
    cluster: Any, tmp_path: Path
) -> None:
    local = await evaluate(settings(models=SLOW), tmp_path / "local", "trajectory_retrieval")
    run_dir = tmp_path / "moved"
    async with Run(settings(RAY, models=SLOW), run_dir) as run:
        evaluator = Evaluator(run, ToyDomain())
        executor = evaluator.executor
        assert isinstance(executor, RayExecutor)
        playing = asyncio.create_task(
            evaluator.evaluate(reference_design("trajectory_retrieval"), "train", quick=True)
        )
        await _when_playing(executor, 2)
        for _ in range(200):  # some episodes are finished (and recorded), others playing
            if run.store.query("SELECT COUNT(*) n FROM episodes")[0]["n"] >= 3:
                break
            await asyncio.sleep(0.02)
        playing.cancel()  # what Ctrl-C does to the driver's work
        with pytest.raises(asyncio.CancelledError):
            await playing
        for _ in range(100):  # cancelled on the nodes too
            if await executor.busy() == 0:
                break
            await asyncio.sleep(0.05)
        assert await executor.busy() == 0
    saved = len(episodes(run_dir))
    assert 0 < saved < 11
    resumed = await evaluate(settings(models=SLOW), run_dir, "trajectory_retrieval")  # locally
    assert resumed.resumed_episodes == saved
    same(resumed, local, usage=False)
    assert episodes(run_dir) == episodes(tmp_path / "local")

    # and the other way round: stopped locally by its budget, resumed on Ray
    other = tmp_path / "other"
    with pytest.raises(BudgetExceededError):
        await evaluate(settings(budget={"tokens": 60_000}), other, "trajectory_retrieval")
    assert 0 < len(episodes(other)) < 11
    on_ray = await evaluate(settings(RAY), other, "trajectory_retrieval")
    plain = await evaluate(settings(), tmp_path / "plain", "trajectory_retrieval")
    same(on_ray, plain, usage=False)
    assert episodes(other) == episodes(tmp_path / "plain")


def test_ray_not_installed_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets without the extra
    with pytest.raises(MissingDependencyError) as raised:
        RayExecutor.connect(settings(RAY))
    assert raised.value.hint == "pip install 'alma[ray]'"
    config = tmp_path / "ray.toml"
    config.write_text('[models]\nagent = "scripted"\n[executor]\nkind = "ray"\n')
    args = ["--config", str(config), "eval", "--domain", "toy", "--memory", "no_memory"]
    code = main([*args, "--quick"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "Ray" in err[0] and "alma[ray]" in err[-1] and len(err) <= 2


def test_an_unreachable_address_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as a process of its own
    with pytest.raises(ClusterError) as raised:
        RayExecutor.connect(settings({**RAY, "address": "127.0.0.1:9"}))
    assert "cannot reach the Ray cluster at 127.0.0.1:9" in raised.value.message
    assert raised.value.hint and "ray start --head" in raised.value.hint
    with pytest.raises(ConfigError, match="ray://host:port"):
        settings({**RAY, "address": "nowhere"})


def test_a_cluster_without_the_resources_a_job_asks_is_one_line(cluster: Any) -> None:
    with pytest.raises(ClusterError, match=r"no node of the Ray cluster has .*1 tpu") as raised:
        RayExecutor.connect(settings({**RAY, "job_resources": {"tpu": 0.25}}))
    assert isinstance(raised.value, AlmaError) and raised.value.hint
    with pytest.raises(ClusterError, match="8 CPU"):
        RayExecutor.connect(settings({**RAY, "job_cpus": 2.0}))
