"""The Ray executor: episode jobs played by player processes on the nodes of a Ray cluster.

Episode jobs, not whole evaluations, travel: an evaluation stays on the driver (its memory's
design code runs only in the driver's sandbox workers, so nodes need no bubblewrap), and each of
its episodes is played on a node by a :class:`~alma.evaluate.ray_player.Player`, a Ray actor that
plays many episodes at once. A deploy episode's retrieve comes back to the driver through the
retrieve relay (:mod:`alma.evaluate.ray_relay`) and is answered through the evaluation's lane,
recorded and guarded as on one machine. An episode's model calls go from its node to the
endpoint; their usage comes back with the episode and the driver records it in the run's ledger,
so the driver is the only writer of the run database. One budget holds across the cluster
(:mod:`alma.evaluate.ray_budget`).

Faults: a job whose player process or node died is played again on another player (at most
``[executor] max_job_retries`` times; each retry is kept in the run database under the meta key
``executor_retries``); a lost attempt's retrieve answer is reused by its retry, so no memory call
and no episode is counted twice; a job that is lost every time ends its episode as an error (the
evaluation is then incomplete, as for an endpoint that failed for good). Cancelling a job (Ctrl-C
on the driver) cancels it on its node; finished episodes are already recorded. Runs resume across
executors: nothing in an evaluation's key or records depends on who played its episodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from alma.config import AlmaConfig
from alma.evaluate.jobs import EpisodeJob, EpisodeResult, Lane
from alma.evaluate.ray_budget import ClusterBudget
from alma.evaluate.ray_cluster import (
    ClusterError,
    capacity,
    join,
    player_needs,
    ray_module,
    spare_node,
)
from alma.evaluate.ray_player import Played, Player
from alma.evaluate.ray_relay import Question, RetrieveRelay
from alma.llm.ledger import Budget, Ledger
from alma.memory.runner import CallResult
from alma.types import Episode, EpisodeStart, Outcome

log = logging.getLogger("alma.ray")

RETRIES_KEY = "executor_retries"  # run database meta key listing the jobs played again
READY_S = 120.0  # how long players may take to start
REPLACE_S = 60.0  # how long a replacement for a lost player may take to start
POLL_S = 1.0  # long poll of the retrieve relay
SHUN_S = 30.0  # how long a node that lost a player gets no new player and no retry
JobKey = tuple[str, str, int, str]  # evaluation, phase, repeat, task id


def _totals(ledger: Ledger) -> tuple[int, float]:
    """What the run's ledger (the root above ``ledger``) holds: tokens and dollars."""
    while ledger.parent is not None:
        ledger = ledger.parent
    total = ledger.total
    return total.tokens, total.cost_usd


def _line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


@dataclass(eq=False)
class _Seat:
    """One player, with its free episode slots."""

    handle: Any
    free: int
    node: str
    pid: int
    lost: bool = False


