"""`agentlog ingest otlp`: real instrumentations (OpenTelemetry's openai-v2, OpenInference,
OpenLLMetry) exporting with the real OTLP/HTTP protobuf exporter to a receiver the test
starts, against the loopback model server with the real `openai` client; the scripted
conversation lands as LLM and tool calls in one conversation. Hand-written OTLP JSON
(per the spec), replayed batches, children before parents, and what an exporter must
not be able to do (garbage, oversize, zip bombs, no token)."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Tracer

from agentlog.integrations.otlp import Receiver, serve
from agentlog.producers import Recorder
from agentlog.settings import Settings
from agentlog.testing.integration_contract import _payload, read_independently
from agentlog.testing.model_server import MODEL_TOOL, SCRIPT, ModelServer

TOOLS = [{"type": "function", "function": tool} for tool in SCRIPT.tools()]


@pytest.fixture
def recorder(settings: Settings) -> Iterator[Recorder]:
    with Recorder(settings, service="otlp-test") as recorder:
        yield recorder


@pytest.fixture
def receiver(recorder: Recorder, tmp_path: Path) -> Iterator[Receiver]:
    with serve(recorder, port=0, hold_s=300, status_file=tmp_path / "otlp.json") as receiver:
        yield receiver


@pytest.fixture(scope="module")
def model_server() -> Iterator[ModelServer]:
    with ModelServer() as server:
        yield server


def conversation_events(settings: Settings, expect: int, conversation: str) -> list[Any]:
    decoded = read_independently(settings, expect)
    return [
        (event["event_id"], *_payload(event))
        for _, event in decoded
        if event["conversation_id"] == conversation
    ]


def scripted_conversation(tracer: Tracer, server: ModelServer, conversation: str) -> None:
    """An agent as a framework would trace it: an invoke_agent span carrying the
    conversation, the instrumented client's chat spans and an execute_tool span inside."""
    client = OpenAI(base_url=server.openai_url, api_key="test", max_retries=0)
    attributes = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "billing",
        "gen_ai.conversation.id": conversation,
    }
    with tracer.start_as_current_span("invoke_agent billing", attributes=attributes):
        messages: list[Any] = [
            {"role": "system", "content": SCRIPT.system},
            {"role": "user", "content": SCRIPT.question},
        ]
        answer = client.chat.completions.create(model=MODEL_TOOL, messages=messages, tools=TOOLS)
        message = answer.choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls or ():
            arguments = json.loads(call.function.arguments)
            with tracer.start_as_current_span(
                f"execute_tool {call.function.name}",
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": call.function.name,
                    "gen_ai.tool.call.id": call.id,
                    "gen_ai.tool.call.arguments": call.function.arguments,
                },
            ) as span:
                result = {"invoice_id": arguments["invoice_id"], "status": "paid"}
                span.set_attribute("gen_ai.tool.call.result", json.dumps(result))
            messages.append(
                {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}
            )
        client.chat.completions.create(model=MODEL_TOOL, messages=messages, tools=TOOLS)


def assert_scripted(
    events: list[Any], *, tools_known: bool = True, agents: tuple[str, ...] = ("billing",)
) -> None:
    """The scripted conversation's calls; `tools_known`: whether the instrumentation
    exports the tools offered (openai-v2 2.4b0 does not)."""
    names = [name for _, name, _ in events]
    assert names.count("agentlog.LlmCall") == 2, names
    assert "agentlog.ToolCallRequested" in names and "agentlog.ToolCallCompleted" in names
    calls = [p for _, name, p in events if name == "agentlog.LlmCall"]
    first, second = calls
    assert first["agent"] in agents, [(n, p.get("agent")) for _, n, p in events]
    assert first["request_model"] == MODEL_TOOL
    offered = json.loads(first["tool_definitions_json"] or "null")
    if tools_known:
        assert [tool["name"] for tool in offered] == ["lookup_invoice", "issue_refund"]
        assert offered[0]["parameters"]["required"] == ["invoice_id"]
    else:
        assert offered is None
    asked = json.loads(first["input_messages_json"])
    assert [m["role"] for m in asked][-1] == "user"
    assert asked[-1]["parts"][0]["content"] == SCRIPT.question
    answer = json.loads(first["output_messages_json"])
    call = answer[0]["parts"][0]
    assert call["type"] == "tool_call" and call["name"] == "lookup_invoice"
    assert call["arguments"] == {"invoice_id": "INV-1"}
    follow_up = json.loads(second["input_messages_json"])
    response = follow_up[-1]["parts"][0]
    assert response["type"] == "tool_call_response" and response["id"] == call["id"]
    assert second["output_text"] == "Invoice INV-1 is paid."
    requested = next(p for _, n, p in events if n == "agentlog.ToolCallRequested")
    assert requested["tool_call_id"] == call["id"]
    assert json.loads(requested["arguments_json"]) == {"invoice_id": "INV-1"}
    assert len({event_id for event_id, _, _ in events}) == len(events)


