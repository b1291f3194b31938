"""Harness throughput: how close concurrent rollouts come to the ideal rate.

The acting agent plays toy episodes with a scripted model that sleeps a fixed latency per call
and then takes the first admissible action (a policy of constant cost, so the model double's
own computing does not count against the harness), so a perfect harness finishes
``concurrency / (steps x latency)`` episodes a second. Three measurements, side by side:

1. rollouts alone through the local executor (``--episodes`` episodes, ``--concurrency`` at
   once): the cost of the harness per step;
2. one evaluation (build, updates, checkpoint, deploy x3 on ``--tasks`` tasks) alone on the
   executor. Its phases wait for each other (deploy reads the memory every update built), so it
   cannot fill the slots: with equal episodes its ceiling is ``episodes / concurrency`` over
   the waves it needs (build, then deploy), lower still when its serial updates call a model;
3. the whole protocol as ``alma learn`` runs it: one iteration's ``--children`` evaluations
   (different designs, the same tasks) launched together through one executor, so that one
   evaluation's build episodes fill the slots another leaves idle while its updates run.

Each protocol line splits the ratio into the slots' occupancy (busy slot-seconds over all of
them) and the episodes' speed (ideal episode time over the mean measured one), and says where
the idle slot-seconds fell: while build episodes ran, while only updates (or checkpoints) ran,
or while deploy episodes ran. ``--trace`` prints each evaluation's phase windows too;
``--fifo`` adds the stream served in arrival order, as a plain semaphore would; ``--stagger``
launches the children that many seconds apart, as their meta steps end at different times.

How the model's latency is delivered matters, and both ways run side by side:

- ``reply`` (the targets): a fake endpoint in its own process answers each call exactly the
  latency after it arrived, through a pipe, so the reply wakes the event loop as a real one does;
- ``timer``: the call waits in ``asyncio.sleep``. The loop wakes a timer at its next select
  timeout, which epoll rounds up to the whole millisecond, so each step ends on average half a
  millisecond late, and the steps that fall due within the same millisecond wake together and
  queue behind each other's CPU. That is the benchmark's instrument, not the harness: a real
  endpoint's reply wakes the loop when it arrives. ``--wake timer`` alone shows it.

Targets (reply): the stream of ``trajectory_retrieval`` children >= 0.9 of the ideal, of
``reasoning_bank`` children (its update calls the memory model) >= 0.8.

    .venv/bin/python benchmarks/bench_harness_throughput.py [--latency 0.02] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from alma.agent.actor import Actor
from alma.config import load_config
from alma.domains.toy import ToyDomain
from alma.evaluate.jobs import EpisodeJob, Lane, LocalExecutor
from alma.evaluate.protocol import Evaluator
from alma.evaluate.results import EvalResult
from alma.llm.ledger import Ledger, Metered
from alma.llm.scripted import ScriptedLLM, first_action_policy
from alma.memory.loading import DesignSource, reference_design
from alma.memory.runner import CallResult, DesignRunner, RunnerFactory
from alma.run import Run
from alma.sandbox.runner import factory_from_config
from alma.types import Episode, EpisodeStart, Task

STREAM_TARGET = {"trajectory_retrieval": 0.9, "reasoning_bank": 0.8}


ANSWERER = r"""
import heapq, os, select, struct, sys, time
latency = float(sys.argv[1])
due, pending = [], b""
while True:
    wait = max(0.0, due[0][0] - time.perf_counter()) if due else None
    if select.select([0], [], [], wait)[0]:
        data = os.read(0, 65536)
        if not data:
            break
        pending += data
        now = time.perf_counter()
        while len(pending) >= 8:
            heapq.heappush(due, (now + latency, pending[:8]))
            pending = pending[8:]
    now, ready = time.perf_counter(), b""
    while due and due[0][0] <= now:
        ready += heapq.heappop(due)[1]
    if ready:
        os.write(1, ready)
