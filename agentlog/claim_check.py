"""The claim-check store: events too large for a Kafka record are kept here whole.

The recorder writes the encoded event (the very bytes it would have put on Kafka) to
a content-addressed file and puts a small `agentlog.ClaimCheck` event on the topic in
its place, carrying the blob's reference (`sha256:<64 hex>`), size and SHA-256. Readers
(`agentlog.serde.decode`) fetch the blob by that reference, check size and hash, and
decode it in place of the reference, so every consumer sees the full event.

Blobs are named by their SHA-256 (`<root>/sha256/<2 hex>/<64 hex>`), written to a
temporary file, fsynced and renamed into place: a reference is only ever published for
a complete, durable blob, and the same content is stored once. Blobs are never deleted
by agentlog: the events topic keeps events forever and the blob is part of its event.

A reference is written by whoever can produce to the topic, so it is not trusted: it
is a content address resolved inside this store, never a path. The blob is opened
without following links or blocking (a FIFO or a device is refused, not read), must be
a regular file of exactly the recorded size, at most `claim_check_max_bytes`, and is
read no further than that before its SHA-256 is checked. A refusal names the reference
and says nothing about any file outside the store. `file:` references written by
earlier versions of agentlog are honoured only where they name `<root>/sha256/<2 hex>/<64 hex>`
of this store (the store mounted at the same path as the writer's).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from agentlog.display import visible
from agentlog.errors import BlobUnavailable, ConfigurationError

# What a reference is now: the content address of the blob in this store.
CONTENT_ADDRESS_PREFIX = "sha256:"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
# A reference is shown in messages (dead-letter headers, the terminal): never all of it.
_SHOWN_REFERENCE_CHARS = 100
_READ_CHUNK = 1 << 20
# No link followed at any step inside the store, nothing that blocks on open (a FIFO),
# no controlling terminal taken.
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
_DIRECTORY_FLAGS = _OPEN_FLAGS | getattr(os, "O_DIRECTORY", 0)


@dataclass(frozen=True)
class BlobRef:
    reference: str
    size: int
    sha256: str


def shown_reference(reference: str) -> str:
    """The reference as messages quote it: printable, and bounded."""
    text = (
        reference
        if len(reference) <= _SHOWN_REFERENCE_CHARS
        else (f"{reference[:_SHOWN_REFERENCE_CHARS]}... ({len(reference)} characters)")
    )
    return visible(text)


class BlobStore:
    """A directory of content-addressed blobs."""

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root).expanduser().absolute()
        self.max_bytes = max_bytes

    def path_for(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256

    def put(self, data: bytes) -> BlobRef:
        if len(data) > self.max_bytes:
            # Readers refuse a blob over the limit: refuse it here, where it is told.
            raise ConfigurationError(
                f"event of {len(data)} bytes exceeds claim_check_max_bytes ({self.max_bytes}), "
                "the largest blob readers accept; raise AGENTLOG_CLAIM_CHECK_MAX_BYTES "
                "(on the readers too) to keep it"
            )
        digest = hashlib.sha256(data).hexdigest()
        target = self.path_for(digest)
        if not (target.is_file() and target.stat().st_size == len(data)):
            self._write(target, data)
        return BlobRef(CONTENT_ADDRESS_PREFIX + digest, len(data), digest)

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

    def fetch(self, reference: str, size: int, sha256: str) -> bytes:
        """The blob a claim check names, verified; raises BlobUnavailable saying why not.

        Only `reference`, `size` and `sha256` as the record carries them come in: each is
        checked before any file is touched, and only the store's own files are."""
        shown = shown_reference(reference)
        digest = self._content_address(reference, sha256, shown)
        if not 0 <= size <= self.max_bytes:
            raise BlobUnavailable(
                f"claim-check blob {shown} is said to have {size} bytes, outside 0.."
                f"{self.max_bytes} (claim_check_max_bytes; raise AGENTLOG_CLAIM_CHECK_MAX_BYTES "
                "if such events are expected)"
            )
        data = self._read(digest, size, shown)
        if hashlib.sha256(data).hexdigest() != digest:
            raise BlobUnavailable(
                f"claim-check blob {shown} does not match its SHA-256 {digest}: it was altered"
            )
        return data

    def _content_address(self, reference: str, sha256: str, shown: str) -> str:
        """The 64 hex digits the reference names, agreeing with the recorded SHA-256."""
        if not isinstance(sha256, str) or not _HEX_SHA256.fullmatch(sha256):
            raise BlobUnavailable(
                f"claim-check blob {shown}: its recorded SHA-256 is not 64 lowercase hex digits"
            )
        if reference.startswith(CONTENT_ADDRESS_PREFIX):
            named = reference[len(CONTENT_ADDRESS_PREFIX) :]
        elif reference.startswith("file:"):
            named = self._legacy_file_reference(reference, sha256, shown)
        else:
            raise BlobUnavailable(
                f"unsupported claim-check reference {shown} (expected "
                f"{CONTENT_ADDRESS_PREFIX}<64 hex digits>)"
            )
        if named != sha256:
            raise BlobUnavailable(
                f"claim-check reference {shown} does not name its recorded SHA-256 {sha256}"
            )
        return named

    def _legacy_file_reference(self, reference: str, sha256: str, shown: str) -> str:
        """A `file:` URI of an earlier agentlog: honoured only as this store's own path for
        the recorded SHA-256 (compared as text: the path itself is never looked at)."""
        try:
            location = urlparse(reference)
        except ValueError:  # found by fuzzing: "file://[" is no URL urllib can split
            location = urlparse("file://invalid/")
        path = unquote(location.path)
        wanted = {
            str(self.path_for(sha256)),
            os.path.join(os.path.realpath(self.root), "sha256", sha256[:2], sha256),
        }
        if (
            location.netloc not in ("", "localhost")
            or location.query
            or location.fragment
            or (path not in wanted)
        ):
            raise BlobUnavailable(
                f"claim-check reference {shown} is not a blob of the claim-check store "
                f"{self.root} (a file: reference must name <store>/sha256/<2 hex>/<64 hex>)"
            )
        return sha256

    def _read(self, digest: str, size: int, shown: str) -> bytes:
        # The root is configured (trusted, may be a link); below it, each step is opened
        # relative to the one before, links refused.
        try:
            directory = os.open(self.root, _DIRECTORY_FLAGS & ~getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            raise BlobUnavailable(
                f"claim-check blob {shown} cannot be read: the claim-check store {self.root} "
                f"cannot be opened ({exc.strerror or exc}; is it mounted here?)"
            ) from None
        try:
            for name in ("sha256", digest[:2]):
                parent, directory = directory, -1
                try:
                    directory = os.open(name, _DIRECTORY_FLAGS, dir_fd=parent)
                finally:
                    os.close(parent)
            blob = os.open(digest, _OPEN_FLAGS, dir_fd=directory)
        except OSError as exc:
            raise BlobUnavailable(_open_failure(exc, shown)) from None
        finally:
            if directory != -1:
                os.close(directory)
        try:
            return _read_regular_file(blob, size, shown)
        except OSError as exc:
            raise BlobUnavailable(
                f"claim-check blob {shown} cannot be read: {exc.strerror or exc}"
            ) from None
        finally:
            os.close(blob)


def _read_regular_file(fd: int, size: int, shown: str) -> bytes:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise BlobUnavailable(f"claim-check blob {shown} is not a regular file: refused")
    if info.st_size != size:
        raise BlobUnavailable(
            f"claim-check blob {shown} has {info.st_size} bytes, the event says {size}: "
            "it was altered or truncated"
        )
    chunks: list[bytes] = []
    left = size + 1  # one byte more than promised tells a file that grew meanwhile
    while left > 0:
        chunk = os.read(fd, min(left, _READ_CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    data = b"".join(chunks)
    if len(data) != size:
        raise BlobUnavailable(
            f"claim-check blob {shown} changed while it was read: it was altered or truncated"
        )
    return data


def _open_failure(exc: OSError, shown: str) -> str:
    if exc.errno == errno.ENOENT:
        return (
            f"claim-check blob {shown} is missing (is the claim-check store mounted here, "
            "the same one the recorder wrote to?)"
        )
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return f"claim-check blob {shown} is a link or not a plain file in the store: refused"
    return f"claim-check blob {shown} cannot be read: {exc.strerror or exc}"
