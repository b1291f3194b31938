"""The offline HTML report and the exports: on a real scripted learn run and on a synthetic run
written through the store, checked against the run database itself; in a real headless browser
where Chromium is installed."""

from __future__ import annotations

import asyncio
import base64
import csv
import fcntl
import importlib.util
import itertools
import json
import os
import re
import select
import shutil
import sqlite3
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from alma import api
from alma.errors import MissingDependencyError, StorageError, UsageError
from alma.memory.loading import DesignSource
from alma.report import TABLES, export_run, live_report, write_report
from alma.report.metrics import pareto_front
from alma.search.archive import Archive
from alma.store import RunStore

ROOT = Path(__file__).resolve().parents[1]


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bench_report", ROOT / "benchmarks/bench_report.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real learn run: toy (classic games), scripted models, baselines seeded, 2 iterations."""
    folder = tmp_path_factory.mktemp("learned")
    config_file = folder / "alma.toml"
    config_file.write_text('[domains.toy]\nprofile = "classic"\n', encoding="utf-8")
    config = api.configure(
        config_file,
        agent_model="scripted",
        meta_model="scripted",
        memory_model="scripted",
        seed=8,
        learn={"iterations": 2, "quick": True, "seed_designs": "baselines"},
    )
    run_dir = folder / "run"
    seen: list[int] = []
    refresh = live_report(run_dir)

    def after(iteration: int, rows: list[dict[str, Any]]) -> None:
        refresh(iteration, rows)
        page = (run_dir / "report.html").read_text(encoding="utf-8")
        shown = page_data(page)["runs"][0]["designs"]
        assert {row["id"] for row in rows} <= set(shown)  # the page is as new as the archive
        seen.append(iteration)

    asyncio.run(api.learn(config, "toy", run_dir=run_dir, on_iteration=after))
    assert seen == [1, 2]
    return run_dir


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("synthetic") / "run"
    return Path(_bench().synthetic_run(run_dir, designs=40, episodes=700, seed=3))


def page_data(page: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="alma-data">(.*?)</script>', page, re.S)
    assert found is not None
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def db_rows(run_dir: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with sqlite3.connect(run_dir / "alma.sqlite") as db:
        return db.execute(sql, params).fetchall()


# ---------------------------------------------------------------------------- the page


def test_report_of_a_learn_run_is_one_offline_file_with_every_section(
    learned: Path, tmp_path: Path
) -> None:
    out = write_report([learned], tmp_path / "sub" / "report.html")
    page = out.read_text(encoding="utf-8")
    for heading in (
        "Summary",
        "Tokens and dollars by role",
        "Lineage",
        "Best score over iterations",
        "Every evaluation",
        "Designs",
        "Held-out evaluations",
        "Per-task success",
        "Failures",
        "Cost efficiency",
    ):
        assert f">{heading}" in page, heading
    # nothing is fetched: no external script, style, image or frame, and a policy that forbids it
    assert "default-src 'none'" in page
    assert not re.search(r"<(script|link|img|iframe)[^>]*\s(src|href)=", page)
    assert "url(" not in page
    # every design of the archive is in the tree, the table and the data block
    ids = [row[0] for row in db_rows(learned, "SELECT id FROM designs")]
    assert len(ids) >= 6
    data = page_data(page)["runs"][0]["designs"]
    assert sorted(data) == sorted(ids)
    for design_id in ids:
        assert page.count(f'data-design="{design_id}"') >= 2  # a tree node and a table row
    assert len(page) < 2_000_000
    # every evaluation on another split is in the held-out table, next to its train score
    held = db_rows(learned, "SELECT design_id FROM design_evaluations WHERE role != 'train'")
    assert held
    table = page[page.index(">Held-out evaluations") : page.index(">Per-task success")]
    assert sorted(re.findall(r'<tr data-design="(\w+)">', table)) == sorted(h[0] for h in held)


def test_selected_design_data_is_the_archive_s_code_analysis_and_diff(
    learned: Path, tmp_path: Path
) -> None:
    page = write_report([learned], tmp_path / "report.html").read_text(encoding="utf-8")
    designs = page_data(page)["runs"][0]["designs"]
    rows = db_rows(learned, "SELECT id, parent, iteration, source FROM designs")
    children = [row for row in rows if row[1] is not None]
    assert children
    sources = {row[0]: row[3] for row in rows}
    for design_id, parent, iteration, source in rows:
        shown = designs[design_id]
        assert shown["code"] == source
        if parent is None:
            assert shown["diff"] == "" and shown["analysis"] is None
            continue
        analysis = db_rows(
            learned,
            "SELECT analysis FROM analyses WHERE design_id=? AND iteration=?",
            (parent, iteration),
        )
        assert shown["analysis"] == json.loads(analysis[0][0])
        added = [line[1:] for line in shown["diff"].splitlines() if line[:1] == "+"][1:]
        removed = [line[1:] for line in shown["diff"].splitlines() if line[:1] == "-"][1:]
        if sources[parent] != source:
            assert added or removed
        assert set(added) <= set(source.splitlines())
        assert set(removed) <= set(sources[parent].splitlines())
    verified = db_rows(learned, "SELECT subject, COUNT(*) FROM verifications GROUP BY subject")
    for subject, attempts in verified:
        if subject in designs:
            assert len(designs[subject]["verifications"]) == attempts


def test_run_text_is_escaped_never_markup(synthetic: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(synthetic, run_dir)
    hostile = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    with RunStore(run_dir) as store:
        archive = Archive(store)
        code = "class Hostile:\n    pass  # </script><script>alert(2)</script>\n"
        archive.add_design(
            DesignSource("hostile</b>", code, "generated"), parent=None, iteration=0, idea=hostile
        )
    page = write_report([run_dir], tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert page.count("<script") == 2  # the data block and the page's own script
    design = next(d for d in page_data(page)["runs"][0]["designs"].values() if d["idea"] == hostile)
    assert "</script>" in design["code"]  # kept as text inside the data, escaped in the page


def test_design_table_gains_and_p_values_match_the_per_task_outcomes(synthetic: Path) -> None:
    with sqlite3.connect(synthetic / "alma.sqlite") as db:
        train = {
            design_id: json.loads(result)["per_task"]
            for design_id, result in db.execute(
                "SELECT e.design_id, v.result FROM design_evaluations e "
                "JOIN evaluations v ON v.key = e.eval_key WHERE e.role = 'train'"
            )
        }
        names = dict(db.execute("SELECT id, name FROM designs"))
    base = next(i for i, n in names.items() if n == "no_memory")

    def rates(per_task: dict[str, list[bool]]) -> dict[str, float]:
        return {t: sum(r) / len(r) for t, r in per_task.items()}

    rows = _export_rows(synthetic, "designs")
    checked = 0
    for row in rows:
        if row["design_id"] == base or row["design_id"] not in train:
            assert row["gain_over_no_memory"] is None
            continue
        mine, theirs = rates(train[row["design_id"]]), rates(train[base])
        expected = sum(mine[t] - theirs[t] for t in mine) / len(mine)
        assert row["gain_over_no_memory"] == pytest.approx(expected)
        assert 0.0 <= row["p_no_memory"] <= 1.0
        if all(mine[t] == theirs[t] for t in mine):
            assert row["p_no_memory"] == 1.0
        checked += 1
    assert checked >= 20
    assert len({r["best_reference"] for r in rows}) == 1


def test_best_score_curve_never_falls_and_is_the_best_so_far(synthetic: Path) -> None:
    from alma.report.data import read_run
    from alma.report.metrics import best_so_far

    run = read_run(synthetic)
    points = best_so_far(run)
    scores = db_rows(
        synthetic,
        "SELECT d.iteration, e.score FROM designs d JOIN design_evaluations e "
        "ON e.design_id = d.id AND e.role = 'train' AND e.error IS NULL",
    )
    assert [p.iteration for p in points] == list(range(len(points)))
    for point in points:
        assert point.score == max(s for i, s in scores if i <= point.iteration)
        assert point.ci_low <= point.score <= point.ci_high
    assert all(a.score <= b.score for a, b in itertools.pairwise(points))


def test_pareto_front_keeps_only_points_nothing_beats() -> None:
    points = [(1.0, 0.2), (2.0, 0.5), (2.5, 0.4), (3.0, 0.5), (4.0, 0.9), (0.5, 0.1)]
    front = pareto_front(points)
    assert front == [5, 0, 1, 4]
    assert pareto_front([]) == []


def test_several_runs_share_one_table_and_overlaid_curves(
    learned: Path, synthetic: Path, tmp_path: Path
) -> None:
    page = write_report([learned, synthetic], tmp_path / "both.html").read_text(encoding="utf-8")
    assert "Runs side by side" in page
    assert page.count('<section class="run"') == 2
    assert 'data-tab="run-0"' in page and 'data-tab="run-1"' in page
    assert len(page_data(page)["runs"]) == 2
    chart = page[page.index("Runs side by side") :]
    assert chart.count('class="curve"') >= 2


def test_live_report_logs_a_page_it_cannot_write_and_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    live_report(tmp_path / "not-a-run")(3, [])
    assert "not refreshed after iteration 3" in caplog.text
    assert not (tmp_path / "not-a-run").exists()


def test_report_refuses_what_it_cannot_do_in_one_line(
    learned: Path, synthetic: Path, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="not a run directory"):
        write_report([tmp_path], tmp_path / "r.html")
    with pytest.raises(UsageError, match="no run"):
        write_report([], tmp_path / "r.html")
    other = tmp_path / "other"
    shutil.copytree(synthetic, other)
    with RunStore(other) as store:
        store.set_meta("domain", "textworld")
    with pytest.raises(UsageError, match="different domains") as raised:
        write_report([learned, other], tmp_path / "r.html")
    assert raised.value.hint
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(StorageError, match="cannot write") as failed:
        write_report([learned], blocker / "report.html")
    assert "\n" not in str(failed.value)


def test_report_of_a_run_without_designs_still_renders(tmp_path: Path) -> None:
    run_dir = tmp_path / "empty"
    RunStore(run_dir).close()
    page = write_report([run_dir], tmp_path / "r.html").read_text(encoding="utf-8")
    assert "No designs." in page and ">Summary" in page


# ---------------------------------------------------------------------------- exports


def _export_rows(run_dir: Path, table: str) -> list[dict[str, Any]]:
    out = run_dir.parent / f"json-{run_dir.name}"
    export_run(run_dir, "json", out)
    rows: list[dict[str, Any]] = json.loads((out / f"{table}.json").read_text(encoding="utf-8"))
    return rows


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_exports_have_the_documented_columns_and_every_row(
    synthetic: Path, tmp_path: Path, fmt: str
) -> None:
    files = export_run(synthetic, fmt, tmp_path / fmt)
    assert sorted(f.name for f in files) == sorted(f"{t}.{fmt}" for t in TABLES)
    counts = {
        "designs": "SELECT COUNT(*) FROM designs",
        "evaluations": "SELECT COUNT(*) FROM evaluations",
        "episodes": "SELECT COUNT(*) FROM episodes",
        "ledger": "SELECT COUNT(*) FROM llm_calls",
    }
    for table, sql in counts.items():
        path = tmp_path / fmt / f"{table}.{fmt}"
        names = [c.name for c in TABLES[table]]
        if fmt == "csv":
            with path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                assert reader.fieldnames == names
                rows: list[dict[str, Any]] = list(reader)
        else:
            rows = json.loads(path.read_text(encoding="utf-8"))
            assert all(list(row) == names for row in rows)
        assert len(rows) == db_rows(synthetic, sql)[0][0], table
        assert {row["run"] for row in rows} == {synthetic.name}
    episodes = _export_rows(synthetic, "episodes")
    stored = db_rows(synthetic, "SELECT id, task_id, success, steps, reason FROM episodes")
    assert [(e["id"], e["task_id"], e["success"], e["steps"], e["reason"]) for e in episodes] == [
        (i, t, bool(s), n, r) for i, t, s, n, r in stored
    ]
    ledger = _export_rows(synthetic, "ledger")
    total = db_rows(synthetic, "SELECT SUM(prompt_tokens), SUM(cost_usd) FROM llm_calls")[0]
    assert sum(r["prompt_tokens"] for r in ledger) == total[0]
    assert sum(r["cost_usd"] for r in ledger) == pytest.approx(total[1])


def test_export_values_are_typed_and_missing_values_empty(synthetic: Path, tmp_path: Path) -> None:
    export_run(synthetic, "csv", tmp_path)
    with (tmp_path / "designs.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    seeds = [r for r in rows if r["iteration"] == "0"]
    assert seeds and all(r["parent_id"] == "" for r in seeds)
    scored = [r for r in rows if r["score"]]
    assert all(0.0 <= float(r["score"]) <= 1.0 for r in scored)
    with (tmp_path / "episodes.csv").open(newline="", encoding="utf-8") as handle:
        assert {r["success"] for r in csv.DictReader(handle)} == {"true", "false"}


def test_export_refuses_unknown_formats_and_parquet_without_pyarrow(
    synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(UsageError, match="unknown export format 'xlsx'") as raised:
        export_run(synthetic, "xlsx", tmp_path)
    assert "csv" in (raised.value.hint or "")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError, match="pyarrow") as missing:
        export_run(synthetic, "parquet", tmp_path / "pq")
    assert "alma[parquet]" in (missing.value.hint or "")
    assert not (tmp_path / "pq").exists()  # refused before writing anything


def test_parquet_export_round_trips(synthetic: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    export_run(synthetic, "parquet", tmp_path)
    table = pq.read_table(tmp_path / "designs.parquet")
    assert table.column_names == [c.name for c in TABLES["designs"]]
    assert table.num_rows == db_rows(synthetic, "SELECT COUNT(*) FROM designs")[0][0]
    episodes = pq.read_table(tmp_path / "episodes.parquet")
    assert str(episodes.schema.field("success").type) == "bool"


def test_every_exported_column_is_documented() -> None:
    doc = (ROOT / "docs/report.md").read_text(encoding="utf-8")
    for table, columns in TABLES.items():
        section = doc[doc.index(f"### {table}") :]
        for column in columns:
            assert f"| `{column.name}` | {column.type} |" in section, (table, column.name)


# ---------------------------------------------------------------------------- in a browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class DevTools:
    """Chromium driven over its DevTools pipe (file descriptors 3 and 4): no network port,
    no extra package."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire() -> None:  # in the child: the pipe ends become its fds 3 and 4, inherited
            ends = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome_r, from_chrome_w)]
            os.dup2(ends[0], 3)
            os.dup2(ends[1], 4)

        self.process = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-extensions",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
                "--window-size=1280,900",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire,  # a test: nothing else runs threads here
            close_fds=False,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if self.session is not None:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next:
                assert "error" not in reply, reply
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(self._read(deadline - time.monotonic()))
        raise TimeoutError(method)

    def _read(self, timeout: float = 20.0) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from_chrome], [], [], max(timeout, 0.1))
            if not ready:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed its pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        data: dict[str, Any] = json.loads(message)
        return data

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result["result"].get("value")

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)
        os.close(self._to_chrome)
        os.close(self._from_chrome)


