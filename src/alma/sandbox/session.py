"""``alma check``: verify a design file the way the harness will run it."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from alma.config import AlmaConfig
from alma.memory.loading import DesignLoadError, DesignSource
from alma.sandbox.check import CheckReport, check_design
from alma.sandbox.runner import factory_from_config


def check_file(config: AlmaConfig, path: Path) -> CheckReport:
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DesignLoadError(
            f"cannot read design file {path}: {error.strerror}", hint="check the path"
        ) from None
    design = DesignSource(path.stem, source, "imported")
    with tempfile.TemporaryDirectory(prefix="alma-check-") as run_dir:
        factory = factory_from_config(config, Path(run_dir))

        async def checked() -> CheckReport:
            try:
                return await check_design(design, factory, memory_chars=config.agent.memory_chars)
            finally:
                await factory.close()  # the spare worker the check started

        return asyncio.run(checked())
