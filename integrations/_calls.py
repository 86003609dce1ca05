"""One LLM call being recorded: the request as sent, then the whole answer (assembled,
for a stream, with its time to first token) or the failure, as one event."""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentlog.integrations._recording import (
    conversation,
    log,
    no_conversation,
    plain,
    safely,
    safely_async,
)


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

    def restart(self) -> None:
        """The request leaves now (a stream manager sends it on entry, not when made)."""
        self.started = time.perf_counter()
        self.first_token = None

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


class Endpoint:
    """Where and how one endpoint's calls are recorded."""

    def __init__(
        self,
        recorder: Any,
        agent: str,
        conversation_id: str | None,
        provider: str,
        request: Callable[[Mapping[str, Any]], dict[str, Any]],
        response: Callable[[Mapping[str, Any]], dict[str, Any]],
        assembler: Callable[[], tuple[Any, Callable[[], dict[str, Any] | None]]],
    ) -> None:
        self.recorder = recorder
        self.agent = agent
        self.conversation_id = conversation_id
        self.provider = provider
        self.request = request
        self.response = response
        self.assembler = assembler

    def call(self, kwargs: Mapping[str, Any]) -> LlmCall | None:
        cid = conversation(self.conversation_id)
        if cid is None:
            no_conversation(f"agentlog.integrations ({self.provider})")
            return None
        return LlmCall(self.recorder, cid, self.agent, self.provider, self.request(kwargs))

    def stream(self) -> tuple[Any, Callable[[], dict[str, Any] | None]]:
        """A fresh assembler and the function giving its whole answer's fields."""
        assembler, whole = self.assembler()
        return assembler, lambda: _fields(self.response, whole())


def _fields(
    response: Callable[[Mapping[str, Any]], dict[str, Any]], whole: dict[str, Any] | None
) -> dict[str, Any] | None:
    return None if whole is None else response(whole)


def wrap_sync(original: Callable[..., Any], target: Endpoint) -> Callable[..., Any]:
    @functools.wraps(original)
    def create(*args: Any, **kwargs: Any) -> Any:
        call = prepare(target, kwargs)
        if call is None:
            return original(*args, **kwargs)
        try:
            result = original(*args, **kwargs)
        except Exception as error:
            call.failed(error)
            raise
        if kwargs.get("stream") is True:
            observe(result, call, target, observed)
        else:
            call.answered(_answer(target, result))
        return result

    return create


def wrap_async(original: Callable[..., Any], target: Endpoint) -> Callable[..., Any]:
    @functools.wraps(original)
    async def create(*args: Any, **kwargs: Any) -> Any:
        call = prepare(target, kwargs)
        if call is None:
            return await original(*args, **kwargs)
        try:
            result = await original(*args, **kwargs)
        except Exception as error:
            await call.failed_async(error)
            raise
        if kwargs.get("stream") is True:
            observe(result, call, target, observed_async)
        else:
            await call.answered_async(_answer(target, result))
        return result

    return create


def prepare(target: Endpoint, kwargs: Mapping[str, Any]) -> LlmCall | None:
    """The call to record, or None (outside a conversation, or a request agentlog cannot
    read: the call itself goes ahead unrecorded, and the log says why)."""
    try:
        return target.call(kwargs)
    except Exception:
        log.exception("agentlog could not read a %s request; it is not recorded", target.provider)
        return None


def _answer(target: Endpoint, result: Any) -> dict[str, Any]:
    return target.response(plain(result))


def observe(result: Any, call: LlmCall, target: Endpoint, how: Callable[..., Any]) -> None:
    """Swap the stream's iterator for one that sees each item as it passes: the caller
    keeps the very stream object the SDK made."""
    items = getattr(result, "_iterator", None)
    if items is None:
        log.warning("agentlog cannot observe this %s stream; it is not recorded", target.provider)
        return
    assembler, whole = target.stream()
    result._iterator = how(items, call, assembler, whole)
