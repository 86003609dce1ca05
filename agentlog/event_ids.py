"""Event ids, made in one place: random ones for what happens once, derived ones for what
may be delivered again (the same source event always gets the same id, so a repeat
changes no projection), and the canonical form of an id a caller chose.

Every event id is a UUID string in its canonical lowercase hyphenated form.
"""

from __future__ import annotations

import functools
import os
import uuid

from agentlog.errors import SchemaError


def new_event_id() -> str:
    """A random (version 4) event id."""
    return str(uuid.uuid4())


def derived_event_id(namespace: uuid.UUID, name: str) -> str:
    """The id of the event `name` identifies (a trigger's n-th record, an exporter's
    span...) within `namespace` (one per kind of source): a version 5 UUID, the same
    however often the source delivers it."""
    return str(uuid.uuid5(namespace, name))


def canonical_event_id(value: object) -> str:
    """An event id a caller chose (`event_id=`): a UUID, returned in its canonical
    lowercase hyphenated form so that the same id always dedups as the same text."""
    if value.__class__ is not str:
        raise SchemaError(f"event_id must be a UUID string, got {type(value).__name__}")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise SchemaError(f"event_id must be a UUID string, got {value!r:.80}") from None


def random_uuid4s(count: int) -> list[str]:
    """`count` random (version 4) UUID strings from one read of the OS random source."""
    pool = int.from_bytes(os.urandom(16 * count))
    # Set version 4 and the RFC 4122 variant in every 16-byte id at once.
    pool = (pool & _clear_mask(count)) | _set_bits(count)
    h = pool.to_bytes(16 * count).hex()
    return [
        f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-{h[i + 12 : i + 16]}-"
        f"{h[i + 16 : i + 20]}-{h[i + 20 : i + 32]}"
        for i in range(0, 32 * count, 32)
    ]


@functools.cache
def _clear_mask(count: int) -> int:
    one = ((1 << 128) - 1) ^ (0xF << 76) ^ (0x3 << 62)
    return int.from_bytes(one.to_bytes(16) * count)


@functools.cache
def _set_bits(count: int) -> int:
    return int.from_bytes(((0x4 << 76) | (0x2 << 62)).to_bytes(16) * count)


class RandomEventIds:
    """Random event ids drawn in blocks, for a recorder's hot path: a third of the cost
    of `new_event_id()` each. Each recorder holds its own."""

    def __init__(self, block: int = 1024) -> None:
        self._block = block
        self._ready: list[str] = []

    def __call__(self) -> str:
        if not self._ready:
            self._ready = random_uuid4s(self._block)
        return self._ready.pop()
