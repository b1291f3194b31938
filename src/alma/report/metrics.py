"""What the report and the exports derive from a run: each design's gains over the baselines
with paired p-values, its spend per episode by role, its failures; the best score as the search
went on; the Pareto front of score against cost; why episodes failed.

Gains are paired: a design and a baseline are compared task by task on the tasks both were
scored on (:func:`alma.evaluate.statistics.paired_bootstrap`), which is fair because every design
of a run is evaluated on the same tasks with the same seed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from alma.evaluate.statistics import PairedComparison, paired_bootstrap
from alma.report.data import NO_MEMORY, SELECTION_ROLE, Design, EpisodeRow, Evaluation, RunData

SPENDERS = ("agent", "memory")  # the roles an evaluation spends on (the meta agent does not)
BOOTSTRAP_SAMPLES = 2000  # enough for p-values to 0.001; keeps a 200-design report fast
FAILED_REASON_SUCCESS = "success"


@dataclass(frozen=True)
class DesignMetrics:
    """One design's row of the design table (and of the ``designs`` export)."""

    design: Design
    train: Evaluation | None
    gain_over_parent: float | None
    vs_no_memory: PairedComparison | None
    vs_best_reference: PairedComparison | None
    tokens_per_episode: dict[str, float]  # by spending role
    usd_per_episode: dict[str, float]
    memory_chars: float | None  # mean characters memory returned per deploy episode
    failed_episodes: int  # episodes of its train evaluation that did not succeed
    errored_episodes: int  # ... that could not finish (not the agent's doing)
    failed_memory_calls: int
    failed_verifications: int  # verification rounds of its code that did not pass

    @property
    def score(self) -> float | None:
        return self.train.score if self.train is not None else None


@dataclass(frozen=True)
class HeldOut:
    """A design scored on a split other than the search's, next to ``no_memory`` there."""

    design: Design
    evaluation: Evaluation
    vs_no_memory: PairedComparison | None


@dataclass(frozen=True)
class BestPoint:
    iteration: int
    design_id: str
    score: float
    ci_low: float
    ci_high: float


def baseline(run: RunData) -> Design | None:
    """The no-memory design (the reference the search measures designs against)."""
    found = [d for d in run.designs if d.name == NO_MEMORY and d.origin == "reference"]
    return found[0] if found else None


def best_reference(run: RunData) -> Design | None:
    """The best hand-made reference design other than ``no_memory`` (by train score)."""
    scored = [
        (evaluation, d)
        for d in run.designs
        if d.origin == "reference" and d.name != NO_MEMORY
        for evaluation in [run.train(d)]
        if evaluation is not None and evaluation.score is not None
    ]
    if not scored:
        return None
    return max(scored, key=lambda pair: (pair[0].score or 0.0, -(pair[0].stderr or 0.0)))[1]


def compare(a: Evaluation | None, b: Evaluation | None) -> PairedComparison | None:
    """``a`` against ``b`` task by task; None when either has no score or they share no task."""
    if a is None or b is None or a.score is None or b.score is None:
        return None
    result = paired_bootstrap(a.per_task, b.per_task, samples=BOOTSTRAP_SAMPLES)
    return result if result.tasks else None


def design_metrics(run: RunData) -> list[DesignMetrics]:
    """Every design, in the order archived."""
    by_key: dict[str, list[EpisodeRow]] = {}
    for episode in run.episodes:
        by_key.setdefault(episode.evaluation_key, []).append(episode)
    base = baseline(run)
    reference = best_reference(run)
    base_eval = run.train(base) if base is not None else None
    reference_eval = run.train(reference) if reference is not None else None
    rows: list[DesignMetrics] = []
    for design in run.designs:
        train = run.train(design)
        parent = run.design(design.parent)
        parent_eval = run.train(parent) if parent is not None else None
        episodes = by_key.get(train.key, []) if train is not None else []
        deployed = [e.memory_chars for e in episodes if e.phase == "deploy"]
        rows.append(
            DesignMetrics(
                design=design,
                train=train,
                gain_over_parent=(
                    train.score - parent_eval.score
                    if train is not None
                    and parent_eval is not None
                    and train.score is not None
                    and parent_eval.score is not None
                    else None
                ),
                vs_no_memory=None if design is base else compare(train, base_eval),
                vs_best_reference=None if design is reference else compare(train, reference_eval),
                tokens_per_episode={
                    role: train.per_episode(role, "tokens") if train else 0.0 for role in SPENDERS
                },
                usd_per_episode={
                    role: train.per_episode(role, "cost_usd") if train else 0.0 for role in SPENDERS
                },
                memory_chars=sum(deployed) / len(deployed) if deployed else None,
                failed_episodes=sum(not e.success for e in episodes),
                errored_episodes=sum(e.reason == "error" for e in episodes),
                failed_memory_calls=train.failed_memory_calls if train is not None else 0,
                failed_verifications=sum(
                    not v.passed for v in run.verifications.get(design.id, [])
                ),
            )
        )
    return rows


def held_out(run: RunData) -> list[HeldOut]:
    """Designs evaluated under a role other than ``train``, each against ``no_memory``'s
    evaluation under the same role."""
    base = baseline(run)
    base_links = {link.role: link.key for link in base.links} if base is not None else {}
    found: list[HeldOut] = []
    for design in run.designs:
        for link in design.links:
            evaluation = run.evaluations.get(link.key)
            if link.role == SELECTION_ROLE or evaluation is None:
                continue
            other = run.evaluations.get(base_links.get(link.role, ""))
            versus = None if design is base else compare(evaluation, other)
            found.append(HeldOut(design, evaluation, versus))
    return found


def best_so_far(run: RunData) -> list[BestPoint]:
    """At each iteration, the best design archived up to then (highest train score, then
    lowest error, then earliest), with its confidence interval."""
    if not run.designs:
        return []
    last = max(d.iteration for d in run.designs)
    points: list[BestPoint] = []
    best: tuple[float, float, float, str] | None = None  # -score, stderr, created, id
    best_eval: Evaluation | None = None
    ordered = sorted(run.designs, key=lambda d: d.iteration)
    position = 0
    for iteration in range(last + 1):
        while position < len(ordered) and ordered[position].iteration <= iteration:
            design = ordered[position]
            position += 1
            evaluation = run.train(design)
            if evaluation is None or evaluation.score is None:
                continue
            rank = (-evaluation.score, evaluation.stderr or 0.0, design.created, design.id)
            if best is None or rank < best:
                best, best_eval = rank, evaluation
        if best is not None and best_eval is not None:
            points.append(
                BestPoint(
                    iteration,
                    best[3],
                    -best[0],
                    best_eval.ci_low if best_eval.ci_low is not None else -best[0],
                    best_eval.ci_high if best_eval.ci_high is not None else -best[0],
                )
            )
    return points


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (cost ``x`` no higher and score ``y`` no
    lower, one of them strictly), ordered by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best_y = float("-inf")
    for i in order:
        if points[i][1] > best_y:
            front.append(i)
            best_y = points[i][1]
    return front


def failure_reasons(run: RunData) -> Counter[str]:
    """How the episodes that did not succeed ended (``step_limit``, ``error``...)."""
    return Counter(e.reason for e in run.episodes if not e.success)


def evaluation_errors(run: RunData) -> Counter[str]:
    """Why evaluations gave no score, first line of each reason."""
    return Counter(
        (e.error or e.status).splitlines()[0][:200]
        for e in run.evaluations.values()
        if e.score is None
    )
