"""`AsyncRecorder`: the same API for asyncio agents; awaiting never blocks the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime

from agentlog.producers._base import BaseRecorder
from agentlog.producers._payloads import PayloadRecord
from agentlog.producers._wire import LocalQueueFull


class AsyncRecorder(BaseRecorder[Awaitable[str]]):
    """`await recorder.user_message(...)` etc.; a full local queue yields to the loop
    instead of blocking it, and `flush()`/`close()` wait in a worker thread."""

    _waits_for_room = False

    async def _emit(
        self,
        conversation_id: str,
        payload: PayloadRecord,
        agent: str | None,
        causation_id: str | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> str:
        try:
            return self._wire.send(
                conversation_id, payload, agent, causation_id, trace_id, span_id, occurred_at
            )
        except LocalQueueFull as full:
            # Wait for room without blocking the loop, as long as max_block_ms allows.
            deadline = asyncio.get_running_loop().time() + self._wire.max_block
            while not self._wire.resend(full):
                if asyncio.get_running_loop().time() >= deadline:
                    self._wire.give_up(full)
                    break
                await asyncio.sleep(0.01)
            return full.event_id

    async def flush(self, timeout: float | None = None) -> None:
        await asyncio.to_thread(self._wire.flush, timeout)

    async def close(self, timeout: float | None = None) -> None:
        await asyncio.to_thread(self._wire.close, timeout)

    async def __aenter__(self) -> AsyncRecorder:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
