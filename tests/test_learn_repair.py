"""A design that passes its checks but breaks in its evaluation is sent to the repair step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alma.cli import main

BREAKS_LATER = '''
from typing import Any

from alma.memory import MemoryDesign
from alma.types import Episode, EpisodeStart


class BreaksLater(MemoryDesign):
    """Fine for the smoke run's two retrieves, broken from the third on."""

    def __init__(self, toolkit: Any) -> None:
        super().__init__(toolkit)
        self.calls = 0

    async def retrieve(self, start: EpisodeStart) -> dict[str, Any]:
        self.calls += 1
        if self.calls > 2:
            raise RuntimeError("broken after two calls")
        return {}

    async def update(self, episode: Episode) -> None:
        return None
'''
FIXED = BREAKS_LATER.replace("if self.calls > 2:", "if self.calls < 0:")


def answer(name: str, code: str) -> str:
    return f"name: {name}\nidea: remembers nothing\n```python\n{code}\n```\n"


def test_a_design_broken_in_its_evaluation_is_repaired_and_evaluated_again(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rules = tmp_path / "meta.json"
    rules.write_text(
        json.dumps(
            [
                {"match": "failed during its evaluation", "response": answer("fixed", FIXED)},
                {"match": ".", "response": answer("breaks_later", BREAKS_LATER)},
            ]
        )
    )
    args = ["learn", "--domain", "toy", "--meta-model", f"scripted:{rules}", "--iterations", "0"]
    code = main([*args, "--quick", "--json"])
    designs = {d["name"]: d for d in json.loads(capsys.readouterr().out)["designs"]}
    assert code == 0
    assert designs["breaks_later"]["status"] == "evaluation_failed"
    assert designs["fixed"]["status"] == "evaluated" and designs["fixed"]["score"] is not None
