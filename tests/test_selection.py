import json
import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from alma.config import load_config
from alma.errors import ConfigError, UsageError
from alma.search import selection
from alma.search.archive import DesignRecord
from alma.search.selection import (
    AlmaSelector,
    GreedySelector,
    NoveltySelector,
    Selector,
    UniformSelector,
    code_distance,
    make_selector,
    selector_names,
)

BUILT_IN = ["alma", "greedy", "novelty", "uniform"]


def record(
    design_id: str, score: float | None, times_chosen: int = 0, source: str = ""
) -> DesignRecord:
    return DesignRecord(
        id=design_id,
        name=design_id,
        origin="generated",
        parent=None,
        iteration=0,
        idea="",
        status="evaluated",
        score=score,
        stderr=0.0,
        cost=0.0,
        times_chosen=times_chosen,
        source=source or f"class {design_id.upper()}(MemoryDesign):\n    pass\n",
    )


# A: sigmoid(0.5 - 0.2)                = 0.574442516811659
# B: sigmoid(0.3 - 0.2) - 0.5 * ln(2)  = 0.524979187478940 - 0.346573590279973 = 0.178405597198967
# C: sigmoid(0.2 - 0.2)                = 0.5
# exp(s / 0.5): 3.154673593108803, 1.428766085345311, 2.718281828459045 (sum 7.301721506913159)
HAND = [record("a", 0.5), record("b", 0.3, times_chosen=1), record("c", 0.2)]
HAND_P = {"a": 0.43204518141673937, "b": 0.19567523685922245, "c": 0.37227958172403824}


def test_alma_probabilities_match_the_formula_by_hand() -> None:
    selection = AlmaSelector(np.random.default_rng(0)).select(HAND, 1, reference_score=0.2)
    assert selection.probabilities == pytest.approx(HAND_P, abs=1e-12)
    assert math.fsum(selection.probabilities.values()) == pytest.approx(1.0)
    # a lower temperature sharpens: tau = 0.1 gives exp(10 s)
    sharp = AlmaSelector(np.random.default_rng(0), temperature=0.1).select(HAND, 1, 0.2)
    weights = {"a": math.exp(5.74442516811659), "b": math.exp(1.78405597198967), "c": math.exp(5)}
    total = sum(weights.values())
    assert sharp.probabilities == pytest.approx({k: w / total for k, w in weights.items()})


def test_draw_frequencies_follow_the_probabilities() -> None:
    selector = AlmaSelector(np.random.default_rng(7))
    first = Counter(selector.select(HAND, 1, 0.2).chosen[0] for _ in range(6000))
    for design_id, p in HAND_P.items():
        assert first[design_id] / 6000 == pytest.approx(p, abs=0.03)
    # the second draw is re-normalised over what is left: after "a", b:c = 1.4288:2.7183
    second: Counter[str] = Counter()
    for _ in range(6000):
        chosen = selector.select(HAND, 2, 0.2).chosen
        if chosen[0] == "a":
            second[chosen[1]] += 1
    assert second["b"] / (second["b"] + second["c"]) == pytest.approx(0.3445260616809732, abs=0.03)


def test_draws_are_without_replacement_and_k_is_capped() -> None:
    candidates = [record(f"d{i}", i / 10, times_chosen=i % 3) for i in range(8)]
    selector = AlmaSelector(np.random.default_rng(1))
    for _ in range(200):
        chosen = selector.select(candidates, 5, 0.3).chosen
        assert len(chosen) == 5 and len(set(chosen)) == 5
    everything = selector.select(candidates, 50, 0.3)
    assert sorted(everything.chosen) == sorted(c.id for c in candidates)
    assert selector.select([], 5, 0.3).chosen == ()
    assert selector.select([], 5, 0.3).probabilities == {}
    nothing = selector.select(candidates, 0, 0.3)
    assert nothing.chosen == () and len(nothing.probabilities) == 8
    with pytest.raises(ValueError, match="k must be"):
        selector.select(candidates, -1, 0.3)
    with pytest.raises(ValueError, match="twice"):
        selector.select([candidates[0], candidates[0]], 1, 0.3)
    with pytest.raises(ValueError, match="no train score"):
        selector.select([record("x", None)], 1, 0.3)


