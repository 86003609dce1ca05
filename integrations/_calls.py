"""One LLM call being recorded: the request as sent, then the whole answer (assembled,
for a stream, with its time to first token) or the failure, as one event."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentlog.integrations._recording import safely, safely_async


class Assembler(Protocol):
    def add(self, item: Any) -> bool:
        """Take one streamed item; True when it carries the first token."""
        ...


@dataclass
class LlmCall:
    recorder: Any
    conversation_id: str
    agent: str
    provider: str
    request: dict[str, Any]  # request_model, input_messages, tool_definitions...
    operation: str = "chat"
    started: float = field(default_factory=time.perf_counter)
    first_token: float | None = None

    def token(self) -> None:
        if self.first_token is None:
            self.first_token = time.perf_counter()

    def _elapsed_ms(self, since: float | None = None) -> float:
        end = since if since is not None else time.perf_counter()
        return (end - self.started) * 1000

    def _answer(self, response: dict[str, Any], streamed: bool) -> Callable[[], Any]:
        fields = {k: v for k, v in self.request.items() if v is not None}
        fields.update((k, v) for k, v in response.items() if v is not None)
        latency = self._elapsed_ms()
        if streamed:
            fields["streamed"] = True
            if self.first_token is not None:
                fields["time_to_first_token_ms"] = self._elapsed_ms(self.first_token)
        return lambda: self.recorder.llm_call(
            self.conversation_id,
            agent=self.agent,
            provider=self.provider,
            operation=self.operation,
            latency_ms=latency,
            **fields,
        )

    def _failure(self, error: BaseException) -> Callable[[], Any]:
        fields = {
            k: v
            for k, v in self.request.items()
            if v is not None
            and k
            in (
                "request_model",
                "input_messages",
                "system_instructions",
                "tool_definitions",
                "request_parameters",
            )
        }
        status = getattr(error, "status_code", None)
        message = getattr(error, "message", None)
        latency = self._elapsed_ms()
        return lambda: self.recorder.llm_call_failed(
            self.conversation_id,
            agent=self.agent,
            provider=self.provider,
            operation=self.operation,
            error_type=type(error).__name__,
            error_message=message if isinstance(message, str) else str(error),
            status_code=status if isinstance(status, int) else None,
            latency_ms=latency,
            **fields,
        )

    def answered(self, response: dict[str, Any], *, streamed: bool = False) -> None:
        safely(self._answer(response, streamed))

    def failed(self, error: BaseException) -> None:
        safely(self._failure(error))

    async def answered_async(self, response: dict[str, Any], *, streamed: bool = False) -> None:
        await safely_async(self._answer(response, streamed))

    async def failed_async(self, error: BaseException) -> None:
        await safely_async(self._failure(error))


def observed(
    items: Iterator[Any],
    call: LlmCall,
    assembler: Assembler,
    whole: Callable[[], dict[str, Any] | None],
) -> Iterator[Any]:
    """The stream's items, unchanged and one by one; once it ends, the call is recorded
    whole (`whole()`: the response fields, None if it never completed), or as failed
    with the error the stream raised (which goes on to the caller). A stream the caller
    drops early is recorded with what had arrived."""
    try:
        for item in items:
            if assembler.add(item):
                call.token()
            yield item
    except GeneratorExit:
        _settle(call, whole)
        raise
    except Exception as error:
        call.failed(error)
        raise
    _settle(call, whole)


def _settle(call: LlmCall, whole: Callable[[], dict[str, Any] | None]) -> None:
    try:
        response = whole()
    except Exception as error:  # an answer that cannot be assembled is still a call
        response = None
        call.failed(error)
        return
    if response is None:
        call.failed(RuntimeError("the stream ended before the model's answer was complete"))
    else:
        call.answered(response, streamed=True)


async def observed_async(
    items: AsyncIterator[Any],
    call: LlmCall,
    assembler: Assembler,
    whole: Callable[[], dict[str, Any] | None],
) -> AsyncIterator[Any]:
    """`observed` for async streams."""
    try:
        async for item in items:
            if assembler.add(item):
                call.token()
            yield item
    except GeneratorExit:
        _settle(call, whole)  # no awaiting in a closing generator: a Recorder's call
        raise
    except Exception as error:
        await call.failed_async(error)
        raise
    try:
        response = whole()
    except Exception as error:
        await call.failed_async(error)
        return
    if response is None:
        await call.failed_async(
            RuntimeError("the stream ended before the model's answer was complete")
        )
    else:
        await call.answered_async(response, streamed=True)
