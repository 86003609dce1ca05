"""A sink knows which log it applied: a topic created again under the same name (a
restarted in-memory dev broker, a wiped Kafka) is refused with one clear error, never
mixed in; records deleted by retention before they were applied are reported."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, TopicPartition
from helpers import Capabilities
from helpers.cli import agentlog
from helpers.workloads import created_again, project_once, record_workload

from agentlog.analytics.archive_files import topic_root
from agentlog.analytics.archiver import Archiver
from agentlog.consumers import open_sink
from agentlog.errors import ArchiveError, NotTheAppliedLog
from agentlog.kafka_config import admin_client
from agentlog.log_identity import Applier, archive, projection
from agentlog.settings import Settings


def state_of(settings: Settings, group: str = "g") -> tuple[dict[int, int], list[tuple]]:
    with open_sink(settings.sink_url) as sink:
        offsets = sink.stored_offsets(group, settings.events_topic)
        rows = sink.query("SELECT * FROM agentlog_conversations ORDER BY conversation_id")
    return offsets, rows


def cli_args(settings: Settings, *args: str) -> list[str]:
    return [
        "--bootstrap",
        settings.bootstrap_servers,
        "--topic-prefix",
        settings.topic_prefix,
        *args,
        "--sink",
        settings.sink_url,
    ]


@pytest.fixture
def projected(settings: Settings, sink_url: str) -> Settings:
    return settings.with_overrides(sink=sink_url)


def test_a_topic_created_again_is_refused_and_the_sink_left_as_it_was(
    projected: Settings,
) -> None:
    written = record_workload(projected, 40)
    assert project_once(projected).applied == written
    before = state_of(projected)
    created_again(projected)
    record_workload(projected, 60, seed=4)  # a longer log: its start would be skipped
    with pytest.raises(NotTheAppliedLog, match="topic id .* was deleted and created again"):
        project_once(projected)
    assert state_of(projected) == before


def test_without_topic_ids_the_event_at_the_last_applied_offset_tells_the_logs_apart(
    projected: Settings,
) -> None:
    written = record_workload(projected, 40)
    assert project_once(projected).applied == written
    before = state_of(projected)
    created_again(projected)
    # As if recorded from a broker that names no topic ids.
    with open_sink(projected.sink_url) as sink:
        with sink.transaction("g", projected.events_topic) as tx:
            tx.cursor.execute("UPDATE agentlog_logs SET topic_id = NULL")
    record_workload(projected, 60, seed=4)
    with pytest.raises(NotTheAppliedLog, match=r"holds event .* but .* applied event"):
        project_once(projected)
    assert state_of(projected) == before


def test_without_topic_ids_a_shorter_log_is_refused_not_waited_on(projected: Settings) -> None:
    written = record_workload(projected, 60)
    assert project_once(projected).applied == written
    created_again(projected)
    with open_sink(projected.sink_url) as sink:
        with sink.transaction("g", projected.events_topic) as tx:
            tx.cursor.execute("UPDATE agentlog_logs SET topic_id = NULL")
    record_workload(projected, 5, seed=4)
    started = time.monotonic()
    with pytest.raises(NotTheAppliedLog, match=r"ends at offset|starts again at"):
        project_once(projected)
    assert time.monotonic() - started < 30


def test_project_status_refuses_another_log_in_seconds(projected: Settings, tmp_path) -> None:
    record_workload(projected, 40)
    project_once(projected)
    status = agentlog(
        *cli_args(projected, "project", "status", "--group", "g"), state_dir=tmp_path, timeout=60
    )
    assert status.code == 0 and "total lag: 0 events" in status.out
    created_again(projected)
    record_workload(projected, 5, seed=4)  # shorter: a fetch past its end waits on Tansu
    started = time.monotonic()
    status = agentlog(
        *cli_args(projected, "project", "status", "--group", "g"), state_dir=tmp_path, timeout=60
    )
    assert time.monotonic() - started < 20
    assert status.code == 1, status.out
    assert status.err.startswith("error: ") and len(status.err.strip().splitlines()) == 1
    assert "was deleted and created again" in status.err and "fresh sink" in status.err


def test_a_restarted_dev_broker_is_refused_a_restarted_kafka_is_continued(
    dev_broker_engine, tmp_path: Path
) -> None:
    """The reproduction of the issue: `dev up; demo; project run; dev down; dev up; demo;
    project run` applied the new log from the old one's offsets. Tansu forgets its log
    on `dev down`; Kafka keeps it unless `dev down --wipe`."""
    state = tmp_path / "state"
    env = dev_broker_engine.env
    sink = f"duckdb:{tmp_path / 'x.duckdb'}"

    def run(*args: str, timeout: float = 240):
        return agentlog(*args, state_dir=state, env=env, timeout=timeout)

    def project():
        return run("project", "run", "--once", "--sink", sink)

    try:
        assert run("dev", "up").code == 0
        assert run("demo", "-n", "60", "--seed", "1").code == 0
        first = project()
        assert first.code == 0 and "applied " in first.out
        if dev_broker_engine.capabilities.keeps_log_across_restart:
            assert run("dev", "down").code == 0
            assert run("dev", "up").code == 0
            assert run("demo", "-n", "20", "--seed", "2").code == 0
            same_log = project()
            assert same_log.code == 0, same_log.err  # the log survived: go on with it
            assert run("dev", "down", "--wipe").code == 0
        else:
            assert run("dev", "down").code == 0
        assert run("dev", "up").code == 0
        assert run("demo", "-n", "90", "--seed", "2").code == 0
        started = time.monotonic()
        refused = project()
        assert refused.code == 1, refused.out
        assert time.monotonic() - started < 60
        assert "was deleted and created again" in refused.err and "fresh sink" in refused.err
        assert len(refused.err.strip().splitlines()) == 1, refused.err
        assert "error:" in refused.err
    finally:
        run("dev", "down", "--wipe", timeout=60)


def test_records_deleted_by_retention_before_they_were_applied_are_reported(
    projected: Settings, capabilities: Capabilities, tmp_path
) -> None:
    if not capabilities.enforces_retention:
        pytest.skip("Tansu stores retention settings but never deletes records")
    record_workload(projected, 30)
    first = agentlog(*cli_args(projected, "project", "run", "--once"), state_dir=tmp_path)
    assert first.code == 0, first.err
    with open_sink(projected.sink_url) as sink:
        applied = sink.stored_offsets("agentlog-projector", projected.events_topic)
    record_workload(projected, 30, seed=4)
    # Delete 7 records of partition 1 that were never applied, as retention would.
    admin = admin_client(projected)
    cut = TopicPartition(projected.events_topic, 1, applied[1] + 7)
    try:
        admin.delete_records([cut], request_timeout=30)[cut].result()
    except KafkaException as exc:
        pytest.fail(f"delete_records: {exc}")
    second = agentlog(*cli_args(projected, "project", "run", "--once"), state_dir=tmp_path)
    assert second.code == 0, second.err
    warning = (
        f"{projected.events_topic}[1]: offsets {applied[1]} to {applied[1] + 6} (7 records) "
        "were deleted by retention before group agentlog-projector applied them"
    )
    assert warning in second.err
    assert "7 deleted by retention before they were applied" in second.out


def test_the_projector_and_the_archiver_word_another_log_alike(
    settings: Settings, tmp_path: Path
) -> None:
    """One verdict, one wording: a projection and an archive of the same log, met with a
    shorter log under its name, are refused with the same line but for who applied it
    (its name, what it did, its advice)."""
    projected = settings.with_overrides(sink=f"duckdb:{tmp_path / 'p.duckdb'}")
    archive_dir = tmp_path / "archive"
    record_workload(projected, 40)
    project_once(projected)
    Archiver(projected, archive=archive_dir).run(once=True)
    created_again(projected)
    with open_sink(projected.sink_url) as sink:  # as if from a broker without topic ids
        with sink.transaction("g", projected.events_topic) as tx:
            tx.cursor.execute("UPDATE agentlog_logs SET topic_id = NULL")
        sink_words = projection(sink.description)
    record_workload(projected, 5, seed=4)
    with pytest.raises(NotTheAppliedLog) as by_projector:
        project_once(projected)
    with pytest.raises(ArchiveError) as by_archiver:
        Archiver(projected, archive=archive_dir).run(once=True)
    archive_words = archive(topic_root(archive_dir, projected.events_topic))

    def without(applier: Applier, message: str) -> str:
        for words in (applier.name, applier.advice, applier.applied, applier.built):
            assert words in message, (words, message)
            message = message.replace(words, "…")
        return message

    projector_said, archiver_said = str(by_projector.value), str(by_archiver.value)
    assert re.search(r"partition \d+ (ends at|starts again at) offset", projector_said)
    assert without(sink_words, projector_said) == without(archive_words, archiver_said)
