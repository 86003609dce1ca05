"""The implementation behind `agentlog.integrations.openai`: its face says how to use it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from agentlog.errors import ConfigurationError
from agentlog.integrations import _openai_shapes as shapes
from agentlog.integrations._calls import Endpoint, wrap_async, wrap_sync
from agentlog.integrations._recording import require, sync_recorder
from agentlog.integrations._serving import (
    AsyncServingTransport,
    Serving,
    ServingTransport,
    sse,
)
from agentlog.integrations._serving import Endpoint as ServedEndpoint

_openai = require("openai", "openai")
_httpx = require("httpx", "openai")  # the openai SDK's own HTTP client


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
    wrap = wrap_async if is_async else wrap_sync
    sdk: Any = client
    for resource, request, response, assembler in (
        (sdk.chat.completions, shapes.chat_request, shapes.chat_response, _chat_stream),
        (sdk.responses, shapes.responses_request, shapes.responses_response, _responses_stream),
    ):
        original = resource.create
        if getattr(original, _MARK, False):
            continue  # recorded already: once is enough
        wrapped = wrap(
            original,
            Endpoint(recorder, agent, conversation_id, provider, request, response, assembler),
        )
        setattr(wrapped, _MARK, True)
        resource.create = wrapped
    return client


def _chat_stream() -> tuple[Any, Callable[[], dict[str, Any] | None]]:
    chunks = shapes.ChatChunks()
    return chunks, chunks.assembled


def _responses_stream() -> tuple[Any, Callable[[], dict[str, Any] | None]]:
    events = shapes.ResponseEvents()
    return events, lambda: events.final


def serve(client: Client, serving: Serving, *, live: bool = False) -> Client:
    """A copy of `client` (OpenAI or AsyncOpenAI) whose Chat Completions and (unstreamed)
    Responses requests are answered by `serving` from the recording. `live`: requests
    the recording does not serve (after its fork) go to the client's own `base_url`;
    without it such a request is an error. Nothing else of the client changes: wrap the
    copy with `record` to record the re-run."""
    is_async = isinstance(client, _openai.AsyncOpenAI)
    if not is_async and not isinstance(client, _openai.OpenAI):
        raise ConfigurationError(
            f"agentlog.integrations.openai.serve serves an OpenAI or AsyncOpenAI client, "
            f"not {type(client).__name__}"
        )
    endpoints = [
        ServedEndpoint("/chat/completions", shapes.chat_request, _chat_chunks),
        ServedEndpoint("/responses", shapes.responses_request, None),
    ]
    sdk: Any = client
    if is_async:
        transport: Any = AsyncServingTransport(
            serving, endpoints, _httpx.AsyncHTTPTransport() if live else None
        )
        return sdk.with_options(http_client=_httpx.AsyncClient(transport=transport))  # type: ignore[no-any-return]
    transport = ServingTransport(serving, endpoints, _httpx.HTTPTransport() if live else None)
    return sdk.with_options(http_client=_httpx.Client(transport=transport))  # type: ignore[no-any-return]


def _chat_chunks(completion: dict[str, Any]) -> Iterator[str]:
    """A recorded ChatCompletion as the chunks of its stream: per choice, the role, the
    text and the tool calls, then its finish reason; the usage on the last chunk."""
    head = {
        "id": completion.get("id") or "",
        "object": "chat.completion.chunk",
        "created": completion.get("created") or 0,
        "model": completion.get("model") or "",
    }
    choices = [c for c in completion.get("choices") or () if isinstance(c, dict)]
    for choice in choices:
        message = choice.get("message") or {}
        delta: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
        if message.get("refusal"):
            delta["refusal"] = message["refusal"]
        calls = message.get("tool_calls") or []
        if calls:
            delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(calls)]
        yield sse(None, {**head, "choices": [{"index": choice.get("index", 0), "delta": delta}]})
    for n, choice in enumerate(choices):
        chunk: dict[str, Any] = {
            **head,
            "choices": [
                {
                    "index": choice.get("index", 0),
                    "delta": {},
                    "finish_reason": choice.get("finish_reason"),
                }
            ],
        }
        if n == len(choices) - 1 and completion.get("usage") is not None:
            chunk["usage"] = completion["usage"]
        yield sse(None, chunk)
    yield "data: [DONE]\n\n"
