"""Process-wide settings that make a projector faster, for a process that does little
else. The runner never changes them by itself (they would change the host
application's garbage collection and threads too): `agentlog project run` and the
benchmark opt in by calling `tune_process_for_throughput()`."""

from __future__ import annotations

import gc
import sys

GC_THRESHOLDS = (100_000, 50, 100)
SWITCH_INTERVAL_S = 0.0005


def tune_process_for_throughput() -> None:
    """Collect garbage less often and hand the GIL over sooner, for the whole process,
    from now on.

    A batch keeps thousands of decoded events alive at once, and the collector's default
    generation-0 threshold (700) would rescan them over and over: a third of the runner's
    time. The runner's writer thread needs the GIL back for a moment after each
    statement (and the database for each chunk it scans); at the default 5 ms switch
    interval it waits on the busy main thread most of its time.
    """
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
