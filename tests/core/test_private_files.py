"""What agentlog writes is the user's alone: folders 0700 and files 0600 whatever the
umask (projections, snapshots, the archive, exports, the dev broker's state), a state
folder left open by an earlier version is closed, and no temporary file has a name an
attacker could plant a link at."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cli import agentlog
from helpers.files import mode, open_to_others
from helpers.offline_archive import archive_offline
from helpers.offline_log import TOPIC, simulated_log
from helpers.support_log import support_log

from agentlog.analytics.compliance import ComplianceRequest
from agentlog.analytics.training import TrainingOptions, export_training
from agentlog.consumers.sinks.duckdb_sink import DuckDBSink
from agentlog.dev_state import DevBrokerRecord, write_record
from agentlog.private_files import private_dir, replaced_whole, tighten_state_dir
from agentlog.runtime import export_compliance
from agentlog.settings import Settings


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask: modes must not come from it."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_folders_and_replaced_files_are_private_whatever_the_umask(
    tmp_path: Path, open_umask: None
) -> None:
    made = private_dir(tmp_path / "a" / "b")
    assert mode(tmp_path / "a") == mode(made) == 0o700
    with replaced_whole(made / "f") as out:
        out.write(b"x")
    assert mode(made / "f") == 0o600 and (made / "f").read_bytes() == b"x"
    # A folder the user made is left as it is unless agentlog owns it (tighten).
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    private_dir(theirs)
    assert mode(theirs) == 0o755
    private_dir(theirs, tighten=True)
    assert mode(theirs) == 0o700


def test_a_failed_write_leaves_the_target_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "kept"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), replaced_whole(target) as out:
        out.write(b"half")
        raise RuntimeError("cut short")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]


def test_training_export_does_not_follow_a_link_planted_at_a_temporary_name(
    tmp_path: Path, open_umask: None
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out_dir = tmp_path / "exports" / "training"
    out_dir.mkdir(parents=True)
    # The names the export used to write through (the provenance one had no pid in it).
    for name in (".out.provenance.jsonl.partial", f".out.jsonl.{os.getpid()}.partial"):
        (out_dir / name).symlink_to(victim)
    archive = tmp_path / "archive"
    archive_offline(support_log(), archive)
    report = export_training(archive, TOPIC, TrainingOptions(out=out_dir / "out.jsonl"))
    assert report.examples["all"] == 2
    assert victim.read_text() == "precious"
    assert mode(out_dir / "out.jsonl") == mode(out_dir / "out.provenance.jsonl") == 0o600
    # The archive the export read was written private too.
    assert open_to_others(archive) == []
    # A Parquet export is private too (the export makes no folder: --out's must exist);
    # leftovers are only the links.
    (tmp_path / "new").mkdir()
    (tmp_path / "new").chmod(0o700)
    fresh = export_training(archive, TOPIC, TrainingOptions(out=tmp_path / "new" / "o.parquet"))
    assert fresh.examples["all"] == 2
    assert open_to_others(tmp_path / "new") == []
    assert sorted(p.name for p in out_dir.iterdir() if not p.is_symlink()) == [
        "out.jsonl",
        "out.provenance.jsonl",
    ]


@pytest.mark.parametrize("name", ["bundle", "bundle.zip"])
def test_compliance_bundles_are_private(tmp_path: Path, open_umask: None, name: str) -> None:
    archive = tmp_path / "archive"
    archive_offline(support_log(), archive)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "exports" / name
    out.parent.mkdir()
    (out.parent / f".{name}.partial").symlink_to(victim)  # the zip's old temporary name
    export_compliance(
        archive,
        TOPIC,
        ComplianceRequest(conversations=("conv-parallel",)),
        out,
    )
    assert victim.read_text() == "precious"
    if out.is_dir():
        assert open_to_others(out) == []
        assert (out / "transcripts" / "conv-parallel.txt").exists()
    else:
        assert mode(out) == 0o600


def test_the_duckdb_sink_and_its_snapshot_are_private(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "projections.duckdb"
    sink = DuckDBSink(path)
    try:
        sink._snapshots._publish()  # type: ignore[union-attr]
    finally:
        sink.close()
    assert mode(path) == 0o600
    assert mode(path.with_suffix(".duckdb.snapshot")) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def test_dev_state_is_private_and_written_without_following_a_link(
    tmp_path: Path, open_umask: None
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (state / "dev-broker.tmp").symlink_to(victim)  # the name it used to write through
    settings = Settings(state_dir=state)
    write_record(settings, DevBrokerRecord(engine="tansu", pid=1, port=9092, log_file="x"))
    assert victim.read_text() == "precious"
    assert mode(state) == 0o700  # tightened when agentlog opened it
    assert mode(settings.dev_state_file) == 0o600


def test_a_command_closes_a_state_folder_an_earlier_version_left_open(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "archive").mkdir(parents=True, mode=0o755)
    os.chmod(state, 0o755)
    (state / "projections.duckdb").write_bytes(b"")
    os.chmod(state / "projections.duckdb", 0o644)
    run = agentlog("dev", "status", state_dir=state)
    assert "no dev broker is running" in run.err
    assert mode(state) == mode(state / "archive") == 0o700
    assert mode(state / "projections.duckdb") == 0o600


def test_a_state_folder_pointed_at_a_shared_one_leaves_it_and_its_other_files_alone(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp
    (shared / "notes").mkdir(mode=0o755)
    (shared / "archive").mkdir(mode=0o755)
    tighten_state_dir(shared)
    assert mode(shared) == 0o1777
    assert mode(shared / "notes") == mode(shared / "archive") == 0o755
    own = tmp_path / "own"
    (own / "notes").mkdir(parents=True, mode=0o755)
    (own / "archive").mkdir(mode=0o755)
    tighten_state_dir(own)
    assert mode(own) == mode(own / "archive") == 0o700  # agentlog's own
    assert mode(own / "notes") == 0o755
    home = Path.home()
    before = mode(home)
    tighten_state_dir(home)
    assert mode(home) == before


def test_replay_out_writes_a_private_file_and_still_writes_to_a_device(tmp_path: Path) -> None:
    log = simulated_log(2)
    archive_offline(log, tmp_path / "archive")
    conversation_id = log.records[0].key.decode()
    base = ("--topic-prefix", "offline.", "replay", conversation_id, "--source", "archive")
    base += ("--archive-dir", str(tmp_path / "archive"), "--format", "jsonl")
    out = tmp_path / "replay.jsonl"
    run = agentlog(*base, "--out", str(out), state_dir=tmp_path / "state")
    assert run.code == 0, run.err
    assert mode(out) == 0o600 and conversation_id in out.read_text()
    # /dev/stdout is a device (or a pipe), not replaced by a file
    piped = agentlog(*base, "--out", "/dev/stdout", state_dir=tmp_path / "state")
    assert piped.code == 0, piped.err
    assert conversation_id in piped.out
    assert Path("/dev/stdout").is_symlink()  # not replaced by a regular file
