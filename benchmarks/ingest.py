"""OTLP ingest throughput: spans/s through `agentlog ingest otlp`'s receiver beside raw
confluent-kafka producing the very events it made, same broker, same run.

Receiver: protobuf ExportTraceServiceRequests of 512 GenAI `chat` spans each (input
and output messages as `gen_ai.*.messages` attributes, usage, model, a conversation id
per span), POSTed over one keep-alive connection; timed from the first request to the
last 200 (each 200 means the batch's events are on Kafka: the receiver flushes).
Raw: confluent-kafka producing the same records' bytes (read back from the topic),
timed from the first produce to the end of flush(). The receiver runs in this process
(a thread), as `agentlog ingest otlp` runs it; the client shares the GIL with it.
Target: >= 20,000 spans/s.

    python -m benchmarks.ingest [--batches N] [--bootstrap HOST:PORT | --engine tansu|kafka]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from agentlog.integrations.otlp import serve
from agentlog.producers import Recorder
from benchmarks._common import add_broker_arguments, benchmark_settings, broker_name
from benchmarks.produce import recorded_bytes, run_raw

SPANS_PER_BATCH = 512
TARGET = 20_000
INPUT = json.dumps(
    [
        {"role": "system", "parts": [{"type": "text", "content": "You are the billing agent."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Where is my invoice INV-1?"}]},
    ]
)
OUTPUT = json.dumps(
    [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Invoice INV-1 is paid."}],
            "finish_reason": "stop",
        }
    ]
)


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def batch(number: int) -> bytes:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    base = 1_780_000_000_000_000_000
    for i in range(SPANS_PER_BATCH):
        n = number * SPANS_PER_BATCH + i
        span = spans.add()
        span.trace_id = n.to_bytes(16, "big")
        span.span_id = (n + 1).to_bytes(8, "big")
        span.name = "chat gpt-bench"
        span.start_time_unix_nano = base + n * 1000
        span.end_time_unix_nano = base + n * 1000 + 800_000_000
        span.attributes.extend(
            [
                _kv("gen_ai.operation.name", "chat"),
                _kv("gen_ai.provider.name", "openai"),
                _kv("gen_ai.request.model", "gpt-bench"),
                _kv("gen_ai.response.model", "gpt-bench"),
                _kv("gen_ai.response.id", f"chatcmpl-{n}"),
                _kv("gen_ai.usage.input_tokens", 21),
                _kv("gen_ai.usage.output_tokens", 7),
                _kv("gen_ai.conversation.id", f"conv-{n % 1000:04d}"),
                _kv("gen_ai.input.messages", INPUT),
                _kv("gen_ai.output.messages", OUTPUT),
            ]
        )
    encoded: bytes = request.SerializeToString()
    return encoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=40, help="batches of 512 spans (40)")
    add_broker_arguments(parser)
    args = parser.parse_args()
    bodies = [batch(n) for n in range(args.batches)]
    spans = args.batches * SPANS_PER_BATCH
    with benchmark_settings(args.bootstrap, 3, args.engine) as settings:
        with Recorder(settings, service="otlp-bench") as recorder:
            with serve(recorder, port=0) as receiver:
                host, port = receiver.url.removeprefix("http://").split(":")
                connection = http.client.HTTPConnection(host, int(port), timeout=60)
                headers = {"Content-Type": "application/x-protobuf"}
                start = time.perf_counter()
                for body in bodies:
                    connection.request("POST", "/v1/traces", body=body, headers=headers)
                    answer = connection.getresponse()
                    answer.read()
                    if answer.status != 200:
                        raise SystemExit(f"the receiver answered {answer.status}")
                through_receiver = spans / (time.perf_counter() - start)
                connection.close()
                produced = receiver.ingest.counters.events_produced
        records = recorded_bytes(settings)
        raw_spans = run_raw(settings, records, settings.tool_requests_topic)
        where = broker_name(settings, args.bootstrap is None)
    print(f"{args.batches} protobuf batches of {SPANS_PER_BATCH} GenAI chat spans, {where}")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"events produced: {produced} (records read back: {len(records)})")
    print(f"through the receiver: {through_receiver:,.0f} spans/s (target >= {TARGET:,})")
    print(f"raw confluent-kafka, the same events: {raw_spans:,.0f} events/s")
    print(f"ratio: {through_receiver / raw_spans:.2f}")


if __name__ == "__main__":
    main()
