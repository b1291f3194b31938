"""Parent selection: which archived designs the meta agent improves next.

The default is ALMA's rule. For each candidate design

    s = sigmoid(score − reference) − 0.5 · ln(1 + times chosen)
    p ∝ exp(s / τ),  τ = 0.5

and ``k`` parents are drawn without replacement, re-normalising over the designs left after
each draw. ``reference`` is the no-memory design's train score: beating it raises a design's
chance, and every time a design has been picked already lowers it, so the search keeps
exploring. All draws of a run come from one ``numpy.random.Generator`` seeded once
(:func:`make_selector`); :meth:`Selector.state` gives its JSON-able state for the loop's
checkpoint and :meth:`Selector.restore` puts it back, so a resumed run continues the very same
random sequence.

Alternatives: ``greedy`` (top-k by score), ``uniform`` (every candidate alike) and ``novelty``
(ALMA's rule plus a bonus for code unlike the other candidates, measured by a cheap
deterministic token-shingle Jaccard distance).

Selectors are found by name in the ``alma.selectors`` entry-point group (these four are
alma's own entries, in its ``pyproject.toml``); a package adds one with a line
``name = "package.module:Factory"``, where ``Factory(rng, temperature)`` builds a
:class:`Selector`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution, entry_points
from typing import Any, Protocol

import numpy as np

from alma.errors import UsageError
from alma.search.archive_records import DesignRecord

SELECTOR_GROUP = "alma.selectors"  # the entry-point group selectors register in
DEFAULT_SELECTOR = "alma"
DEFAULT_TEMPERATURE = 0.5
VISIT_PENALTY = 0.5  # the factor of ln(1 + times chosen)
DEFAULT_NOVELTY_WEIGHT = 0.5
SHINGLE = 3  # tokens per shingle in the code distance


@dataclass(frozen=True)
class Selection:
    """The parents picked, in draw order, and each candidate's probability at the first draw."""

    chosen: tuple[str, ...] = ()
    probabilities: dict[str, float] = field(default_factory=dict)


class Selector(Protocol):
    name: str

    def select(
        self, candidates: Sequence[DesignRecord], k: int, reference_score: float
    ) -> Selection: ...

    def state(self) -> dict[str, Any]:
        """The JSON-able state of the selector's random generator ({} when it has none)."""
        ...

    def restore(self, state: dict[str, Any]) -> None: ...


class SelectorFactory(Protocol):
    """What an ``alma.selectors`` entry names: a selector class or function taking the run's
    generator (seeded once) and the selection temperature, which it may ignore."""

    def __call__(self, rng: np.random.Generator, temperature: float) -> Selector: ...


# --------------------------------------------------------------------------- building blocks


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def alma_scores(candidates: Sequence[DesignRecord], reference_score: float) -> list[float]:
    """s = sigmoid(score − reference) − 0.5·ln(1 + times chosen), per candidate."""
    return [
        sigmoid(_score(c) - reference_score) - VISIT_PENALTY * math.log1p(c.times_chosen)
        for c in candidates
    ]


def softmax(values: Sequence[float], temperature: float) -> list[float]:
    """p ∝ exp(v / τ), computed without overflow."""
    if not values:
        return []
    top = max(values)
    weights = [math.exp((v - top) / temperature) for v in values]
    total = math.fsum(weights)
    return [w / total for w in weights]


def draw_without_replacement(
    rng: np.random.Generator, values: Sequence[float], temperature: float, k: int
) -> list[int]:
    """Indices of ``k`` draws from softmax(values / τ), re-normalised over the rest each time.

    Each draw consumes exactly one ``rng.random()``, so the sequence is reproducible from the
    generator's state.
    """
    remaining = list(range(len(values)))
    chosen: list[int] = []
    for _ in range(min(k, len(values))):
        probabilities = softmax([values[i] for i in remaining], temperature)
        cumulative = np.cumsum(probabilities)
        u = float(rng.random()) * float(cumulative[-1])
        position = int(np.searchsorted(cumulative, u, side="right"))
        position = min(position, len(remaining) - 1)
        chosen.append(remaining.pop(position))
    return chosen


