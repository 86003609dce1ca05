"""Encode and decode cost per event of serde's codec, beside fastavro's, no broker.

The events are the samples of every payload type (tests/helpers/sample_events.py), encoded
through `EventEncoder.encode_fields` (the producer's hot path) and `EventEncoder.encode`,
decoded through `serde.decode`. Best of rounds, in µs per event.

    python -m benchmarks.codec [--rounds R] [--repeat N]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from agentlog import schemas
from agentlog.serde import EventEncoder, decode, encode_event, event_to_avro

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from sample_events import sample_events  # noqa: E402


def best_micros_per_event(work: Callable[[], int], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        count = work()
        best = min(best, (time.perf_counter() - start) / count)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=2000, help="passes over the samples")
    args = parser.parse_args()

    records = [event_to_avro(e) for e in sample_events()]
    # The producer passes one unchanging source dict per agent: share it, as it does.
    source = records[0]["source"]
    for record in records:
        record["source"] = source
    field_rows = [tuple(r.values()) for r in records]
    values = [encode_event(e) for e in sample_events()]
    bodies = [v[10:] for v in values]
    parsed = parse_schema(schemas.current().schema)
    encoder = EventEncoder()
    repeat = args.repeat

    def encode_fields() -> int:
        encode = encoder.encode_fields
        for _ in range(repeat):
            for row in field_rows:
                encode(*row)
        return repeat * len(field_rows)

    def encode_dicts() -> int:
        encode = encoder.encode
        for _ in range(repeat):
            for record in records:
                encode(record)
        return repeat * len(records)

    def decode_values() -> int:
        for _ in range(repeat):
            for value in values:
                decode(value)
        return repeat * len(values)

    def fastavro_encode() -> int:
        for _ in range(repeat // 10):
            for record in records:
                schemaless_writer(io.BytesIO(), parsed, record)
        return repeat // 10 * len(records)

    def fastavro_decode() -> int:
        for _ in range(repeat // 10):
            for body in bodies:
                schemaless_reader(io.BytesIO(body), parsed, return_record_name=True)
        return repeat // 10 * len(bodies)

    for name, work in [
        ("serde encode_fields", encode_fields),
        ("serde encode (dict)", encode_dicts),
        ("serde decode", decode_values),
        ("fastavro schemaless_writer", fastavro_encode),
        ("fastavro schemaless_reader", fastavro_decode),
    ]:
        print(f"{name:28} {best_micros_per_event(work, args.rounds):6.2f} µs/event")


if __name__ == "__main__":
    main()
