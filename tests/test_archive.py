import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from alma.evaluate.results import EvalResult
from alma.memory.loading import DesignSource
from alma.search.archive import Archive, DesignRecord
from alma.store import RunStore


def design(name: str, body: str = "pass", origin: str = "generated") -> DesignSource:
    source = f"class {name.title().replace('_', '')}(MemoryDesign):\n    {body}\n"
    return DesignSource(name, source, origin)  # type: ignore[arg-type]


def result(
    d: DesignSource,
    score: float,
    *,
    error: str | None = None,
    split: str = "train",
    key: str | None = None,
    cost: float = 0.25,
) -> EvalResult:
    return EvalResult(
        key or f"key-{d.id}-{split}",
        d.id,
        d.name,
        "toy",
        split,
        "batched",
        score=score,
        stderr=0.05,
        cost_usd=cost,
        error=error,
    )


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "run")


def test_add_design_stores_fields_and_a_readable_copy(store: RunStore) -> None:
    archive = Archive(store)
    root = design("no_memory", origin="reference")
    child = design("notes", "x = 1")
    assert archive.add_design(root, parent=None, iteration=0, idea="") is True
    assert archive.add_design(child, parent=root.id, iteration=1, idea="keep\nnotes  of rooms")
    record = archive.get(child.id)
    assert record is not None
    assert (record.name, record.origin, record.parent, record.iteration) == (
        "notes",
        "generated",
        root.id,
        1,
    )
    assert record.idea == "keep notes of rooms"  # one line
    assert record.status == "pending"
    assert (record.score, record.stderr, record.cost, record.times_chosen) == (None, None, 0.0, 0)
    assert record.design() == child
    assert archive.source(child.id) == child
    assert len(archive) == 2 and child.id in archive and "nope" not in archive

    copy = (store.path / "designs" / f"{child.id}.py").read_text()
    header, _, body = copy.partition("\n\n")
    assert f"# alma memory design {child.id}" in header
    assert "# name: notes" in header
    assert f"# parent: {root.id}" in header
    assert "# idea: keep notes of rooms" in header
    assert body == child.source
    root_copy = archive.design_path(root.id).read_text()
    assert "# parent: -" in root_copy and "# origin: reference" in root_copy
    assert not [p for p in (store.path / "designs").iterdir() if p.name.startswith(".")]


def test_same_code_is_stored_once(store: RunStore) -> None:
    archive = Archive(store)
    first = design("a")
    assert archive.add_design(first, parent=None, iteration=0, idea="first")
    copy = archive.design_path(first.id).read_text()
    # the same code under another name, with trailing spaces: same id, not stored again
    again = DesignSource("renamed", first.source.replace("\n", "  \n"), "imported")
    assert again.id == first.id
    assert archive.add_design(again, parent=None, iteration=3, idea="second") is False
    records = archive.designs()
    assert [(r.id, r.name, r.iteration, r.idea) for r in records] == [(first.id, "a", 0, "first")]
    assert archive.design_path(first.id).read_text() == copy


def test_unknown_parent_status_or_origin_is_refused(store: RunStore) -> None:
    archive = Archive(store)
    with pytest.raises(ValueError, match="not archived"):
        archive.add_design(design("a"), parent="0123456789ab", iteration=1, idea="")
    with pytest.raises(ValueError, match="unknown design status"):
        archive.add_design(design("a"), parent=None, iteration=0, idea="", status="done")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown origin"):
        archive.add_design(design("a", origin="found"), parent=None, iteration=0, idea="")
    assert archive.designs() == []
    assert not (store.path / "designs").exists() or not list((store.path / "designs").iterdir())
    with pytest.raises(ValueError, match="not archived"):
        archive.set_status("0123456789ab", "verified")


