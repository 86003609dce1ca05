"""The spool outlives a full disk: an event it cannot write is reported, never raised
into the agent; everything it did write ships exactly once when Kafka is back, and it
takes events again as shipping frees space.

The disk fills for real on a tiny tmpfs the test mounts (needs root: CI runs as root;
skipped with the reason elsewhere); a rotation onto a full disk is made with an ENOSPC
injected into the spool's own file calls (`os.open`/`os.write` on segment files only).
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from helpers.kafka_python_reader import read_all
from helpers.tiny_filesystem import fill, tiny_filesystem

from agentlog import devbroker
from agentlog.errors import SpoolError, UndeliveredEvent
from agentlog.producers import Recorder, spool
from agentlog.producers.spool import MAGIC, Position, Spool
from agentlog.serde import decode_event
from agentlog.settings import Settings
from agentlog.topics import create_topics


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ids_on_topic(settings: Settings, expect: int) -> list[str]:
    assert settings.bootstrap_servers is not None
    records = read_all(settings.bootstrap_servers, settings.events_topic, expect=expect)
    return [decode_event(r.value).event_id for r in records]


def test_a_spool_whose_disk_filled_while_kafka_was_away_ships_it_all_when_it_returns(
    dev_broker_engine, tmp_path: Path
) -> None:
    """Kafka away, the spool on a 2 MiB filesystem, 20,000 events: those the disk could
    not take are reported; once Kafka is back every other one ships, exactly once, and
    the freed disk takes new events."""
    port = _free_port()
    failures: list[UndeliveredEvent] = []
    with tiny_filesystem(tmp_path / "disk", "2m") as disk:
        settings = Settings(
            bootstrap_servers=f"127.0.0.1:{port}",
            topic_prefix="full.",
            partitions=3,
            state_dir=tmp_path / "state",
            spool_dir=disk / "spool",
        )
        recorder = Recorder(settings, on_error=failures.append)
        ids = [
            recorder.user_message(f"conv-{n % 9}", f"turn {n} " + "x" * 80) for n in range(20_000)
        ]
        assert failures, "20,000 events cannot fit on 2 MiB"
        assert "No space left on device" in failures[0].error
        refused = {decode_event(f.value).event_id for f in failures}
        spooled = [i for i in ids if i not in refused]
        assert len(spooled) > 5000

        state = dev_broker_engine.settings(tmp_path / "broker")
        devbroker.start(state, port=port)
        try:
            create_topics(settings)
            recorder.flush(timeout=180)  # everything spooled reaches Kafka
            assert sorted(_ids_on_topic(settings, len(spooled))) == sorted(spooled)
            # Shipping freed the disk: new events are taken and shipped again.
            failures.clear()
            later = [recorder.user_message("conv-late", f"after {n}") for n in range(2000)]
            recorder.close(timeout=120)
            assert failures == []
            on_topic = _ids_on_topic(settings, len(spooled) + len(later))
            assert sorted(on_topic) == sorted(spooled + later)  # each once
        finally:
            devbroker.stop(state, wipe=True)


def test_a_new_recorder_on_a_full_disk_raises_a_spool_error(tmp_path: Path) -> None:
    with tiny_filesystem(tmp_path / "disk", "1m") as disk:
        (disk / "spool").mkdir()
        (disk / "spool" / "lock").write_text("12345")  # a recorder used it before
        fill(disk)
        settings = Settings(
            bootstrap_servers=f"127.0.0.1:{_free_port()}",
            state_dir=tmp_path / "state",
            spool_dir=disk / "spool",
        )
        with pytest.raises(SpoolError, match="disk is full"):
            Recorder(settings)


@contextmanager
def _enospc(when: Callable[[str, bytes | None], bool]) -> Iterator[list[str]]:
    """ENOSPC from os.open (creating) and os.write on spool segment files while
    `when(call, data written)` says so; yields the calls refused."""
    real_open, real_write = os.open, os.write
    refused: list[str] = []

    def segment(path: Any) -> bool:
        return str(path).endswith(".spool")

    def opening(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if segment(path) and flags & os.O_CREAT and when("open", None):
            refused.append(f"open {Path(path).name}")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_open(path, flags, *args, **kwargs)

    def writing(fd: int, data: Any) -> int:
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            path = ""
        if segment(path) and when("write", bytes(data)):
            refused.append(f"write {Path(path).name}")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    os.open, os.write = opening, writing  # type: ignore[assignment]
    try:
        yield refused
    finally:
        os.open, os.write = real_open, real_write  # type: ignore[assignment]


def test_a_rotation_onto_a_full_disk_keeps_the_old_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool, "SEGMENT_BYTES", 4096)
    monkeypatch.setattr(spool, "MIN_SEGMENT_BYTES", 4096)
    s = Spool(tmp_path, max_bytes=1 << 30, fsync_interval_ms=1000)
    written, refused_values = [], []
    full = [False]
    # The disk is full while events 60..89 are recorded: new segments cannot be made (the
    # last page of the current one still takes records until it must rotate).
    with _enospc(lambda call, data: full[0] and call == "open") as refused:
        for n in range(200):
            value = f"event {n} ".encode() * 10
            full[0] = 60 <= n < 90
            try:
                s.append(b"k", value, n)
            except SpoolError as exc:
                assert "No space left on device" in str(exc)
                refused_values.append(n)
                continue
            written.append(value)
    assert refused, "no rotation met the full disk"
    assert refused_values and all(60 <= n < 90 for n in refused_values)
    assert len(written) + len(refused_values) == 200  # all the others were taken
    records = s.read(s.committed, max_records=10**6, max_bytes=1 << 40)
    assert [r.value for r in records] == written
    assert s.commit(records[-1].end) >= records[-1].end
    assert s.is_drained() and s.backlog_bytes() == 0
    assert s.close() is None


def test_an_empty_newest_segment_does_not_wait_for_ever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills right as a new segment is started: the segment gets its magic, its
    first record fails. Once the rest is shipped, nothing is left waiting."""
    monkeypatch.setattr(spool, "SEGMENT_BYTES", 4096)
    monkeypatch.setattr(spool, "MIN_SEGMENT_BYTES", 4096)
    s = Spool(tmp_path, max_bytes=1 << 30, fsync_interval_ms=1000)
    n = 0
    while s.end.offset + len(spool.frame(b"k", b"v" * 100, n)) <= s.segment_bytes:
        s.append(b"k", b"v" * 100, n)
        n += 1
    with _enospc(lambda call, data: call == "write" and data != MAGIC) as refused:
        with pytest.raises(SpoolError, match="No space left on device"):
            s.append(b"k", b"v" * 100, n)  # starts segment 1, then cannot write
    assert refused and s.end == Position(1, len(MAGIC))
    records = s.read(s.committed, max_records=10**6, max_bytes=1 << 40)
    assert len(records) == n
    s.commit(records[-1].end)
    assert s.is_drained() and s.backlog_bytes() == 0
    assert s.wait_drained(0.1)
    s.close()