def _not_blank(png: bytes) -> bool:
    """Whether a PNG screenshot has more than a few distinct byte values (a blank page has
    two or three)."""
    data, position = b"", 8
    while position < len(png):
        length = int.from_bytes(png[position : position + 4], "big")
        kind = png[position + 4 : position + 8]
        if kind == b"IDAT":
            data += png[position + 8 : position + 8 + length]
        position += 12 + length
    return len(set(zlib.decompress(data))) > 40


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_report_in_a_headless_browser(learned: Path, tmp_path: Path) -> None:
    out = write_report([learned], tmp_path / "report.html")
    child = db_rows(learned, "SELECT id, parent, source FROM designs WHERE parent IS NOT NULL")[0]
    assert CHROMIUM is not None
    browser = DevTools(CHROMIUM, tmp_path / "profile")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        browser.session = browser.send(
            "Target.attachToTarget", {"targetId": target, "flatten": True}
        )["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            browser.send(f"{domain}.enable")
        browser.send("Page.navigate", {"url": out.as_uri()})
        browser.wait_for("Page.loadEventFired")
        assert browser.evaluate("document.body.getAttribute('data-ready')") == "1"
        assert browser.evaluate("document.querySelectorAll('svg.tree .node').length") >= 6
        assert browser.evaluate("document.querySelectorAll('table.designs tbody tr').length") >= 6
        # select a child design in the tree: its code and its diff from the parent show
        browser.evaluate(
            f"document.querySelector('svg.tree [data-design=\"{child[0]}\"]')"
            ".dispatchEvent(new MouseEvent('click', {bubbles: true}))"
        )
        code = browser.evaluate("document.querySelector('.details pre.code').textContent")
        assert code == child[2]
        diff = browser.evaluate(
            "(document.querySelector('.details pre.diff') || {textContent: ''}).textContent"
        )
        assert diff.startswith("---") and child[0] in diff
        assert (
            browser.evaluate(
                "document.querySelector('table.designs tr.selected').getAttribute('data-design')"
            )
            == child[0]
        )
        # sorting by a header reorders the rows: by iteration, then back
        order = (
            "Array.from(document.querySelectorAll('table.designs tbody tr'))"
            ".map(r => Number(r.cells[2].getAttribute('data-v')))"
        )
        browser.evaluate("document.querySelectorAll('table.designs th')[2].click()")
        rising = browser.evaluate(order)
        assert rising == sorted(rising) and rising[0] < rising[-1]
        browser.evaluate("document.querySelectorAll('table.designs th')[2].click()")
        assert browser.evaluate(order) == sorted(rising, reverse=True)
        shot = browser.send("Page.captureScreenshot", {"format": "png"})["data"]
        assert _not_blank(base64.b64decode(shot))
        errors = [
            e
            for e in browser.events
            if e.get("method") == "Runtime.exceptionThrown"
            or (
                e.get("method") == "Runtime.consoleAPICalled"
                and e["params"].get("type") in ("error", "assert")
            )
            or (
                e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error"
            )
        ]
        assert errors == []
        requests = [
            e["params"]["request"]["url"]
            for e in browser.events
            if e.get("method") == "Network.requestWillBeSent"
        ]
        assert requests and all(url == out.as_uri() for url in requests), requests
    finally:
        browser.close()


def test_report_and_export_commands(
    learned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from alma.cli import main

    page = tmp_path / "page.html"
    assert main(["report", str(learned), "--out", str(page)]) == 0
    assert page.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")
    assert main(["export", str(learned), "--format", "csv", "--out", str(tmp_path / "x")]) == 0
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == [
        "designs.csv",
        "episodes.csv",
        "evaluations.csv",
        "ledger.csv",
    ]
    capsys.readouterr()
    assert main(["export", str(learned), "--format", "xlsx", "--out", str(tmp_path / "y")]) == 2
    assert "unknown export format 'xlsx'" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "--out", str(page)]) == 2
    assert "not a run directory" in capsys.readouterr().err
