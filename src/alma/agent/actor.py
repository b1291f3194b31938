"""The acting agent: plays one episode of a domain with a model and, optionally, a memory.

Each step the model answers ``{thought, action}``; the action is matched to the admissible
actions; the conversation is append-only (so endpoints can reuse their prompt cache) and, when it
outgrows its token budget, the oldest steps are dropped in one chunk and listed in a short note.

With ``constrain_actions`` on, a step whose observation lists the admissible actions asks for a
schema whose ``action`` is an enum of exactly those actions: an endpoint with grammar-constrained
output (the embedded llama.cpp server) can then only answer one of them, and any endpoint's
answer outside them fails validation (one repair round, then an invalid step).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from alma.agent.conversation import (
    AgentAction,
    AgentStep,
    History,
    first_text,
    kept_answer,
    newest_text,
    step_schema,
    system_prompt,
    template,
    thought_of,
    turn_text,
)
from alma.agent.env_thread import EnvThread
from alma.agent.matching import match_action
from alma.config import AgentConfig
from alma.domains.base import Domain, TextEnv
from alma.domains.registry import open_env
from alma.errors import (
    AlmaError,
    BudgetExceededError,
    EnvironmentTimeoutError,
    MalformedOutputError,
    UnknownModelError,
    UsageError,
)
from alma.llm.base import LLM
from alma.llm.factory import parse_model_spec
from alma.memory.rendering import render_memory
from alma.types import (
    Episode,
    EpisodeStart,
    Observation,
    Outcome,
    OutcomeReason,
    Step,
    Task,
    Transition,
    Usage,
)

Recall = Callable[[EpisodeStart], Awaitable[dict[str, Any]]]

log = logging.getLogger("alma.agent")

ConstrainSetting = bool | Literal["auto"]


def constrains_actions(setting: ConstrainSetting, agent_model: str) -> bool:
    """Whether the acting agent's actions are held to the admissible ones, from ``[agent]
    constrain_actions`` and the agent's model spec. ``auto`` is on for the embedded models
    (``local``, ``local-small``, ``local:<path>``): their grammar makes an inadmissible answer
    impossible, and the small ones otherwise drift into actions the game does not know."""
    if isinstance(setting, bool):
        return setting
    try:
        return parse_model_spec(agent_model).provider == "local"
    except UnknownModelError:  # a model registered under a name of its own
        return False


class Stepper:
    """Opens, resets, steps and closes one episode's environment, each call on the episode's
    own daemon thread (:class:`EnvThread`) and within ``timeout_s``: a call that takes longer
    raises :class:`EnvironmentTimeoutError` and is left running, so that a stuck game ends its
    episode, never the run, and neither keeps the process alive nor delays Ctrl-C. Never inline
    on the event loop because steps have been fast: a step that hangs there would stop
    everything, the time limit included. Only an environment that declares ``inline_steps``
    (alma's own in-memory engines, whose calls return in microseconds and cannot block) has its
    reset, steps and close called inline, which saves a thread hop per step."""

    def __init__(self, timeout_s: float, name: str = "alma-env") -> None:
        self.timeout_s = timeout_s
        self.env: TextEnv | None = None
        self._thread = EnvThread(name)

    async def _call(self, what: str, call: Callable[[], Any]) -> Any:
        future = asyncio.wrap_future(self._thread.submit(call))
        try:
            return await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            raise EnvironmentTimeoutError(
                f"environment {what} took longer than {self.timeout_s:g} s",
                hint="raise [agent] step_timeout_s if the game is slow rather than stuck",
            ) from None

    async def open(self, make: Callable[[], TextEnv]) -> None:
        self.env = await self._call("open", make)

    @property
    def inline(self) -> bool:
        return bool(getattr(self.env, "inline_steps", False))

    async def reset(self) -> Observation:
        assert self.env is not None, "open the environment first"
        if self.inline:
            return self.env.reset()
        observation: Observation = await self._call("reset", self.env.reset)
        return observation

    async def step(self, action: str) -> Transition:
        env = self.env
        assert env is not None, "open the environment first"
        if self.inline:
            return env.step(action)
        transition: Transition = await self._call("step", lambda: env.step(action))
        return transition

    async def close(self) -> None:
        """Close the environment after the calls before it. Waited for only when no call is
        running: after a timeout or an interruption the close waits its turn on the thread,
        and the episode does not wait for it."""
        try:
            if self.env is None:
                return
            if self.inline:
                self.env.close()
                return
            if not self._thread.idle:
                self._thread.submit(self.env.close)
                return
            try:
                await self._call("close", self.env.close)
            except EnvironmentTimeoutError as slow:
                log.warning("%s", slow.message)
        finally:
            self._thread.stop()


@dataclass
class Actor:
    """Plays episodes of one domain with one model."""

    llm: LLM
    domain: Domain
    history_tokens: int = 6000
    memory_chars: int = 6000
    max_tokens: int = 512
    match_cutoff: float = 0.6
    temperature: float | None = None  # None: the model layer's default
    max_steps: int | None = None  # a cap below the domain's step limit (quick trials)
    step_timeout_s: float = 60.0  # wall-clock limit of one environment call
    constrain_actions: bool = False  # action: an enum of the admissible actions, when listed
    skip_no_ops: bool = False  # leave out of the list what changed nothing from here before
    think: bool = True  # the answer carries a short thought before its action

    @classmethod
    def configured(cls, llm: LLM, domain: Domain, settings: AgentConfig, agent_model: str) -> Actor:
        """An actor playing as a run's ``[agent]`` settings say, with ``llm`` built from the
        spec ``agent_model`` (which resolves ``constrain_actions = "auto"``)."""
        return cls(
            llm,
            domain,
            history_tokens=settings.history_tokens,
            memory_chars=settings.memory_chars,
            max_tokens=settings.max_tokens,
            match_cutoff=settings.match_cutoff,
            temperature=settings.temperature,
            max_steps=settings.max_steps,
            step_timeout_s=settings.step_timeout_s,
            constrain_actions=constrains_actions(settings.constrain_actions, agent_model),
            skip_no_ops=settings.skip_no_ops,
            think=settings.think,
        )

    @property
    def step_limit(self) -> int:
        limit = self.domain.step_limit
        return min(limit, self.max_steps) if self.max_steps else limit

    async def run(
        self,
        task: Task,
        memory: dict[str, Any] | None = None,
        *,
        recall: Recall | None = None,
        seed: int | None = None,
        on_step: Callable[[Step], None] | None = None,
    ) -> Episode:
        """One episode. Budget exhaustion, model failures and environment errors end it early
        with the reason recorded; configuration errors propagate.

        ``memory`` is rendered into the prompt; or ``recall`` is called with the episode's start
        (after the environment is reset) to get it. ``seed`` goes to every model call of the
        episode, so sampled episodes are reproducible and cacheable. ``on_step`` sees each step
        as it is played (``alma play --render`` draws the game with it)."""
        stepper = Stepper(self.step_timeout_s, name=f"alma-env-{task.id}")
        try:
            await stepper.open(functools.partial(open_env, self.domain, task, self.step_limit))
            return await self._play(stepper, task, memory or {}, recall, seed, on_step)
        except EnvironmentTimeoutError as stuck:  # opening or resetting: no step was played
            start = EpisodeStart(self.domain.name, task.description, "")
            outcome = Outcome(False, 0.0, 0, "error", stuck.message)
            return Episode(start=start, steps=(), outcome=outcome, memory=memory or {})
        finally:
            await stepper.close()

    def _offered(self, observation: Observation, no_ops: dict[str, set[str]]) -> Observation:
        """The observation with the actions to offer: with ``skip_no_ops``, those that already
        left this very observation unchanged are left out (while any other remains)."""
        tried = no_ops.get(observation.text)
        if not self.skip_no_ops or not tried or not observation.actions:
            return observation
        fresh = tuple(action for action in observation.actions if action not in tried)
        return dataclasses.replace(observation, actions=fresh) if fresh else observation

    def _schema(self, observation: Observation) -> type[AgentStep] | type[AgentAction]:
        """The schema of the next answer: constrained to the admissible actions when on."""
        if not self.constrain_actions or not observation.actions:
            return step_schema(None, self.think)
        return step_schema(tuple(observation.actions), self.think)

    async def _play(
        self,
        stepper: Stepper,
        task: Task,
        memory: dict[str, Any],
        recall: Recall | None,
        seed: int | None,
        on_step: Callable[[Step], None] | None = None,
    ) -> Episode:
        first = await stepper.reset()
        start = EpisodeStart(self.domain.name, task.description, first.text)
        if recall is not None:
            memory = await recall(start)
        memory_text, truncated = render_memory(memory, self.memory_chars)
        system = system_prompt(self.domain.instructions, memory_text, self.think)
        limit = self.step_limit
        history = History(
            self.history_tokens,
            first_text(task.description, first),
        )
        steps: list[Step] = []
        usage, cost, invalid = Usage(), 0.0, 0
        observation = first
        transition: Transition | None = None
        reason: OutcomeReason = "step_limit"
        error: str | None = None
        no_ops: dict[str, set[str]] = {}  # observation -> actions that left it unchanged
        for index in range(limit):
            offered = self._offered(observation, no_ops)
            schema = self._schema(offered)
            try:
                completion = await self.llm.complete(
                    history.messages(system, newest_text(offered, index + 1, limit)),
                    schema=schema,
                    max_tokens=self.max_tokens,
                    temperature=self.temperature,
                    # a fresh draw each step: one seed for every step makes a sampling model
                    # draw the same random stream at each turn and repeat itself
                    seed=None if seed is None else seed + index,
                )
            except BudgetExceededError as exc:
                reason, error = "budget", exc.message
                break
            except UsageError:
                raise
            except MalformedOutputError as exc:
                # the model answered, but not in the schema even after repair: the agent's own
                # mistake, an invalid step as the benchmarks count it; the episode goes on
                usage, invalid = usage + exc.usage, invalid + 1
                steps.append(Step(observation.text, "", "", 0.0, exc.text[:200], valid=False))
                turn = turn_text(observation) + template("unreadable").template
                history.add(exc.text[:500], "", turn)
                continue
            except AlmaError as exc:  # the endpoint failed for good: not the agent's doing
                reason, error = "error", exc.message
                break
            usage, cost = usage + completion.usage, cost + completion.cost_usd
            answer = completion.parsed
            assert isinstance(answer, AgentStep | AgentAction)
            action, matched = match_action(answer.action, observation.actions, self.match_cutoff)
            invalid += not matched
            try:
                result: Transition = await stepper.step(action)
            except EnvironmentTimeoutError as exc:  # stuck: left on its thread
                reason, error = "error", exc.message
                break
            except Exception as exc:  # a broken environment ends the episode, not the run
                reason, error = "error", f"environment failed: {type(exc).__name__}: {exc}"
                break
            transition = result
            steps.append(
                Step(
                    observation.text,
                    thought_of(answer),
                    action,
                    result.reward,
                    answer.action,
                    matched,
                )
            )
            if on_step is not None:
                on_step(steps[-1])
            if result.observation.text == observation.text:  # the action changed nothing
                no_ops.setdefault(observation.text, set()).add(action)
            observation = result.observation
            if result.done:
                reason = "success" if result.success else "done"
                if result.info.get("truncated"):
                    reason = "step_limit"
                break
            turn = turn_text(observation)
            if observation.text == steps[-1].observation:  # the action changed nothing
                turn += template("unchanged").template
            history.add(kept_answer(action), action, turn)
        success = transition is not None and transition.success and reason == "success"
        score = float(transition.info.get("score", float(success))) if transition else 0.0
        return Episode(
            start=start,
            steps=tuple(steps),
            outcome=Outcome(success, score, len(steps), reason, error),
            final_observation=observation.text,
            usage=usage,
            cost_usd=cost,
            invalid_actions=invalid,
            memory=memory,
            memory_truncated=truncated,
            constrained=self.constrain_actions,
        )


def episode_summary(episode: Episode) -> dict[str, Any]:
    """Headline figures of an episode, for printing."""
    return {
        "success": episode.outcome.success,
        "reason": episode.outcome.reason,
        "steps": episode.outcome.steps,
        "invalid_actions": episode.invalid_actions,
        "tokens": episode.usage.total_tokens,
        "cost_usd": round(episode.cost_usd, 6),
    }
