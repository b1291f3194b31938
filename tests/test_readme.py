"""The README's examples work as written."""

import re
from pathlib import Path

from alma.memory.loading import DesignSource
from alma.memory.runner import InProcessFactory
from alma.sandbox.check import check_design

README = Path(__file__).parent.parent / "README.md"


async def test_the_hand_written_design_passes_the_checks() -> None:
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert code is not None
    report = await check_design(DesignSource("winning_moves", code.group(1)), InProcessFactory())
    assert report.passed, report.summary()


def test_quick_start_has_exactly_two_commands() -> None:
    text = README.read_text()
    assert text.count("<!-- quickstart:main -->") == 1
    assert text.count("<!-- quickstart:tests -->") == 1
