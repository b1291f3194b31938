"""The options the commands share, and the one place that turns flags into settings."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from alma import api
from alma.cli.views import ProgressView
from alma.progress import Listener, listening
from alma.types import SPLITS, Split

# results go to stdout; when it is not a terminal, wide enough for tables, never wrapped
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 160)


D = api.AlmaConfig()  # the defaults, shown in --help (alma.toml or flags change them)


class State:
    config_path: Path | None = None
    debug: bool = False
    resume_hint: str | None = None  # how to go on after an interruption, once a run is open


state = State()

ConfigPath = Annotated[
    Path | None, typer.Option("--config", help="settings file (default: ./alma.toml if present)")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]
AgentModel = Annotated[
    str | None,
    typer.Option(
        "--agent-model", help=f"model spec of the acting agent (default: {D.models.agent})"
    ),
]
MetaModel = Annotated[
    str | None,
    typer.Option("--meta-model", help=f"model spec of the meta agent (default: {D.models.meta})"),
]
MemoryModel = Annotated[
    str | None,
    typer.Option("--memory-model", help="model spec for memory designs (default: the agent's)"),
]
Embedder = Annotated[
    str | None, typer.Option("--embedder", help=f"embedding spec (default: {D.models.embedder})")
]
BaseUrl = Annotated[
    str | None, typer.Option("--base-url", help="OpenAI-compatible endpoint (or OPENAI_BASE_URL)")
]
BudgetUsd = Annotated[
    float | None, typer.Option("--budget-usd", help="stop after this spend (default: no limit)")
]
BudgetTokens = Annotated[
    int | None,
    typer.Option("--budget-tokens", help="stop after this many tokens (default: no limit)"),
]
NoCache = Annotated[bool, typer.Option("--no-cache", help="do not reuse cached model answers")]
Seed = Annotated[
    int | None, typer.Option("--seed", help=f"seed of the run (default: {D.run.seed})")
]
MaxSteps = Annotated[
    int | None,
    typer.Option("--max-steps", help="end episodes sooner (default: the domain's step limit)"),
]
RunDir = Annotated[
    Path | None,
    typer.Option("--run-dir", help="run directory to write (default: runs/<command>-<time>)"),
]
InProcess = Annotated[
    bool,
    typer.Option("--in-process", help="run designs inside alma, unisolated (trusted code only)"),
]
Unsafe = Annotated[
    bool,
    typer.Option(
        "--unsafe-no-sandbox", help="run designs even where no isolation is available (risky)"
    ),
]
Executor = Annotated[
    str | None,
    typer.Option(
        "--executor", help=f"who plays the episodes: local or ray (default: {D.executor.kind})"
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help='Ray cluster: "auto", "ray://host:port" or "host:port" (default: start one here)',
    ),
]
Rollout = Annotated[
    str | None,
    typer.Option(
        "--rollout", help=f"batched (memory frozen) or sequential (default: {D.eval.rollout})"
    ),
]
Quick = Annotated[bool, typer.Option("--quick", help="5 tasks: 2 build, 3 deploy")]
Tasks = Annotated[
    int | None,
    typer.Option(
        "--tasks", "--train-size", help="tasks of the split to use (default: 20, or all if fewer)"
    ),
]
SplitOption = Annotated[str, typer.Option("--split", help="train, eval_in_distribution, ...")]
DomainOption = Annotated[str, typer.Option("--domain", "-d", help="domain (see alma domains)")]
EpisodesConcurrency = Annotated[
    int | None,
    typer.Option(
        "--max-episodes-concurrency",
        help=f"episodes played at once (default: {D.eval.max_episodes_concurrency})",
    ),
]
UpdateConcurrency = Annotated[
    int | None,
    typer.Option(
        "--max-update-concurrency",
        help=f"1 = updates in task order (default: {D.eval.max_update_concurrency})",
    ),
]
RetrieveConcurrency = Annotated[
    int | None,
    typer.Option(
        "--max-retrieve-concurrency",
        help=f"retrieves at once (default: {D.eval.max_retrieve_concurrency})",
    ),
]


def check_split(split: str) -> Split:
    if split not in SPLITS:
        raise typer.BadParameter(
            f"{split!r} is not one of {', '.join(SPLITS)}", param_hint="--split"
        )
    return split


# the flags of a command that set what alma.toml sets: api.overrides' keywords, and the keys of
# its [eval] and [learn] sections (a flag's name: the setting's name)
TOP_FLAGS = (
    "agent_model",
    "meta_model",
    "memory_model",
    "embedder",
    "base_url",
    "budget_usd",
    "budget_tokens",
    "no_cache",
    "seed",
    "max_steps",
    "unsafe",
    "in_process",
    "executor",
    "ray_address",
)
EVAL_FLAGS = {
    "rollout": "rollout",
    "tasks": "tasks",
    "train_size": "tasks",
    "max_episodes_concurrency": "max_episodes_concurrency",
    "max_update_concurrency": "max_update_concurrency",
    "max_retrieve_concurrency": "max_retrieve_concurrency",
}
LEARN_FLAGS = {
    "iterations": "iterations",
    "selector": "selector",
    "parents": "parents_per_iteration",
    "temperature": "temperature",
    "seed_designs": "seed_designs",
    "max_repairs": "max_repairs",
}


def chosen(flags: dict[str, Any]) -> dict[str, Any]:
    """The settings a command's flags (its ``locals()``) choose, as :func:`alma.api.overrides`
    takes them."""
    return {
        **{name: flags[name] for name in TOP_FLAGS if name in flags},
        "eval": {key: flags[name] for name, key in EVAL_FLAGS.items() if name in flags},
        "learn": {key: flags[name] for name, key in LEARN_FLAGS.items() if name in flags},
    }


def settings(flags: dict[str, Any] | None = None) -> api.AlmaConfig:
    """The effective settings: defaults, then ``--config`` (or ./alma.toml), then the setting
    flags among ``flags`` (a command's ``locals()``)."""
    return api.configure(state.config_path, **chosen(flags or {}))


def print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


@contextmanager
def progress_shown(shown: bool) -> Iterator[Listener | None]:
    """A listener drawing progress on stderr, also set for the work done inside (None when
    ``shown`` is false: ``--json``)."""
    if not shown:
        yield None
        return
    view = ProgressView(err)
    try:
        with listening(view):
            yield view
    finally:
        view.close()


def say_models(config: api.AlmaConfig, roles: tuple[str, ...], shown: bool) -> None:
    """Before the work starts: which embedded models it will run (and any download)."""
    if shown:
        for line in api.embedded_models(config, roles):
            err.print(line, highlight=False, markup=False)