def test_times_chosen_lowers_the_chance() -> None:
    fresh = AlmaSelector(np.random.default_rng(0)).select(
        [record("a", 0.5), record("b", 0.5)], 1, 0.0
    )
    assert fresh.probabilities["a"] == pytest.approx(0.5)
    visited = AlmaSelector(np.random.default_rng(0)).select(
        [record("a", 0.5, times_chosen=3), record("b", 0.5)], 1, 0.0
    )
    # s differs by 0.5 ln 4 = ln 2; exp(ln 2 / 0.5) = 4
    assert visited.probabilities["a"] == pytest.approx(1 / 5)


def draws(selector: Selector, n: int) -> list[tuple[str, ...]]:
    candidates = [record(f"d{i}", i / 10) for i in range(10)]
    return [selector.select(candidates, 3, 0.2).chosen for _ in range(n)]


def test_same_seed_same_sequence_and_no_reseeding_per_call() -> None:
    one = draws(make_selector("alma", seed=42, temperature=0.5), 20)
    two = draws(make_selector("alma", seed=42, temperature=0.5), 20)
    other = draws(make_selector("alma", seed=43, temperature=0.5), 20)
    assert one == two
    assert one != other
    assert len(set(one)) > 1  # successive calls go on along the sequence


@pytest.mark.parametrize("name", ["alma", "novelty", "uniform"])
def test_restored_state_continues_the_uninterrupted_sequence(name: str) -> None:
    candidates = [record(f"d{i}", i / 10, source=f"x = {i}\n" * (i + 1)) for i in range(10)]
    uninterrupted = make_selector(name, seed=5, temperature=0.5)
    first = uninterrupted.select(candidates, 3, 0.2)
    second = [uninterrupted.select(candidates, 3, 0.2) for _ in range(5)]

    interrupted = make_selector(name, seed=5, temperature=0.5)
    assert interrupted.select(candidates, 3, 0.2) == first
    saved = json.loads(json.dumps(interrupted.state()))  # as the loop checkpoints it
    resumed = make_selector(name, seed=999, temperature=0.5)  # a different seed: state decides
    resumed.restore(saved)
    assert [resumed.select(candidates, 3, 0.2) for _ in range(5)] == second
    fresh = make_selector(name, seed=5, temperature=0.5)
    assert [fresh.select(candidates, 3, 0.2) for _ in range(5)] != second


def test_restore_refuses_a_foreign_state() -> None:
    selector = AlmaSelector(np.random.default_rng(0))
    with pytest.raises(ValueError, match="no random generator state"):
        selector.restore({})
    other = AlmaSelector(np.random.Generator(np.random.MT19937(0)))
    with pytest.raises(ValueError, match="MT19937"):
        selector.restore(other.state())


def test_greedy_takes_the_top_with_ties_by_fewer_picks_then_id() -> None:
    candidates = [
        record("e", 0.4),
        record("b", 0.6, times_chosen=2),
        record("c", 0.6, times_chosen=1),
        record("a", 0.6, times_chosen=1),
        record("d", 0.9, times_chosen=9),
    ]
    selector = GreedySelector()
    selection = selector.select(candidates, 3, 0.2)
    assert selection.chosen == ("d", "a", "c")
    assert selection.probabilities == {"e": 0.0, "b": 0.0, "c": 1.0, "a": 1.0, "d": 1.0}
    assert selector.select(candidates, 9, 0.2).chosen == ("d", "a", "c", "b", "e")
    assert selector.select([], 3, 0.2).chosen == ()
    assert selector.state() == {}
    selector.restore({})


def test_uniform_ignores_scores() -> None:
    candidates = [record("a", 1.0), record("b", 0.0), record("c", None)]
    selector = UniformSelector(np.random.default_rng(3))
    selection = selector.select(candidates, 1, 0.5)
    assert selection.probabilities == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    counts = Counter(selector.select(candidates, 1, 0.5).chosen[0] for _ in range(3000))
    assert all(abs(counts[c] / 3000 - 1 / 3) < 0.04 for c in "abc")
    assert sorted(selector.select(candidates, 5, 0.5).chosen) == ["a", "b", "c"]


