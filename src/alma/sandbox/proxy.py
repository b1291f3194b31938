"""The worker's model and embedding calls, served in the parent with the run's metered services.

A design in the sandbox never holds a key or a connection: its toolkit's ``llm`` and ``embed``
calls travel back over the pipe, and the parent makes them with the services the harness gave
the runner, so the budget and the ledger see every one. This module is also the one place that
translates the end of the budget across the pipe: a ``BudgetExceededError`` goes to the worker
as an error of kind ``"budget"`` (the worker raises it inside the design), and a worker that
reports a request failed with kind ``"budget"`` comes back as a ``BudgetExceededError``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, RootModel

from alma.errors import AlmaError, BudgetExceededError
from alma.memory.runner import describe_failure
from alma.memory.toolkit import Services
from alma.sandbox.rpc import ProtocolError, pack_array
from alma.types import Message

BUDGET = "budget"  # the error kind that carries the end of the budget, both ways


def schema_model(schema: dict[str, Any]) -> type[BaseModel]:
    """A model that asks the endpoint for ``schema`` and hands back the JSON object as is;
    the worker validates it against the design's own pydantic class."""

    class Forwarded(RootModel[dict[str, Any]]):
        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return schema

    Forwarded.__name__ = str(schema.get("title", "Answer"))
    return Forwarded


def failed(number: Any, kind: str, message: str) -> dict[str, Any]:
    return {"call": number, "ok": False, "error": {"kind": kind, "message": message}}


def refused(message: dict[str, Any], reason: str) -> dict[str, Any]:
    """The reply to a call the parent will not serve (the worker's design sees an LLMError)."""
    return failed(message.get("call"), "model", describe_failure(ProtocolError(reason)))


def budget_stop(answer: dict[str, Any]) -> BudgetExceededError | None:
    """The end of the budget, when the worker's answer says the design stopped on it."""
    error = answer.get("error", {}) if not answer.get("ok") else {}
    if error.get("kind") != BUDGET:
        return None
    return BudgetExceededError(str(error.get("message", "budget reached")))


class CallProxy:
    """Serves one worker's model and embedding calls with ``services``."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def serve(self, message: dict[str, Any]) -> dict[str, Any]:
        """The reply to one call: its value, or why it failed (never an exception)."""
        number = message.get("call")
        try:
            return {"call": number, "ok": True, "value": await self.run(message)}
        except BudgetExceededError as error:
            return failed(number, BUDGET, error.message)
        except AlmaError as error:
            return failed(number, "model", error.message)
        except Exception as error:
            return failed(number, "model", describe_failure(error))

    async def run(self, message: dict[str, Any]) -> Any:
        op = message.get("op")
        if op == "llm":
            messages = [Message(role, content) for role, content in message["messages"]]
            schema = message.get("schema")
            completion = await self.services.complete(
                messages,
                schema=schema_model(schema) if isinstance(schema, dict) else None,
                temperature=message.get("temperature"),
                max_tokens=message.get("max_tokens"),
            )
            parsed = completion.parsed.model_dump() if completion.parsed is not None else None
            usage = completion.usage
            return {
                "text": completion.text,
                "parsed": parsed,
                "model": completion.model,
                "usage": {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "cached_tokens": usage.cached_tokens,
                },
            }
        if op == "embed":
            texts = [str(text) for text in message.get("texts", [])]
            return pack_array(await self.services.embed(texts))
        raise ProtocolError(f"unknown call {op!r}")