def _tracing(receiver: Receiver) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "billing-service"}))
    exporter = OTLPSpanExporter(endpoint=f"{receiver.url}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


@pytest.mark.parametrize("mode", ["SPAN_ONLY", "EVENT_ONLY"])
def test_opentelemetry_openai_v2(
    mode: str,
    receiver: Receiver,
    settings: Settings,
    model_server: ModelServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    # 2.4b0 with util-genai 1.1b0 captures content only in the latest experimental
    # mode: SPAN_ONLY puts it on the span, EVENT_ONLY on a
    # gen_ai.client.inference.operation.details log record (/v1/logs).
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", mode)
    tracing = _tracing(receiver)
    logging_ = LoggerProvider()
    logging_.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{receiver.url}/v1/logs"))
    )
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracing, logger_provider=logging_)
    conversation = f"v2-{mode}-{uuid.uuid4()}"
    try:
        scripted_conversation(tracing.get_tracer("agent"), model_server, conversation)
    finally:
        instrumentor.uninstrument()
        assert logging_.force_flush(10_000)  # the content first, then the spans it belongs to
        assert tracing.force_flush(10_000)
        logging_.shutdown()
        tracing.shutdown()
    assert_scripted(conversation_events(settings, 4, conversation), tools_known=False)


class Forward(SpanExporter):
    """Exports to this test's receiver, from a provider that outlives the test."""

    def __init__(self) -> None:
        self.target: OTLPSpanExporter | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        assert self.target is not None, "spans exported outside a test"
        return self.target.export(spans)


@pytest.fixture(scope="module")
def openinference() -> Iterator[tuple[TracerProvider, Forward]]:
    """OpenInference's instrumentor, instrumented once per process: instrumented again
    after `uninstrument()`, its spans lose their parent (the agent span)."""
    from openinference.instrumentation.openai import OpenAIInstrumentor

    forward = Forward()
    provider = TracerProvider(resource=Resource.create({"service.name": "billing-service"}))
    provider.add_span_processor(BatchSpanProcessor(forward))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    yield provider, forward
    instrumentor.uninstrument()
    provider.shutdown()


def test_openinference_openai(
    receiver: Receiver,
    settings: Settings,
    model_server: ModelServer,
    openinference: tuple[TracerProvider, Forward],
) -> None:
    from openinference.instrumentation import using_session

    tracing, forward = openinference
    forward.target = OTLPSpanExporter(endpoint=f"{receiver.url}/v1/traces")
    conversation = f"oi-{uuid.uuid4()}"
    try:
        with using_session(conversation):
            scripted_conversation(tracing.get_tracer("agent"), model_server, conversation)
    finally:
        assert tracing.force_flush(10_000)
        forward.target = None
    # OpenInference's chat spans lose their parent (the agent span) when another openai
    # instrumentation was instrumented and removed before in the process (seen on the
    # second engine's run): they then arrive as roots, in the same conversation by
    # their session.id, acted by the resource's service.name.
    assert_scripted(
        conversation_events(settings, 4, conversation), agents=("billing", "billing-service")
    )


def test_openllmetry_openai(
    receiver: Receiver, settings: Settings, model_server: ModelServer
) -> None:
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    tracing = _tracing(receiver)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracing)
    conversation = f"ll-{uuid.uuid4()}"
    try:
        scripted_conversation(tracing.get_tracer("agent"), model_server, conversation)
    finally:
        instrumentor.uninstrument()
        assert tracing.force_flush(10_000)
        tracing.shutdown()
    assert_scripted(conversation_events(settings, 4, conversation))


# --- hand-written OTLP JSON -----------------------------------------------------------


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}  # 64-bit ints as strings
    if isinstance(value, list):
        return {
            "key": key,
            "value": {"arrayValue": {"values": [{"stringValue": v} for v in value]}},
        }
    return {"key": key, "value": {"stringValue": value}}


def json_span(
    trace_id: str, span_id: str, parent: str, attributes: dict[str, Any], start: int
) -> dict[str, Any]:
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": parent,
        "name": str(attributes.get("gen_ai.operation.name", "span")),
        "kind": 3,  # an integer enum: CLIENT
        "startTimeUnixNano": str(1_780_000_000_000_000_000 + start * 1_000_000),
        "endTimeUnixNano": str(1_780_000_000_000_000_000 + (start + 5) * 1_000_000),
        "attributes": [_attr(k, v) for k, v in attributes.items()],
        "status": {"code": 0},
    }


def json_body(*spans: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "resourceSpans": [
                {"resource": {"attributes": []}, "scopeSpans": [{"spans": list(spans)}]}
            ]
        }
    ).encode()


def post(
    receiver: Receiver,
    body: bytes,
    *,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
    path: str = "/v1/traces",
) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(
        receiver.url + path,
        data=body,
        method="POST",
        headers={"Content-Type": content_type, **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def chat(conversation_key: dict[str, Any], text: str) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-test",
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 3,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.input.messages": json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": text}]}]
        ),
        "gen_ai.output.messages": json.dumps(
            [
                {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": "ok"}],
                    "finish_reason": "stop",
                }
            ]
        ),
        **conversation_key,
    }


