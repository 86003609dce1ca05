"""The claim-check store: events too large for a Kafka record are kept here whole.

The recorder writes the encoded event (the very bytes it would have put on Kafka) to
a content-addressed file and puts a small `agentlog.ClaimCheck` event on the topic in
its place, carrying the blob's reference (a `file:` URI), size and SHA-256. Readers
(`agentlog.serde.decode`) fetch the blob by that reference, check size and hash, and
decode it in place of the reference, so every consumer sees the full event.

Blobs are named by their SHA-256 (`<root>/sha256/<2 hex>/<64 hex>`), written to a
temporary file, fsynced and renamed into place: a reference is only ever published for
a complete, durable blob, and the same content is stored once. Blobs are never deleted
by agentlog: the events topic keeps events forever and the blob is part of its event.
A directory shared by several machines must be mounted at the same path on each.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from agentlog.errors import ConfigurationError


class BlobUnavailable(Exception):
    """A referenced blob is missing, unreadable or not the content its reference names
    (serde turns this into a DecodeError naming the reference)."""


@dataclass(frozen=True)
class BlobRef:
    reference: str
    size: int
    sha256: str


class BlobStore:
    """A directory of content-addressed blobs."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().absolute()

    def path_for(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256

    def put(self, data: bytes) -> BlobRef:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path_for(digest)
        if not (target.is_file() and target.stat().st_size == len(data)):
            self._write(target, data)
        return BlobRef(target.as_uri(), len(data), digest)

    def _write(self, target: Path, data: bytes) -> None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temporary, target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise ConfigurationError(
                f"cannot write to the claim-check store {self.root}: {exc.strerror or exc}; "
                "set AGENTLOG_CLAIM_CHECK_DIR to a writable directory"
            ) from None


def fetch(reference: str, size: int, sha256: str) -> bytes:
    """The blob a claim check names, verified; raises BlobUnavailable saying why not."""
    location = urlparse(reference)
    if location.scheme != "file":
        raise BlobUnavailable(f"unsupported claim-check reference {reference} (only file:)")
    path = Path(unquote(location.path))
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BlobUnavailable(
            f"claim-check blob {reference} is missing (is the claim-check store mounted "
            "here at the same path?)"
        ) from None
    except OSError as exc:
        raise BlobUnavailable(
            f"claim-check blob {reference} cannot be read: {exc.strerror or exc}"
        ) from None
    if len(data) != size:
        raise BlobUnavailable(
            f"claim-check blob {reference} has {len(data)} bytes, the event says {size}: "
            "it was altered or truncated"
        )
    if hashlib.sha256(data).hexdigest() != sha256:
        raise BlobUnavailable(
            f"claim-check blob {reference} does not match its SHA-256 {sha256}: it was altered"
        )
    return data