def code_tokens(source: str) -> list[str]:
    """Identifiers, numbers and single punctuation marks of the code, comments left out."""
    code = re.sub(r"#[^\n]*", " ", source)
    return re.findall(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?|[^\sA-Za-z0-9_]", code)


def shingles(source: str, size: int = SHINGLE) -> frozenset[tuple[str, ...]]:
    tokens = code_tokens(source)
    if len(tokens) < size:
        return frozenset([tuple(tokens)]) if tokens else frozenset()
    return frozenset(tuple(tokens[i : i + size]) for i in range(len(tokens) - size + 1))


def code_distance(a: str, b: str) -> float:
    """1 − Jaccard similarity of the two codes' token shingles: 0 same, 1 nothing shared."""
    return _jaccard_distance(shingles(a), shingles(b))


def _jaccard_distance(a: frozenset[tuple[str, ...]], b: frozenset[tuple[str, ...]]) -> float:
    union = len(a | b)
    return 0.0 if union == 0 else 1.0 - len(a & b) / union


def _score(candidate: DesignRecord) -> float:
    if candidate.score is None:
        raise ValueError(f"candidate {candidate.id} has no train score")
    return candidate.score


def _check(candidates: Sequence[DesignRecord], k: int) -> None:
    if k < 0:
        raise ValueError(f"k must be >= 0, not {k}")
    ids = [c.id for c in candidates]
    if len(set(ids)) != len(ids):
        raise ValueError("a design appears twice among the candidates")


def _check_temperature(temperature: float) -> None:
    if not (temperature > 0 and math.isfinite(temperature)):
        raise UsageError(
            f"selection temperature must be a positive number, not {temperature}",
            hint="the default is 0.5; lower picks the best designs more often",
        )


class _Seeded:
    """A selector drawing from one generator whose state can be saved and put back."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def state(self) -> dict[str, Any]:
        return {"rng": dict(self.rng.bit_generator.state)}

    def restore(self, state: dict[str, Any]) -> None:
        saved = state.get("rng")
        if not isinstance(saved, dict):
            raise ValueError("the selector state has no random generator state")
        expected = type(self.rng.bit_generator).__name__
        if saved.get("bit_generator") != expected:
            raise ValueError(
                f"saved generator is {saved.get('bit_generator')!r}, this selector uses "
                f"{expected!r}"
            )
        self.rng.bit_generator.state = saved


# --------------------------------------------------------------------------- selectors


class AlmaSelector(_Seeded):
    """ALMA's rule: softmax over sigmoid(score − reference) − 0.5·ln(1 + times chosen)."""

    name = "alma"

    def __init__(self, rng: np.random.Generator, temperature: float = DEFAULT_TEMPERATURE) -> None:
        super().__init__(rng)
        _check_temperature(temperature)
        self.temperature = temperature

    def values(self, candidates: Sequence[DesignRecord], reference_score: float) -> list[float]:
        return alma_scores(candidates, reference_score)

    def select(
        self, candidates: Sequence[DesignRecord], k: int, reference_score: float
    ) -> Selection:
        _check(candidates, k)
        if not candidates:
            return Selection()
        values = self.values(candidates, reference_score)
        probabilities = softmax(values, self.temperature)
        picked = draw_without_replacement(self.rng, values, self.temperature, k)
        return Selection(
            tuple(candidates[i].id for i in picked),
            {c.id: p for c, p in zip(candidates, probabilities, strict=True)},
        )


class NoveltySelector(AlmaSelector):
    """ALMA's rule plus ``weight`` × novelty: a design's mean code distance to the others."""

    name = "novelty"

    def __init__(
        self,
        rng: np.random.Generator,
        temperature: float = DEFAULT_TEMPERATURE,
        weight: float = DEFAULT_NOVELTY_WEIGHT,
    ) -> None:
        super().__init__(rng, temperature)
        self.weight = weight
        self._shingles: dict[str, frozenset[tuple[str, ...]]] = {}  # ids name fixed code

    def novelty(self, candidates: Sequence[DesignRecord]) -> list[float]:
        """Mean distance of each candidate's code to the other candidates' (0 when alone)."""
        sets = [self._shingles_of(c) for c in candidates]
        n = len(sets)
        if n < 2:
            return [0.0] * n
        totals = [0.0] * n
        for i in range(n):
            for j in range(i + 1, n):
                distance = _jaccard_distance(sets[i], sets[j])
                totals[i] += distance
                totals[j] += distance
        return [total / (n - 1) for total in totals]

    def values(self, candidates: Sequence[DesignRecord], reference_score: float) -> list[float]:
        base = alma_scores(candidates, reference_score)
        bonus = self.novelty(candidates)
        return [s + self.weight * b for s, b in zip(base, bonus, strict=True)]

    def _shingles_of(self, candidate: DesignRecord) -> frozenset[tuple[str, ...]]:
        found = self._shingles.get(candidate.id)
        if found is None:
            found = self._shingles[candidate.id] = shingles(candidate.source)
        return found


class UniformSelector(_Seeded):
    """Every candidate alike, whatever its score: the baseline for judging a selection rule."""

    name = "uniform"

    def __init__(self, rng: np.random.Generator, temperature: float = DEFAULT_TEMPERATURE) -> None:
        super().__init__(rng)  # every candidate alike: the temperature has no say

    def select(
        self, candidates: Sequence[DesignRecord], k: int, reference_score: float
    ) -> Selection:
        _check(candidates, k)
        if not candidates:
            return Selection()
        values = [0.0] * len(candidates)
        picked = draw_without_replacement(self.rng, values, 1.0, k)
        share = 1.0 / len(candidates)
        return Selection(tuple(candidates[i].id for i in picked), {c.id: share for c in candidates})


class GreedySelector:
    """The top ``k`` by score; ties go to the design picked fewer times, then the smaller id."""

    name = "greedy"

    def __init__(
        self, rng: np.random.Generator | None = None, temperature: float = DEFAULT_TEMPERATURE
    ) -> None:
        pass  # draws nothing: neither a generator nor a temperature has a say

    def select(
        self, candidates: Sequence[DesignRecord], k: int, reference_score: float
    ) -> Selection:
        _check(candidates, k)
        ranked = sorted(candidates, key=lambda c: (-_score(c), c.times_chosen, c.id))
        chosen = tuple(c.id for c in ranked[:k])
        return Selection(chosen, {c.id: 1.0 if c.id in chosen else 0.0 for c in candidates})

    def state(self) -> dict[str, Any]:
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        return None


# --------------------------------------------------------------------------- registry


@cache
def _own() -> dict[str, EntryPoint]:
    """alma's own selectors, read from its own metadata (no scan of every installed package)."""
    try:
        entries = distribution("alma").entry_points.select(group=SELECTOR_GROUP)
    except PackageNotFoundError:
        return {}
    return {entry.name: entry for entry in entries}


@cache
def _registered() -> dict[str, EntryPoint]:
    """Every registered selector; alma's own win over another package's of the same name."""
    return {**{entry.name: entry for entry in entry_points(group=SELECTOR_GROUP)}, **_own()}


def selector_names() -> list[str]:
    """The names of the registered selectors, sorted."""
    return sorted(_registered())


def make_selector(
    name: str = DEFAULT_SELECTOR, seed: int = 0, temperature: float = DEFAULT_TEMPERATURE
) -> Selector:
    """The selector called ``name``, drawing from a generator seeded once with ``seed``."""
    key = name.strip().lower()
    entry = _own().get(key) or _registered().get(key)
    if entry is None:
        names = selector_names()
        raise UsageError(
            f"unknown parent selector {name!r}",
            hint=f"choose one of: {', '.join(names)}"
            if names
            else "no selector is registered: reinstall alma (pip install -e .)",
        )
    _check_temperature(temperature)
    try:
        factory: SelectorFactory = entry.load()
    except (ImportError, AttributeError) as error:
        raise UsageError(
            f"parent selector {key!r} ({entry.value}) cannot be loaded: {error}",
            hint="reinstall the package that provides it",
        ) from None
    return factory(np.random.default_rng(seed), temperature)
