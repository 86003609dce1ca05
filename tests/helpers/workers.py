"""A tool worker run on a thread of the test's process, for tests that need one beside
what they check (sagas, the agents runtime, the tool-call tests)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from agentlog.consumers import ToolRegistry, ToolWorker
from agentlog.settings import Settings
from helpers import tool_fixtures


@contextmanager
def worker_thread(
    settings: Settings, registry: ToolRegistry = tool_fixtures.tools
) -> Iterator[ToolWorker]:
    """A tool worker running in this process until the block ends."""
    worker = ToolWorker(settings, registry, group=f"tools-{uuid.uuid4().hex[:8]}", concurrency=4)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as exc:  # handed to the test below
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(60)
        assert not thread.is_alive(), "the worker did not stop within 60 s"
    if failure:
        raise failure[0]
