"""The broker stops in the middle of an OTLP export and comes back: the receiver answers
503 + Retry-After meanwhile, the real exporter retries, and every span is on the log
once (by event id). Apache Kafka only: the broker must come back with its log (Tansu
keeps it in memory; see test_outage.py)."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_for
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentlog import devbroker
from agentlog.integrations.otlp import serve
from agentlog.producers import Recorder
from agentlog.settings import Settings
from agentlog.testing.integration_contract import read_independently
from agentlog.topics import create_topics

pytestmark = pytest.mark.starts_dev_broker


def chat_spans(conversation: str, count: int) -> list[Any]:
    """Finished GenAI chat spans, as an instrumentation makes them."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("agent")
    for n in range(count):
        with tracer.start_as_current_span(
            "chat",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-test",
                "gen_ai.conversation.id": conversation,
                "gen_ai.input.messages": (
                    f'[{{"role": "user", "parts": [{{"type": "text", "content": "q{n}"}}]}}]'
                ),
            },
        ):
            pass
    return list(memory.get_finished_spans())


def test_a_broker_stopped_mid_export_then_back_every_span_on_the_log_once(
    dev_broker_engine: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if not dev_broker_engine.capabilities.keeps_log_across_restart:
        pytest.skip("Tansu loses its log when stopped; the outage needs a broker that keeps it")
    state = dev_broker_engine.settings(tmp_path / "broker")
    record = devbroker.start(state)
    try:
        settings = Settings(
            bootstrap_servers=record.bootstrap,
            topic_prefix="otlp-outage.",
            partitions=3,
            state_dir=tmp_path / "state",
        )
        create_topics(settings)
        conversation = f"outage-{uuid.uuid4()}"
        before, during = chat_spans(conversation, 20), chat_spans(conversation, 20)
        with Recorder(settings, service="otlp-outage") as recorder:
            with serve(recorder, port=0, flush_timeout_s=3) as receiver:
                exporter = OTLPSpanExporter(endpoint=f"{receiver.url}/v1/traces", timeout=120)
                assert exporter.export(before) == SpanExportResult.SUCCESS
                devbroker.stop(state)
                results: list[SpanExportResult] = []
                export = threading.Thread(target=lambda: results.append(exporter.export(during)))
                export.start()
                wait_for(
                    lambda: receiver.ingest.counters.unavailable,
                    60,
                    "the receiver to answer 503 while the broker is away",
                )
                devbroker.start(state, port=record.port)
                export.join(timeout=150)
                assert results == [SpanExportResult.SUCCESS]
        # The outage said in one line when it began and one when it ended, not per 503 (a
        # broker starting up may refuse a batch once more: a second, brief outage).
        said = [r.getMessage() for r in caplog.records if r.name == "agentlog.integrations.otlp"]
        began = [line for line in said if "does not take events" in line]
        ended = [line for line in said if "takes events again" in line]
        assert 1 <= len(began) <= 2 and len(ended) == len(began), said
        events = read_independently(settings, 40)
        ids = {e["event_id"] for _, e in events if e["conversation_id"] == conversation}
        assert len(ids) == 40  # every span once (repeats of an id are one event)
    finally:
        devbroker.stop(state, wipe=True)
