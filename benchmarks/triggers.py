"""Trigger runtime throughput: events through `TriggerRuntime` with a no-op handler (and
one that records a reply through a recorder), many conversations, 6 partitions.

    python -m benchmarks.triggers [--engine tansu|kafka] [--events 20000] [--conversations 500]

Prints events/s for the runtime's `run(once=True)` (decode, per-conversation queues,
the pool, commits), beside a raw `Consumer.consume` of the same records (assigned, no
group), and the no-op handler's ratio to it: from the group's assignment to the end (the
runtime's throughput), and from the start (with joining the group, a fixed cost: about
half of `session_timeout_ms` on Tansu, `group.initial.rebalance.delay.ms` on Kafka).
"""

from __future__ import annotations

import argparse
import time

from confluent_kafka import Consumer, KafkaError, TopicPartition

from agentlog.consumers import (
    Agents,
    TriggerRuntime,
    trigger_event_ids,
    tune_process_for_throughput,
)
from agentlog.kafka_config import reader_config
from agentlog.producers import Recorder
from agentlog.settings import Settings
from benchmarks._common import add_broker_arguments, benchmark_settings, broker_name


def record(settings: Settings, events: int, conversations: int) -> None:
    with Recorder(settings) as recorder:
        for n in range(events):
            recorder.user_message(f"conv-{n % conversations}", f"message {n}")


def raw_consume(settings: Settings, expected: int) -> float:
    consumer = Consumer(reader_config(settings))
    partitions = settings.partitions
    consumer.assign([TopicPartition(settings.events_topic, p, 0) for p in range(partitions)])
    seen, ended = 0, set()
    started = time.perf_counter()
    while len(ended) < partitions:
        # consume(n, timeout) waits out its timeout unless n records arrive: wait for the
        # first only, then take what was fetched (as the runtime does).
        first = consumer.poll(1.0)
        if first is None:
            continue
        for message in [first, *consumer.consume(999, 0)]:
            error = message.error()
            if error is None:
                seen += 1
            elif error.code() == KafkaError._PARTITION_EOF:
                ended.add(message.partition())
    elapsed = time.perf_counter() - started
    consumer.close()
    assert seen == expected, (seen, expected)
    return seen / elapsed


def run_runtime(
    settings: Settings, events: int, replying: bool, concurrency: int
) -> tuple[float, float]:
    """Events/s from the group's assignment to the end, and from the start."""
    agents = Agents(f"bench{int(replying)}")
    with Recorder(settings, new_event_id=trigger_event_ids) as recorder:

        @agents.on("user_message")
        def handle(event, session):  # type: ignore[no-untyped-def]
            if replying:
                recorder.agent_message(event.conversation_id, "bench", "ok")

        runtime = TriggerRuntime(settings, agents, lambda trigger: None, concurrency=concurrency)
        started = time.monotonic()
        progress = runtime.run(once=True)
        ended = time.monotonic()
    assert progress.handled == events, progress
    assert runtime.member.assigned_at is not None
    return events / (ended - runtime.member.assigned_at), events / (ended - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_broker_arguments(parser)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--conversations", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--untuned", action="store_true", help="without tune_process_for_throughput()"
    )
    args = parser.parse_args()
    if not args.untuned:
        tune_process_for_throughput()
    with benchmark_settings(args.bootstrap, 6, args.engine) as settings:
        print(f"broker: {broker_name(settings, args.bootstrap is None)}")
        record(settings, args.events, args.conversations)
        raw = raw_consume(settings, args.events)
        noop, noop_joining = run_runtime(settings, args.events, False, args.concurrency)
        replying, replying_joining = run_runtime(settings, args.events, True, args.concurrency)
        print(f"raw consume: {raw:,.0f} events/s")
        print(
            f"runtime, no-op handler: {noop:,.0f} events/s from the assignment "
            f"({noop_joining:,.0f} events/s with joining the group)"
        )
        print(
            f"runtime, handler records a reply: {replying:,.0f} events/s from the assignment "
            f"({replying_joining:,.0f} events/s with joining the group)"
        )
        print(f"ratio, no-op handler to raw consume: {noop / raw:.2f}")
        print(f"ratio with joining the group: {noop_joining / raw:.2f}")


if __name__ == "__main__":
    main()
