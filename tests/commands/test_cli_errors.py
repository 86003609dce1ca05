"""Bad input and missing brokers: one clear line on stderr, non-zero exit, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers.cli import Run, agentlog, clean_environment


def test_no_kafka_configured_says_what_to_do(tmp_path) -> None:
    run = agentlog("tail", state_dir=tmp_path)
    assert run.code == 1
    assert "agentlog dev up" in run.err and "AGENTLOG_BOOTSTRAP_SERVERS" in run.err
    assert len(run.err.strip().splitlines()) == 1


def test_a_dead_dev_broker_is_reported_not_waited_on(tmp_path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "dev-broker.json").write_text(
        json.dumps({"pid": dead.pid, "port": 1, "log_file": "x"})
    )
    run = agentlog("topics", "describe", state_dir=tmp_path, timeout=30)
    assert run.code == 1
    assert "no longer running" in run.err and "agentlog dev up" in run.err


# Waits out a client timeout against an address where nothing answers: a broker test.
@pytest.mark.kafka
def test_broker_that_is_down_gives_one_line(tmp_path) -> None:
    run = agentlog("--bootstrap", "127.0.0.1:1", "topics", "create", state_dir=tmp_path)
    assert run.code == 1
    assert run.err.startswith("error: Kafka at 127.0.0.1:1 did not answer")


def test_unknown_flag_and_bad_values_exit_2(tmp_path) -> None:
    assert agentlog("tail", "--nope", state_dir=tmp_path).code == 2
    run = agentlog("tail", "--type", "nonsense", state_dir=tmp_path)
    assert run.code == 2 and "nonsense" in run.err
    assert agentlog("demo", "--conversations", "0", state_dir=tmp_path).code == 2


def test_bad_environment_value_names_the_variable(tmp_path) -> None:
    run = agentlog("tail", state_dir=tmp_path, env={"AGENTLOG_PARTITIONS": "many"})
    assert run.code == 1
    assert "AGENTLOG_PARTITIONS='many'" in run.err


def test_corrupt_records_are_reported_by_tail_and_skipped(tmp_path, settings) -> None:
    from confluent_kafka import Producer

    from agentlog.producers import Recorder

    with Recorder(settings) as recorder:
        recorder.user_message("conv-x", "good before")
    raw = Producer(
        {"bootstrap.servers": settings.bootstrap_servers, "partitioner": "murmur2_random"}
    )
    raw.produce(settings.events_topic, b"\xc3\x01garbage!", b"conv-x")
    raw.flush(10)
    with Recorder(settings) as recorder:
        recorder.user_message("conv-x", "good after")

    run = agentlog(
        "--bootstrap",
        settings.bootstrap_servers,
        "--topic-prefix",
        settings.topic_prefix,
        "tail",
        "--conversation",
        "conv-x",
        state_dir=tmp_path,
    )
    assert run.code == 0
    assert "good before" in run.out and "good after" in run.out
    assert "cannot decode record at " + settings.events_topic in run.err
    assert "1 record could not be decoded" in run.err


def test_unknown_sink_and_unreachable_postgres_are_one_line(tmp_path) -> None:
    run = agentlog("conversations", "list", "--sink", "mysql://x", state_dir=tmp_path)
    assert run.code == 1 and "unknown sink 'mysql://x'" in run.err
    run = agentlog(
        "conversations",
        "list",
        "--sink",
        "postgresql://nobody:secret@127.0.0.1:1/db",
        state_dir=tmp_path,
    )
    assert run.code == 1
    assert "cannot connect to PostgreSQL at postgresql://nobody:***@127.0.0.1:1/db" in run.err
    assert "secret" not in run.err


def test_state_commands_before_any_projection_say_what_to_run(tmp_path) -> None:
    run = agentlog("conversations", "list", state_dir=tmp_path)
    assert run.code == 1
    assert "agentlog project run" in run.err


def test_no_arguments_prints_help_and_succeeds(tmp_path) -> None:
    run = agentlog(state_dir=tmp_path)
    assert run.code == 0
    assert "Usage: agentlog" in run.out and "project" in run.out and "tail" in run.out


# An error no one foresaw, raised by a command registered for this test only.
UNEXPECTED = """
import sys
from agentlog.cli import main
from agentlog.cli._app import cli

@cli.command()
def explode() -> None:
    raise RuntimeError("nobody foresaw this")

