"""The decoders that read untrusted bytes, as fuzz targets: each takes one input (bytes)
and either returns or raises the error class its decoder documents. Anything else
escaping a target (a crash), an input that takes too long (a hang) or allocates without
bound is a finding. Used by tests/project/test_fuzz.py (a short Hypothesis run in every test
run, over the corpus in tests/fuzz_corpus/) and by tests/fuzz.py (minutes per target,
coverage-guided with atheris when it is installed).

Structured inputs (a claim check's fields, a dead letter's headers) are cut from the
bytes by `Cursor`, the same way for every engine, so a corpus file means the same to
Hypothesis and to atheris.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from agentlog.analytics import importer
from agentlog.claim_check import BlobRef, BlobStore
from agentlog.codec import versions as schema_versions
from agentlog.consumers import dead_letters as dl
from agentlog.consumers.dead_letters import _headers as dl_headers
from agentlog.errors import BlobUnavailable, ConfigurationError, DecodeError, ExportError
from agentlog.serde import (
    SINGLE_OBJECT_MAGIC,
    EventEncoder,
    _current_codec,
    claim_check_payload,
    decode,
    encode_event,
)
from agentlog.settings import Settings

CORPUS = Path(__file__).parent.parent / "fuzz_corpus"

# What the codec documents for corrupt bytes (agentlog.codec.Codec).
CODEC_ERRORS = (IndexError, ValueError, UnicodeDecodeError, struct.error)


class Cursor:
    """Takes typed values off the front of the fuzzer's bytes (empty when used up)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def chunk(self) -> bytes:
        """A length-prefixed run (one byte of length, 255 meaning two more bytes)."""
        n = self.byte()
        if n == 255:
            n = self.byte() << 8 | self.byte()
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out

    def number(self) -> int:
        raw = self.data[self.pos : self.pos + 8].ljust(8, b"\0")
        self.pos += 8
        return int(struct.unpack("<q", raw)[0])

    def rest(self) -> bytes:
        out = self.data[self.pos :]
        self.pos = len(self.data)
        return out


# -- the codec --------------------------------------------------------------------------


@cache
def _headers() -> list[bytes]:
    return [SINGLE_OBJECT_MAGIC + v.fingerprint for v in schema_versions()]


def codec(data: bytes) -> None:
    """The compiled codec on raw bytes, then serde.decode on the same body behind each
    schema version's header (the current one takes the codec, older ones fastavro) and
    on the bytes as they are (framing, Confluent ids, claim checks)."""
    try:
        record, end = _current_codec().decode(data, 0)
        assert isinstance(record, dict) and 0 < end <= len(data)
    except CODEC_ERRORS:
        pass
    headers = _headers()
    for value in (data, *(header + data for header in headers)):
        try:
            decode(value, blobs=_store())
        except DecodeError:
            pass


# -- the claim-check reader -------------------------------------------------------------


@dataclass(frozen=True)
class _Store:
    store: BlobStore
    digests: list[str]  # of a good blob, a FIFO, a link out, a directory, a missing one


