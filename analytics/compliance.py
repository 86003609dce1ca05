"""Compliance bundles: everything the archive holds about some conversations, a user or
a time range, in a form an auditor can check offline.

    BUNDLE/manifest.json            what was asked, when, by whom; counts; which
                                    conversations are re-runs, of what; offset ranges
                                    per partition; SHA-256 and size of every other file
    BUNDLE/events.jsonl             the events, one per line, in log order
    BUNDLE/events.parquet           the same rows in the archive's columns
    BUNDLE/transcripts/ID.*         each conversation's transcript and HTML timeline
                                    (`agentlog.runtime.export_compliance` adds replay's:
                                    analytics and replay do not import each other)

Re-runs (`agentlog replay rerun`) are kept in every bundle, whether asked for by
conversation, user or time: a re-run holds the user's messages, so a bundle without it
would miss some of what the archive holds about them. The manifest names them.

A bundle is a directory, or the same files in a zip. `verify_bundle` recomputes every
checksum and finds any file changed, missing or added.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow.parquet as pq

from agentlog.analytics.archive_files import topic_root
from agentlog.analytics.archive_reader import archived_event
from agentlog.analytics.archive_start import read_start
from agentlog.analytics.views import open_views, rerun_originals
from agentlog.consumers.projection import RecordedEvent
from agentlog.errors import ExportError
from agentlog.private_files import private_dir, private_tree, temporary_beside
from agentlog.serde import datetime_of

MANIFEST = "manifest.json"
NOTHING_SELECTED = (
    "say what to export: --conversation ID, --user ID, or a time range (--since/--until)"
)


@dataclass(frozen=True)
class ComplianceRequest:
    conversations: tuple[str, ...] = ()
    user: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    requested_by: str | None = None

    @property
    def selects(self) -> bool:
        """Whether it names anything to export (nothing named: refused)."""
        return bool(self.conversations or self.user or self.since or self.until)

    def in_words(self) -> str:
        """What was asked for, for messages: "conversation c1, since 2026-11-02T00:00:00Z"."""
        parts = []
        if self.conversations:
            noun = "conversation" if len(self.conversations) == 1 else "conversations"
            parts.append(f"{noun} {', '.join(self.conversations)}")
        if self.user:
            parts.append(f"user {self.user}")
        if self.since:
            parts.append(f"since {_iso(self.since)}")
        if self.until:
            parts.append(f"until {_iso(self.until)}")
        return ", ".join(parts)

    def describe(self) -> dict[str, Any]:
        return {
            "conversations": list(self.conversations),
            "user": self.user,
            "since": _iso(self.since),
            "until": _iso(self.until),
            "requested_by": self.requested_by,
        }


@dataclass
class BundleReport:
    path: Path
    events: int
    conversations: list[str]
    files: int  # listed in the manifest (the manifest itself not counted, as verify counts)
    manifest: dict[str, Any] = field(default_factory=dict)
    # Conversations whose transcripts could not be rendered, and why (their events are in
    # the bundle all the same).
    untranscribed: dict[str, str] = field(default_factory=dict)


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _selection(request: ComplianceRequest) -> tuple[str, list[Any]]:
    """The WHERE clause over `events` and its parameters."""
    if not request.selects:
        raise ExportError(NOTHING_SELECTED)
    clauses: list[str] = []
    params: list[Any] = []
    if request.conversations:
        clauses.append(f"conversation_id IN ({', '.join('?' for _ in request.conversations)})")
        params += list(request.conversations)
    if request.user:
        clauses.append("conversation_id IN (SELECT conversation_id FROM events WHERE user_id = ?)")
        params.append(request.user)
    for bound, op in ((request.since, ">="), (request.until, "<")):
        if bound is not None:
            clauses.append(f"occurred_at {op} ?::TIMESTAMPTZ")
            params.append(_iso(bound))
    return " AND ".join(clauses), params


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:120] or "_"


def _event_line(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "topic": row["topic"],
        "partition": row["partition"],
        "offset": row["offset"],
        "event_id": row["event_id"],
        "conversation_id": row["conversation_id"],
        "occurred_at": datetime_of(row["occurred_micros"]).isoformat().replace("+00:00", "Z"),
        "event_type": row["event_type"],
        "source": {
            "service": row["source_service"],
            "agent": row["source_agent"],
            "version": row["source_version"],
        },
        "trace_id": row["trace_id"],
        "span_id": row["span_id"],
        "causation_id": row["causation_id"],
        "payload": orjson.loads(row["payload_json"]),
    }


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ComplianceBundle:
    """A bundle being written: `with ComplianceBundle(archive, topic, request, out) as
    bundle:` selects the events and writes `events.jsonl` and `events.parquet` into a
    private scratch folder; `conversations` holds each conversation's events for the
    caller to add its transcripts (`add_transcript`), or name it `untranscribed`; leaving
    the block writes the manifest and puts the bundle at `out` (`report` says what it
    holds). An exception inside the block leaves nothing at `out`.

    `agentlog.runtime.export_compliance` fills it with replay's transcripts: analytics
    and replay do not import each other."""

    def __init__(
        self,
        archive: Path,
        topic: str,
        request: ComplianceRequest,
        out: Path,
        *,
        command: str | None = None,
    ) -> None:
        self._archive, self._topic, self._request, self._out = archive, topic, request, out
        self._command = command
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._rows: list[dict[str, Any]] = []
        self._untranscribed: dict[str, str] = {}
        self.conversations: dict[str, list[RecordedEvent]] = {}
        self.report: BundleReport | None = None

    @property
    def events(self) -> int:
        """How many events the bundle holds."""
        return len(self._rows)

    @property
    def _folder(self) -> Path:
        assert self._scratch is not None, "use the bundle in a with block"
        return Path(self._scratch.name) / "bundle"

    def __enter__(self) -> ComplianceBundle:
        out = self._out
        if out.exists() and (out.is_file() or any(out.iterdir())):
            raise ExportError(f"{out} exists already: a bundle is never written over another")
        where, params = _selection(self._request)
        with open_views(self._archive, self._topic, None) as views:
            query = f"""SELECT *, epoch_us(occurred_at) AS occurred_micros FROM events
                        WHERE {where} ORDER BY conversation_id, "partition", "offset" """
            table = views.connection.sql(query, params=params).to_arrow_table()
            self._reruns = rerun_originals(views)
        if table.num_rows == 0:
            raise ExportError(
                f"the archive {self._archive} holds no events for {self._request.in_words()}"
            )
        self._rows = table.to_pylist()
        self._scratch = tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None)
        try:
            folder = self._folder
            (folder / "transcripts").mkdir(parents=True)
            with open(folder / "events.jsonl", "wb") as lines:
                for row in sorted(self._rows, key=lambda r: (r["partition"], r["offset"])):
                    lines.write(orjson.dumps(_event_line(row)) + b"\n")
            pq.write_table(table.drop_columns(["occurred_micros"]), folder / "events.parquet")
            for row in self._rows:
                self.conversations.setdefault(row["conversation_id"], []).append(
                    archived_event(row)
                )
        except BaseException:
            self._scratch.cleanup()
            raise
        return self

    def add_transcript(self, conversation_id: str, suffix: str, text: str) -> None:
        """A document of the conversation (`txt`, `html`...), as
        `transcripts/ID.SUFFIX`."""
        name = _safe(conversation_id)
        (self._folder / "transcripts" / f"{name}.{_safe(suffix)}").write_text(text)

    def untranscribed(self, conversation_id: str, reason: str) -> None:
        """No transcript of this conversation could be made: the manifest names it and
        why; its events are in the bundle all the same."""
        self._untranscribed[conversation_id] = reason[:500]

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        assert self._scratch is not None
        try:
            if exc_type is None:
                self.report = self._finish()
        finally:
            self._scratch.cleanup()

    def _finish(self) -> BundleReport:
        folder, out = self._folder, self._out
        conversations = list(self.conversations)
        reran = {cid: self._reruns[cid] for cid in conversations if cid in self._reruns}
        manifest = _manifest(folder, self._request, self._rows, conversations, reran, self._command)
        if self._untranscribed:
            manifest["untranscribed"] = self._untranscribed
        started = read_start(topic_root(self._archive, self._topic))
        if started is not None and started.late:
            # A partial archive (`archive run --from`): the bundle says what it cannot hold.
            manifest["archive_start"] = {
                "from": started.asked,
                "offsets": {str(p): o for p, o in started.late.items()},
                "note": started.partial_note(),
            }
        (folder / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        private_tree(folder)
        private_dir(out.parent)
        if out.suffix == ".zip":
            _zip(folder, out)
        else:
            if out.exists():
                out.rmdir()
            shutil.move(str(folder), out)
        return BundleReport(
            out,
            len(self._rows),
            conversations,
            len(manifest["files"]),
            manifest,
            dict(self._untranscribed),
        )


def _open_plain(path: Path) -> IO[bytes]:
    """A bundle's file, opened without following a link or waiting on a FIFO (it was a
    plain file when listed; it may have been swapped since)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    descriptor = os.open(path, flags)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise OSError(f"{path.name} is not a plain file")
    return os.fdopen(descriptor, "rb")


