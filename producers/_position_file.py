"""The spool's position file: where shipping stands, rewritten in place in space reserved
when the file was made, so that recording where shipping got to never needs a free byte
on a full disk (the shipper must be able to say what it shipped in order to free space).

The file holds two fixed-size slots, written alternately; each holds a sequence number,
the length and CRC-32 of its JSON text, and the text. A write goes to the slot not holding
the newest state, so a write torn by a machine crash leaves the previous state readable;
the reader takes the intact slot with the highest sequence number.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

SLOT_BYTES = 64 << 10
_MAGIC = b"AGSPPOS1"
_HEAD = struct.Struct("<8sQII")  # magic, sequence, text length, CRC-32 of the text
_TEXT_ROOM = SLOT_BYTES - _HEAD.size


class _StateTooLarge(ValueError):
    """The state does not fit in a slot."""


class PositionFile:
    """A state (JSON-able dict) kept in `path`, whose space is reserved on creation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            self._reserve()
        self._fd = os.open(path, os.O_RDWR)
        self._sequence = 0

    def _reserve(self) -> None:
        """Create the file with both slots written (zeros), atomically under its name:
        written blocks are overwritten in place without allocating."""
        temporary = self.path.with_name(f"{self.path.name}.new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            zeros = bytes(SLOT_BYTES)
            for slot in range(2):
                if os.pwrite(fd, zeros, slot * SLOT_BYTES) != SLOT_BYTES:
                    raise OSError(f"short write to {temporary}")
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            temporary.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(temporary, self.path)

    def load(self) -> dict[str, Any] | None:
        """The newest intact state; None if no state was ever written. Raises ValueError
        when the file holds slots but none is intact."""
        newest: tuple[int, dict[str, Any]] | None = None
        written = False
        for slot in range(2):
            block = os.pread(self._fd, SLOT_BYTES, slot * SLOT_BYTES)
            if len(block) < _HEAD.size or block[: len(_MAGIC)] != _MAGIC:
                written = written or any(block[: _HEAD.size])
                continue
            written = True
            _, sequence, length, crc = _HEAD.unpack_from(block, 0)
            text = block[_HEAD.size : _HEAD.size + length]
            if length > _TEXT_ROOM or len(text) != length or zlib.crc32(text) != crc:
                continue
            try:
                state = json.loads(text)
            except ValueError:
                continue
            if newest is None or sequence > newest[0]:
                newest = (sequence, state)
        if newest is None:
            if written:
                raise ValueError(f"no intact state in {self.path.name}")
            return None
        self._sequence = newest[0]
        return newest[1]

    def save(self, state: dict[str, Any]) -> None:
        """Write `state` over the older slot (no new space needed)."""
        text = json.dumps(state, separators=(",", ":")).encode()
        if len(text) > _TEXT_ROOM:
            raise _StateTooLarge(
                f"the spool's shipping state ({len(text)} bytes) does not fit in {_TEXT_ROOM} bytes"
            )
        sequence = self._sequence + 1
        block = _HEAD.pack(_MAGIC, sequence, len(text), zlib.crc32(text)) + text
        if os.pwrite(self._fd, block, (sequence % 2) * SLOT_BYTES) != len(block):
            raise OSError(f"short write to {self.path}")
        self._sequence = sequence

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
