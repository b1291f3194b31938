"""Faults of the disk and the files are named in one line, and nothing finished is lost.

The tests run as root, which ignores permission bits, so the faults are made for real by
bubblewrap around the command: a read-only bind of the run folder (EROFS), a small tmpfs as
the run's disk (ENOSPC), and a user namespace where the files' owner loses root's powers (a
chmod 000 database gives EACCES). Damaged databases are real ones, cut or overwritten.
"""

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from functools import cache
from pathlib import Path

import pytest

from alma.cli import main, storage_fault_behind
from alma.errors import StorageError
from alma.llm.cache import default_cache_path
from alma.storage_faults import is_storage_fault, storage_fault
from alma.store import RunStore
from fake_openai import FakeOpenAI

EVAL = ["eval", "--domain", "toy", "--memory", "no_memory", "--quick"]
LEARN = ["learn", "--domain", "toy", "--quick", "--iterations", "1"]


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line(err: str, *words: str) -> None:
    """The output ends with one error line and its hint (after any progress lines), which names
    what it must and is no bug report."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) >= 2 and lines[-2].startswith("error: ") and lines[-1].startswith("hint: ")
    assert err.count("error: ") == 1, err
    assert "internal error" not in err and "Traceback" not in err
    for word in words:
        assert word in lines[-2], (word, err)


@cache
def can_mount() -> bool:
    """Whether bubblewrap can make the mounts these tests need here."""
    if shutil.which("bwrap") is None:
        return False
    probe = ["bwrap", "--dev-bind", "/", "/", "--ro-bind", "/tmp", "/tmp"]
    probe += ["--size", "65536", "--tmpfs", "/mnt", "true"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


needs_mounts = pytest.mark.skipif(not can_mount(), reason="bubblewrap cannot make mounts here")


def alma_in(wrap: list[str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m alma ARGS`` inside ``bwrap --dev-bind / / WRAP``."""
    command = ["bwrap", "--dev-bind", "/", "/", *wrap, sys.executable, "-m", "alma", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


def made_run(capsys: pytest.CaptureFixture[str], path: Path, *command: str) -> Path:
    code, _, err = run_cli(capsys, *(command or EVAL), "--json", "--run-dir", str(path))
    assert code == 0, err
    return path


def episodes(path: Path) -> int:
    with sqlite3.connect(path / "alma.sqlite") as db:
        return int(db.execute("SELECT COUNT(*) FROM episodes").fetchone()[0])


# ---------------------------------------------------------------------------- damaged database


def cut(database: Path, size: int) -> None:
    with database.open("r+b") as handle:
        handle.truncate(size)


def overwrite(database: Path, _: int) -> None:
    database.write_bytes(os.urandom(9000))


@pytest.mark.parametrize(
    ("damage", "size", "says"),
    [
        (cut, 50, "database disk image is malformed"),  # the header cut short
        (cut, 8192, "database disk image is malformed"),  # the pages after the second lost
        (overwrite, 0, "file is not a database"),
    ],
)
def test_damaged_database_is_named_by_every_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, damage: object, size: int, says: str
) -> None:
    run = made_run(capsys, tmp_path / "run", *LEARN)
    assert callable(damage)
    damage(run / "alma.sqlite", size)
    database = str(run / "alma.sqlite")
    for command in (
        ["archive", str(run)],
        ["show", str(run), "4df1"],
        [*EVAL, "--run-dir", str(run)],
        [*LEARN, "--resume", str(run)],
    ):
        code, out, err = run_cli(capsys, *command)
        assert code == 1, (command, err)
        assert_one_line(err, database, "damaged", says)
        assert out == ""


def test_debug_shows_the_storage_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run = made_run(capsys, tmp_path / "run")
    overwrite(run / "alma.sqlite", 0)
    code, _, err = run_cli(capsys, "--debug", "archive", str(run))
    assert code == 1 and "DatabaseError" in err and "file is not a database" in err


