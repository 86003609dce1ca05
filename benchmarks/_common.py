"""Shared set-up for the benchmark scripts: a broker to measure against."""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from agentlog import devbroker
from agentlog.settings import Settings
from agentlog.topics import create_topics


@contextlib.contextmanager
def benchmark_settings(bootstrap: str | None, partitions: int) -> Iterator[Settings]:
    """Settings on fresh topics: the given broker, or a private embedded one."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    with tempfile.TemporaryDirectory() as state_dir:
        base = Settings(state_dir=Path(state_dir), topic_prefix=prefix, partitions=partitions)
        broker = None
        if bootstrap is None:
            broker = devbroker.start(base)
            bootstrap = broker.bootstrap
        settings = base.with_overrides(bootstrap_servers=bootstrap)
        try:
            create_topics(settings)
            yield settings
        finally:
            if broker is not None:
                devbroker.stop(base)
