"""Scores with honest error bars: repeat means, standard errors, bootstrap intervals over tasks,
and paired bootstrap comparisons between designs evaluated on the same tasks."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, 0.0
    return mean, float(np.std(values, ddof=1) / math.sqrt(len(values)))


def bootstrap_ci(
    values: Sequence[float], *, level: float = 0.95, samples: int = 5000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (e.g. per-task success rates)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(samples, data.size))].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


@dataclass(frozen=True)
class PairedComparison:
    gain: float  # mean of (a - b) over shared tasks
    ci_low: float
    ci_high: float
    p_value: float  # two-sided, for "no difference"
    tasks: int


def paired_bootstrap(
    a: Mapping[str, float],
    b: Mapping[str, float],
    *,
    level: float = 0.95,
    samples: int = 5000,
    seed: int = 0,
) -> PairedComparison:
    """Compare per-task scores of two designs on the tasks both were scored on."""
    shared = sorted(set(a) & set(b))
    if not shared:
        return PairedComparison(0.0, 0.0, 0.0, 1.0, 0)
    diffs = np.asarray([a[task] - b[task] for task in shared], dtype=float)
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, diffs.size, size=(samples, diffs.size))].mean(axis=1)
    tail = (1 - level) / 2
    if np.all(diffs == 0):
        p_value = 1.0
    else:
        below = float(np.mean(means <= 0))
        above = float(np.mean(means >= 0))
        p_value = min(1.0, 2 * min(below, above))
    return PairedComparison(
        float(diffs.mean()),
        float(np.quantile(means, tail)),
        float(np.quantile(means, 1 - tail)),
        p_value,
        len(shared),
    )