"""


class Endpoint:
    """A fake endpoint in its own process: it answers each request exactly ``latency`` seconds
    after it arrived, and the answer wakes the event loop as a reply on a socket does."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._numbers = itertools.count()
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", ANSWERER, str(self.latency),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())

    async def wait(self, seconds: float) -> None:
        assert seconds == self.latency, "this endpoint answers after one fixed latency"
        assert self._process is not None and self._process.stdin is not None, "start it first"
        number = next(self._numbers)
        future = self._waiting[number] = asyncio.get_running_loop().create_future()
        self._process.stdin.write(number.to_bytes(8, "little"))
        await future

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        pending = b""
        while data := await self._process.stdout.read(65536):
            pending += data
            whole = len(pending) - len(pending) % 8
            for at in range(0, whole, 8):
                future = self._waiting.pop(int.from_bytes(pending[at : at + 8], "little"))
                if not future.done():
                    future.set_result(None)
            pending = pending[whole:]

    async def close(self) -> None:
        if self._process is not None and self._process.stdin is not None:
            self._process.stdin.close()
            await self._process.wait()
        if self._reader is not None:
            await self._reader


@contextlib.asynccontextmanager
async def model(latency: float, wake: str) -> AsyncIterator[ScriptedLLM]:
    """The acting model double: the first admissible action after ``latency`` seconds."""
    if wake == "timer":
        yield ScriptedLLM(first_action_policy, latency_s=latency)
        return
    endpoint = Endpoint(latency)
    await endpoint.start()
    try:
        yield ScriptedLLM(first_action_policy, latency_s=latency, wait=endpoint.wait)
    finally:
        await endpoint.close()


class _Lane:
    """The acting agent, lent to the executor; these episodes have no memory."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor

    async def retrieve(self, memory: str, start: EpisodeStart) -> CallResult:
        raise AssertionError("no episode here reads a memory")


async def rollouts(episodes: int, concurrency: int, latency: float, llm: ScriptedLLM) -> float:
    domain = ToyDomain()
    tasks = list(domain.tasks("eval_out_of_distribution"))
    actor = Actor(Metered(llm, Ledger(), "agent"), domain)
    executor = LocalExecutor(concurrency)
    executor.open("bench", _Lane(actor))  # type: ignore[arg-type]
    jobs = [EpisodeJob("bench", tasks[i % len(tasks)], "build", 0, i) for i in range(episodes)]
    started = time.perf_counter()
    played = [result.episode for result in await asyncio.gather(*map(executor.run, jobs))]
    elapsed = time.perf_counter() - started
    steps = sum(max(1, e.outcome.steps) for e in played) / len(played)
    ideal = concurrency / (steps * latency)
    measured = episodes / elapsed
    ratio = measured / ideal
    print(
        f"rollouts alone   : {episodes} episodes of {steps:.1f} steps, concurrency {concurrency}, "
        f"latency {latency * 1000:.0f} ms: {measured:.2f} episodes/s, ideal {ideal:.2f}, "
        f"ratio {ratio:.3f}"
    )
    return ratio


# ---------------------------------------------------------------------- the trace
class Trace:
    """When each episode held a slot and each update or checkpoint ran, by evaluation."""

    def __init__(self) -> None:
        self.origin = time.perf_counter()
        self.spans: list[tuple[float, float, str, str]] = []  # start, end, evaluation, kind

    def now(self) -> float:
        return time.perf_counter() - self.origin

    def add(self, started: float, owner: str, kind: str) -> None:
        self.spans.append((started, self.now(), owner, kind))

    def of(self, kinds: tuple[str, ...]) -> list[tuple[float, float, str, str]]:
        return [span for span in self.spans if span[3] in kinds]


class _TimedActor:
    """The evaluation's actor, timing each episode (it runs while the episode holds a slot)."""

    def __init__(self, actor: Actor, owner: str, trace: Trace) -> None:
        self.actor, self.owner, self.trace = actor, owner, trace

    async def run(self, task: Task, memory: Any = None, **options: Any) -> Episode:
        started = self.trace.now()
        episode = await self.actor.run(task, memory, **options)
        kind = "deploy" if options.get("recall") is not None else "build"
        self.trace.add(started, self.owner, kind)
        return episode


class _TimedLane:
    def __init__(self, lane: Lane, owner: str, trace: Trace) -> None:
        self.lane = lane
        self.actor = _TimedActor(lane.actor, owner, trace)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.lane, name)


class TracedExecutor(LocalExecutor):
    def __init__(self, concurrency: int, trace: Trace, *, fifo: bool = False) -> None:
        super().__init__(concurrency)
        self.trace, self.fifo, self.owners = trace, fifo, 0

    def open(self, evaluation: str, lane: Lane) -> None:
        self.owners += 1
        super().open(evaluation, _TimedLane(lane, f"e{self.owners}", self.trace))  # type: ignore[arg-type]

    def priority(self, job: EpisodeJob) -> tuple[int, ...]:
        ranked = super().priority(job)
        return ranked[-1:] if self.fifo else ranked  # fifo: arrival order alone