def test_json_children_before_parents_and_a_replayed_batch(
    receiver: Receiver, settings: Settings
) -> None:
    """The chat spans arrive in one batch, their invoke_agent parent (carrying the
    conversation) in a later one; the first batch is sent again afterwards: one
    conversation, each event once by id, in span start order."""
    trace = uuid.uuid4().hex
    conversation = f"json-{uuid.uuid4()}"
    root = uuid.uuid4().hex[:16]
    children = json_body(
        json_span(trace, "00000000000000b2", root, chat({}, "second"), start=20),
        json_span(trace, "00000000000000b1", root, chat({}, "first"), start=10),
    )
    parent = json_body(
        json_span(
            trace,
            root,
            "",
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "support",
                "gen_ai.conversation.id": conversation,
            },
            start=0,
        )
    )
    status, body, _ = post(receiver, children)
    assert status == 200 and json.loads(body) == {}
    assert post(receiver, parent)[0] == 200
    assert post(receiver, children)[0] == 200  # the exporter retried a batch
    events = conversation_events(settings, 4, conversation)
    assert len(events) == 4
    assert len({event_id for event_id, _, _ in events}) == 2  # the replay: the same ids
    first, second = events[0][2], events[1][2]
    assert json.loads(first["input_messages_json"])[0]["parts"][0]["content"] == "first"
    assert json.loads(second["input_messages_json"])[0]["parts"][0]["content"] == "second"
    assert first["agent"] == "support" and first["input_tokens"] == 12


# --- what an exporter must not be able to do -------------------------------------------


@pytest.fixture
def offline_receiver(tmp_path: Path) -> Iterator[Receiver]:
    """A receiver whose Kafka is never reached (refused requests produce nothing)."""
    settings = Settings(bootstrap_servers="127.0.0.1:1", state_dir=tmp_path)
    with Recorder(settings) as recorder:
        with serve(recorder, port=0, token="s3cret", max_body=64 * 1024) as receiver:
            yield receiver
        recorder.close(0.1)


AUTH = {"Authorization": "Bearer s3cret"}


def test_garbage_is_400_with_the_reason(offline_receiver: Receiver) -> None:
    status, body, _ = post(
        offline_receiver, b"\xff\x00garbage", content_type="application/x-protobuf", headers=AUTH
    )
    assert status == 400 and b"ExportTraceServiceRequest" in body
    status, body, _ = post(offline_receiver, b"{not json", headers=AUTH)
    assert status == 400 and b"does not parse" in body
    bad_id = json_body(json_span("xyz", "00000000000000b1", "", chat({}, "hi"), 0))
    status, body, _ = post(offline_receiver, bad_id, headers=AUTH)
    assert status == 400 and json.loads(body)["message"].endswith("traceId is not 32 hex digits")
    status, body, _ = post(offline_receiver, b"{}", content_type="text/plain", headers=AUTH)
    assert status == 415


def test_oversize_and_zip_bombs_are_413(offline_receiver: Receiver) -> None:
    status, _, _ = post(offline_receiver, b"{" + b" " * (70 * 1024) + b"}", headers=AUTH)
    assert status == 413
    bomb = gzip.compress(b"{" + b" " * (50 * 1024 * 1024) + b"}")
    assert len(bomb) < 64 * 1024
    status, body, _ = post(offline_receiver, bomb, headers={**AUTH, "Content-Encoding": "gzip"})
    assert status == 413 and b"decompresses to more than" in body
    ok = gzip.compress(b'{"resourceSpans": []}')
    assert post(offline_receiver, ok, headers={**AUTH, "Content-Encoding": "gzip"})[0] == 200


def test_a_missing_or_wrong_token_is_401(offline_receiver: Receiver) -> None:
    assert post(offline_receiver, b"{}")[0] == 401
    assert post(offline_receiver, b"{}", headers={"Authorization": "Bearer nope"})[0] == 401
    assert post(offline_receiver, b"{}", headers=AUTH)[0] == 200


def test_status_shows_the_receivers_counters(tmp_path: Path) -> None:
    from agentlog.cli.status import otlp_receiver, otlp_receiver_line

    settings = Settings(bootstrap_servers="127.0.0.1:1", state_dir=tmp_path)
    with Recorder(settings) as recorder:
        with serve(recorder, port=0, status_file=settings.otlp_status_file) as receiver:
            not_genai = json_span(
                uuid.uuid4().hex, "00000000000000c1", "", {"http.method": "GET"}, 0
            )
            assert post(receiver, json_body(not_genai))[0] == 200
            assert post(receiver, b"garbage")[0] == 400
            receiver.write_status()
            shown = otlp_receiver(settings)
        recorder.close(0.1)
    assert shown is not None
    assert shown["spans_received"] == 1 and shown["spans_dropped"] == 1
    assert shown["events_produced"] == 0
    line = otlp_receiver_line(shown)
    assert line.startswith(f"OTLP receiver {receiver.url}:") and "spans dropped 1" in line
