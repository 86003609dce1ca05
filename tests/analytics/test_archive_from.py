"""`agentlog archive run --from earliest|latest|TIME`: a NEW archive starts where it is
told (the rules of `project run --from`), keeps that start beside its files, and
`archive status` and the exports say that such an archive is partial."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers.cli import Run, agentlog

from agentlog.analytics.archive_files import archive_files, topic_root
from agentlog.analytics.archive_start import START_FILE, read_start
from agentlog.errors import ArchiveError
from agentlog.producers import Recorder
from agentlog.reader import read_partitions
from agentlog.settings import Settings


def _record(settings: Settings, conversations: list[str]) -> None:
    with Recorder(settings) as recorder:
        for conversation in conversations:
            recorder.start_conversation(conversation)
            recorder.user_message(conversation, "hello")
            recorder.agent_message(conversation, "support", "hi")
            recorder.end_conversation(conversation, outcome="resolved")


def _cli(settings: Settings, tmp_path: Path, *args: str) -> Run:
    base = ("--bootstrap", str(settings.bootstrap_servers), "--topic-prefix", settings.topic_prefix)
    return agentlog(*base, *args, state_dir=tmp_path)


def _archived(archive: Path, settings: Settings) -> set[str]:
    files = archive_files(topic_root(archive, settings.events_topic))
    return {
        cid
        for f in files
        for cid in pq.read_table(f.path, columns=["conversation_id"]).column(0).to_pylist()
    }


def test_a_new_archive_from_latest_keeps_only_what_follows_and_says_it_is_partial(
    settings: Settings, tmp_path: Path
) -> None:
    _record(settings, ["conv-before-1", "conv-before-2", "conv-before-3"])
    archive = tmp_path / "late-archive"
    first = _cli(
        settings, tmp_path, "archive", "run", "--once", "--dir", str(archive), "--from", "latest"
    )
    assert first.code == 0, first.err
    assert "starting at the end of the log" in first.err
    assert "is PARTIAL" in first.err
    assert (topic_root(archive, settings.events_topic) / START_FILE).is_file()
    _record(settings, ["conv-after"])
    # An archive with a start resumes from it: --from is for a new archive only, and a
    # partition that had nothing archived yet is not read from its beginning.
    again = _cli(
        settings, tmp_path, "archive", "run", "--once", "--dir", str(archive), "--from", "earliest"
    )
    assert again.code == 0, again.err
    assert "--from earliest applies only to a new archive" in again.err
    assert _archived(archive, settings) == {"conv-after"}

    status = _cli(settings, tmp_path, "archive", "status", "--dir", str(archive))
    assert status.code == 0, status.err
    assert "not archived yet: 0 records" in status.out
    assert "PARTIAL: this archive starts after the beginning of the log (--from latest)" in (
        status.out
    )
    assert "offsets before it never archived" in status.out

    # The exports bring the archive up to date without going back to the beginning, and
    # say that what they hold starts late.
    _record(settings, ["conv-later"])
    bundle = tmp_path / "bundle"
    exported = _cli(
        settings, tmp_path, "export", "compliance", "--dir", str(archive),
        "--conversation", "conv-later", "--out", str(bundle),
    )  # fmt: skip
    assert exported.code == 0, exported.err
    assert "PARTIAL: this archive starts after the beginning" in exported.err
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["archive_start"]["from"] == "latest"
    assert manifest["archive_start"]["offsets"]
    assert _archived(archive, settings) == {"conv-after", "conv-later"}
    training = _cli(
        settings, tmp_path, "export", "training", "--dir", str(archive), "--no-update",
        "--out", str(tmp_path / "train.jsonl"),
    )  # fmt: skip
    assert "this export holds nothing from before that start" in training.err


def test_a_new_archive_from_a_time_starts_at_the_first_event_at_or_after_it(
    settings: Settings, tmp_path: Path
) -> None:
    _record(settings, ["conv-old"])
    newest_ms = max(r.timestamp()[1] for r in read_partitions(settings, settings.events_topic))
    since = datetime.fromtimestamp((newest_ms + 1) / 1000, UTC).isoformat()
    _record(settings, ["conv-new"])
    archive = tmp_path / "since-archive"
    run = _cli(
        settings, tmp_path, "archive", "run", "--once", "--dir", str(archive), "--from", since
    )
    assert run.code == 0, run.err
    assert "starting at the first event at or after" in run.err
    assert _archived(archive, settings) == {"conv-new"}
    start = read_start(topic_root(archive, settings.events_topic))
    assert start is not None and start.late


def test_an_archive_from_the_beginning_is_whole_and_keeps_no_start(
    settings: Settings, tmp_path: Path
) -> None:
    _record(settings, ["conv-a", "conv-b"])
    archive = tmp_path / "whole-archive"
    run = _cli(settings, tmp_path, "archive", "run", "--once", "--dir", str(archive))
    assert run.code == 0, run.err
    assert "starting at the beginning of the log" in run.err
    assert "PARTIAL" not in run.err
    assert _archived(archive, settings) == {"conv-a", "conv-b"}
    assert not (topic_root(archive, settings.events_topic) / START_FILE).exists()
    status = _cli(settings, tmp_path, "archive", "status", "--dir", str(archive))
    assert status.code == 0, status.err
    assert "PARTIAL" not in status.out


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b'{"from": "latest"}', b'{"from": "latest", "offsets": {"0": -1}}',
     b'{"from": "latest", "offsets": {"x": 1}}', b'{"from": 1, "offsets": {}}',
     b"[" * 100_000],
)  # fmt: skip
def test_a_start_file_that_is_not_one_is_one_clear_error(tmp_path: Path, body: bytes) -> None:
    (tmp_path / START_FILE).write_bytes(body)
    with pytest.raises(ArchiveError, match="is not an archive start"):
        read_start(tmp_path)
