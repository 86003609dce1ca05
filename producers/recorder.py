"""`Recorder`: record a conversation's events from synchronous agent code."""

from __future__ import annotations

import contextvars
import functools
import inspect
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agentlog.errors import ConfigurationError
from agentlog.producers._base import BaseRecorder
from agentlog.producers._tool_declaration import declaration

F = TypeVar("F", bound=Callable[..., Any])

current_conversation: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "agentlog_conversation", default=None
)


@dataclass
class ToolCall:
    """A tool call in progress; set `result` (or call `complete`) before the block ends."""

    conversation_id: str
    tool_call_id: str
    tool_name: str
    requested_event_id: str
    attempt: int
    agent: str | None = None  # the caller: its ending names it, as a tool worker's does
    result: Any = None
    started: float = field(default_factory=time.perf_counter)

    def complete(self, result: Any) -> None:
        self.result = result

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def ending(self, error: BaseException | None = None) -> dict[str, Any]:
        """The fields of this call's completed (no error) or failed event, beside the
        conversation, call id and tool name."""
        fields: dict[str, Any] = {
            "duration_ms": self.elapsed_ms(),
            "attempt": self.attempt,
            "causation_id": self.requested_event_id,
            "agent": self.agent,
        }
        if error is not None:
            fields.update(error_type=type(error).__name__, error_message=str(error))
        return fields


def conversation_in_context(explicit: str | None) -> str:
    conversation_id = explicit or current_conversation.get()
    if conversation_id is None:
        raise ConfigurationError(
            "no conversation for this tool call: run it inside "
            "`with recorder.conversation(conversation_id):` or pass conversation_id"
        )
    return conversation_id


def bound_arguments(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    try:
        bound = inspect.signature(function).bind(*args, **kwargs)
    except TypeError:
        return {"args": list(args), "kwargs": kwargs}
    bound.apply_defaults()
    return dict(bound.arguments)


class Recorder(BaseRecorder[str]):
    """Records agent events to `agentlog.events`; every method returns the event id.

    Delivery is asynchronous: an event the broker refuses is passed to `on_error`, or,
    without one, raised as DeliveryFailed (carrying the event) by `flush()`/`close()`.
    Recording calls never raise because of Kafka and never wait long (docs/guarantees.md,
    "Recording"); with `spool_dir` set, events pass through the crash-safe spool
    and `on_error` may be called from its shipper thread. Use it as a context manager so
    close flushes; a recorder never closed is flushed at interpreter exit (bounded).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Straight to the wire, which waits for room itself: one call less per event.
        self._emit = self._wire.send  # type: ignore[method-assign]

    @contextmanager
    def conversation(self, conversation_id: str) -> Iterator[str]:
        """Make `conversation_id` the one tool calls in this block are recorded under."""
        token = current_conversation.set(conversation_id)
        try:
            yield conversation_id
        finally:
            current_conversation.reset(token)

    @contextmanager
    def tool_call(
        self,
        tool_name: str,
        arguments: Any,
        *,
        conversation_id: str | None = None,
        tool_call_id: str | None = None,
        agent: str | None = None,
        attempt: int = 1,
    ) -> Iterator[ToolCall]:
        """Record requested on entry, then completed with `call.result`, or failed with the
        exception (which propagates)."""
        cid = conversation_in_context(conversation_id)
        call_id = tool_call_id or f"call_{uuid.uuid4().hex[:24]}"
        requested = self.tool_call_requested(
            cid, call_id, tool_name, arguments, agent=agent, attempt=attempt
        )
        call = ToolCall(cid, call_id, tool_name, requested, attempt, agent)
        try:
            yield call
        except BaseException as exc:
            self.tool_call_failed(cid, call_id, tool_name, **call.ending(exc))
            raise
        self.tool_call_completed(cid, call_id, tool_name, call.result, **call.ending())

    def tool(self, function: F | None = None, *, name: str | None = None) -> Any:
        """Decorator: every call of the function is recorded as a tool call in the current
        conversation (see `conversation()`); works on sync and async functions."""

        def decorate(fn: F) -> F:
            tool_name = name or fn.__name__
            declared = declaration(fn, tool_name)
            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    self._declare_once(declared)
                    with self.tool_call(tool_name, bound_arguments(fn, args, kwargs)) as call:
                        call.result = await fn(*args, **kwargs)
                    return call.result

                return async_wrapper  # type: ignore[return-value]

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                self._declare_once(declared)
                with self.tool_call(tool_name, bound_arguments(fn, args, kwargs)) as call:
                    call.result = fn(*args, **kwargs)
                return call.result

            return wrapper  # type: ignore[return-value]

        return decorate(function) if function is not None else decorate

    def _declare_once(self, declared: dict[str, Any]) -> None:
        """Record the tool's declaration in the current conversation before its first
        call there (the training export wants every called function declared)."""
        conversation_id = conversation_in_context(None)
        if self._first_declaration(conversation_id, declared["name"]):
            self.tools_declared(conversation_id, "", [declared])

    def flush(self, timeout: float | None = None) -> None:
        self._wire.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flush and let go; with a spool, events Kafka has not taken stay in it."""
        self._wire.close(timeout)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