# ---------------------------------------------------------------------------- config files


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8 text (byte 0x89 on line 1)"),
        (b'[models]\nagent = "caf\xe9"\n', "not UTF-8 text (byte 0xe9 on line 2)"),
        (b"[models\nagent = 1\n", "is not valid TOML"),
        (b'[models]\nagnet = "scripted"\n', "unknown key 'models.agnet'"),
    ],
)
def test_undecodable_or_invalid_config_file_is_named_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, says: str
) -> None:
    (tmp_path / "alma.toml").write_bytes(content)
    code, _, err = run_cli(capsys, *EVAL, "--run-dir", str(tmp_path / "run"))
    assert code == 2
    assert_one_line(err, "alma.toml", says)
    assert not (tmp_path / "run").exists()  # refused before any work
    code, _, err = run_cli(capsys, "config", "show")
    assert code == 2 and says in err


def test_config_path_that_cannot_be_read_is_named_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run_cli(capsys, "--config", str(tmp_path), "config", "show")
    assert code == 2
    assert_one_line(err, f"cannot read config file {tmp_path}", "Is a directory")


# ---------------------------------------------------------------------------- files a run writes


def test_a_run_file_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    try:
        written = store.write_text("designs/abc.py", "x = 1\n")
        assert written.read_text() == "x = 1\n"
        (tmp_path / "run" / "notes").write_text("a file where a folder should be")
        with pytest.raises(StorageError, match=r"cannot write .*run/notes/abc\.py: File exists"):
            store.write_text("notes/abc.py", "y = 2\n")
        store.write_text("designs/abc.py", "x = 3\n")
        assert written.read_text() == "x = 3\n"
        assert sorted(p.name for p in written.parent.iterdir()) == ["abc.py"]  # no partials
    finally:
        store.close()


def test_storage_faults_by_errno_and_sqlite_code(tmp_path: Path) -> None:
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.py"))
    assert is_storage_fault(full)
    assert storage_fault(full, doing="write").message == (
        f"cannot write {tmp_path / 'x.py'}: the disk is full"
    )
    assert "another disk" in (storage_fault(full).hint or "")
    assert not is_storage_fault(OSError(errno.ECONNREFUSED, "refused"))
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(sqlite3.DatabaseError) as raised:
        sqlite3.connect(garbage).execute("SELECT 1 FROM sqlite_master")
    assert is_storage_fault(raised.value)
    assert storage_fault(raised.value, garbage).message == (
        f"cannot use {garbage}: the database is damaged (file is not a database)"
    )
    with pytest.raises(sqlite3.OperationalError) as bug:
        sqlite3.connect(":memory:").execute("SELECT * FROM no_such_table")
    assert not is_storage_fault(bug.value)  # alma's own mistakes stay internal errors


def test_cli_names_storage_faults_met_outside_the_store(tmp_path: Path) -> None:
    """The last resort in main(): an OSError or SQLite fault that no layer converted, even when
    wrapped by another exception, is one line, not an internal error."""
    try:
        try:
            raise OSError(errno.EROFS, "Read-only file system", "/data/cache/x")
        except OSError as error:
            raise RuntimeError("could not save") from error
    except RuntimeError as wrapped:
        fault = storage_fault_behind(wrapped)
    assert fault is not None
    assert fault.message == "cannot use /data/cache/x: the file system is read-only"
    assert storage_fault_behind(RuntimeError("a bug")) is None
    assert storage_fault_behind(OSError(errno.ECONNRESET, "reset")) is None


