"""What the sync and asyncio recorders share: settings, identity and the wire."""

from __future__ import annotations

import threading
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
        # (conversation, tool) pairs whose declaration this recorder recorded (bounded:
        # forgetting one only records its declaration again, which changes nothing).
        self._declared: set[tuple[str, str]] = set()
        self._declared_lock = threading.Lock()
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

    def _first_declaration(self, conversation_id: str, tool: str) -> bool:
        """Whether `tool` is declared in the conversation for the first time here."""
        key = (conversation_id, tool)
        with self._declared_lock:
            if key in self._declared:
                return False
            if len(self._declared) >= _DECLARED_KEPT:
                self._declared.clear()
            self._declared.add(key)
            return True


_DECLARED_KEPT = 100_000
