import pickle

import numpy as np
import pytest
from pydantic import BaseModel

from alma.llm.embeddings import HashEmbedder
from alma.llm.scripted import Rule, ScriptedLLM
from alma.memory.stores import KVStore, VectorStore
from alma.memory.toolkit import ModelServices, Toolkit, UnboundToolkitError


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_vector_store_search_filter_delete() -> None:
    store = VectorStore()
    a = store.add(unit(1, 0, 0), {"kind": "win", "name": "a"})
    b = store.add(unit(0.9, 0.1, 0), {"kind": "loss", "name": "b"})
    store.add(unit(0, 1, 0), {"kind": "win", "name": "c"})
    assert [hit.item["name"] for hit in store.search(unit(1, 0, 0), k=2)] == ["a", "b"]
    assert store.search(unit(1, 0, 0), k=1)[0].score == pytest.approx(1.0)
    wins = store.search(unit(1, 0.2, 0), k=5, where={"kind": "win"})
    assert [hit.item["name"] for hit in wins] == ["a", "c"]
    assert store.delete(a) and not store.delete(a) and len(store) == 2
    assert store.search(unit(1, 0, 0), k=1)[0].id == b
    with pytest.raises(ValueError, match="dimensions"):
        store.add(unit(1, 0))


def test_vector_store_filter_deeper_than_the_first_window() -> None:
    store = VectorStore()
    rng = np.random.default_rng(0)
    for index in range(500):
        store.add(rng.normal(size=8), {"rare": index == 377})
    hits = store.search(rng.normal(size=8), k=3, where={"rare": True})
    assert [hit.id for hit in hits] == [377]


def test_stores_pickle_round_trip() -> None:
    store = VectorStore()
    for index in range(100):
        store.add(unit(1, index, 0), {"i": index})
    copy = pickle.loads(pickle.dumps(store))
    assert len(copy) == 100
    copy.add(unit(0, 0, 1), {"i": "new"})
    assert len(store) == 100 and len(copy) == 101
    kv = KVStore()
    kv.set("k", {"list": [1]})
    value = kv.get("k")
    value["list"].append(2)  # values are copied: no aliasing into the store
    assert kv.get("k") == {"list": [1]}


class Note(BaseModel):
    title: str
    useful: bool


async def test_toolkit_llm_embed_and_copy() -> None:
    llm = ScriptedLLM(rules=[Rule("hello", "hi there")])
    toolkit = Toolkit(ModelServices(llm, HashEmbedder(32)), seed=3)
    assert await toolkit.llm("hello") == "hi there"
    note = await toolkit.llm("write a note", schema=Note)
    assert isinstance(note, Note)
    as_dict = await toolkit.llm(
        "write",
        schema={
            "type": "object",
            "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
        },
    )
    assert as_dict == {"tags": []}
    vector = await toolkit.embed("a red key")
    assert vector.shape == (32,)
    assert (await toolkit.embed(["a", "b"])).shape == (2, 32)
    toolkit.vectors("cases").add(vector, {"x": 1})
    toolkit.kv().set("sheet", "v1")
    toolkit.graph("g").add_edge("a", "b")
    draw = toolkit.rng.random()
    copy = pickle.loads(pickle.dumps(toolkit))
    assert len(copy.vectors("cases")) == 1 and copy.kv().get("sheet") == "v1"
    assert list(copy.graph("g").edges) == [("a", "b")]
    with pytest.raises(UnboundToolkitError):
        await copy.llm("hello")  # services are not copied; the harness binds them again
    copy.bind(ModelServices(llm, HashEmbedder(32)))
    assert await copy.llm("hello") == "hi there"
    assert copy.rng.random() == toolkit.rng.random() != draw
