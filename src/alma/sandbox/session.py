"""``alma check``: verify a design file the way the harness will run it."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from alma.config import AlmaConfig
from alma.memory.check import CheckReport, check_design
from alma.memory.loading import read_design
from alma.sandbox.runner import factory_from_config


def check_file(config: AlmaConfig, path: Path) -> CheckReport:
    design = read_design(path)  # loading it is the check's job, which reports why it fails
    with tempfile.TemporaryDirectory(prefix="alma-check-") as run_dir:
        factory = factory_from_config(config, Path(run_dir))

        async def checked() -> CheckReport:
            try:
                return await check_design(design, factory, memory_chars=config.agent.memory_chars)
            finally:
                await factory.close()  # the spare worker the check started

        return asyncio.run(checked())