class RayExecutor:
    """Plays episode jobs on the players of a Ray cluster (see the module's docstring)."""

    def __init__(self, config: AlmaConfig, ray: Any, joined: bool) -> None:
        settings = config.executor
        self.ray = ray
        self.per_player = settings.episodes_per_player
        self.max_retries = settings.max_job_retries
        self.wanted = math.ceil(config.eval.max_episodes_concurrency / self.per_player)
        self.needs = player_needs(settings)
        self.retries = 0  # jobs played again after their player was lost
        self._joined = joined
        self._lost = (
            ray.exceptions.RayActorError,
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.NodeDiedError,
            ray.exceptions.ObjectLostError,
        )
        here: Any = "DEFAULT"
        with contextlib.suppress(Exception):  # the coordinators live on the driver's node
            here = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
                ray.get_runtime_context().get_node_id(), soft=False
            )
        budget = Budget(config.budget.usd, config.budget.tokens)
        coordinator = {"num_cpus": 0, "scheduling_strategy": here}
        self.budget = (
            ray.remote(ClusterBudget).options(**coordinator).remote(budget, config.llm.concurrency)
        )
        self.relay = ray.remote(RetrieveRelay).options(**coordinator).remote()
        self._player = ray.remote(Player)
        self.seats: list[_Seat] = []
        self._shunned: dict[str, float] = {}  # node -> when it last lost a player
        self._starting = 0
        self._background: set[asyncio.Task[Any]] = set()  # players being started
        self._cleanup: set[asyncio.Task[Any]] = set()  # calls of cancelled jobs being recorded
        self._changed: asyncio.Event | None = None
        self._lanes: dict[str, Lane] = {}
        self._settings: dict[str, Any] = {}  # evaluation -> object ref of (config, domain name)
        self._attempts: dict[str, tuple[Lane, JobKey]] = {}
        self._answers: dict[JobKey, CallResult] = {}  # retrieve answers, kept for a retry
        self._refused: dict[str, BaseException] = {}  # why an attempt's retrieve got no memory
        self._serving: dict[str, asyncio.Task[None]] = {}
        self._pump: asyncio.Task[None] | None = None
        self._ledger: Ledger | None = None  # the ledger of the latest evaluation

    # ------------------------------------------------------------------ starting and stopping
    @classmethod
    def connect(cls, config: AlmaConfig) -> RayExecutor:
        """Join the cluster ``[executor] address`` names (none: start Ray on this machine) and
        start the players; one-line errors when Ray is missing, the address unreachable or the
        cluster too small for one player."""
        ray = ray_module()
        joined = join(ray, config.executor)
        try:
            executor = cls(config, ray, joined)
            executor._start_players()
        except BaseException:
            if joined:
                ray.shutdown()
            raise
        return executor

    def _new_player(self) -> Any:
        resources = dict(self.needs)
        cpus = resources.pop("CPU")
        gpus = resources.pop("GPU", 0.0)
        return self._player.options(
            num_cpus=cpus, num_gpus=gpus, resources=resources, scheduling_strategy=self._where()
        ).remote(self.budget, self.relay)

    def _where(self) -> Any:
        """Spread players; while a node that lost a player may still be dying (the cluster sees
        a removed node only after a while), put a new one on a live node that lost none."""
        shunned = self._recently_lost()
        node = spare_node(self.ray, self.needs, shunned, [seat.node for seat in self.seats])
        if node is None:
            return "SPREAD"
        strategies = self.ray.util.scheduling_strategies
        return strategies.NodeAffinitySchedulingStrategy(node, soft=True)

    def _recently_lost(self) -> set[str]:
        now = time.monotonic()
        self._shunned = {node: at for node, at in self._shunned.items() if now - at <= SHUN_S}
        return set(self._shunned)

    def _start_players(self) -> None:
        ray = self.ray
        fits = capacity(ray.nodes(), self.needs)
        if fits == 0:
            wanted = ", ".join(f"{amount:g} {name}" for name, amount in self.needs.items())
            raise ClusterError(
                f"no node of the Ray cluster has {wanted} for one player of "
                f"{self.per_player} episodes",
                hint="lower [executor] episodes_per_player, job_cpus or job_resources, or add "
                "nodes that have them",
            )
        handles = [self._new_player() for _ in range(min(self.wanted, fits))]
        try:
            places = ray.get([handle.ready.remote() for handle in handles], timeout=READY_S)
        except ray.exceptions.GetTimeoutError:
            raise ClusterError(
                f"the Ray cluster started no player within {READY_S:g} s",
                hint="its nodes may be busy with other work; check `ray status`",
            ) from None
        self.seats = [
            _Seat(handle, self.per_player, place["node"], place["pid"])
            for handle, place in zip(handles, places, strict=True)
        ]

    async def aclose(self) -> None:
        """Stop the players and coordinators (and Ray, when it was started here)."""
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(BaseException):
                await self._pump
        with contextlib.suppress(TimeoutError):  # what cancelled jobs spent is recorded
            await asyncio.wait_for(self._recorded(), 15.0)
        for task in list(self._background):
            task.cancel()
        ray = self.ray
        for handle in [seat.handle for seat in self.seats] + [self.budget, self.relay]:
            with contextlib.suppress(Exception):
                ray.kill(handle)
        self.seats = []
        if self._joined:
            ray.shutdown()
            self._joined = False

    # ------------------------------------------------------------------ the executor protocol
    def open(self, evaluation: str, lane: Lane) -> None:
        self._lanes[evaluation] = lane
        self._ledger = lane.ledger
        self._settings[evaluation] = self.ray.put((lane.config, lane.domain_name))
        self.budget.settle.remote(None, *_totals(lane.ledger))  # what the run spent so far
        loop = asyncio.get_running_loop()
        if self._pump is None or self._pump.done() or self._pump.get_loop() is not loop:
            self._pump = loop.create_task(self._serve_questions())

    def close(self, evaluation: str) -> None:
        self._lanes.pop(evaluation, None)
        self._settings.pop(evaluation, None)
        for key in [key for key in self._answers if key[0] == evaluation]:
            del self._answers[key]

    async def run(self, job: EpisodeJob) -> EpisodeResult:
        lane = self._lanes[job.evaluation]
        key: JobKey = (job.evaluation, job.phase, job.repeat, job.task.id)
        for tried in range(self.max_retries + 1):
            seat = await self._take(avoid=self._recently_lost())
            attempt = f"{job.evaluation}/{job.phase}/{job.repeat}/{job.task.id}#{uuid.uuid4().hex}"
            self._attempts[attempt] = (lane, key)
            try:
                played = await self._play(seat, attempt, job)
            except self._lost as lost:
                self._lose(seat)
                if not self._node_alive(seat.node):  # its node is gone: so are its other seats
                    for other in [other for other in self.seats if other.node == seat.node]:
                        self._lose(other)
                await self._record_lost(attempt, lane)
                self._note_retry(lane, job, tried + 1, lost)
                if tried == self.max_retries:
                    return self._given_up(lane, job, tried + 1, lost)
                continue
            finally:
                self._attempts.pop(attempt, None)
                serving = self._serving.pop(attempt, None)
                if serving is not None:
                    serving.cancel()
                seat.free += 1
                self._event().set()
            return self._finish(attempt, key, lane, played)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ playing one attempt
    async def _play(self, seat: _Seat, attempt: str, job: EpisodeJob) -> Played:
        ref = seat.handle.play.remote(attempt, job, [self._settings[job.evaluation]])
        try:
            played: Played = await ref
        except asyncio.CancelledError:
            self.ray.cancel(ref)  # Ctrl-C: stop it on its node too
            lane = self._attempts[attempt][0]
            self._later(self._record_cancelled(ref, attempt, lane))
            raise
        except self.ray.exceptions.RayTaskError as failed:  # raised by the job itself
            cause = failed.cause
            if isinstance(cause, self._lost):  # the player lives, a coordinator died
                raise ClusterError(
                    f"the run's coordinator on the driver's node was lost: {_line(cause)}",
                    hint="check the driver's Ray node, then resume the run",
                ) from None
            if isinstance(cause, BaseException):
                raise cause from None
            raise
        return played

    def _finish(self, attempt: str, key: JobKey, lane: Lane, played: Played) -> EpisodeResult:
        for call in played.calls:
            call.record(lane.ledger)
        self.budget.settle.remote(attempt, *_totals(lane.ledger))
        refused = self._refused.pop(attempt, None)
        if played.episode is None:  # its retrieve got no memory: the reason is the driver's
            raise refused or ClusterError(f"episode {key[3]} was stopped on its node")
        return EpisodeResult(played.episode, self._answers.pop(key, None))

    async def _record_lost(self, attempt: str, lane: Lane) -> None:
        """Record the calls a lost attempt reported before it died (they were billed)."""
        self._refused.pop(attempt, None)
        try:
            calls = await self.budget.settle.remote(attempt, *_totals(lane.ledger))
        except self.ray.exceptions.RayError:
            return
        for call in calls:
            call.record(lane.ledger)
        self.budget.settle.remote(None, *_totals(lane.ledger))

    async def _record_cancelled(self, ref: Any, attempt: str, lane: Lane) -> None:
        """Once a cancelled attempt has stopped on its node, record the calls it made (as the
        local executor's ledger does for a cancelled episode)."""
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(_awaited(ref), 10.0)
        await self._record_lost(attempt, lane)

    def _later(self, work: Coroutine[Any, Any, None], cleanup: bool = True) -> None:
        """Run ``work`` beside the jobs (``cleanup``: recording that closing waits for)."""
        task = asyncio.get_running_loop().create_task(work)
        tasks = self._cleanup if cleanup else self._background
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _recorded(self) -> None:
        while self._cleanup:
            await asyncio.gather(*self._cleanup, return_exceptions=True)

    async def drain(self) -> None:
        """Wait until the calls of cancelled and lost jobs are recorded, and the cluster's
        budget knows what the run's ledger holds."""
        await self._recorded()
        if self._ledger is not None:
            await self.budget.settle.remote(None, *_totals(self._ledger))

    def _note_retry(self, lane: Lane, job: EpisodeJob, attempt: int, lost: BaseException) -> None:
        self.retries += 1
        cause = f"{type(lost).__name__}: {_line(lost)}"
        log.warning("episode %s (%s) lost, attempt %d: %s", job.task.id, job.phase, attempt, cause)
        noted = lane.store.get_meta(RETRIES_KEY, [])
        noted.append(
            {
                "evaluation": job.evaluation,
                "task": job.task.id,
                "phase": job.phase,
                "repeat": job.repeat,
                "attempt": attempt,
                "cause": cause,
            }
        )
        lane.store.set_meta(RETRIES_KEY, noted)

    def _given_up(
        self, lane: Lane, job: EpisodeJob, attempts: int, lost: BaseException
    ) -> EpisodeResult:
        """An episode lost every time: an error not of the agent's doing (no score)."""
        message = f"its Ray worker was lost {attempts} times ({type(lost).__name__})"
        start = EpisodeStart(lane.domain_name, job.task.description, "")
        episode = Episode(start=start, steps=(), outcome=Outcome(False, 0.0, 0, "error", message))
        return EpisodeResult(episode)

    # ------------------------------------------------------------------ players
    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    async def _take(self, avoid: set[str]) -> _Seat:
        """A free slot on the least busy live player, waiting for one; players on the nodes in
        ``avoid`` (which lost a player lately) only when no other has a free slot."""
        while True:
            live = [seat for seat in self.seats if not seat.lost]
            free = [seat for seat in live if seat.free > 0]
            if free:
                seat = max(free, key=lambda seat: (seat.node not in avoid, seat.free))
                seat.free -= 1
                return seat
            if not live and not self._starting:
                raise ClusterError(
                    "no player is left on the Ray cluster: its nodes died or were removed",
                    hint="add nodes to the cluster, then resume the run",
                )
            changed = self._event()
            changed.clear()
            await changed.wait()

    def _node_alive(self, node: str) -> bool:
        try:
            return any(n["NodeID"] == node and n["Alive"] for n in self.ray.nodes())
        except Exception:  # the cluster cannot say: assume the node lives
            return True

    def _lose(self, seat: _Seat) -> None:
        """Give up a player whose process or node died, and start another in its place."""
        if seat.lost:
            return
        seat.lost = True
        self._shunned[seat.node] = time.monotonic()
        self.seats.remove(seat)
        with contextlib.suppress(Exception):
            self.ray.kill(seat.handle)
        if len(self.seats) + self._starting < self.wanted:
            self._starting += 1
            self._later(self._replace(), cleanup=False)
        self._event().set()

    async def _replace(self) -> None:
        handle = self._new_player()
        try:
            place = await asyncio.wait_for(_awaited(handle.ready.remote()), REPLACE_S)
        except (TimeoutError, self.ray.exceptions.RayError):
            with contextlib.suppress(Exception):
                self.ray.kill(handle)
        else:
            self.seats.append(_Seat(handle, self.per_player, place["node"], place["pid"]))
        finally:
            self._starting -= 1
            self._event().set()

    # ------------------------------------------------------------------ retrieves
    async def _serve_questions(self) -> None:
        """Answer the nodes' retrieve questions as they come (runs while the executor does)."""
        while True:
            questions: list[Question] = await self.relay.questions.remote(POLL_S)
            for question in questions:
                task = asyncio.create_task(self._answer(question))
                if question.attempt in self._attempts:
                    self._serving[question.attempt] = task

    async def _answer(self, question: Question) -> None:
        owner = self._attempts.get(question.attempt)
        if owner is None:  # its job has ended meanwhile
            self.relay.answer.remote(question.attempt, None)
            return
        lane, key = owner
        try:
            result = self._answers.get(key)
            if result is None:  # (a retry reuses the answer its lost attempt got)
                result = await lane.retrieve(question.memory, question.start)
                self._answers[key] = result
        except BaseException as refused:
            self._refused[question.attempt] = refused
            self.relay.answer.remote(question.attempt, None)
            if not isinstance(refused, Exception):
                raise
            return
        self.relay.answer.remote(question.attempt, result.value)

    # ------------------------------------------------------------------ for tests and benchmarks
    async def busy(self) -> int:
        """Episodes playing on the players now."""
        counts = await asyncio.gather(*(_awaited(s.handle.busy.remote()) for s in self.seats))
        return sum(counts)

    async def budget_report(self) -> dict[str, Any]:
        report: dict[str, Any] = await self.budget.report.remote()
        return report


async def _awaited(ref: Any) -> Any:
    return await ref
