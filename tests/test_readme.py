"""The README's examples work as written."""

import re
import subprocess
import sys
from pathlib import Path

from alma.memory.check import check_design
from alma.memory.loading import DesignSource
from alma.memory.runner import InProcessFactory

README = Path(__file__).parent.parent / "README.md"


def python_block(containing: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    found = [block for block in blocks if containing in block]
    assert len(found) == 1, f"one python block with {containing!r}"
    return found[0]


async def test_the_hand_written_design_passes_the_checks() -> None:
    code = python_block("class WinningMoves")
    report = await check_design(DesignSource("winning_moves", code), InProcessFactory())
    assert report.passed, report.summary()


def test_the_python_example_runs(tmp_path: Path) -> None:
    code = python_block("from alma import api")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["no_memory", "reasoning_bank"]


def test_quick_start_has_exactly_two_commands() -> None:
    text = README.read_text()
    assert text.count("<!-- quickstart:main -->") == 1
    assert text.count("<!-- quickstart:tests -->") == 1
