"""`agentlog tail` behaves as `tail` does: the last N events in time order by default,
every event with --from-beginning, other agentlog topics with --topic."""

from __future__ import annotations

import json
import re

from helpers.cli import agentlog

from agentlog.producers import Recorder
from agentlog.settings import Settings


def _record_interleaved(settings: Settings, conversations: int, per_conversation: int) -> list:
    """Messages of several conversations (so several partitions), their times interleaved:
    message n of conversation c happens at second 100 * n + c."""
    now = [0]
    written = []
    with Recorder(settings, clock_micros=lambda: now[0]) as recorder:
        for n in range(per_conversation):
            for c in range(conversations):
                now[0] = 1_700_000_000_000_000 + (100 * n + c) * 1_000_000
                text = f"c{c} n{n}"
                recorder.user_message(f"conv-{c}", text)
                written.append(text)
    return written


def _tail(settings: Settings, tmp_path, *args: str):
    base = ("--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix)
    run = agentlog(*base, "tail", "--json", *args, state_dir=tmp_path)
    assert run.code == 0, run.err
    return [json.loads(line) for line in run.out.splitlines()]


def _texts(events) -> list[str]:
    return [e["payload"]["text"] for e in events]


def test_tail_prints_the_last_events_in_time_order(settings: Settings, tmp_path) -> None:
    written = _record_interleaved(settings, conversations=5, per_conversation=20)
    assert _texts(_tail(settings, tmp_path)) == written[-10:]
    assert _texts(_tail(settings, tmp_path, "-n", "7")) == written[-7:]
    assert _texts(_tail(settings, tmp_path, "-n", "1000")) == written


def test_tail_filters_keep_the_last_matching_events(settings: Settings, tmp_path) -> None:
    written = _record_interleaved(settings, conversations=5, per_conversation=20)
    mine = [t for t in written if t.startswith("c3 ")]
    assert _texts(_tail(settings, tmp_path, "-c", "conv-3", "-n", "4")) == mine[-4:]
    only_starts = _tail(settings, tmp_path, "-t", "conversation_started")
    assert only_starts == []


def test_tail_from_beginning_prints_every_event(settings: Settings, tmp_path) -> None:
    written = _record_interleaved(settings, conversations=5, per_conversation=20)
    every = _texts(_tail(settings, tmp_path, "--from-beginning"))
    assert sorted(every) == sorted(written)
    # Each conversation's events come in the order they happened.
    for c in range(5):
        assert [t for t in every if t.startswith(f"c{c} ")] == [
            t for t in written if t.startswith(f"c{c} ")
        ]


def test_tail_reads_the_other_agentlog_topics(settings: Settings, tmp_path) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    producer.produce(settings.dlq_topic, key=b"k", value=b"not avro at all")
    producer.flush(10)
    base = ("--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix)
    run = agentlog(*base, "tail", "--topic", "dlq", state_dir=tmp_path)
    assert run.code == 0, run.err
    assert "@0, 15 bytes: cannot decode" in run.err
    assert agentlog(*base, "tail", "--topic", "nope", state_dir=tmp_path).code == 2


def test_tail_into_head_ends_quietly(settings: Settings, tmp_path) -> None:
    # `agentlog tail --from-beginning | head -3`: head leaves after three lines, the pipe
    # breaks under tail's next write, and tail ends at once, with no error.
    import subprocess

    from helpers.cli import agentlog_process

    _record_interleaved(settings, conversations=20, per_conversation=100)
    base = ("--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix)
    tail = agentlog_process(
        *base,
        "tail",
        "--from-beginning",
        env={"AGENTLOG_STATE_DIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert tail.stdout is not None and tail.stderr is not None
    lines = [tail.stdout.readline() for _ in range(3)]
    tail.stdout.close()  # what head does when it has its three lines
    code = tail.wait(timeout=60)
    err = tail.stderr.read().decode()
    assert all(lines) and code == 0, err
    assert err == ""


def test_tail_of_the_dead_letters_shows_where_each_came_from(settings: Settings, tmp_path) -> None:
    from confluent_kafka import Producer
    from helpers.kafka_python_reader import read_all

    from agentlog.consumers import BUILT_IN, ProjectionRunner, open_sink

    raw = Producer({"bootstrap.servers": settings.bootstrap_servers})
    raw.produce(settings.events_topic, b"not an event", b"conv-1", partition=1)
    assert raw.flush(10) == 0
    with open_sink(f"duckdb:{tmp_path / 'sink.duckdb'}") as sink:
        runner = ProjectionRunner(settings, sink, [BUILT_IN["conversations"]()], group="g")
        assert runner.run(once=True).dead_lettered == 1
    read_all(settings.bootstrap_servers, settings.dlq_topic, expect=1)
    base = ("--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix)
    run = agentlog(*base, "tail", "--topic", "dlq", state_dir=tmp_path)
    assert run.code == 0, run.err
    origin = f"{settings.events_topic}[1]@0"
    assert re.match(
        rf"p\d@0, 12 bytes <- dead letter of {re.escape(origin)} \(group g, 1 attempt\)", run.out
    )
    assert f"cannot decode record at {origin}" in run.out
    assert run.err == ""
    letter = _tail(settings, tmp_path, "--topic", "dlq")[0]["dead_letter"]
    assert letter["topic"] == settings.events_topic
    assert (letter["partition"], letter["offset"], letter["consumer_group"]) == (1, 0, "g")
    assert letter["error"].startswith(f"cannot decode record at {origin}")


def test_tail_says_when_there_is_nothing_to_print(settings: Settings, tmp_path) -> None:
    base = ("--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix)
    empty = agentlog(*base, "tail", "--topic", "tool-requests", state_dir=tmp_path)
    assert empty.code == 0 and empty.out == ""
    assert empty.err == f"note: no records on {settings.tool_requests_topic}\n"
    _record_interleaved(settings, conversations=2, per_conversation=2)
    nobody = agentlog(*base, "tail", "-c", "nosuch", state_dir=tmp_path)
    assert nobody.code == 0 and nobody.out == ""
    events = settings.events_topic
    assert nobody.err.startswith(f"note: no events of conversation nosuch on {events}")
    sagas = agentlog(*base, "sagas", "show", "nosuch", state_dir=tmp_path)
    assert sagas.code == 1, sagas.out
    assert sagas.err.startswith("error: no conversation 'nosuch' on")
    none = agentlog(*base, "sagas", "show", "conv-0", state_dir=tmp_path)
    assert none.code == 0 and "no sagas recorded in conversation conv-0" in none.out
