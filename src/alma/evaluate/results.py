"""What an evaluation gives: its score (or why there is none), per-task outcomes, tokens and
dollars by purpose, and the memory calls it made."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from alma.memory.runner import CallResult


@dataclass
class MemoryCalls:
    retrieve_calls: int = 0
    retrieve_errors: int = 0
    retrieve_seconds: float = 0.0
    update_calls: int = 0
    update_errors: int = 0
    update_seconds: float = 0.0
    truncated: int = 0
    errors: list[str] = field(default_factory=list)  # the first few, for the report
    traces: list[str] = field(default_factory=list)  # their tracebacks, where they crashed

    def add(self, kind: str, result: CallResult) -> None:
        if kind == "retrieve":
            self.retrieve_calls += 1
            self.retrieve_seconds += result.seconds
            self.retrieve_errors += result.error is not None
        else:
            self.update_calls += 1
            self.update_seconds += result.seconds
            self.update_errors += result.error is not None
        if result.error is not None and len(self.errors) < 5:
            self.errors.append(f"{kind}: {result.error}")
            if result.trace:
                self.traces.append(result.trace)

    @property
    def failed_calls(self) -> int:
        return self.retrieve_errors + self.update_errors


@dataclass
class EvalResult:
    key: str
    design_id: str
    design_name: str
    domain: str
    split: str
    rollout: str
    score: float = 0.0
    stderr: float = 0.0
    ci95: tuple[float, float] = (0.0, 0.0)
    repeats: list[float] = field(default_factory=list)
    n_episodes: int = 0
    per_task: dict[str, list[bool]] = field(default_factory=dict)
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)
    cost_usd: float = 0.0
    memory: MemoryCalls = field(default_factory=MemoryCalls)
    episode_errors: int = 0  # episodes that could not finish (the evaluation is incomplete)
    build_tasks: list[str] = field(default_factory=list)
    deploy_tasks: list[str] = field(default_factory=list)
    status: str = "done"  # done, design_failed, incomplete, interrupted
    error: str | None = None  # why it is not a score (design_failed, incomplete)
    error_line: int | None = None  # the design's line where it failed, when known
    skipped_calls: int = 0  # design calls not attempted once the design was given up
    resumed_episodes: int = 0  # finished episodes of an earlier attempt, used as they were
    seconds: float = 0.0
    reused: bool = False  # served from an earlier identical evaluation in this run
    tasks_source: str = ""  # "generated" or "official" when the domain says where tasks come from

    @property
    def scored(self) -> bool:
        return self.status == "done"

    def task_scores(self) -> dict[str, float]:
        return {task: sum(runs) / len(runs) for task, runs in self.per_task.items() if runs}

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failed_memory_calls"] = self.memory.failed_calls
        if not self.scored:  # never a score: not even a zero
            data["score"] = data["stderr"] = None
        return data

    @staticmethod
    def from_dict(data: dict[str, Any]) -> EvalResult:
        data = dict(data)
        data.pop("failed_memory_calls", None)
        data.setdefault("status", "design_failed" if data.get("error") else "done")
        data["score"], data["stderr"] = data.get("score") or 0.0, data.get("stderr") or 0.0
        data["memory"] = MemoryCalls(**data["memory"])
        data["ci95"] = tuple(data["ci95"])
        return EvalResult(**data)