def test_a_1_mib_spool_with_kafka_up_refuses_nothing(settings: Settings) -> None:
    """10,000 events through a 1 MiB spool while Kafka takes them (2 MB in all, recorded
    in rounds of 1,000 that Kafka has taken before the next): what was shipped does not
    count against the spool, so nothing is refused, and it does not stay on disk."""
    failures: list[UndeliveredEvent] = []
    spooled = settings.with_overrides(
        spool_dir=settings.state_dir / "spool", spool_max_bytes=1 << 20
    )
    text = "y" * 150
    ids: list[str] = []
    with Recorder(spooled, on_error=failures.append) as recorder:
        for round_ in range(10):
            ids += [
                recorder.user_message(f"conv-{n % 20}", f"{n} {text}")
                for n in range(round_ * 1000, (round_ + 1) * 1000)
            ]
            recorder.flush(timeout=120)
        on_disk = sum(p.stat().st_size for p in (settings.state_dir / "spool").glob("*.spool"))
    assert failures == []
    assert sorted(_ids_on_topic(settings, 10_000)) == sorted(ids)
    # What is shipped does not stay on disk: at most a segment (a quarter of the spool).
    assert on_disk <= (1 << 20) // 4 + len(MAGIC)


def test_the_position_file_is_rewritten_in_place_and_survives_a_torn_write(
    tmp_path: Path,
) -> None:
    from agentlog.producers._position_file import SLOT_BYTES, PositionFile

    positions = PositionFile(tmp_path / "position.state")
    size = (tmp_path / "position.state").stat().st_size
    for n in range(1000):
        positions.save({"committed": [n, 8], "shipping": None})
    assert (tmp_path / "position.state").stat().st_size == size == 2 * SLOT_BYTES
    positions.close()
    # A machine crash tears the newest slot: the one before it is read.
    with open(tmp_path / "position.state", "r+b") as raw:
        raw.seek((1000 % 2) * SLOT_BYTES + 30)
        raw.write(b"torn")
    assert PositionFile(tmp_path / "position.state").load() == {
        "committed": [998, 8],
        "shipping": None,
    }


