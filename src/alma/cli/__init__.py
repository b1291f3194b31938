"""The ``alma`` command line, a thin layer over :mod:`alma.api`."""

from alma.cli.main import main, restore_handlers, stop_like_ctrl_c, storage_fault_behind

__all__ = ["main", "restore_handlers", "stop_like_ctrl_c", "storage_fault_behind"]
