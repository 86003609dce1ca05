"""Serving a re-run from the log: the real client library sends its requests as usual,
and an httpx transport under it answers each one with the recorded response body, so
the library parses, streams and types the answer exactly as in production.

A request is matched to a recorded `llm_call` on what decides the answer: the model,
the input messages, the system instructions, the tools offered and the request
parameters (sampling, tool choice...), read through the one structured view of an LLM
call (`agentlog.llm_calls`). Ids (tool call ids, response ids) and whether the caller
streams are left aside: a recorded answer streams again when the caller streams. The
order is the re-run's (`strict`: the recorded order; `fifo`: per model and request,
in any order). The first request that does not fit is the divergence, raised as
`Diverged` (a BaseException: neither the SDK's retry loop nor agent code catching
`Exception` swallows it) with a diff naming the message and field that differ.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import httpx
import orjson

from agentlog.consumers.projection import RecordedEvent
from agentlog.display import visible
from agentlog.errors import ReplayError
from agentlog.llm_calls import json_text, structured_fields
from agentlog.replay import (
    MODES,
    CallScript,
    Diverged,
    Divergence,
    RecordedCall,
    Replay,
    RerunReport,
)

# Request parameters that change how the answer travels, not what it is.
_TRANSPORT_PARAMETERS = frozenset({"stream", "stream_options"})
# Keys that name, not decide: left out of the comparison wherever they appear.
_IDS = frozenset({"id", "tool_call_id"})

# (request shape -> llm_call fields) of an endpoint, from the request's JSON body.
RequestShape = Callable[[Mapping[str, Any]], dict[str, Any]]
# (recorded response JSON, the request body) -> the SSE text to stream back.
StreamShape = Callable[[dict[str, Any]], Iterator[str]]


def deciding(fields: Mapping[str, Any]) -> dict[str, Any]:
    """What decides a model's answer, of an `llm_call` payload (the recorded fields,
    or a new request's through the same shapes): compared whole, ids aside."""
    call = structured_fields("llm_call", fields)
    decides: dict[str, Any] = _without_ids(
        {
            "system_instructions": call.system_instructions,
            "input_messages": call.input_messages,
            "tool_definitions": call.tool_definitions,
            "request_parameters": {
                k: v for k, v in call.request_parameters.items() if k not in _TRANSPORT_PARAMETERS
            },
        }
    )
    return decides


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k not in _IDS}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


def request_fields(shape: RequestShape, body: Mapping[str, Any]) -> dict[str, Any]:
    """A request body as the `llm_call` fields the recorder would write (JSON texts)."""
    shaped = shape(body)
    fields: dict[str, Any] = {}
    for name in ("input_messages", "system_instructions", "tool_definitions"):
        if shaped.get(name) is not None:
            fields[f"{name}_json"] = json_text(shaped[name])
    if shaped.get("request_parameters") is not None:
        fields["request_parameters_json"] = json_text(shaped["request_parameters"])
    return fields


def differences(recorded: Any, new: Any, where: str = "", limit: int = 5) -> list[str]:
    """The first `limit` places where two requests differ, each `path: recorded X, now Y`;
    a message is named by its index and role (`input_messages[0] (system)`)."""
    found: list[str] = []
    _diff(recorded, new, where, found, limit)
    return found