@cache
def _fixture_store() -> _Store:
    """A store holding what a hostile producer would point at: a good blob, a FIFO, a
    link to a file outside, a directory where a blob should be, nothing."""
    root = Path(tempfile.mkdtemp(prefix="agentlog-fuzz-store-"))
    store = BlobStore(root / "store", max_bytes=1 << 16)
    good = store.put(_good_blob())
    outside = root / "outside"
    outside.write_bytes(b"secret" * 100)
    digests = [good.sha256]
    for kind in ("fifo", "link", "directory", "missing"):
        digest = hashlib.sha256(kind.encode()).hexdigest()
        path = store.path_for(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "link":
            path.symlink_to(outside)
        elif kind == "directory":
            path.mkdir()
        digests.append(digest)
    return _Store(store, digests)


def _store() -> BlobStore:
    return _fixture_store().store


@cache
def _good_blob() -> bytes:
    from helpers.sample_events import sample_events

    return encode_event(sample_events()[9])


def claim_check(data: bytes) -> None:
    """BlobStore.fetch on fields cut from the input (the digest often one the store
    knows, so the fuzzer reaches past the checks), then the same claim check through
    serde.decode."""
    fixture = _fixture_store()
    cursor = Cursor(data)
    choice = cursor.byte()
    digest = (
        fixture.digests[choice % len(fixture.digests)]
        if choice < 200
        else cursor.chunk().decode("utf-8", "surrogateescape")
    )
    form = cursor.byte() % 4
    tail = cursor.chunk().decode("utf-8", "surrogateescape")
    reference = [
        f"sha256:{digest}",
        f"file://{fixture.store.path_for(digest)}{tail}",
        tail,
        f"sha256:{digest}{tail}",
    ][form]
    size = cursor.number() if cursor.byte() & 1 else len(_good_blob()) + cursor.byte() - 128
    try:
        blob = fixture.store.fetch(reference, size, digest)
        assert hashlib.sha256(blob).hexdigest() == digest and len(blob) == size
    except BlobUnavailable:
        pass
    record = {
        "event_id": "00000000-0000-4000-8000-000000000009",
        "conversation_id": "conv-sample",
        "occurred_at": 1,
        "source": {"service": "s", "agent": None, "version": None},
        "trace_id": None,
        "span_id": None,
        "causation_id": None,
        "payload": claim_check_payload(
            BlobRef(reference, size, digest), cursor.chunk().decode("utf-8", "replace")
        ),
    }
    try:
        value = EventEncoder().encode(record)
    except Exception:
        return  # a size beyond an Avro long: no producer can write it
    try:
        decode(value, blobs=fixture.store)
    except DecodeError:
        pass


# -- the import parser ------------------------------------------------------------------


_START = datetime(2026, 1, 1, tzinfo=UTC)


@cache
def _import_file() -> Path:
    return Path(tempfile.mkdtemp(prefix="agentlog-fuzz-import-")) / "lines.jsonl"


def importer_lines(data: bytes) -> None:
    """A file of these bytes through the import's first pass (parse every line, build and
    encode every event, check sizes): ExportError or nothing. A line it accepts must
    make events that encode (the second pass relies on it)."""
    path = _import_file()
    path.write_bytes(data)
    try:
        importer._check_file(path, "fuzz", "assistant", _START, _sizes())
    except ExportError:
        pass


@cache
def _sizes() -> importer._Sizes:
    return importer._Sizes(Settings(claim_check=False))


# -- the dead-letter header reader ------------------------------------------------------


_HEADER_NAMES = sorted(
    dl_headers._ADDED
    | {
        dl.CONNECT_TOPIC,
        dl.CONNECT_PARTITION,
        dl.CONNECT_OFFSET,
        dl.CONNECT_EXCEPTION_CLASS,
        dl.CONNECT_EXCEPTION_MESSAGE,
        "traceparent",
    }
)


class _Record:
    """What DeadLetterStates reads of a consumed record (confluent-kafka's Message
    cannot be made outside a consumer)."""

    def __init__(
        self, key: bytes | None, value: bytes | None, headers: list[Any], at: tuple[int, int]
    ) -> None:
        self._key, self._value, self._headers, self._at = key, value, headers, at

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[Any] | None:
        return self._headers or None

    def partition(self) -> int:
        return self._at[0]

    def offset(self) -> int:
        return self._at[1]

    def topic(self) -> str:
        return "agentlog.dlq"


def dead_letters(data: bytes) -> None:
    """A run of dead-letter-topic records (letters, parked records, control records with
    headers cut from the input) folded by DeadLetterStates, then every question asked of
    it: none may raise (find: ConfigurationError for an unknown id)."""
    cursor = Cursor(data)
    states = dl.DeadLetterStates()
    notes = []
    for _record in range(1 + cursor.byte() % 8):
        headers: list[tuple[str, bytes | None]] = []
        for _ in range(cursor.byte() % 12):
            pick = cursor.byte()
            name = (
                _HEADER_NAMES[pick % len(_HEADER_NAMES)]
                if pick < 220
                else cursor.chunk().decode("utf-8", "replace")
            )
            value = None if pick % 17 == 0 else cursor.chunk()
            headers.append((name, value))
        position = (cursor.byte() % 3 - 1, cursor.number())
        record = _Record(cursor.chunk() or None, cursor.chunk() or None, headers, position)
        states.add(record)  # type: ignore[arg-type]  # duck-typed Message
        notes.append(dl.control_note(record))  # type: ignore[arg-type]
    states.visible()
    states.open_by_group()
    states.parked_conversations()
    for letter in list(states.letters.values()):
        assert letter.key is None or isinstance(letter.key, bytes)
        try:
            states.find(letter.id, letter.group)
        except ConfigurationError:
            pass
    assert all(note is None or isinstance(note, str) for note in notes)


# -- all of them ------------------------------------------------------------------------

TARGETS: dict[str, Callable[[bytes], None]] = {
    "codec": codec,
    "claim_check": claim_check,
    "importer": importer_lines,
    "dead_letters": dead_letters,
}


def corpus(target: str) -> list[bytes]:
    folder = CORPUS / target
    return [p.read_bytes() for p in sorted(folder.iterdir())] if folder.is_dir() else []


def inputs(target: str) -> st.SearchStrategy[bytes]:
    """Random bytes, and seeds with bytes flipped, cut, spliced or repeated."""
    seeds = corpus(target)
    if not seeds:
        return st.binary(max_size=4096)

    def mutate(seed: bytes, edits: list[tuple[int, int, int]]) -> bytes:
        data = bytearray(seed)
        for kind, where, byte in edits:
            at = where % (len(data) + 1)
            if kind == 0 and data:
                data[at % len(data)] = byte
            elif kind == 1:
                data.insert(at, byte)
            elif kind == 2:
                del data[at : at + 1 + byte % 8]
            elif kind == 3:
                data[at:at] = data[at : at + 1 + byte] * (1 + byte % 4)
            else:
                data[at:] = b""
        return bytes(data)

    edits = st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 1 << 16), st.integers(0, 255)), max_size=8
    )
    return st.one_of(
        st.binary(max_size=4096),
        st.builds(mutate, st.sampled_from(seeds), edits),
    )