def test_a_spool_of_an_older_version_keeps_its_position(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_bytes=1 << 30, fsync_interval_ms=1000)
    for n in range(10):
        s.append(b"k", f"event {n}".encode(), n)
    second = s.read(s.committed, max_records=2, max_bytes=1 << 30)[1].position
    s.close()
    (tmp_path / "position.state").unlink()
    (tmp_path / "position.json").write_text(
        f'{{"committed": [{second.segment}, {second.offset}], "shipping": null}}'
    )
    reopened = Spool(tmp_path, max_bytes=1 << 30, fsync_interval_ms=1000)
    values = [r.value for r in reopened.read(reopened.committed, max_records=99, max_bytes=1 << 30)]
    assert values == [f"event {n}".encode() for n in range(1, 10)]
    assert not (tmp_path / "position.json").exists()
    reopened.close()


def test_emptying_a_shipped_segment_survives_a_restart(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_bytes=1 << 30, fsync_interval_ms=1000)
    for n in range(2000):
        s.append(b"k", b"z" * 100, n)
    records = s.read(s.committed, max_records=10**6, max_bytes=1 << 40)
    moved_on = s.commit(records[-1].end)
    assert moved_on.segment == records[-1].end.segment + 1  # emptied and renamed
    assert sum(p.stat().st_size for p in tmp_path.glob("*.spool")) == len(MAGIC)
    s.append(b"k", b"after", 1)
    s.close()
    reopened = Spool(tmp_path, max_bytes=1 << 30, fsync_interval_ms=1000)
    again = reopened.read(reopened.committed, max_records=10, max_bytes=1 << 30)
    assert [r.value for r in again] == [b"after"]
    reopened.close()


def test_a_recorder_whose_rotation_met_a_full_disk_leaves_cleanly_and_ships_the_rest(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Finding 2 as the agent sees it, with Kafka away: the disk is full while the spool
    must start new segments (ENOSPC injected into creating them). The `with Recorder()`
    block ends without an error (the events the disk refused reported to on_error, never
    an OSError), and once Kafka is there a new recorder on the spool ships every other
    event exactly once, and its flush() finds nothing left waiting."""
    monkeypatch.setattr(spool, "SEGMENT_BYTES", 4096)
    monkeypatch.setattr(spool, "MIN_SEGMENT_BYTES", 4096)
    away = settings.with_overrides(
        bootstrap_servers=f"127.0.0.1:{_free_port()}",
        spool_dir=settings.state_dir / "spool",
    )
    failures: list[UndeliveredEvent] = []
    full = [False]
    ids = []
    with _enospc(lambda call, data: full[0] and call == "open") as refused:
        with Recorder(away, on_error=failures.append) as recorder:
            for n in range(300):
                full[0] = 100 <= n < 200
                ids.append(recorder.user_message(f"conv-{n % 7}", f"turn {n} " + "x" * 100))
    assert refused, "no rotation met the full disk"
    assert failures and all("No space left on device" in f.error for f in failures)
    assert "OSError" not in capfd.readouterr().err
    lost = {decode_event(f.value).event_id for f in failures}
    kept = [i for i in ids if i not in lost]
    assert len(kept) >= 200

    back = settings.with_overrides(spool_dir=settings.state_dir / "spool")
    with Recorder(back) as again:
        again.flush(timeout=120)  # nothing left waiting: no BrokerUnavailable
    assert sorted(_ids_on_topic(settings, len(kept))) == sorted(kept)  # each once