def _diff(recorded: Any, new: Any, where: str, found: list[str], limit: int) -> None:
    if len(found) >= limit or recorded == new:
        return
    if isinstance(recorded, dict) and isinstance(new, dict):
        for key in [*recorded, *(k for k in new if k not in recorded)]:
            if key not in new:
                found.append(f"{_join(where, key)}: recorded {_shown(recorded[key])}, now absent")
            elif key not in recorded:
                found.append(f"{_join(where, key)}: recorded absent, now {_shown(new[key])}")
            else:
                _diff(recorded[key], new[key], _join(where, key), found, limit)
            if len(found) >= limit:
                return
        return
    if isinstance(recorded, list) and isinstance(new, list):
        for i, (a, b) in enumerate(zip(recorded, new, strict=False)):
            role = a.get("role") if isinstance(a, dict) else None
            _diff(
                a,
                b,
                f"{where}[{i}]" + (f" ({role})" if isinstance(role, str) else ""),
                found,
                limit,
            )
        if len(recorded) != len(new) and len(found) < limit:
            found.append(
                f"{where}: recorded {len(recorded)} items, now {len(new)}"
                + (
                    f" (first extra: {_shown(new[len(recorded)])})"
                    if len(new) > len(recorded)
                    else ""
                )
            )
        return
    found.append(f"{where}: recorded {_shown(recorded)}, now {_shown(new)}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _shown(value: Any, limit: int = 120) -> str:
    """A value for a one-line diff: JSON, cut short, no control characters."""
    text = json_text(value)
    text = visible(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Serving:
    """The recorded LLM calls of one conversation, answered in order to a client's
    requests; `report` says what was served and where the code left the recording."""

    def __init__(
        self,
        recording: Replay | list[RecordedEvent],
        *,
        mode: str = "strict",
        fork_offset: int | None = None,
    ) -> None:
        if mode not in MODES:
            raise ReplayError(f"unknown mode {mode!r}: use strict or fifo")
        events = recording.events if isinstance(recording, Replay) else list(recording)
        if not events:
            raise ReplayError("serving a re-run needs the recording of a conversation")
        calls = [
            RecordedCall("llm", e.payload["request_model"], deciding(e.payload), e, e)
            for e in events
            if e.event_type == "llm_call"
        ]
        self.conversation_id = events[0].conversation_id
        self.report = RerunReport(self.conversation_id, self.conversation_id, mode)
        self._script = CallScript(calls, mode, fork_offset)
        self._lock = threading.Lock()  # a client may be shared by threads

    def take(self, model: str, fields: Mapping[str, Any]) -> RecordedEvent | None:
        """The recorded `llm_call` answering this request; None: answer it live (after
        the fork). Raises Diverged (recorded in the report) when none can."""
        new = deciding(fields)
        with self._lock:
            if self.report.divergence is not None:  # the run left the recording already
                raise Diverged(self.report.divergence)
            try:
                served = self._script.take("llm", model, new)
            except Diverged as diverged:
                divergence = _readable(diverged.divergence, model, new)
                self.report.divergence = divergence
                raise Diverged(divergence) from None
            if served is None:
                self.report.live_calls.append(f"LLM call to {model}")
                return None
            self.report.served.append(served)
            return served.request

    def finish(self) -> RerunReport:
        """The report, with the recorded calls the code never made."""
        if self.report.divergence is None:
            self.report.unconsumed = self._script.unconsumed()
        return self.report


def _readable(divergence: Divergence, model: str, new: dict[str, Any]) -> Divergence:
    """The divergence with the two requests' differences named, field by field."""
    recorded = divergence.recorded
    if recorded is None or recorded.kind != "llm":
        return divergence
    if divergence.kind == "different_arguments":
        lines = differences(recorded.arguments, new)
        message = (
            f"the LLM call to {model} differs from the recorded one at {recorded.position}: "
            + "; ".join(lines)
        )
        return Divergence(divergence.kind, message, recorded)
    if recorded.name != model and divergence.kind == "different_call":
        message = (
            f"the code called model {model} where the recording has {recorded.name} at "
            f"{recorded.position}"
        )
        return Divergence(divergence.kind, message, recorded)
    return divergence


class Endpoint:
    """One provider endpoint served from the log: its path, how its request body reads
    as `llm_call` fields, and how a recorded answer streams in its SSE format."""

    def __init__(self, path: str, shape: RequestShape, stream: StreamShape | None) -> None:
        self.path = path
        self.shape = shape
        self.stream = stream


class _Answering:
    """What both transports share: which endpoint, the recorded answer or None (live)."""

    def __init__(self, serving: Serving, endpoints: list[Endpoint]) -> None:
        self.serving = serving
        self.endpoints = endpoints

    def answer(self, request: httpx.Request) -> httpx.Response | None:
        endpoint = next((e for e in self.endpoints if request.url.path.endswith(e.path)), None)
        if endpoint is None or request.method != "POST":
            raise ReplayError(
                f"a re-run serves recorded LLM calls only: {request.method} "
                f"{request.url.path} is not one of them"
            )
        try:
            body = orjson.loads(request.content)
        except orjson.JSONDecodeError as exc:
            raise ReplayError("the client sent a request body that is not JSON") from exc
        if not isinstance(body, dict):
            raise ReplayError("the client sent a request body that is not a JSON object")
        model = str(body.get("model") or "")
        served = self.serving.take(model, request_fields(endpoint.shape, body))
        if served is None:
            return None
        recorded = orjson.loads(served.payload.get("provider_response_json") or "null")
        if not isinstance(recorded, dict):
            raise ReplayError(
                f"the LLM call at {served.topic}[{served.partition}]@{served.offset} has no "
                "recorded response body to serve (recorded before schema v4, or not by a "
                "client integration)"
            )
        if body.get("stream") is True:
            if endpoint.stream is None:
                raise ReplayError(f"serving a stream of {endpoint.path} is not supported yet")
            return httpx.Response(
                200,
                headers={"content-type": "text/event-stream"},
                stream=_Events(endpoint.stream(recorded)),
                request=request,
            )
        return httpx.Response(200, json=recorded, request=request)


class _Events(httpx.SyncByteStream, httpx.AsyncByteStream):
    """The SSE text of a recorded answer, one event per chunk."""

    def __init__(self, events: Iterator[str]) -> None:
        self._events = list(events)

    def __iter__(self) -> Iterator[bytes]:
        for event in self._events:
            yield event.encode()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for event in self._events:
            yield event.encode()


class ServingTransport(httpx.BaseTransport):
    """Answers a sync client's requests from the log; after the fork, `live` does."""

    def __init__(
        self, serving: Serving, endpoints: list[Endpoint], live: httpx.BaseTransport | None
    ) -> None:
        self._answering = _Answering(serving, endpoints)
        self._live = live

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self._answering.answer(request)
        if answer is not None:
            return answer
        if self._live is None:
            raise ReplayError("a request after the fork must be answered live: no live client")
        return self._live.handle_request(request)

    def close(self) -> None:
        if self._live is not None:
            self._live.close()


class AsyncServingTransport(httpx.AsyncBaseTransport):
    """`ServingTransport` for async clients."""

    def __init__(
        self, serving: Serving, endpoints: list[Endpoint], live: httpx.AsyncBaseTransport | None
    ) -> None:
        self._answering = _Answering(serving, endpoints)
        self._live = live

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answer = self._answering.answer(request)
        if answer is not None:
            return answer
        if self._live is None:
            raise ReplayError("a request after the fork must be answered live: no live client")
        return await self._live.handle_async_request(request)

    async def aclose(self) -> None:
        if self._live is not None:
            await self._live.aclose()


def sse(event: str | None, data: Any) -> str:
    """One Server-Sent Event."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {orjson.dumps(data).decode()}\n\n"
