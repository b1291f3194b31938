"""A run: its directory, lock, database, ledger and models, opened and closed together."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

from alma.config import AlmaConfig, config_as_toml_dict
from alma.errors import UsageError
from alma.llm.factory import ModelFactory
from alma.llm.ledger import Budget, Ledger
from alma.llm.prices import PriceTable
from alma.run_lock import RunLock
from alma.store import RunStore, make_run_dir, new_run_dir


class Run:
    """``async with Run(config, path) as run:`` gives ``run.store``, ``run.ledger``, ``run.models``.

    ``path=None`` makes a fresh ``<config.run.root>/<prefix>-<timestamp>`` directory. The ledger
    is written to the run's database as calls happen, so nothing is lost if the process dies.
    The run folder is locked until the run closes (see :mod:`alma.run_lock`): a second process
    gets a :class:`~alma.errors.RunInUseError` before it touches anything; ``prefix`` names the
    command (``alma <prefix>``) it is told holds the folder.
    """

    def __init__(
        self, config: AlmaConfig, path: Path | None = None, *, prefix: str = "run"
    ) -> None:
        self.config = config
        self.path = path if path is not None else new_run_dir(config.run.root, prefix)
        make_run_dir(self.path)
        with ExitStack() as opened:  # closed again if anything below fails
            self.lock = RunLock(self.path, f"alma {prefix}")
            opened.callback(self.lock.release)
            self.store = RunStore(self.path)
            opened.callback(self.store.close)
            if not (self.path / "config.toml").exists():  # what the run was started with stays
                self.store.write_config(config_as_toml_dict(config))
            budget = Budget(config.budget.usd, config.budget.tokens)
            self.ledger = Ledger(PriceTable(config.prices), budget, self.store)
            self.models = ModelFactory(config, self.ledger)
            opened.pop_all()  # kept open until __aexit__
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
            try:
                self.store.close()
            finally:
                self.lock.release()


def claim_domain(run: Run, domain: str) -> None:
    """Tie the run to its domain; a run of another domain is refused, so its scores are never
    mixed with or overwritten by another domain's."""
    recorded = run.store.get_meta("domain")
    if recorded is not None and recorded != domain:
        raise UsageError(
            f"{run.path} is a run of the {recorded!r} domain, not {domain!r}",
            hint="use another --run-dir (or none) for a different domain",
        )
    if recorded is None:
        run.store.set_meta("domain", domain)
