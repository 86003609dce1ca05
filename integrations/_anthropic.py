"""The implementation behind `agentlog.integrations.anthropic`: its face says how to use it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from agentlog.errors import ConfigurationError
from agentlog.integrations import _anthropic_shapes as shapes
from agentlog.integrations._calls import (
    Endpoint,
    observe,
    observed,
    observed_async,
    prepare,
    wrap_async,
    wrap_sync,
)
from agentlog.integrations._recording import log, require, sync_recorder

_anthropic = require("anthropic", "anthropic")


Client = TypeVar("Client")
_MARK = "__agentlog_recorded__"


def record(
    client: Client, recorder: Any, *, agent: str, conversation_id: str | None = None
) -> Client:
    """`client` (Anthropic or AsyncAnthropic), now recording its Messages calls to
    `recorder` as `agent`'s. A Recorder or, with AsyncAnthropic, an AsyncRecorder."""
    is_async = isinstance(client, _anthropic.AsyncAnthropic)
    if not is_async and not isinstance(client, _anthropic.Anthropic):
        raise ConfigurationError(
            "agentlog.integrations.anthropic.record wraps an Anthropic or AsyncAnthropic "
            f"client, not {type(client).__name__}"
        )
    if not is_async:
        sync_recorder(recorder, "a synchronous Anthropic client")
    messages = client.messages  # type: ignore[attr-defined]
    if getattr(messages.create, _MARK, False):
        return client  # recorded already: once is enough
    endpoint = Endpoint(
        recorder, agent, conversation_id, "anthropic", shapes.request, shapes.response, _stream
    )
    create = (wrap_async if is_async else wrap_sync)(messages.create, endpoint)
    stream = (_wrap_stream_async if is_async else _wrap_stream)(messages.stream, endpoint)
    for method in (create, stream):
        setattr(method, _MARK, True)
    messages.create = create
    messages.stream = stream
    return client


def _stream() -> tuple[Any, Callable[[], dict[str, Any] | None]]:
    events = shapes.MessageEvents()
    return events, events.assembled


_REQUEST = "_MessageStreamManager__api_request"
_ASYNC_REQUEST = "_AsyncMessageStreamManager__api_request"


def _wrap_stream(original: Callable[..., Any], endpoint: Endpoint) -> Callable[..., Any]:
    """`messages.stream(...)`: its manager opens the raw event stream on entry; that
    stream is observed as `create(stream=True)`'s is."""

    def stream(*args: Any, **kwargs: Any) -> Any:
        manager = original(*args, **kwargs)
        request: Callable[[], Any] | None = getattr(manager, _REQUEST, None)
        call = prepare(endpoint, kwargs) if request is not None else None
        if call is None:
            if request is None:
                log.warning("agentlog cannot observe this Anthropic stream; it is not recorded")
            return manager

        send: Callable[[], Any] = request  # type: ignore[assignment]

        def api_request() -> Any:
            call.restart()
            try:
                raw = send()
            except Exception as error:
                call.failed(error)
                raise
            observe(raw, call, endpoint, observed)
            return raw

        setattr(manager, _REQUEST, api_request)
        return manager

    return stream


def _wrap_stream_async(original: Callable[..., Any], endpoint: Endpoint) -> Callable[..., Any]:
    def stream(*args: Any, **kwargs: Any) -> Any:
        manager = original(*args, **kwargs)
        request: Any = getattr(manager, _ASYNC_REQUEST, None)
        call = prepare(endpoint, kwargs) if request is not None else None
        if call is None:
            if request is None:
                log.warning("agentlog cannot observe this Anthropic stream; it is not recorded")
            return manager

        async def api_request() -> Any:
            call.restart()
            try:
                raw = await request
            except Exception as error:
                await call.failed_async(error)
                raise
            observe(raw, call, endpoint, observed_async)
            return raw

        setattr(manager, _ASYNC_REQUEST, api_request())
        return manager

    return stream
