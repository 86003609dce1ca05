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

from collections.abc import Callable
from typing import Any, TypeVar

from agentlog.errors import ConfigurationError
from agentlog.integrations import _openai_shapes as shapes
from agentlog.integrations._calls import Endpoint, wrap_async, wrap_sync
from agentlog.integrations._recording import require, sync_recorder

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
