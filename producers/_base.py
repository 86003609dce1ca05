"""What the sync and asyncio recorders share: settings, identity and the wire."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from agentlog.producers._payloads import EventMethods, Result
from agentlog.producers._wire import ErrorCallback, open_wire
from agentlog.settings import Settings


class BaseRecorder(EventMethods[Result]):
    """`service`/`version` name the writer in every event's source; `clock_micros` and
    `new_event_id` replace the clock and the id generator (simulations, tests)."""

    # Whether recording may block the thread while the producer's queue is full.
    _waits_for_room: ClassVar[bool] = True

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        service: str = "agent",
        version: str | None = None,
        on_error: ErrorCallback | None = None,
        clock_micros: Callable[[], int] | None = None,
        new_event_id: Callable[[], str] | None = None,
        producer_config: dict[str, Any] | None = None,
    ) -> None:
        self._wire = open_wire(
            settings,
            wait_when_full=self._waits_for_room,
            service=service,
            version=version,
            on_error=on_error,
            clock_micros=clock_micros,
            new_event_id=new_event_id,
            extra_producer_config=producer_config,
        )

    @property
    def topic(self) -> str:
        return self._wire.topic
