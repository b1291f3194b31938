"""Fail fast on a broken design.

A design whose calls time out, or fail several times in a row, is given up: its remaining calls
are not attempted (each would cost up to the per-call limit), and the evaluation ends as
``design_failed`` with the first error and its line in the design, never as a score. Isolated
failures below that threshold are counted and shown, and the score stands.

The threshold: one call that times out, or ``max_consecutive`` (3) failed calls in a row.
"""

from __future__ import annotations

from dataclasses import dataclass

from alma.memory.runner import CallResult, DesignFailedError

MAX_CONSECUTIVE_FAILURES = 3


def is_timeout(error: str) -> bool:
    return error.startswith("timeout") or "took longer than" in error


@dataclass
class DesignGuard:
    """Watches one evaluation's design calls and gives the design up when it is broken."""

    max_consecutive: int = MAX_CONSECUTIVE_FAILURES
    consecutive: int = 0
    attempted: int = 0
    failure: DesignFailedError | None = None
    line: int | None = None  # where in the design the failure that gave it up happened

    def check(self) -> None:
        """Raise the design's failure if it was given up: the next call is not attempted."""
        if self.failure is not None:
            raise self.failure

    def observe(self, kind: str, result: CallResult) -> None:
        """Count one call; raise ``DesignFailedError`` if it gives the design up."""
        self.attempted += 1
        if result.error is None:
            self.consecutive = 0
            return
        self.consecutive += 1
        timed_out = is_timeout(result.error)
        if self.failure is None and (timed_out or self.consecutive >= self.max_consecutive):
            self.line = line = result.line
            where = f" (line {line} of the design)" if line is not None else ""
            why = "timed out" if timed_out else f"failed {self.consecutive} times in a row"
            self.failure = DesignFailedError(
                f"{kind} {why}: {result.error}{where}; its remaining calls were skipped",
                hint="`alma check FILE.py` runs the design on its own; fix it and evaluate again",
            )
        self.check()
