"""The OpenAI client wrapper's cost per call: the same Chat Completions call through a
bare `OpenAI` client and through `agentlog.integrations.openai.record(OpenAI(), ...)`,
against the canned model server (`python -m agentlog.testing.model_server`, in a
process of its own so it does not share this one's GIL), same run.

Rounds alternate bare and recorded (`--calls` calls each) so that load on the machine
falls on both alike; each side's figure is the median of its rounds' mean call time,
wall clock and CPU time of this process (all its threads, librdkafka's included: on a
loaded machine the wall clock is mostly waiting for a core).
The overhead is recorded minus bare; the target is at most 5% of a 1 ms round trip or
50 µs, whichever is larger (50 µs). A streamed call (20 chunks... as the server sends
them) is measured the same way with `--stream`.

    python -m benchmarks.integrations [--calls N] [--rounds R] [--stream]
        [--bootstrap HOST:PORT | --engine tansu|kafka]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from openai import OpenAI

from agentlog.integrations.openai import record
from agentlog.producers import Recorder
from agentlog.testing.model_server import MODEL_TOOL, SCRIPT
from benchmarks._common import add_broker_arguments, benchmark_settings, broker_name

TARGET_US = max(0.05 * 1000, 50.0)
MESSAGES = [{"role": "user", "content": SCRIPT.question}]
TOOLS = [{"type": "function", "function": tool} for tool in SCRIPT.tools()]


def one_call(client: OpenAI, stream: bool) -> Callable[[], Any]:
    if stream:

        def streamed() -> Any:
            for _ in client.chat.completions.create(
                model=MODEL_TOOL, messages=MESSAGES, tools=TOOLS, stream=True
            ):
                pass

        return streamed
    return lambda: client.chat.completions.create(model=MODEL_TOOL, messages=MESSAGES, tools=TOOLS)


def mean_us(call: Callable[[], Any], calls: int) -> tuple[float, float, float]:
    """Wall time, CPU time of this process (every thread: the client's, librdkafka's) and
    CPU time of the calling thread (what the agent waits for; librdkafka sends from threads
    of its own) per call, in microseconds."""
    started, cpu, own = time.perf_counter(), time.process_time(), time.thread_time()
    for _ in range(calls):
        call()
    wall = (time.perf_counter() - started) / calls * 1e6
    thread = (time.thread_time() - own) / calls * 1e6
    return wall, (time.process_time() - cpu) / calls * 1e6, thread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per round (300)")
    parser.add_argument("--rounds", type=int, default=9, help="rounds per side (9)")
    parser.add_argument("--stream", action="store_true", help="streamed calls")
    add_broker_arguments(parser)
    args = parser.parse_args()

    server = subprocess.Popen(
        [sys.executable, "-c", "from agentlog.testing.model_server import main; main()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        with benchmark_settings(args.bootstrap, 3, args.engine) as settings:
            with Recorder(settings, service="bench") as recorder:
                bare = OpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0)
                wrapped = record(
                    OpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0),
                    recorder,
                    agent="bench",
                    conversation_id="bench-conversation",
                )
                plain_call = one_call(bare, args.stream)
                recorded_call = one_call(wrapped, args.stream)
                for warm in (plain_call, recorded_call):
                    mean_us(warm, 50)
                bare_rounds, recorded_rounds = [], []
                for _ in range(args.rounds):
                    bare_rounds.append(mean_us(plain_call, args.calls))
                    recorded_rounds.append(mean_us(recorded_call, args.calls))
                recorder.flush(30)
            where = broker_name(settings, args.bootstrap is None)
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=10)

    bare_us = statistics.median(w for w, _, _ in bare_rounds)
    recorded_us = statistics.median(w for w, _, _ in recorded_rounds)
    bare_cpu = statistics.median(c for _, c, _ in bare_rounds)
    recorded_cpu = statistics.median(c for _, c, _ in recorded_rounds)
    bare_thread = statistics.median(t for _, _, t in bare_rounds)
    recorded_thread = statistics.median(t for _, _, t in recorded_rounds)
    kind = "streamed" if args.stream else "plain"
    print(f"{kind} Chat Completions calls, {args.rounds} rounds of {args.calls}, {where}")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"bare client:     {bare_us:,.1f} us/call wall, {bare_cpu:,.1f} us CPU")
    print(f"recorded client: {recorded_us:,.1f} us/call wall, {recorded_cpu:,.1f} us CPU")
    print(
        f"overhead: {recorded_us - bare_us:,.1f} us/call wall, {recorded_cpu - bare_cpu:,.1f} us"
        f" CPU (target <= {TARGET_US:.0f} us; under load the CPU figure is the one to trust)"
    )
    print(
        f"calling thread: {bare_thread:,.1f} us CPU bare, {recorded_thread:,.1f} us recorded;"
        f" overhead {recorded_thread - bare_thread:,.1f} us (the agent's own wait on an idle"
        " core; the process figure adds librdkafka's sending threads)"
    )
    print(f"cpu ratio: {recorded_cpu / bare_cpu:.3f}")
    print(f"ratio: {recorded_us / bare_us:.3f}")


if __name__ == "__main__":
    main()