def test_damaged_model_cache_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The response cache lives outside the run (in the user cache); main's last resort turns
    its fault into one line."""
    cache = default_cache_path()
    cache.parent.mkdir(parents=True)
    cache.write_bytes(os.urandom(9000))
    with FakeOpenAI() as fake:
        code, _, err = run_cli(
            capsys,
            *["play", "--domain", "toy", "--agent-model", "openai:gpt-5-nano"],
            *["--base-url", fake.base_url, "--run-dir", str(tmp_path / "run")],
        )
    assert code == 1
    assert_one_line(err, "damaged", "file is not a database")


# ---------------------------------------------------------------------------- real mounts


@needs_mounts
def test_read_only_run_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run = made_run(capsys, tmp_path / "run", *LEARN)
    design = next((run / "designs").glob("*.py")).stem
    before = sorted(p.name for p in run.iterdir())
    read_only = ["--ro-bind", str(run), str(run)]

    done = alma_in(read_only, tmp_path, *EVAL, "--run-dir", str(run))
    assert done.returncode == 1, done.stderr
    assert_one_line(done.stderr, str(run), "read-only")
    assert "writable copy" in done.stderr

    # reading needs no writing: the archive and a design are shown as usual
    listed = alma_in(read_only, tmp_path, "archive", str(run), "--json")
    assert listed.returncode == 0, listed.stderr
    assert design in [row["id"] for row in json.loads(listed.stdout)]
    shown = alma_in(read_only, tmp_path, "show", str(run), design[:6], "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == design
    assert sorted(p.name for p in run.iterdir()) == before


@needs_mounts
def test_read_only_designs_folder_names_the_design_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run = made_run(capsys, tmp_path / "run", *LEARN)
    designs = run / "designs"
    done = alma_in(
        ["--ro-bind", str(designs), str(designs)],
        tmp_path,
        *LEARN[:-1],
        "2",
        "--resume",
        str(run),
    )
    assert done.returncode == 1, done.stderr
    assert_one_line(done.stderr, f"cannot write {designs}/", ".py: the file system is read-only")


@needs_mounts
def test_eval_on_a_read_only_root_folder(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    read_only = ["--ro-bind", str(tmp_path / "runs"), str(tmp_path / "runs")]
    done = alma_in(read_only, tmp_path, *EVAL, "--run-dir", str(tmp_path / "runs" / "new"))
    assert done.returncode == 1, done.stderr
    assert_one_line(done.stderr, f"cannot create {tmp_path / 'runs' / 'new'}", "read-only")


@needs_mounts
def test_unreadable_database(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run = made_run(capsys, tmp_path / "run")
    (run / "alma.sqlite").chmod(0)
    # in a user namespace the files' owner is an ordinary user: permission bits count again
    as_owner = ["--unshare-user", "--uid", str(os.getuid() or 1000)]
    for command in (["archive", str(run)], [*EVAL, "--run-dir", str(run)]):
        done = alma_in(as_owner, tmp_path, *command)
        assert done.returncode == 1, done.stderr
        assert_one_line(done.stderr, str(run / "alma.sqlite"), "permission denied")


FULL_DISK = """
{python} -m alma eval --domain toy --memory no_memory --tasks 10 --run-dir {run} 2>{err}
echo "$?" > {code}
{python} -c '
import json, sqlite3
db = sqlite3.connect("{run}/alma.sqlite")
print(json.dumps([db.execute("PRAGMA integrity_check").fetchone()[0],
                  db.execute("SELECT COUNT(*) FROM episodes").fetchone()[0]]))'
"""


@needs_mounts
def test_full_disk_keeps_what_was_finished(tmp_path: Path) -> None:
    disk = tmp_path / "disk"  # a 1.5 MB disk: the run fills it after a dozen episodes
    disk.mkdir()
    script = FULL_DISK.format(
        python=sys.executable,
        run=disk / "run",
        err=tmp_path / "err.txt",
        code=tmp_path / "code.txt",
    )
    wrap = ["--size", str(1_500_000), "--tmpfs", str(disk), "sh", "-c", textwrap.dedent(script)]
    command = ["bwrap", "--dev-bind", "/", "/", *wrap]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    err = (tmp_path / "err.txt").read_text()
    assert (tmp_path / "code.txt").read_text().strip() == "1", err
    assert_one_line(err, str(disk / "run" / "alma.sqlite"), "the disk is full")
    integrity, saved = json.loads(done.stdout)
    assert integrity == "ok" and 0 < saved < 20  # the episodes finished before it filled
