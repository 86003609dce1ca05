"""Projection throughput with exactly-once into DuckDB and PostgreSQL, against raw
confluent-kafka consuming the same records, same broker, same run.

Raw: a confluent-kafka consumer reading every partition from the beginning to its
end. Projector: decoding, dedup by event id, the three built-in projections, and one
sink transaction per batch holding state and offsets. Both are timed from the first
record to the last (joining the consumer group is excluded).

    python -m benchmarks.project [--events N] [--postgres URL]
        [--bootstrap HOST:PORT | --engine tansu|kafka]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from agentlog.consumers import (
    BUILT_IN,
    ProjectionRunner,
    open_sink,
    tune_process_for_throughput,
)
from agentlog.demo.simulation import SimulatedClock, seeded_event_ids, simulate
from agentlog.producers import Recorder
from agentlog.settings import Settings
from benchmarks._common import add_broker_arguments, benchmark_settings, broker_name


def record_events(settings: Settings, events: int) -> int:
    clock = SimulatedClock()
    conversations = max(1, events // 16)  # the simulated conversations average ~16 events
    # A busy production system fills large batches; so does this (linger 100 ms).
    with Recorder(
        settings.with_overrides(linger_ms=100),
        clock_micros=clock,
        new_event_id=seeded_event_ids(random.Random(1)),
        producer_config={"batch.size": 1_000_000},
    ) as recorder:
        return simulate(recorder, clock, conversations, seed=1).events


def raw_consume(settings: Settings, partitions: int) -> tuple[int, float]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"raw-{uuid.uuid4().hex[:8]}",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    consumer.assign(
        [TopicPartition(settings.events_topic, p, OFFSET_BEGINNING) for p in range(partitions)]
    )
    count, done, first, last = 0, set(), None, 0.0
    while len(done) < partitions:
        for message in consumer.consume(5000, 1.0):
            if message.error() is None:
                if first is None:
                    first = time.monotonic()
                count += 1
                message.value()
                last = time.monotonic()
            elif message.error().code() == KafkaError._PARTITION_EOF:
                done.add(message.partition())
    # To the last record, not to the end-of-partition signal (Tansu delays it by the
    # fetch wait).
    elapsed = last - (first or last)
    consumer.close()
    return count, count / max(elapsed, 1e-9)


def project(settings: Settings, sink_url: str, batch_size: int) -> tuple[int, float]:
    with open_sink(sink_url) as sink:
        runner = ProjectionRunner(
            settings,
            sink,
            [p() for p in BUILT_IN.values()],
            group=f"bench-{uuid.uuid4().hex[:8]}",
            batch_size=batch_size,
        )
        progress = runner.run(once=True)
    return progress.applied, progress.rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=10_000)
    add_broker_arguments(parser)
    parser.add_argument(
        "--postgres",
        default="",
        help="a PostgreSQL database URL to measure the shared sink too (default: skip)",
    )
    args = parser.parse_args()
    with benchmark_settings(args.bootstrap, args.partitions, args.engine) as settings:
        written = record_events(settings, args.events)
        print(
            f"{written} events on {args.partitions} partitions, "
            f"{broker_name(settings, args.bootstrap is None)}"
        )
        count, raw = raw_consume(settings, args.partitions)
        assert count == written, (count, written)
        print(f"raw confluent-kafka consume: {raw:,.0f} events/s")
        # As `agentlog project run` does (raw consuming above ran untuned, as before).
        tune_process_for_throughput()
        with tempfile.TemporaryDirectory() as tmp:
            applied, duck = project(
                settings, f"duckdb:{Path(tmp) / 'bench.duckdb'}", args.batch_size
            )
        assert applied == written, (applied, written)
        print(f"duckdb exactly-once:         {duck:,.0f} events/s  ratio: {duck / raw:.2f}")
        if args.postgres:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            import psycopg

            with psycopg.connect(args.postgres, autocommit=True) as admin:
                admin.execute(f"CREATE SCHEMA {schema}")
            try:
                url = f"{args.postgres}?options=-csearch_path%3D{schema}"
                applied, pg = project(settings, url, args.batch_size)
                assert applied == written, (applied, written)
                print(f"postgresql exactly-once:     {pg:,.0f} events/s  ratio: {pg / raw:.2f}")
            finally:
                with psycopg.connect(args.postgres, autocommit=True) as admin:
                    admin.execute(f"DROP SCHEMA {schema} CASCADE")
        print(f"ratio: {duck / raw:.2f}")


if __name__ == "__main__":
    main()
