"""A run: its directory, database, ledger and models, opened and closed together."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType

from alma.config import AlmaConfig, config_as_toml_dict
from alma.llm.factory import ModelFactory
from alma.llm.ledger import Budget, Ledger
from alma.llm.prices import PriceTable
from alma.store import RunStore, new_run_dir


class Run:
    """``async with Run(config, path) as run:`` gives ``run.store``, ``run.ledger``, ``run.models``.

    ``path=None`` makes a fresh ``<config.run.root>/<prefix>-<timestamp>`` directory. The ledger
    is written to the run's database as calls happen, so nothing is lost if the process dies.
    """

    def __init__(
        self, config: AlmaConfig, path: Path | None = None, *, prefix: str = "run"
    ) -> None:
        self.config = config
        self.path = path if path is not None else new_run_dir(config.run.root, prefix)
        self.store = RunStore(self.path)
        if not (self.path / "config.toml").exists():  # what the run was started with stays
            self.store.write_config(config_as_toml_dict(config))
        budget = Budget(config.budget.usd, config.budget.tokens)
        self.ledger = Ledger(PriceTable(config.prices), budget, self.store)
        self.models = ModelFactory(config, self.ledger)
        self.closers: list[Callable[[], Awaitable[None]]] = []  # more to close with the run

    async def __aenter__(self) -> Run:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            for close in reversed(self.closers):
                await close()
            await self.models.aclose()
        finally:
            self.store.close()