class _TimedRunner:
    def __init__(self, runner: DesignRunner, owner: str, trace: Trace) -> None:
        self.runner, self.owner, self.trace = runner, owner, trace

    def __getattr__(self, name: str) -> Any:
        return getattr(self.runner, name)

    async def update(self, episode: Episode) -> CallResult:
        started = self.trace.now()
        result = await self.runner.update(episode)
        self.trace.add(started, self.owner, "update")
        return result

    async def checkpoint(self) -> None:
        started = self.trace.now()
        await self.runner.checkpoint()
        self.trace.add(started, self.owner, "checkpoint")


class _TimedFactory:
    def __init__(self, factory: RunnerFactory, trace: Trace) -> None:
        self.factory, self.trace, self.started = factory, trace, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.factory, name)

    async def start(self, design: DesignSource, services: Any, seed: int) -> DesignRunner:
        self.started += 1  # evaluations open their lane and start their runner in one order
        owner = f"e{self.started}"
        runner = await self.factory.start(design, services, seed)
        return _TimedRunner(runner, owner, self.trace)


def idle_by_state(trace: Trace, concurrency: int, end: float) -> dict[str, float]:
    """Idle slot-seconds by what the stream was doing: its busiest phase at that moment."""
    edges = sorted({0.0, end, *(t for span in trace.spans for t in span[:2])})
    idle: dict[str, float] = defaultdict(float)
    for left, right in itertools.pairwise(edges):
        middle = (left + right) / 2
        live = [span for span in trace.spans if span[0] <= middle < span[1]]
        busy = sum(kind in ("build", "deploy") for *_, kind in live)
        kinds = {kind for *_, kind in live}
        state = next(
            (name for name in ("deploy", "build", "update", "checkpoint") if name in kinds),
            "nothing",
        )
        idle[state] += (concurrency - busy) * (right - left)
    return idle


def report(trace: Trace, results: list[EvalResult], concurrency: int, latency: float) -> float:
    elapsed = trace.now()
    episodes = sum(result.n_episodes for result in results)
    steps: float = sum(result.usage["agent"]["calls"] for result in results) / episodes
    ideal = concurrency / (steps * latency)
    ratio = episodes / elapsed / ideal
    played = trace.of(("build", "deploy"))
    busy = sum(end - start for start, end, *_ in played)
    occupancy = busy / (concurrency * elapsed)
    speed = steps * latency / (busy / len(played))
    idle = idle_by_state(trace, concurrency, elapsed)
    shares = ", ".join(
        f"{state} {seconds / (concurrency * elapsed):.3f}"
        for state, seconds in sorted(idle.items(), key=lambda item: -item[1])
    )
    print(
        f"                   {episodes / elapsed:.2f} episodes/s, ideal {ideal:.2f}, "
        f"ratio {ratio:.3f} = occupancy {occupancy:.3f} x episode speed {speed:.3f}"
    )
    print(f"                   idle slot share while: {shares}")
    return ratio


def print_phases(trace: Trace) -> None:
    windows: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for start, end, owner, kind in trace.spans:
        windows[(owner, kind)].append((start, end))
    for (owner, kind), spans in sorted(windows.items(), key=lambda item: min(item[1])[0]):
        first, last = min(s for s, _ in spans), max(e for _, e in spans)
        window = f"{first:6.3f} .. {last:6.3f} s"
        print(f"{'':21}{owner:4} {kind:10} x{len(spans):3}  {window}")