def test_train_evaluation_gives_score_status_and_candidacy(store: RunStore) -> None:
    archive = Archive(store)
    good, broken, untested = design("good"), design("broken"), design("untested")
    for d in (good, broken, untested):
        archive.add_design(d, parent=None, iteration=0, idea="")
    archive.record_evaluation(good.id, result(good, 0.6), role="train")
    archive.record_evaluation(broken.id, result(broken, 0.0, error="crashed"), role="train")
    assert archive.score(good.id) == 0.6
    assert archive.score(broken.id) is None and archive.score(untested.id) is None
    assert archive.get(good.id).status == "evaluated"  # type: ignore[union-attr]
    failed = archive.get(broken.id)
    assert failed is not None
    assert (failed.status, failed.error, failed.score, failed.cost) == (
        "evaluation_failed",
        "crashed",
        None,
        0.25,
    )
    assert [r.id for r in archive.candidates()] == [good.id]
    assert [r.id for r in archive.designs("evaluation_failed")] == [broken.id]
    assert [r.id for r in archive.designs("pending")] == [untested.id]

    # another role is kept apart and leaves the train score and status alone
    held_out = result(good, 0.9, split="eval_in_distribution")
    archive.record_evaluation(good.id, held_out, role="eval_in_distribution")
    assert archive.score(good.id) == 0.6
    link = archive.evaluation(good.id, "eval_in_distribution")
    assert link is not None and (link.key, link.split, link.score) == (
        held_out.key,
        "eval_in_distribution",
        0.9,
    )
    assert [e.role for e in archive.evaluations(good.id)] == ["train", "eval_in_distribution"]

    # recording the train role again replaces the earlier link
    archive.record_evaluation(broken.id, result(broken, 0.4, key="retry"), role="train")
    assert archive.score(broken.id) == 0.4
    assert archive.evaluation(broken.id).key == "retry"  # type: ignore[union-attr]
    assert archive.get(broken.id).status == "evaluated"  # type: ignore[union-attr]

    with pytest.raises(ValueError, match="is of design"):
        archive.record_evaluation(good.id, result(broken, 0.1), role="train")
    with pytest.raises(ValueError, match="not archived"):
        stranger = design("zz")
        archive.record_evaluation(stranger.id, result(stranger, 0.1), role="train")


def test_best_lineage_children_and_gain(store: RunStore) -> None:
    archive = Archive(store)
    root, child, grandchild, other = design("root"), design("c"), design("g"), design("o")
    archive.add_design(root, parent=None, iteration=0, idea="")
    archive.add_design(child, parent=root.id, iteration=1, idea="")
    archive.add_design(other, parent=root.id, iteration=1, idea="")
    archive.add_design(grandchild, parent=child.id, iteration=2, idea="")
    for d, score in ((root, 0.2), (child, 0.5), (grandchild, 0.45), (other, 0.5)):
        archive.record_evaluation(d.id, result(d, score), role="train")
    assert archive.lineage(grandchild.id) == [root.id, child.id, grandchild.id]
    assert archive.lineage(root.id) == [root.id]
    assert archive.children(root.id) == [child.id, other.id]
    with pytest.raises(KeyError):
        archive.lineage("0123456789ab")
    # ties on score and error go to the earlier iteration, then to the earlier design
    assert [r.id for r in archive.best(3)] == [child.id, other.id, grandchild.id]
    assert [r.id for r in archive.best(10)][-1] == root.id
    assert archive.best(0) == []
    assert archive.gain(grandchild.id) == pytest.approx(-0.05)
    assert archive.gain(root.id) is None


def test_selections_count_times_chosen_and_replace_per_iteration(store: RunStore) -> None:
    archive = Archive(store)
    a, b = design("a"), design("b")
    archive.add_design(a, parent=None, iteration=0, idea="")
    archive.add_design(b, parent=None, iteration=0, idea="")
    archive.add_selection(1, [a.id, b.id], {a.id: 0.7, b.id: 0.3})
    archive.add_selection(2, [a.id], {a.id: 0.6, b.id: 0.4})
    assert archive.times_chosen(a.id) == 2 and archive.times_chosen(b.id) == 1
    assert {r.id: r.times_chosen for r in archive.designs()} == {a.id: 2, b.id: 1}
    # a resumed iteration picks again: the new pick replaces the old one, no double count
    archive.add_selection(2, [b.id], {a.id: 0.5, b.id: 0.5}, state={"iteration": 2})
    assert archive.times_chosen(a.id) == 1 and archive.times_chosen(b.id) == 2
    picked = archive.selection(2)
    assert picked is not None
    assert (picked.parents, picked.probabilities) == ((b.id,), {a.id: 0.5, b.id: 0.5})
    assert [s.iteration for s in archive.selections()] == [1, 2]
    assert archive.load_state() == {"iteration": 2}
    assert archive.selection(7) is None
    # a bad pick changes nothing, not even the state given with it
    with pytest.raises(ValueError, match="not archived"):
        archive.add_selection(3, [a.id, "0123456789ab"], {}, state={"iteration": 3})
    with pytest.raises(ValueError, match="picked twice"):
        archive.add_selection(3, [a.id, a.id], {})
    assert archive.selection(3) is None and archive.times_chosen(a.id) == 1
    assert archive.load_state() == {"iteration": 2}


