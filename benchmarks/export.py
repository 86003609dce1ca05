"""Archive and training-export throughput, against raw confluent-kafka consuming the same
records, same broker, same run.

Raw: a confluent-kafka consumer reading every partition to its end. Archive: `agentlog
archive run --once` into a fresh archive (decode, columns, Parquet files by day, written
then renamed), timed from the first record to the last file. Export: `agentlog export
training` over that archive (DuckDB reads the Parquet files; trajectories, redaction,
validation and the JSONL and provenance files in Python), events exported per second;
then again with `--failed-tool-calls exclude --escalated exclude`, which folds each
conversation's deciding events into the conversation state's verdict as it goes.

    python -m benchmarks.export [--events N] [--partitions P]
        [--bootstrap HOST:PORT | --engine tansu|kafka]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from agentlog.analytics.archiver import Archiver
from agentlog.analytics.training import TrainingOptions, export_training
from agentlog.consumers import tune_process_for_throughput
from benchmarks._common import add_broker_arguments, benchmark_settings, broker_name
from benchmarks.project import raw_consume, record_events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--no-redact", action="store_true", help="export without redaction (default: redact)"
    )
    add_broker_arguments(parser)
    args = parser.parse_args()
    with benchmark_settings(args.bootstrap, args.partitions, args.engine) as settings:
        started = time.perf_counter()
        written = record_events(settings, args.events)
        print(
            f"{written:,} events on {args.partitions} partitions "
            f"(recorded in {time.perf_counter() - started:.1f}s), "
            f"{broker_name(settings, args.bootstrap is None)}"
        )
        count, raw = raw_consume(settings, args.partitions)
        assert count == written, (count, written)
        print(f"raw confluent-kafka consume: {raw:,.0f} events/s")
        tune_process_for_throughput()
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "archive"
            started = time.perf_counter()
            progress = Archiver(settings, archive=archive).run(once=True)
            wall = time.perf_counter() - started
            assert progress.archived == written, (progress.archived, written)
            print(
                f"archive:                     {progress.rate:,.0f} events/s  ratio: "
                f"{progress.rate / raw:.2f} ({progress.files} files; {wall:.1f}s with start-up)"
            )
            options = TrainingOptions(out=Path(tmp) / "train.jsonl", redact=not args.no_redact)
            report = export_training(archive, settings.events_topic, options)
            assert report.events == written, (report.events, written)
            size = options.out.stat().st_size
            print(
                f"exported {sum(report.examples.values()):,} examples of "
                f"{report.conversations:,} conversations ({size / 1e6:,.1f} MB, "
                f"{len(report.invalid):,} invalid) in {report.seconds:.2f}s"
            )
            print(f"export: {report.rate:,.0f} events/s")
            asking = replace(options, failed_tool_calls="exclude", escalated="exclude")
            decided = export_training(archive, settings.events_topic, asking)
            assert decided.events == written, (decided.events, written)
            print(
                f"export with --failed-tool-calls exclude --escalated exclude: "
                f"{decided.rate:,.0f} events/s ({sum(decided.excluded.values()):,} left out; "
                f"{decided.rate / report.rate:.2f} of the plain export)"
            )
            print(f"ratio (archive against raw consume): {progress.rate / raw:.2f}")


if __name__ == "__main__":
    main()
