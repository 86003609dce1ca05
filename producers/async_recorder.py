"""`AsyncRecorder`: the same API for asyncio agents; awaiting never blocks the loop."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from typing import Any, TypeVar, overload

from agentlog.errors import ConfigurationError
from agentlog.producers._base import BaseRecorder
from agentlog.producers._payloads import PayloadRecord
from agentlog.producers._tool_declaration import declaration
from agentlog.producers._wire import _LocalQueueFull
from agentlog.producers.recorder import (
    ToolCall,
    conversation_in_context,
    current_conversation,
)
from agentlog.tool_protocol import bound_arguments, new_tool_call_id

AsyncTool = TypeVar("AsyncTool", bound=Callable[..., Coroutine[Any, Any, Any]])


class AsyncRecorder(BaseRecorder[Awaitable[str]]):
    """`await recorder.user_message(...)` etc.; a full local queue yields to the loop
    instead of blocking it, and `flush()`/`close()` wait in a worker thread."""

    _waits_for_room = False

    async def _emit(
        self,
        conversation_id: str,
        payload: PayloadRecord,
        agent: str | None,
        causation_id: str | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        try:
            return self._wire.send(
                conversation_id,
                payload,
                agent,
                causation_id,
                trace_id,
                span_id,
                occurred_at,
                event_id,
            )
        except _LocalQueueFull as full:
            # Wait for room without blocking the loop, as long as max_block_ms allows.
            deadline = asyncio.get_running_loop().time() + self._wire.max_block
            while not self._wire.resend(full):
                if asyncio.get_running_loop().time() >= deadline:
                    self._wire.give_up(full)
                    break
                await asyncio.sleep(0.01)
            return full.event_id

    @contextmanager
    def conversation(self, conversation_id: str) -> Iterator[str]:
        """Make `conversation_id` the one tool calls in this block are recorded under: in
        this task, and in the tasks started inside the block (they copy the context)."""
        token = current_conversation.set(conversation_id)
        try:
            yield conversation_id
        finally:
            current_conversation.reset(token)

    @asynccontextmanager
    async def tool_call(
        self,
        tool_name: str,
        arguments: Any,
        *,
        conversation_id: str | None = None,
        tool_call_id: str | None = None,
        agent: str | None = None,
        attempt: int = 1,
    ) -> AsyncIterator[ToolCall]:
        """`async with recorder.tool_call(name, arguments) as call:` records requested on
        entry, then completed with `call.result`, or failed with the exception, which
        propagates (a cancelled call is recorded as failed with `CancelledError`)."""
        cid = conversation_in_context(conversation_id)
        call_id = tool_call_id or new_tool_call_id()
        requested = await self.tool_call_requested(
            cid, call_id, tool_name, arguments, agent=agent, attempt=attempt
        )
        call = ToolCall(cid, call_id, tool_name, requested, attempt, agent)
        try:
            yield call
        except BaseException as exc:
            await self.tool_call_failed(cid, call_id, tool_name, **call.ending(exc))
            raise
        await self.tool_call_completed(cid, call_id, tool_name, call.result, **call.ending())

    @overload
    def tool(self, function: AsyncTool, *, name: str | None = None) -> AsyncTool: ...

    @overload
    def tool(
        self, function: None = None, *, name: str | None = None
    ) -> Callable[[AsyncTool], AsyncTool]: ...

    def tool(
        self, function: AsyncTool | None = None, *, name: str | None = None
    ) -> AsyncTool | Callable[[AsyncTool], AsyncTool]:
        """Decorator for `async def` tools: every call is recorded as a tool call in the
        current conversation (see `conversation()`)."""

        def decorate(fn: AsyncTool) -> AsyncTool:
            if not inspect.iscoroutinefunction(fn):
                raise ConfigurationError(
                    f"AsyncRecorder.tool records `async def` tools, and {fn.__name__!r} is "
                    "not one: record it with a Recorder, or wrap its call in "
                    "`async with recorder.tool_call(name, arguments) as call:`"
                )
            tool_name = name or fn.__name__
            declared = declaration(fn, tool_name)

            @functools.wraps(fn)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                conversation_id = conversation_in_context(None)
                if self._first_declaration(conversation_id, tool_name):
                    await self.tools_declared(conversation_id, "", [declared])
                async with self.tool_call(tool_name, bound_arguments(fn, args, kwargs)) as call:
                    call.result = await fn(*args, **kwargs)
                return call.result

            return wrapper  # type: ignore[return-value]

        return decorate(function) if function is not None else decorate

    async def flush(self, timeout: float | None = None) -> None:
        await asyncio.to_thread(self._wire.flush, timeout)

    async def close(self, timeout: float | None = None) -> None:
        await asyncio.to_thread(self._wire.close, timeout)

    async def __aenter__(self) -> AsyncRecorder:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
