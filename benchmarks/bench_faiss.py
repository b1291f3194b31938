"""Search time of the numpy and the faiss vector stores, side by side, as the store grows.

Both stores are filled through ``add`` with the same random 256-d vectors (metadata
``{"half": i % 2, "rare": i % 100 == 0}``) to 10k, 100k and 1M items. At each size the median
time of a top-10 ``search`` is measured over fresh queries, with no filter, with
``where={"half": 1}`` (half the items pass) and ``where={"rare": True}`` (1 in 100),
alternating the two stores query by query so that load from other processes falls on both
alike. Every query also checks that both stores return the same top-10 ids.

    .venv/bin/python benchmarks/bench_faiss.py [--sizes 10000,100000,1000000] [--queries 50]
        [--faiss-threads N]   (default: the store's own setting, one thread)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import numpy as np

from alma.memory.faiss_store import FaissVectorStore, load_faiss
from alma.memory.stores import VectorStore

DIM = 256
K = 10
FILTERS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "half": {"half": 1},
    "1/100": {"rare": True},
}


def fill(store: VectorStore, vectors: np.ndarray, start: int) -> float:
    """Add ``vectors`` (ids from ``start``) one by one; the seconds it took."""
    started = time.perf_counter()
    for offset, vector in enumerate(vectors):
        index = start + offset
        store.add(vector, {"half": index % 2, "rare": index % 100 == 0})
    return time.perf_counter() - started


def main(sizes: list[int], queries: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    stores: dict[str, VectorStore] = {"numpy": VectorStore(), "faiss": FaissVectorStore()}
    fill_s = dict.fromkeys(stores, 0.0)
    load = os.getloadavg()[0]
    print(f"{DIM}-d vectors, top-{K}, {queries} queries per cell, load average {load:.1f}")
    print(f"{'items':>9}  {'filter':<6} {'numpy ms':>9} {'faiss ms':>9} {'numpy/faiss':>12}")
    same = True
    stored = 0
    for size in sizes:
        while stored < size:
            chunk = rng.standard_normal((min(100_000, size - stored), DIM), dtype=np.float32)
            for name, store in stores.items():
                fill_s[name] += fill(store, chunk, stored)
            stored += len(chunk)
        probes = rng.standard_normal((queries, DIM), dtype=np.float32)
        for label, where in FILTERS.items():
            times: dict[str, list[float]] = {name: [] for name in stores}
            for index, probe in enumerate(probes):
                order = list(stores) if index % 2 == 0 else list(reversed(stores))
                results = {}
                for name in order:
                    started = time.perf_counter()
                    results[name] = stores[name].search(probe, k=K, where=where)
                    times[name].append((time.perf_counter() - started) * 1000)
                ids = {name: [hit.id for hit in hits] for name, hits in results.items()}
                same &= ids["numpy"] == ids["faiss"] and len(ids["numpy"]) == K
            numpy_ms = statistics.median(times["numpy"])
            faiss_ms = statistics.median(times["faiss"])
            print(
                f"{size:>9,}  {label:<6} {numpy_ms:9.2f} {faiss_ms:9.2f} "
                f"{numpy_ms / faiss_ms:11.1f}x"
            )
    per_add = {name: seconds / stored * 1e6 for name, seconds in fill_s.items()}
    print(f"add: numpy {per_add['numpy']:.1f} us, faiss {per_add['faiss']:.1f} us per vector")
    print(f"same top-{K} ids from both stores on every query: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--faiss-threads", type=int, default=None)
    args = parser.parse_args()
    if args.faiss_threads is not None:
        load_faiss().omp_set_num_threads(args.faiss_threads)
    sizes = sorted(int(size) for size in args.sizes.split(","))
    raise SystemExit(main(sizes, args.queries, args.seed))