main(sys.argv[1:])
"""


def _unexpected_error(*args: str, env: dict[str, str] | None = None) -> Run:
    done = subprocess.run(
        [sys.executable, "-c", UNEXPECTED, *args],
        capture_output=True,
        text=True,
        env=clean_environment(env),
        timeout=60,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def test_an_unexpected_error_is_one_line_without_traceback() -> None:
    run = _unexpected_error("explode")
    assert run.code == 1
    assert run.err == "error: builtins.RuntimeError: nobody foresaw this\n"


def test_traceback_flag_shows_where_an_unexpected_error_came_from() -> None:
    run = _unexpected_error("--traceback", "explode")
    assert run.code == 1
    assert run.err.startswith("Traceback (most recent call last):")
    assert ", in explode\nRuntimeError: nobody foresaw this\n" in run.err
    # The one line still comes last, where a user looks first.
    assert run.err.splitlines()[-1] == "error: builtins.RuntimeError: nobody foresaw this"


def test_debug_setting_shows_the_traceback_too() -> None:
    run = _unexpected_error("explode", env={"AGENTLOG_DEBUG": "1"})
    assert run.code == 1
    assert run.err.startswith("Traceback (most recent call last):")
    assert "in explode" in run.err
    assert _unexpected_error("explode", env={"AGENTLOG_DEBUG": "0"}).err.count("\n") == 1


@pytest.mark.parametrize("bootstrap", ["::::", "localhost", "host:port", "h:99999"])
def test_a_malformed_bootstrap_address_fails_at_once_naming_it(tmp_path, bootstrap) -> None:
    run = agentlog("--bootstrap", bootstrap, "topics", "describe", state_dir=tmp_path, timeout=20)
    assert run.code == 1
    assert run.err.strip().splitlines() == [
        f"error: bootstrap servers {bootstrap!r}: {bootstrap!r} is not HOST:PORT "
        "(for example 127.0.0.1:9092)"
    ]


def test_an_empty_bootstrap_does_not_fall_back_to_the_dev_broker(tmp_path) -> None:
    # A dev broker's record is there; an empty --bootstrap must still not mean "use it".
    (tmp_path / "dev-broker.json").write_text(json.dumps({"pid": 1, "port": 1, "log_file": "x"}))
    for args, env in [(["--bootstrap", ""], {}), ([], {"AGENTLOG_BOOTSTRAP_SERVERS": ""})]:
        run = agentlog(*args, "topics", "describe", state_dir=tmp_path, env=env, timeout=20)
        assert run.code == 1
        lines = run.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: bootstrap servers are empty")
    # The demo, which starts a dev broker when none is configured, does not start one.
    demo = agentlog("--bootstrap", "", "demo", "-n", "1", state_dir=tmp_path, timeout=20)
    assert demo.code == 1 and demo.err.startswith("error: bootstrap servers are empty")
    assert "started the embedded dev broker" not in demo.out


def test_every_error_line_starts_with_the_same_lower_case_prefix(tmp_path) -> None:
    from agentlog.consumers import BUILT_IN, open_sink

    sink = f"duckdb:{tmp_path / 'empty.duckdb'}"
    with open_sink(sink) as opened:  # projections with no rows yet
        opened.prepare([t for p in BUILT_IN.values() for t in p.tables], "g")
    runs = [
        agentlog("conversations", "show", "nobody", "--sink", sink, state_dir=tmp_path),
        agentlog("dev", "status", state_dir=tmp_path),
    ]
    for run in runs:
        assert run.code == 1
        last = run.err.strip().splitlines()[-1]
        assert last.startswith("error: "), run.err
    assert "no conversation 'nobody'" in runs[0].err


def test_a_replay_usage_error_names_the_command_typed(tmp_path) -> None:
    for mistake in (["--format", "xml"], ["--at", "yesterday"]):
        run = agentlog("replay", "conv-1", *mistake, state_dir=tmp_path)
        assert run.code == 2, run.err
        assert "replay show" not in run.err, run.err
        assert "Usage: agentlog replay [OPTIONS] CONVERSATION" in run.err
    typed = agentlog("replay", "show", "conv-1", "--format", "xml", state_dir=tmp_path)
    assert typed.code == 2 and "Usage: agentlog replay show [OPTIONS]" in typed.err


def test_replay_gives_up_on_a_broker_nobody_answers_at_within_the_bound(tmp_path) -> None:
    import time

    started = time.monotonic()
    run = agentlog(
        "--bootstrap", "127.0.0.1:9", "replay", "conv-1",
        state_dir=tmp_path, env={"AGENTLOG_BROKER_LOST_S": "3"},
    )  # fmt: skip
    assert run.code == 1
    assert time.monotonic() - started < 15
    assert run.err.count("\n") == 1 and "127.0.0.1:9" in run.err, run.err


@pytest.mark.parametrize(
    "args",
    [
        ("export", "training", "--no-update", "--out", "{missing}/train.jsonl"),
        ("export", "compliance", "--no-update", "--conversation", "c", "--out", "{missing}/b"),
        ("replay", "c", "--source", "archive", "--out", "{missing}/c.txt"),
    ],
)
def test_an_out_into_a_missing_directory_is_one_line(tmp_path, args) -> None:
    missing = tmp_path / "no-such-dir"
    run = agentlog(*(a.format(missing=missing) for a in args), state_dir=tmp_path)
    assert run.code == 1
    assert run.err.strip().splitlines() == [
        f"error: --out {missing}/{args[-1].rsplit('/', 1)[1]}: the directory {missing} "
        "does not exist (create it first)"
    ]
    assert not missing.exists()  # not created behind the user's back


def test_sql_on_an_archive_directory_that_does_not_exist_is_one_line(tmp_path) -> None:
    missing = tmp_path / "no-such-archive"
    run = agentlog("sql", "SELECT count(*) FROM events", "--dir", str(missing), state_dir=tmp_path)
    assert run.code == 1
    assert run.err.strip().splitlines() == [
        f"error: --dir {missing}: no such directory (an archive is made by `agentlog archive "
        f"run --dir {missing}`)"
    ]
    assert run.out == ""
    assert not missing.exists()


@pytest.mark.parametrize("query", ["", "   ", "/* nothing */"])
def test_sql_without_a_statement_is_one_line(tmp_path, query) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()  # an archive not written yet: the statement is what is wrong
    run = agentlog("sql", query, "--dir", str(archive), state_dir=tmp_path)
    assert run.code == 1
    assert run.err.strip().splitlines()[-1] == (
        'error: SQL: the query holds no statement; ask e.g. "SELECT count(*) FROM events"'
    )


def test_a_bad_where_is_refused_before_the_archive_is_brought_up_to_date(tmp_path) -> None:
    # No broker listens at port 1: had the archive been updated first, the error would be
    # about Kafka, after a wait.
    run = agentlog(
        "--bootstrap", "127.0.0.1:1", "export", "training", "--out", str(tmp_path / "t.jsonl"),
        "--where", "outcome = ",
        state_dir=tmp_path,
    )  # fmt: skip
    assert run.code == 1
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --where 'outcome = ': "), run.err
    assert "archiv" not in run.err
