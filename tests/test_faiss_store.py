"""The faiss vector store behaves exactly like the numpy one: same checks, same results."""

import copy
import pickle
import sys
from typing import Any

import numpy as np
import pytest

from alma.errors import ConfigError, MissingDependencyError
from alma.memory.faiss_store import FaissVectorStore
from alma.memory.stores import VectorStore
from alma.memory.toolkit import Toolkit

pytest.importorskip("faiss")  # the module imports without it; its stores need it

STORES = [
    pytest.param(VectorStore, id="numpy"),
    pytest.param(FaissVectorStore, id="faiss"),
]


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def random_store(
    cls: type[VectorStore], n: int, dim: int, seed: int = 0
) -> tuple[VectorStore, np.random.Generator]:
    """``n`` random vectors; item ``i`` is ``{"i": i, "half": i % 2, "rare": i % 50 == 7}``."""
    store = cls()
    rng = np.random.default_rng(seed)
    for index in range(n):
        store.add(rng.normal(size=dim), {"i": index, "half": index % 2, "rare": index % 50 == 7})
    return store, rng


def brute_force(
    store: VectorStore, query: np.ndarray, k: int, half: int | None = None
) -> list[int]:
    """The top ``k`` alive ids by cosine, computed from ``store.vector`` alone."""
    ids = [id for id, item in store.items() if half is None or item["half"] == half]
    vectors = np.stack([np.asarray(store.vector(id)) for id in ids])
    scores = vectors @ (query / np.linalg.norm(query))
    return [ids[i] for i in np.argsort(-scores, kind="stable")[:k]]


@pytest.mark.parametrize("cls", STORES)
def test_search_order_filter_and_delete(cls: type[VectorStore]) -> None:
    store = cls()
    a = store.add(unit(1, 0, 0), {"kind": "win", "name": "a"})
    b = store.add(unit(0.9, 0.1, 0), {"kind": "loss", "name": "b"})
    c = store.add(unit(0, 1, 0), {"kind": "win", "name": "c"})
    assert (a, b, c) == (0, 1, 2) and store.dim == 3 and len(store) == 3
    hits = store.search(unit(1, 0, 0), k=2)
    assert [hit.item["name"] for hit in hits] == ["a", "b"]
    assert hits[0].score == pytest.approx(1.0) and hits[1].score == pytest.approx(
        0.9 / np.sqrt(0.82)
    )
    assert [hit.item["name"] for hit in store.search(unit(1, 0, 0), k=10)] == ["a", "b", "c"]
    wins = store.search(unit(1, 0.2, 0), k=5, where={"kind": "win"})
    assert [hit.item["name"] for hit in wins] == ["a", "c"]
    assert store.search(unit(1, 0, 0), k=5, where={"kind": "draw"}) == []
    assert store.search(unit(1, 0, 0), k=0) == []
    assert store.delete(a) and not store.delete(a) and not store.delete(99) and len(store) == 2
    assert store.search(unit(1, 0, 0), k=1)[0].id == b
    assert store.get(a) is None and store.vector(a) is None
    assert store.get(b) == {"kind": "loss", "name": "b"}
    assert [id for id, _ in store.items()] == [b, c]
    numpy_b: Any = np.int64(b)  # ids read back from numpy arrays work too
    assert store.get(numpy_b) is not None and store.vector(numpy_b) is not None
    assert store.delete(numpy_b) and len(store) == 1


@pytest.mark.parametrize("cls", STORES)
def test_vectors_are_normalised_and_dimensions_checked(cls: type[VectorStore]) -> None:
    store = cls()
    assert store.search(unit(1, 0), k=3) == []  # empty store, no dimension yet
    id = store.add(np.array([3.0, 4.0]))
    assert store.get(id) == {}
    vector = store.vector(id)
    assert vector is not None and vector.dtype == np.float32
    np.testing.assert_allclose(vector, [0.6, 0.8], rtol=1e-6)
    assert store.search(np.array([30.0, 40.0]), k=1)[0].score == pytest.approx(1.0)
    with pytest.raises(ValueError, match="dimensions"):
        store.add(unit(1, 0, 0))
    with pytest.raises(ValueError, match="query has 3 dimensions, the store holds 2"):
        store.search(unit(1, 0, 0), k=1)
    fixed = cls(dim=4)
    with pytest.raises(ValueError, match="dimensions"):
        fixed.add(unit(1, 0))


@pytest.mark.parametrize("cls", STORES)
def test_filter_deeper_than_the_first_window(cls: type[VectorStore]) -> None:
    store = cls()
    rng = np.random.default_rng(0)
    for index in range(500):
        store.add(rng.normal(size=8), {"rare": index == 377})
    hits = store.search(rng.normal(size=8), k=3, where={"rare": True})
    assert [hit.id for hit in hits] == [377]


