"""Tool-call round trip: an agent requests a no-op tool call, a worker runs it, the agent
sees its result; latency (one call at a time) and calls/s (many in flight) with 1 and
3 worker processes.

    python -m benchmarks.tools [--engine tansu|kafka] [--workers 1,3] [--calls 10000]

Targets with 3 workers: p50 < 10 ms, p99 < 100 ms, >= 1,000 calls/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from agentlog.consumers import ToolRegistry
from agentlog.producers import ToolClient
from agentlog.settings import Settings
from agentlog.topics import create_topics
from benchmarks._common import add_broker_arguments, benchmark_settings, broker_name

ROOT = Path(__file__).resolve().parent.parent

tools = ToolRegistry()


@tools.tool
def noop() -> int:
    """Does nothing; says which worker process ran it."""
    return os.getpid()


@tools.tool(name="noop_async")
async def noop_async() -> int:
    return os.getpid()


def start_workers(settings: Settings, count: int, concurrency: int) -> list[subprocess.Popen]:
    command = [
        sys.executable,
        "-m",
        "agentlog",
        "--bootstrap",
        str(settings.bootstrap_servers),
        "--topic-prefix",
        settings.topic_prefix,
        "tools",
        "work",
        "benchmarks.tools:tools",
        "--concurrency",
        str(concurrency),
        "--group",
        f"bench-{settings.topic_prefix}",
        "--quiet",
    ]
    return [
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def warm_up(client: ToolClient, tool: str, workers: int) -> None:
    """Until every worker has run calls (the group has formed), then some more."""
    pids: set[int] = set()
    deadline = time.monotonic() + 120
    while len(pids) < workers:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(pids)} of {workers} workers got partitions in 120 s")
        batch = [client.request(f"warm-{i}", tool) for i in range(60)]
        pids.update(await asyncio.gather(*(call.wait(60) for call in batch)))
    await asyncio.gather(*(client.request(f"warm-{i}", tool).wait(60) for i in range(300)))


async def one_at_a_time(client: ToolClient, tool: str, calls: int) -> list[float]:
    latencies = []
    for i in range(calls):
        started = time.perf_counter()
        await client.request(f"conv-{i % 64}", tool).wait(60)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def many_in_flight(
    client: ToolClient, tool: str, calls: int, in_flight: int
) -> tuple[float, list[float]]:
    """Calls/s with `in_flight` calls outstanding at any time, and their latencies."""
    latencies: list[float] = []
    slots = asyncio.Semaphore(in_flight)

    async def call(i: int) -> None:
        async with slots:
            started = time.perf_counter()
            await client.request(f"conv-{i % 64}", tool).wait(60)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(call(i) for i in range(calls)))
    return calls / (time.perf_counter() - started), latencies


def measure(settings: Settings, args: argparse.Namespace, workers: int) -> dict[str, float]:
    # Fresh topics per round, so that no group inherits another round's requests.
    round_settings = settings.with_overrides(topic_prefix=f"{settings.topic_prefix}{workers}w.")
    create_topics(round_settings)
    processes = start_workers(round_settings, workers, args.concurrency)
    try:

        async def run() -> dict[str, float]:
            async with ToolClient(round_settings, service="benchmark", timeout=60) as client:
                await warm_up(client, args.tool, workers)
                alone = await one_at_a_time(client, args.tool, args.latency_calls)
                rate, loaded = await many_in_flight(client, args.tool, args.calls, args.in_flight)
            return {
                "p50": statistics.median(alone),
                "p99": percentile(alone, 0.99),
                "rate": rate,
                "loaded_p50": statistics.median(loaded),
                "loaded_p99": percentile(loaded, 0.99),
            }

        return asyncio.run(run())
    finally:
        stop_workers(processes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_broker_arguments(parser)
    parser.add_argument("--workers", default="1,3", help="worker process counts (default 1,3)")
    parser.add_argument("--concurrency", type=int, default=32, help="calls per worker at once")
    parser.add_argument("--calls", type=int, default=10_000, help="calls for the calls/s figure")
    parser.add_argument("--in-flight", type=int, default=200, help="calls outstanding at once")
    parser.add_argument(
        "--latency-calls", type=int, default=500, help="calls made one at a time for latency"
    )
    parser.add_argument(
        "--tool",
        choices=("noop", "noop_async"),
        default="noop",
        help="a sync no-op (run on the worker's thread pool) or an async one",
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    with benchmark_settings(args.bootstrap, 6, args.engine) as settings:
        print(f"{broker_name(settings, args.bootstrap is None)}, tool {args.tool}, 6 partitions")
        for workers in counts:
            figures = measure(settings, args, workers)
            print(f"{workers} worker process(es), {args.concurrency} calls each at once:")
            print(f"  p50: {figures['p50']:.2f} ms   (one call at a time, {args.latency_calls})")
            print(f"  p99: {figures['p99']:.2f} ms")
            print(
                f"  calls/s: {figures['rate']:,.0f}   ({args.calls:,} calls, {args.in_flight} "
                f"in flight; their latency p50 {figures['loaded_p50']:.1f} ms, "
                f"p99 {figures['loaded_p99']:.1f} ms)",
                flush=True,
            )


if __name__ == "__main__":
    main()
