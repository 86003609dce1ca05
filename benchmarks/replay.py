"""Replaying one conversation through the conversation_index against a full scan of the
topic (the baseline), and against a scan of its partition (what replay does without an
index), same broker, same run.

Loads `--events` events of `--conversations` conversations (100 events each by
default), about 60 of them active at a time as in production, so each conversation's
events are spread over a stretch of its partition among others'. The built-in
projections run once into a DuckDB file. Then `--samples` conversations, drawn at
random, are replayed each way with `replay_conversation` as `agentlog replay` calls
it (a new reader and a sink look-up each time), checking that every way finds the same
events. `speedup` is the full scan's median over the index's.

    python -m benchmarks.replay [--events N] [--conversations N] [--samples N]
        [--bootstrap HOST:PORT | --engine tansu|kafka]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from agentlog.consumers import BUILT_IN, ProjectionRunner, open_sink
from agentlog.producers import Recorder
from agentlog.reader import PartitionReader
from agentlog.recorded import recorded_event
from agentlog.replay import Replay, replay_conversation
from agentlog.settings import Settings
from benchmarks._common import add_broker_arguments, benchmark_settings, broker_name

ACTIVE = 60  # conversations in flight at once


def load(settings: Settings, events: int, conversations: int, seed: int = 7) -> list[str]:
    """Record the conversations interleaved; return their ids."""
    rng = random.Random(seed)
    per = max(2, events // conversations)
    ids = [f"bench-{n:06d}" for n in range(conversations)]
    waiting = iter(ids)
    active: list[tuple[str, int]] = []  # (conversation id, events left)
    clock = [1_790_000_000_000_000]

    def now() -> int:
        clock[0] += rng.randint(1_000, 200_000)
        return clock[0]

    with Recorder(
        settings.with_overrides(linger_ms=50),
        clock_micros=now,
        producer_config={"batch.size": 1_000_000},
    ) as recorder:
        while True:
            while len(active) < ACTIVE:
                cid = next(waiting, None)
                if cid is None:
                    break
                recorder.start_conversation(cid, channel="web_chat", user_id="u")
                active.append((cid, per - 1))
            if not active:
                break
            pick = rng.randrange(len(active))
            cid, left = active[pick]
            if left == 1:
                recorder.end_conversation(cid, "resolved")
                active.pop(pick)
                continue
            active[pick] = (cid, left - 1)
            step = left % 4
            if step == 0:
                recorder.user_message(cid, "Where is my order ORD-12345?")
            elif step == 1:
                recorder.llm_call(
                    cid,
                    agent="support",
                    provider="openai",
                    request_model="gpt-4o",
                    input=[{"role": "user", "content": "order"}],
                    output_text="Let me check.",
                    input_tokens=800,
                    output_tokens=20,
                    latency_ms=600.0,
                )
            elif step == 2:
                recorder.tool_call_completed(
                    cid, f"call-{left}", "check_order_status", {"status": "ok"}, duration_ms=80.0
                )
            else:
                recorder.agent_message(cid, "support", "It ships tomorrow.")
    return ids


def project(settings: Settings, sink_url: str) -> tuple[int, float]:
    started = time.perf_counter()
    with open_sink(sink_url) as sink:
        runner = ProjectionRunner(
            settings, sink, [p() for p in BUILT_IN.values()], group=f"bench-{uuid.uuid4().hex[:8]}"
        )
        progress = runner.run(once=True)
    return progress.applied, time.perf_counter() - started


def timed(settings: Settings, cid: str, sink_url: str | None, scan: bool) -> tuple[float, Replay]:
    started = time.perf_counter()
    replayed = replay_conversation(settings, cid, sink_url=sink_url, scan=scan)
    return time.perf_counter() - started, replayed


def full_scan(settings: Settings, cid: str) -> tuple[float, list[tuple[int, int]], int]:
    """The baseline: every record of the topic read and the conversation's kept (what a
    reader knowing neither the partitioner nor an index must do), on the same reader."""
    started = time.perf_counter()
    key = cid.encode()
    found = []
    with PartitionReader(settings, settings.events_topic) as reader:
        for partition in range(reader.partition_count()):
            bounds = reader.bounds(partition)
            for message in reader.read(partition, bounds.start, bounds.end):
                if message.key() == key:
                    event = recorded_event(message)
                    found.append((event.partition, event.offset))
        read = reader.records_read
    return time.perf_counter() - started, found, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument(
        "--full-scans", type=int, default=5, help="how many samples also get the full scan"
    )
    parser.add_argument("--partitions", type=int, default=6)
    add_broker_arguments(parser)
    args = parser.parse_args()
    with benchmark_settings(args.bootstrap, args.partitions, args.engine) as settings:
        started = time.perf_counter()
        ids = load(settings, args.events, args.conversations)
        loaded = time.perf_counter() - started
        print(
            f"loaded {args.events:,} events of {len(ids):,} conversations in {loaded:.1f}s on "
            f"{args.partitions} partitions, {broker_name(settings, args.bootstrap is None)}"
        )
        with tempfile.TemporaryDirectory() as tmp:
            sink_url = f"duckdb:{Path(tmp) / 'bench.duckdb'}"
            applied, took = project(settings, sink_url)
            print(f"projected {applied:,} events in {took:.1f}s (index built)")
            samples = random.Random(3).sample(ids, min(args.samples, len(ids)))
            timed(settings, samples[0], sink_url, scan=False)  # imports, first connection
            indexed: list[float] = []
            scanned: list[float] = []
            full: list[float] = []
            read: dict[str, list[int]] = {"index": [], "scan": [], "full": []}
            for cid in samples:
                seconds, by_index = timed(settings, cid, sink_url, scan=False)
                indexed.append(seconds)
                read["index"].append(by_index.records_read)
                seconds, by_scan = timed(settings, cid, None, scan=True)
                scanned.append(seconds)
                read["scan"].append(by_scan.records_read)
                assert by_index.location.method == "index", by_index.notes
                assert by_index.entries == by_scan.entries, cid
                assert len(by_index.entries) == args.events // args.conversations, cid
                if len(full) < args.full_scans:
                    seconds, found, count = full_scan(settings, cid)
                    full.append(seconds)
                    read["full"].append(count)
                    assert found == [(e.partition, e.offset) for e in by_index.entries], cid

    def line(name: str, times: list[float], records: list[int]) -> str:
        return (
            f"{name:<30} median {statistics.median(times):.3f} s (min {min(times):.3f}, max "
            f"{max(times):.3f}), {statistics.median(records):,.0f} records read"
        )

    index_median = statistics.median(indexed)
    print(line("index (conversation_index)", indexed, read["index"]))
    print(line("scan of its partition", scanned, read["scan"]))
    print(line("full scan of the topic", full, read["full"]))
    print(f"speedup over the partition scan: {statistics.median(scanned) / index_median:.1f}")
    print(f"median: {index_median:.3f} s")
    print(f"speedup: {statistics.median(full) / index_median:.1f}")


if __name__ == "__main__":
    main()