@pytest.mark.parametrize("cls", STORES)
def test_ids_stay_stable_after_deletes(cls: type[VectorStore]) -> None:
    store, rng = random_store(cls, 300, 16)
    deleted = set(range(0, 300, 3))
    for id in sorted(deleted):
        assert store.delete(id)
    assert len(store) == 200
    new = store.add(rng.normal(size=16), {"i": "new"})
    assert new == 300  # ids are never reused
    for id in range(300):
        item = store.get(id)
        assert (item is None) == (id in deleted)
        assert item is None or item["i"] == id
        vector = store.vector(id)
        assert (vector is None) == (id in deleted)
    # every alive vector is its own nearest neighbour, under its own id
    for id in (1, 2, 299, new):
        vector = store.vector(id)
        assert vector is not None
        assert store.search(vector, k=1)[0].id == id
    hits = store.search(rng.normal(size=16), k=300)
    assert len(hits) == 201 and not {hit.id for hit in hits} & deleted


@pytest.mark.parametrize("cls", STORES)
def test_deleted_nearest_neighbours_never_come_back(cls: type[VectorStore]) -> None:
    store, rng = random_store(cls, 400, 8)
    query = rng.normal(size=8)
    top = [hit.id for hit in store.search(query, k=50)]
    for id in top[:40]:  # the best 40 go: the search must look past all of them
        store.delete(id)
    assert [hit.id for hit in store.search(query, k=10)] == top[40:50]
    halves = store.search(query, k=5, where={"half": 1})
    assert [hit.id for hit in halves] == brute_force(store, query, 5, half=1)


@pytest.mark.parametrize("cls", STORES)
def test_pickle_round_trip_keeps_results(cls: type[VectorStore]) -> None:
    store, rng = random_store(cls, 200, 12)
    for id in (5, 17, 199):
        store.delete(id)
    queries = rng.normal(size=(10, 12))
    before = [store.search(query, k=7) for query in queries]
    filtered = store.search(queries[0], k=7, where={"half": 0})
    clone = pickle.loads(pickle.dumps(store))
    assert type(clone) is cls and len(clone) == 197 and clone.dim == 12
    assert [clone.search(query, k=7) for query in queries] == before
    assert clone.search(queries[0], k=7, where={"half": 0}) == filtered
    assert (
        clone.get(5) is None
        and not clone.delete(17)
        and clone.get(6) == {"i": 6, "half": 0, "rare": False}
    )
    assert clone.add(queries[1], {"i": "new"}) == 200  # the id sequence goes on
    assert len(store) == 197 and len(clone) == 198  # the copies are independent
    assert clone.search(queries[1], k=1)[0].id == 200
    assert store.search(queries[1], k=1)[0].id != 200
    deep = copy.deepcopy(store)
    assert deep.delete(0) and store.get(0) is not None
    empty = pickle.loads(pickle.dumps(cls()))
    assert len(empty) == 0 and empty.search(unit(1, 0), k=1) == []
    assert empty.add(unit(1, 0)) == 0


def test_faiss_matches_numpy_top10() -> None:
    dim = 64
    numpy_store, _ = random_store(VectorStore, 2000, dim, seed=7)
    faiss_store, _ = random_store(FaissVectorStore, 2000, dim, seed=7)
    for id in range(0, 2000, 10):  # deletes too, past a batched removal in the faiss index
        numpy_store.delete(id)
        faiss_store.delete(id)
    queries = np.random.default_rng(8).normal(size=(50, dim))
    for where in (None, {"half": 1}, {"rare": True}):  # 1 in 50 passes: deeper windows
        for query in queries:
            expected = numpy_store.search(query, k=10, where=where)
            got = faiss_store.search(query, k=10, where=where)
            assert [hit.id for hit in got] == [hit.id for hit in expected]
            np.testing.assert_allclose(
                [hit.score for hit in got], [hit.score for hit in expected], atol=1e-5
            )
            assert [hit.item for hit in got] == [hit.item for hit in expected]


def test_toolkit_creates_the_configured_backend() -> None:
    assert type(Toolkit().vectors("a")) is VectorStore
    toolkit = Toolkit(vector_backend="faiss")
    store = toolkit.vectors("a")
    assert isinstance(store, FaissVectorStore) and toolkit.vectors("a") is store
    store.add(unit(1, 0), {"x": 1})
    clone = pickle.loads(pickle.dumps(toolkit))
    assert isinstance(clone.vectors("a"), FaissVectorStore) and len(clone.vectors("a")) == 1
    assert isinstance(clone.vectors("b"), FaissVectorStore)  # the backend survives the copy
    with pytest.raises(ConfigError, match="vector backend"):
        Toolkit(vector_backend="annoy")


def test_missing_faiss_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from alma.memory import faiss_store

    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    faiss_store.load_faiss.cache_clear()
    try:
        with pytest.raises(MissingDependencyError) as error:
            Toolkit(vector_backend="faiss").vectors()
        assert error.value.hint == "pip install 'alma[faiss]'"
    finally:
        faiss_store.load_faiss.cache_clear()
