"""Where ``alma`` keeps what it downloads or generates once and reuses across runs.

Everything lives under one user cache folder (``<user cache>/alma``, from platformdirs), which
the ``ALMA_CACHE_DIR`` environment variable moves. Each kind of item has its own sub-folder:
``models`` (weights), ``textworld`` (generated games), ``alfworld`` (generated tasks), ...
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir

CACHE_ENV = "ALMA_CACHE_DIR"


def cache_root() -> Path:
    """``$ALMA_CACHE_DIR`` if set, else the platform's user cache folder for ``alma``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path(user_cache_dir("alma"))


def cache_dir(kind: str) -> Path:
    """The cache sub-folder for ``kind`` (not created: callers create it when they write)."""
    return cache_root() / kind
