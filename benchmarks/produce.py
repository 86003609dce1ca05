"""SDK produce throughput against raw confluent-kafka, same broker, same run.

SDK: building each event through the Recorder API (pydantic validation, JSON of tool
arguments, envelope, Avro encoding) and producing it. Raw: confluent-kafka producing
the same already-encoded bytes with the same producer settings to a topic with the
same partitions. Both are timed from the first produce to the end of flush().

    python benchmarks/produce.py [--events N] [--bootstrap HOST:PORT | --engine tansu|kafka]
"""

from __future__ import annotations

import argparse
import time

from confluent_kafka import Producer

from agentlog.kafka_config import producer_config
from agentlog.producers import Recorder
from agentlog.reader import read_partitions
from agentlog.settings import Settings
from benchmarks._common import add_broker_arguments, benchmark_settings, broker_name

ARGUMENTS = [
    {"invoice_id": "INV-20931", "include_lines": True},
    {"order_id": "ORD-55120", "reason": "damaged in transit", "amount": 42.5},
    {"query": "reset password 2fa", "top_k": 5},
]


CONVERSATIONS = [f"conv-{n:05d}" for n in range(1000)]
CALL_IDS = [f"call_{n:06d}" for n in range(1000)]


def record_mix(recorder: Recorder, count: int) -> None:
    """A realistic mix: messages, LLM calls, tool calls and results. Ids are the
    application's (made once, outside the timed loop), as an agent already has them."""
    for i in range(count):
        conversation = CONVERSATIONS[i % 1000]
        kind = i % 5
        if kind == 0:
            recorder.user_message(conversation, "My last invoice looks wrong, can you check?")
        elif kind == 1:
            recorder.llm_call(
                conversation,
                agent="billing",
                provider="openai",
                request_model="gpt-4o-mini",
                input='[{"role":"user","content":"My last invoice looks wrong"}]',
                output_text="Let me look that invoice up.",
                input_tokens=412,
                output_tokens=38,
                latency_ms=812.5,
                finish_reason="tool_calls",
            )
        elif kind == 2:
            recorder.tool_call_requested(
                conversation,
                CALL_IDS[i % 1000],
                "lookup_invoice",
                ARGUMENTS[i % 3],
                agent="billing",
            )
        elif kind == 3:
            recorder.tool_call_completed(
                conversation,
                CALL_IDS[(i - 1) % 1000],
                "lookup_invoice",
                {"status": "paid", "total": 129.0, "currency": "EUR"},
                duration_ms=73.2,
            )
        else:
            recorder.agent_message(conversation, "billing", "Your invoice INV-20931 is paid.")


def recorded_bytes(settings: Settings) -> list[tuple[bytes, bytes, int]]:
    """(key, value, timestamp) of every record the SDK wrote, read back from Kafka."""
    return [
        (m.key(), m.value(), m.timestamp()[1])
        for m in read_partitions(settings, settings.events_topic)
    ]


def run_sdk(settings: Settings, count: int) -> float:
    recorder = Recorder(settings, service="benchmark")
    start = time.perf_counter()
    record_mix(recorder, count)
    recorder.flush()
    return count / (time.perf_counter() - start)


def run_raw(settings: Settings, records: list[tuple[bytes, bytes, int]], topic: str) -> float:
    producer = Producer(producer_config(settings))
    produce, poll = producer.produce, producer.poll
    start = time.perf_counter()
    for n, (key, value, timestamp) in enumerate(records):
        while True:
            try:
                produce(topic, value, key, timestamp=timestamp)
                break
            except BufferError:
                poll(0.05)
        if n % 1000 == 0:
            poll(0)
    remaining = producer.flush(60)
    if remaining:
        raise SystemExit(f"raw producer left {remaining} records undelivered")
    return len(records) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--partitions", type=int, default=6)
    add_broker_arguments(parser)
    args = parser.parse_args()
    with benchmark_settings(args.bootstrap, args.partitions, args.engine) as settings:
        # Round one of the SDK writes the events the raw producer will send as bytes.
        sdk_rates = [run_sdk(settings, args.events)]
        records = recorded_bytes(settings)[: args.events]
        size = sum(len(v) for _, v, _ in records) / len(records)
        print(
            f"{args.events} events, {size:.0f} bytes each on average, "
            f"{args.partitions} partitions, {broker_name(settings, args.bootstrap is None)}"
        )
        raw_rates: list[float] = []
        for round_no in range(args.rounds):
            raw_rates.append(run_raw(settings, records, settings.tool_requests_topic))
            if round_no:
                sdk_rates.append(run_sdk(settings, args.events))
            print(
                f"round {round_no + 1}: raw {raw_rates[-1]:,.0f} events/s, "
                f"sdk {sdk_rates[-1]:,.0f} events/s"
            )
        sdk, raw = max(sdk_rates), max(raw_rates)
        print(f"raw confluent-kafka: {raw:,.0f} events/s")
        print(f"agentlog SDK:        {sdk:,.0f} events/s")
        print(f"ratio: {sdk / raw:.2f}")


if __name__ == "__main__":
    main()
