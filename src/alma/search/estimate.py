"""What a search would run and spend, before anything is spent (``alma learn --dry-run``).

The counts follow the loop exactly (the reference, the seeded designs, the design written from
scratch, ``iterations x parents`` children and the held-out comparison), each evaluation
playing ``build + repeats x deploy`` episodes. Tokens are an upper bound built from what the
acting agent would really send: the system prompt, and the first observations and admissible
actions of the search's own tasks, as the conversation grows step by step up to the step limit
(within the history budget); each meta step counts its whole prompt budget and answer cap, with
every repair round. Dollars come from the price table. Memory designs' own model calls depend on
the designs the search will write, so they are not counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from alma.agent.conversation import newest_text, system_prompt, template, turn_text
from alma.config import AlmaConfig
from alma.domains.registry import configured_domain, open_env
from alma.evaluate.tasks import select_tasks
from alma.llm.factory import parse_model_spec
from alma.llm.prices import PriceTable
from alma.memory.loading import reference_names
from alma.search.loop import REFERENCE, meta_spec
from alma.types import Usage

CHARS_PER_TOKEN = 4  # alma's own estimator (see alma.llm.tokens)
ANSWER_TOKENS = 80  # a step's answer: a short thought and an action
SAMPLED_TASKS = 3  # tasks whose first observation sizes the agent's turns


@dataclass
class Spend:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Estimate:
    domain: str
    evaluations: int
    episodes_per_evaluation: int
    episodes: int
    step_limit: int
    by_role: dict[str, Spend] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["by_role"] = {
            role: {**asdict(spend), "tokens": spend.tokens} for role, spend in self.by_role.items()
        }
        total = Spend()
        for spend in self.by_role.values():
            total.calls += spend.calls
            total.prompt_tokens += spend.prompt_tokens
            total.completion_tokens += spend.completion_tokens
            total.cost_usd += spend.cost_usd
        data["total"] = {**asdict(total), "tokens": total.tokens}
        data["upper_bound"] = True
        return data


def _tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN + 5


def _episode_prompt_tokens(
    config: AlmaConfig, system: int, turn: int, actions: int, limit: int
) -> int:
    """Prompt tokens of every call of one episode that runs to the step limit."""
    history = config.agent.history_tokens
    total = 0
    for step in range(limit):
        kept = min(step * (turn + ANSWER_TOKENS), history)  # earlier turns, within the budget
        total += system + turn + kept + actions
    return total


def estimate_learn(config: AlmaConfig, domain_name: str) -> Estimate:
    domain = configured_domain(config, domain_name)
    learn = config.learn
    build, deploy = select_tasks(
        domain, learn.split, config.eval, quick=learn.quick, seed=config.run.seed
    )
    per_evaluation = len(build) + config.eval.repeats * len(deploy)
    seeded = (
        len([n for n in reference_names() if n != REFERENCE])
        if (learn.seed_designs == "baselines")
        else 0
    )
    held_out = 0 if learn.held_out == "none" else 3
    evaluations = (
        1
        + seeded
        + len(learn.seed_files)
        + 1
        + learn.iterations * (learn.parents_per_iteration)
        + held_out
    )
    limit = min(domain.step_limit, config.agent.max_steps or domain.step_limit)

    turns, listed = [], []
    for task in (build + deploy)[:SAMPLED_TASKS]:
        env = open_env(domain, task)
        try:
            first = env.reset()
        finally:
            env.close()
        turns.append(_tokens(turn_text(first)))
        listed.append(_tokens(newest_text(first, 1, limit)))
    turn, actions = max(turns), max(listed)
    system = _tokens(system_prompt(domain.instructions, "")) + _tokens(
        template("first_turn").template
    )
    episodes = evaluations * per_evaluation
    agent = Spend(
        calls=episodes * limit,
        prompt_tokens=episodes * _episode_prompt_tokens(config, system, turn, actions, limit),
        completion_tokens=episodes * limit * ANSWER_TOKENS,
    )
    # each child: an analysis, an implementation and up to max_repairs repairs; plus the
    # design written from scratch (and its repairs)
    children = learn.iterations * learn.parents_per_iteration
    meta_calls = children * (2 + learn.max_repairs) + (1 + learn.max_repairs)
    meta = Spend(
        calls=meta_calls,
        prompt_tokens=meta_calls * learn.meta_token_budget,
        completion_tokens=meta_calls * learn.meta_max_tokens,
    )
    prices = PriceTable(config.prices)
    models = {"agent": config.models.agent, "meta": meta_spec(config)}
    for role, spend in (("agent", agent), ("meta", meta)):
        label = parse_model_spec(models[role]).label
        usage = Usage(spend.prompt_tokens, spend.completion_tokens)
        spend.cost_usd = prices.cost(label, usage)
    return Estimate(
        domain.name,
        evaluations,
        per_evaluation,
        episodes,
        limit,
        {"agent": agent, "meta": meta},
        models,
    )