def _manifest(
    folder: Path,
    request: ComplianceRequest,
    rows: list[dict[str, Any]],
    conversations: list[str],
    reruns: dict[str, str],
    command: str | None,
) -> dict[str, Any]:
    offsets: dict[str, dict[str, dict[str, int]]] = {}
    for row in rows:
        spans = offsets.setdefault(row["topic"], {})
        span = spans.setdefault(
            str(row["partition"]), {"first": row["offset"], "last": row["offset"], "events": 0}
        )
        span["first"] = min(span["first"], row["offset"])
        span["last"] = max(span["last"], row["offset"])
        span["events"] += 1
    files = {
        path.relative_to(folder).as_posix(): {
            "sha256": sha256_of(path),
            "bytes": path.stat().st_size,
        }
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    return {
        "request": {**request.describe(), "command": command},
        "created_at": _iso(datetime.now(UTC)),
        "agentlog_version": version("agentlog"),
        "counts": {"events": len(rows), "conversations": len(conversations)},
        "conversations": conversations,
        "reruns": reruns,  # re-run conversation -> the one it re-ran
        "offsets": offsets,
        "files": files,
    }


def _zip(folder: Path, out: Path) -> None:
    partial = temporary_beside(out)
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as bundle:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    bundle.write(path, path.relative_to(folder).as_posix())
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


# A bundle to verify is a file from outside: its manifest is read with a bound and checked
# for shape, and every member is hashed as a stream (a zipped member may inflate to far
# more than the file's size).
MANIFEST_MAX_BYTES = 256 * 1024 * 1024
_HASH_CHUNK = 1 << 20


@dataclass
class Verification:
    checked: int
    problems: list[str]
    manifest: dict[str, Any]


@dataclass(frozen=True)
class _Member:
    """A file of a bundle: how to open it as a binary stream, or why it is no file."""

    open: Callable[[], IO[bytes]] | None
    refused: str | None = None


def verify_bundle(path: Path) -> Verification:
    """Every file listed in the manifest present with its SHA-256, and nothing else."""
    if not path.exists():
        raise ExportError(f"no bundle at {path}")
    if path.is_dir():
        return _verify(_folder_members(path), path)
    try:
        with zipfile.ZipFile(path) as bundle:
            members = {
                name: _Member(functools.partial(bundle.open, name))
                for name in bundle.namelist()
                if not name.endswith("/")
            }
            return _verify(members, path)
    except zipfile.BadZipFile:
        raise ExportError(f"{path} is neither a bundle directory nor a zip file") from None


def _folder_members(root: Path) -> dict[str, _Member]:
    """The files under `root`; a link or anything else that is no plain file is named as
    such (never followed: it could lead anywhere)."""
    members = {}
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            members[name] = _Member(None, "a link, not a file of the bundle")
        elif stat.S_ISREG(mode):
            members[name] = _Member(functools.partial(_open_plain, path))
        elif not stat.S_ISDIR(mode):
            members[name] = _Member(None, "not a plain file")
    return members


def _read_manifest(
    members: dict[str, _Member], where: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the manifest, its files: name -> {"sha256", "bytes"}), checked for shape."""
    member = members.get(MANIFEST)
    if member is None or member.open is None:
        raise ExportError(f"{where} has no {MANIFEST}: not an agentlog compliance bundle")
    try:
        with member.open() as source:
            text = source.read(MANIFEST_MAX_BYTES + 1)
    except (OSError, EOFError, RuntimeError, NotImplementedError, zlib.error, zipfile.BadZipFile):
        raise ExportError(f"{where}/{MANIFEST} cannot be read: not a bundle manifest") from None
    if len(text) > MANIFEST_MAX_BYTES:
        raise ExportError(f"{where}/{MANIFEST} is over {MANIFEST_MAX_BYTES} bytes: refused unread")
    try:
        manifest = orjson.loads(text)
    except orjson.JSONDecodeError:
        manifest = None
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if not (
        isinstance(manifest, dict)
        and isinstance(listed, dict)
        and all(
            isinstance(entry, dict)
            and isinstance(entry.get("sha256"), str)
            and type(entry.get("bytes")) is int
            for entry in listed.values()
        )
        and isinstance(manifest.get("request", {}), dict)
        and isinstance(manifest.get("counts", {}), dict)
    ):
        raise ExportError(f"{where}/{MANIFEST} is not a bundle manifest")
    return manifest, listed


def _digest(member: _Member) -> tuple[str, int] | str:
    """SHA-256 and size of a member, read a chunk at a time; or why it cannot be read
    (a zipped member that is corrupt, encrypted or of an unknown compression)."""
    assert member.open is not None
    digest, size = hashlib.sha256(), 0
    try:
        with member.open() as source:
            while chunk := source.read(_HASH_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except zipfile.BadZipFile as exc:  # a zipped member whose CRC does not match
        return f"changed ({exc})"
    except (OSError, EOFError, RuntimeError, NotImplementedError, zlib.error) as exc:
        return f"cannot be read ({exc})"
    return digest.hexdigest(), size


def _verify(members: dict[str, _Member], where: Path) -> Verification:
    manifest, listed = _read_manifest(members, where)
    problems = []
    for name, expected in sorted(listed.items()):
        member = members.get(name)
        if member is None:
            problems.append(f"{name}: missing")
            continue
        if member.refused is not None:
            problems.append(f"{name}: {member.refused}")
            continue
        read = _digest(member)
        if isinstance(read, str):
            problems.append(f"{name}: {read}")
            continue
        digest, size = read
        if digest != expected["sha256"]:
            problems.append(f"{name}: changed (SHA-256 differs from the manifest)")
        elif size != expected["bytes"]:
            problems.append(f"{name}: changed (size differs from the manifest)")
    for name in sorted(set(members) - set(listed) - {MANIFEST}):
        refused = members[name].refused
        problems.append(f"{name}: {refused or 'not in the manifest'}")
    return Verification(len(listed), problems, manifest)