def test_state_analyses_verifications_and_reference(store: RunStore) -> None:
    archive = Archive(store)
    a = design("a")
    archive.add_design(a, parent=None, iteration=0, idea="")
    assert archive.load_state() is None and archive.reference_score() is None
    archive.save_state({"iteration": 1, "rng": {"state": 2**100}})
    archive.save_state({"iteration": 2, "rng": {"state": 2**101}})
    assert archive.load_state() == {"iteration": 2, "rng": {"state": 2**101}}
    with pytest.raises(TypeError):
        archive.save_state({"bad": object()})
    assert archive.load_state() == {"iteration": 2, "rng": {"state": 2**101}}

    archive.set_reference_score(0.25)
    assert archive.reference_score() == 0.25

    archive.add_analysis(a.id, 1, {"changes": ["index by room"], "issues": []})
    archive.add_analysis(a.id, 2, {"changes": []})
    assert [(x.iteration, x.analysis) for x in archive.analyses(a.id)] == [
        (1, {"changes": ["index by room"], "issues": []}),
        (2, {"changes": []}),
    ]
    with pytest.raises(ValueError, match="not archived"):
        archive.add_analysis("0123456789ab", 1, {})

    archive.add_verification("attempt-1", 0, False, {"error": "SyntaxError"}, "def (")
    archive.add_verification(a.id, 1, True, {"smoke": "ok"}, a.source)
    checks = archive.verifications()
    assert [(v.subject, v.attempt, v.passed, v.report) for v in checks] == [
        ("attempt-1", 0, False, {"error": "SyntaxError"}),
        (a.id, 1, True, {"smoke": "ok"}),
    ]
    assert archive.verifications(a.id)[0].source == a.source


def test_everything_survives_reopening(tmp_path: Path) -> None:
    a, b = design("a"), design("b", "y = 2")
    with RunStore(tmp_path / "run") as store:
        archive = Archive(store)
        archive.add_design(a, parent=None, iteration=0, idea="root")
        archive.add_design(b, parent=a.id, iteration=1, idea="better")
        archive.set_status(b.id, "verified")
        archive.record_evaluation(a.id, result(a, 0.3), role="train")
        archive.add_analysis(a.id, 1, {"plan": "x"})
        archive.add_verification(b.id, 0, True, {}, b.source)
        archive.add_selection(1, [a.id], {a.id: 1.0})
        archive.set_reference_score(0.1)
        archive.save_state({"iteration": 1})
        before = archive.designs()
    with RunStore(tmp_path / "run") as store:
        archive = Archive(store)
        assert archive.designs() == before
        assert archive.get(b.id) == DesignRecord(
            id=b.id,
            name="b",
            origin="generated",
            parent=a.id,
            iteration=1,
            idea="better",
            status="verified",
            score=None,
            stderr=None,
            cost=0.0,
            times_chosen=0,
            created=before[1].created,
            source=b.source,
        )
        assert archive.score(a.id) == 0.3 and archive.times_chosen(a.id) == 1
        assert archive.lineage(b.id) == [a.id, b.id]
        assert archive.analyses()[0].analysis == {"plan": "x"}
        assert archive.verifications(b.id)[0].passed
        assert archive.reference_score() == 0.1
        assert archive.load_state() == {"iteration": 1}
        assert archive.add_design(a, parent=None, iteration=5, idea="") is False


WRITER = """
import sys
from pathlib import Path
from alma.memory.loading import DesignSource
from alma.search.archive import Archive
from alma.store import RunStore

archive = Archive(RunStore(Path(sys.argv[1])))
parent = None
i = 0
while True:
    d = DesignSource(f"d{i}", f"class D{i}(MemoryDesign):\\n    n = {i}\\n", "generated")
    archive.add_design(d, parent=parent, iteration=i, idea=f"step {i}")
    archive.add_selection(i, [d.id], {d.id: 1.0}, state={"iteration": i})
    parent = d.id
    i += 1
"""


def test_kill_9_leaves_a_consistent_archive(tmp_path: Path) -> None:
    run = tmp_path / "run"
    RunStore(run).close()
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITER), str(run)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        seen = 0
        while seen < 40:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the writer made no progress"
            time.sleep(0.02)
            try:
                with sqlite3.connect(run / "alma.sqlite", timeout=5) as db:
                    seen = db.execute("SELECT COUNT(*) FROM designs").fetchone()[0]
            except sqlite3.OperationalError:
                seen = 0  # the writer has not created the table yet
        os.kill(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stderr:
            process.stderr.close()

    assert process.returncode == -signal.SIGKILL
    with RunStore(run) as store:
        assert store.query("PRAGMA integrity_check")[0][0] == "ok"
        archive = Archive(store)
        records = archive.designs()
        assert len(records) >= 40
        # every archived design has its readable copy
        for record in records:
            assert archive.design_path(record.id).read_text().endswith(record.source)
        # each pick is whole, and the state saved with the last pick matches it
        picks = archive.selections()
        assert all(archive.times_chosen(p.parents[0]) == 1 for p in picks)
        state = archive.load_state()
        assert state is not None and state["iteration"] == picks[-1].iteration
        # the chain of parents is unbroken
        assert len(archive.lineage(records[-1].id)) == len(records)
        assert json.loads(json.dumps(state)) == state
