"""Record every call of an OpenAI client, one line of set-up:

    from openai import OpenAI
    from agentlog.integrations.openai import record

    client = record(OpenAI(), recorder, agent="billing")
    with recorder.conversation("conv-42"):
        client.chat.completions.create(model="gpt-4o", messages=[...])

`OpenAI` and `AsyncOpenAI` (and Azure's), Chat Completions and Responses (`create`,
with or without `stream=True`). Each call is one `llm_call` event, the request as sent
and the answer as received (a stream's answer assembled, with its time to first token;
the stream reaches the caller unchanged, chunk by chunk), or one `llm_call_failed` (rate
limit, timeout, bad request: the error goes on to the caller unchanged). The
conversation is the one of `recorder.conversation(...)` where the call is made (threads
and asyncio tasks alike), else `conversation_id`. Recording never changes what the
caller gets and never raises into it.

The client itself is returned, recording (its `chat.completions.create` and
`responses.create` are wrapped on this instance; `client.with_options(...)` makes a copy
that does not record). Needs `pip install 'agentlog[openai]'`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from agentlog.errors import ConfigurationError
from agentlog.integrations import _openai_shapes as shapes
from agentlog.integrations._calls import LlmCall, observed, observed_async
from agentlog.integrations._recording import (
    conversation,
    no_conversation,
    plain,
    require,
    sync_recorder,
)

_openai = require("openai", "openai")

__all__ = ["record"]

Client = TypeVar("Client")
_MARK = "__agentlog_recorded__"


def record(
    client: Client, recorder: Any, *, agent: str, conversation_id: str | None = None
) -> Client:
    """`client` (OpenAI or AsyncOpenAI), now recording its calls to `recorder` as
    `agent`'s. A Recorder or, with AsyncOpenAI, an AsyncRecorder."""
    is_async = isinstance(client, _openai.AsyncOpenAI)
    if not is_async and not isinstance(client, _openai.OpenAI):
        raise ConfigurationError(
            f"agentlog.integrations.openai.record wraps an OpenAI or AsyncOpenAI client, "
            f"not {type(client).__name__}"
        )
    if not is_async:
        sync_recorder(recorder, "a synchronous OpenAI client")
    provider = "azure.ai.openai" if "Azure" in type(client).__name__ else "openai"
    wrap = _wrap_async if is_async else _wrap_sync
    for resource, request, response, assembler in (
        (client.chat.completions, shapes.chat_request, shapes.chat_response, _chat_stream),
        (client.responses, shapes.responses_request, shapes.responses_response, _responses_stream),
    ):
        original = resource.create
        if getattr(original, _MARK, False):
            continue  # recorded already: once is enough
        wrapped = wrap(
            original,
            _Target(recorder, agent, conversation_id, provider, request, response, assembler),
        )
        setattr(wrapped, _MARK, True)
        resource.create = wrapped
    return client


class _Target:
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
            no_conversation("agentlog.integrations.openai")
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


def _chat_stream() -> tuple[Any, Callable[[], dict[str, Any] | None]]:
    chunks = shapes.ChatChunks()
    return chunks, chunks.assembled


def _responses_stream() -> tuple[Any, Callable[[], dict[str, Any] | None]]:
    events = shapes.ResponseEvents()
    return events, lambda: events.final


def _wrap_sync(original: Callable[..., Any], target: _Target) -> Callable[..., Any]:
    @functools.wraps(original)
    def create(*args: Any, **kwargs: Any) -> Any:
        call = _prepare(target, kwargs)
        if call is None:
            return original(*args, **kwargs)
        try:
            result = original(*args, **kwargs)
        except Exception as error:
            call.failed(error)
            raise
        if kwargs.get("stream") is True:
            _observe(result, call, target, observed)
        else:
            call.answered(_answer(target, result))
        return result

    return create


def _wrap_async(original: Callable[..., Any], target: _Target) -> Callable[..., Any]:
    @functools.wraps(original)
    async def create(*args: Any, **kwargs: Any) -> Any:
        call = _prepare(target, kwargs)
        if call is None:
            return await original(*args, **kwargs)
        try:
            result = await original(*args, **kwargs)
        except Exception as error:
            await call.failed_async(error)
            raise
        if kwargs.get("stream") is True:
            _observe(result, call, target, observed_async)
        else:
            await call.answered_async(_answer(target, result))
        return result

    return create


def _prepare(target: _Target, kwargs: Mapping[str, Any]) -> LlmCall | None:
    """The call to record, or None (outside a conversation, or a request agentlog cannot
    read: the call itself goes ahead unrecorded, and the log says why)."""
    try:
        return target.call(kwargs)
    except Exception:
        from agentlog.integrations._recording import log

        log.exception("agentlog could not read an OpenAI request; this call is not recorded")
        return None


def _answer(target: _Target, result: Any) -> dict[str, Any]:
    return target.response(plain(result))


def _observe(result: Any, call: LlmCall, target: _Target, how: Callable[..., Any]) -> None:
    """Swap the stream's iterator for one that sees each item as it passes: the caller
    keeps the very stream object the SDK made."""
    items = getattr(result, "_iterator", None)
    if items is None:
        from agentlog.integrations._recording import log

        log.warning("agentlog cannot observe this OpenAI stream; its call is not recorded")
        return
    assembler, whole = target.stream()
    result._iterator = how(items, call, assembler, whole)