def test_code_distance() -> None:
    code = "def retrieve(self, start):\n    return {'notes': self.notes[-3:]}\n"
    assert code_distance(code, code) == 0.0
    assert code_distance(code, code + "# a comment only\n") == 0.0
    assert code_distance("a b c d", "w x y z") == 1.0
    assert code_distance("", "") == 0.0
    near = code.replace("-3", "-5")
    far = "class Graph:\n    def walk(self, node):\n        yield from self.edges[node]\n"
    assert 0.0 < code_distance(code, near) < code_distance(code, far) <= 1.0
    assert code_distance(code, near) == code_distance(near, code)


def test_novelty_favours_code_unlike_the_rest() -> None:
    shared = "def retrieve(self, start):\n    return {'notes': self.notes[-3:]}\n"
    twin_a = record("a", 0.5, source=shared + "LIMIT = 3\n")
    twin_b = record("b", 0.5, source=shared + "LIMIT = 4\n")
    odd = record("c", 0.5, source="class Graph:\n    def walk(self, n):\n        return n\n")
    candidates = [twin_a, twin_b, odd]
    novelty = NoveltySelector(np.random.default_rng(0), temperature=0.5, weight=1.0)
    bonus = novelty.novelty(candidates)
    d_ab = code_distance(twin_a.source, twin_b.source)
    d_ac = code_distance(twin_a.source, odd.source)
    d_bc = code_distance(twin_b.source, odd.source)
    assert bonus == pytest.approx([(d_ab + d_ac) / 2, (d_ab + d_bc) / 2, (d_ac + d_bc) / 2])
    p = novelty.select(candidates, 1, 0.2).probabilities
    assert p["c"] > p["a"] and p["c"] > p["b"]
    # p ∝ exp((s + w·novelty) / τ) with equal s: the ratio is exp(w·Δnovelty / τ)
    assert p["c"] / p["a"] == pytest.approx(math.exp((bonus[2] - bonus[0]) / 0.5))
    # without weight it is ALMA's rule
    plain = NoveltySelector(np.random.default_rng(0), weight=0.0).select(HAND, 1, 0.2)
    assert plain.probabilities == pytest.approx(HAND_P)
    assert novelty.novelty([twin_a]) == [0.0]


def test_make_selector_names_and_bad_input() -> None:
    assert selector_names() == BUILT_IN  # alma's own entries in the alma.selectors group
    assert [make_selector(name, 0, 0.5).name for name in BUILT_IN] == BUILT_IN
    assert isinstance(make_selector(), AlmaSelector)
    assert make_selector("Greedy", 0, 0.5).name == "greedy"
    with pytest.raises(UsageError) as error:
        make_selector("bandit", 0, 0.5)
    assert error.value.hint is not None
    assert all(name in error.value.hint for name in BUILT_IN)
    with pytest.raises(UsageError, match="temperature"):
        make_selector("alma", 0, 0.0)


PLUGIN = """\
from alma.search.selection import GreedySelector, Selection


class FirstSelector(GreedySelector):
    name = "first"

    def select(self, candidates, k, reference_score):
        return Selection(tuple(c.id for c in candidates[:k]), {})
"""


@pytest.fixture
def plugin_selector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An installed package that registers a ``first`` selector in ``alma.selectors``."""
    (tmp_path / "first_selector.py").write_text(PLUGIN)
    info = tmp_path / "first_selector-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: first-selector\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[alma.selectors]\nfirst = first_selector:FirstSelector\nbroken = first_selector:Gone\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    selection._registered.cache_clear()
    yield
    selection._registered.cache_clear()  # forget the package once it is gone


@pytest.mark.usefixtures("plugin_selector")
def test_a_selector_registered_by_another_package_is_found_by_name() -> None:
    assert {"first", *BUILT_IN} <= set(selector_names())
    picked = make_selector("first", 0, 0.5).select([record("b", 0.1), record("a", 0.9)], 1, 0.0)
    assert picked.chosen == ("b",)
    assert load_config(overrides={"learn": {"selector": "first"}}).learn.selector == "first"
    with pytest.raises(UsageError, match=r"'broken' .* cannot be loaded"):
        make_selector("broken", 0, 0.5)


def test_the_config_accepts_only_registered_selectors() -> None:
    assert load_config(overrides={"learn": {"selector": " Novelty"}}).learn.selector == "novelty"
    with pytest.raises(ConfigError, match=r"learn\.selector.*alma, greedy, novelty, uniform"):
        load_config(overrides={"learn": {"selector": "bandit"}})
