"""An agent process that records user messages, for tests that kill it, cut its broker
off or let it exit without closing. Configured by AGENTLOG_* variables (Settings()).

    python recording_agent.py --count N [--start I] [--rate R] [--progress FILE]
        [--id-prefix P] [--no-close] [--on-error] [--until FILE] [--hold FILE]

Event ids are `<P>-0000-4000-8000-<index>`, conversations `conv-<index % 10>`, texts
`turn <index>`. After each recording call returns, `<index> <microseconds>` is written to
the progress file with one write(2), so the line survives a SIGKILL of this process.
With --on-error, the number of events passed to on_error is printed at exit, after the
recorder's own exit flush (this handler is registered before agentlog is imported, and
atexit runs handlers last-registered first). With --until, recording stops early once
FILE exists (tests that end a recording when their faults are over). With --hold, the
recorder is closed only once FILE exists (at most HOLD_S seconds after recording ends):
tests whose broker must be back before the recorder closes.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
import time

from helpers import wait_for

reported: list[object] = []
HOLD_S = 300


def _print_reported() -> None:
    print(f"on_error received {len(reported)} event(s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.0, help="events/s; 0: no pacing")
    parser.add_argument("--progress")
    parser.add_argument("--id-prefix", default="00000000")
    parser.add_argument("--no-close", action="store_true")
    parser.add_argument("--on-error", action="store_true")
    parser.add_argument("--until")
    parser.add_argument("--hold")
    args = parser.parse_args()
    if args.on_error:
        atexit.register(_print_reported)

    # What the spool and its shipper do, on stderr (tests print it).
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("agentlog.producers").setLevel(logging.INFO)

    from agentlog.producers import Recorder
    from agentlog.settings import Settings

    counter = iter(range(args.start, args.start + args.count))
    recorder = Recorder(
        Settings(),
        service="recording-agent",
        on_error=reported.append if args.on_error else None,
        new_event_id=lambda: f"{args.id_prefix}-0000-4000-8000-{next(counter):012d}",
    )
    progress = None
    if args.progress:
        progress = os.open(args.progress, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    began = time.monotonic()
    recorded = 0
    for index in range(args.start, args.start + args.count):
        if args.until and os.path.exists(args.until):
            break
        if args.rate:
            pause = began + (index - args.start) / args.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # the scenario: an agent recording at --rate
        started = time.perf_counter_ns()
        recorder.user_message(f"conv-{index % 10}", f"turn {index}")
        took = (time.perf_counter_ns() - started) // 1000
        if progress is not None:
            os.write(progress, f"{index} {took}\n".encode())
        recorded += 1
    print(f"recorded {recorded} event(s)", flush=True)
    if args.hold:
        try:
            wait_for(lambda: os.path.exists(args.hold), HOLD_S, f"{args.hold} to appear")
        except AssertionError as exc:  # one line for the test to show, not a traceback
            sys.exit(str(exc))
    if not args.no_close:
        recorder.close()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
