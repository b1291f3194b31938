"""The one error hierarchy of alma.

Every error a user can cause or meet carries a one-line message and, where there is one, a hint
that says what to do. The CLI prints ``error: <message>`` and ``hint: <hint>`` and exits with
``exit_code``; a traceback appears only with ``--debug``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alma.types import Usage


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
    """A model call failed after every retry, or its answer could not be used.

    ``usage`` holds the tokens of the answers the call did get before failing (the ledger records
    them); ``usage_estimated`` says they were estimated because the endpoint sent no usage.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        usage: Usage | None = None,
        usage_estimated: bool = False,
    ) -> None:
        super().__init__(message, hint=hint)
        if usage is None:
            from alma.types import Usage  # lazily: this module is imported at start-up

            usage = Usage()
        self.usage = usage
        self.usage_estimated = usage_estimated


class EndpointUnreachableError(UsageError, LLMError):
    """The model endpoint cannot be reached at all (wrong URL, server down)."""


class MalformedOutputError(LLMError):
    """The model answered, but the answer breaks the schema even after the repair round.

    ``usage`` covers every answer it took (first and repair), ``text`` is the last raw answer.
    Callers may treat it as one bad answer and go on; any other ``LLMError`` means the endpoint
    gave no usable answer at all.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        usage: Usage | None = None,
        usage_estimated: bool = False,
        text: str = "",
    ) -> None:
        super().__init__(message, hint=hint, usage=usage, usage_estimated=usage_estimated)
        self.text = text


class BudgetExceededError(AlmaError):
    """The run's dollar or token budget is spent; no further call may start."""

    exit_code = 3


class StorageError(AlmaError):
    """A file of a run cannot be read or written: a damaged database, a read-only folder or file,
    a full disk. What was committed before stays; the message names the file."""


class RunInUseError(AlmaError):
    """Another process holds the run folder; two writers would duplicate each other's work."""


class DomainCheckError(AlmaError):
    """A domain breaks the contract; ``problems`` lists every finding."""

    def __init__(self, domain: str, problems: list[str]) -> None:
        lines = "; ".join(problems)
        super().__init__(
            f"domain {domain!r} fails {len(problems)} check(s): {lines}",
            hint="see alma.domains.checker.check_domain for what each check means",
        )
        self.problems = problems


class EnvironmentTimeoutError(AlmaError):
    """An environment call (open, reset, step) did not return within ``[agent] step_timeout_s``;
    the episode ends with reason "error" and the call is left to finish, or not, on its thread."""
