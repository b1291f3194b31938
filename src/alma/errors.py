"""The one error hierarchy of alma.

Every error a user can cause or meet carries a one-line message and, where there is one, a hint
that says what to do. The CLI prints ``error: <message>`` and ``hint: <hint>`` and exits with
``exit_code``; a traceback appears only with ``--debug``.
"""

from __future__ import annotations


class AlmaError(Exception):
    """Base class: a failure alma understands and can explain in one line."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(AlmaError):
    """The user asked for something that does not exist or cannot work (exit 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """A setting is missing, unknown or of the wrong type."""


class UnknownModelError(UsageError):
    """A model spec names no known provider or model."""


class UnknownDomainError(UsageError):
    """A domain or task id that is not registered."""


class MissingDependencyError(UsageError):
    """An optional extra is needed for what was asked."""


class LLMError(AlmaError):
    """A model call failed after every retry, or its answer could not be used."""


class EndpointUnreachableError(UsageError, LLMError):
    """The model endpoint cannot be reached at all (wrong URL, server down)."""


class MalformedOutputError(LLMError):
    """The model's answer did not parse or did not match the schema, even after repair."""


class BudgetExceededError(AlmaError):
    """The run's dollar or token budget is spent; no further call may start."""

    exit_code = 3


class DomainCheckError(AlmaError):
    """A domain breaks the contract; ``problems`` lists every finding."""

    def __init__(self, domain: str, problems: list[str]) -> None:
        lines = "; ".join(problems)
        super().__init__(
            f"domain {domain!r} fails {len(problems)} check(s): {lines}",
            hint="see alma.domains.checker.check_domain for what each check means",
        )
        self.problems = problems