async def protocol(
    args: argparse.Namespace,
    llm: ScriptedLLM,
    design: str,
    evaluations: int,
    *,
    fifo: bool = False,
) -> float:
    """``evaluations`` children of ``design`` (the same code under another name and comment,
    as a search's children are distinct designs) on the same tasks, launched together through
    one executor of ``args.concurrency`` slots."""
    with tempfile.TemporaryDirectory() as folder:
        config = load_config(
            overrides={
                "models": {"agent": "scripted", "embedder": "hash"},
                "eval": {
                    "tasks": args.tasks,
                    "max_episodes_concurrency": args.concurrency,
                    "max_retrieve_concurrency": args.concurrency,
                },
            },
            cwd=Path(folder),
        )
        async with Run(config, Path(folder) / "run") as run:
            run.models.register("scripted", llm)
            trace = Trace()
            factory = _TimedFactory(factory_from_config(config, run.path), trace)
            executor = TracedExecutor(args.concurrency, trace, fifo=fifo)
            evaluator = Evaluator(run, ToyDomain(), executor=executor, runner_factory=factory)
            base = reference_design(design)
            children = [
                DesignSource(f"{base.name}_{i}", f"{base.source}\n# child {i}\n", base.origin)
                for i in range(evaluations)
            ]
            await asyncio.sleep(0.5)  # the prewarmed sandbox worker is up, as in a running search
            trace.origin = time.perf_counter()

            async def child(number: int, design: DesignSource) -> EvalResult:
                await asyncio.sleep(number * args.stagger)  # its meta steps end later
                return await evaluator.evaluate(design, "train")

            results = await asyncio.gather(*(child(i, c) for i, c in enumerate(children)))
            if any(not result.scored for result in results):
                raise SystemExit(f"an evaluation of {design} did not finish: {results[0].error}")
    build, deploy = len(results[0].build_tasks), len(results[0].deploy_tasks) * 3
    label = "one evaluation " if evaluations == 1 else f"{evaluations} children" + " fifo" * fifo
    if evaluations > 1 and args.stagger:
        label = f"{label}, {args.stagger:g} s apart"
    updates = sum(r.memory.update_calls for r in results)
    print(
        f"{label:17}: {design}, {build} build + {deploy} deploy episodes each, "
        f"{updates} updates, {sum(r.usage.get('memory', {}).get('calls', 0) for r in results)} "
        "memory model calls"
    )
    ratio = report(trace, results, args.concurrency, args.latency)
    if evaluations == 1:
        waves = math.ceil(build / args.concurrency) + math.ceil(deploy / args.concurrency)
        ceiling = (build + deploy) / args.concurrency / waves
        chain = max(e for _, e, _, k in trace.spans if k == "update") - max(
            e for _, e, _, k in trace.spans if k == "build"
        )
        episode = results[0].usage["agent"]["calls"] / (build + deploy) * args.latency
        with_chain = (build + deploy) / args.concurrency / (waves + chain / episode)
        print(
            f"                   barrier ceiling {ceiling:.3f} ({waves} waves of episodes); "
            f"{with_chain:.3f} with the {chain:.2f} s its updates ran after the last build"
        )
    if args.trace:
        print_phases(trace)
    return ratio


async def suite(args: argparse.Namespace) -> list[tuple[str, float, float]]:
    """Every measurement with the latency delivered one way (``args.wake``)."""
    print(f"-- latency delivered as a {args.wake} --")
    async with model(args.latency, args.wake) as llm:
        await rollouts(args.episodes, args.concurrency, args.latency, llm)
        verdicts = []
        for design in STREAM_TARGET:
            await protocol(args, llm, design, 1)
        for design, target in STREAM_TARGET.items():
            if args.fifo:
                await protocol(args, llm, design, args.children, fifo=True)
            ratio = await protocol(args, llm, design, args.children)
            verdicts.append((design, target, ratio))
    return verdicts


async def main(args: argparse.Namespace) -> int:
    wakes = ["reply", "timer"] if args.wake == "both" else [args.wake]
    results = {}
    for wake in wakes:
        results[wake] = await suite(argparse.Namespace(**{**vars(args), "wake": wake}))
    failed = 0
    for wake, verdicts in results.items():
        judged = wake == wakes[0]
        for design, target, ratio in verdicts:
            verdict = "PASS" if ratio >= target else "FAIL"
            if judged:
                failed += verdict == "FAIL"
            else:
                verdict = f"for comparison, {verdict.lower()}"
            print(
                f"target ({wake}): {args.children} {design} children >= {target}: "
                f"{verdict} ({ratio:.3f})"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--episodes", type=int, default=320)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument(
        "--children",
        type=int,
        default=5,
        help="evaluations at once (learn's parents)",
    )
    parser.add_argument(
        "--stagger", type=float, default=0.0, help="seconds between two children's launches"
    )
    parser.add_argument("--trace", action="store_true", help="each evaluation's phase windows")
    parser.add_argument("--fifo", action="store_true", help="also the stream in arrival order")
    parser.add_argument(
        "--wake",
        choices=("both", "reply", "timer"),
        default="both",
        help="how the model's latency ends: at its deadline (reply), in asyncio.sleep (timer)",
    )
    raise SystemExit(asyncio.run(main(parser.parse_args())))
