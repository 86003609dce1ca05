"""The projector, the trigger runtime and replay see the same event for a record: one
conversion (`agentlog.recorded.recorded_event`) with one timestamp rule. `occurred_at`
is the envelope's (when the event happened); `timestamp_ms` the Kafka record timestamp,
even where a producer set it to something else, never substituted for `occurred_at`."""

from __future__ import annotations

import uuid

from confluent_kafka import Producer
from helpers.sample_events import BASE

from agentlog import events as ev
from agentlog.consumers import ProjectionRunner, open_sink
from agentlog.consumers.projection import Projection, State, Table, handles
from agentlog.consumers.triggers import Agents, TriggerRuntime
from agentlog.kafka_config import producer_config
from agentlog.recorded import RecordedEvent
from agentlog.replay import replay_conversation
from agentlog.serde import encode_event, micros_of
from agentlog.settings import Settings

CONVERSATION = "conv-stamped"
# A producer outside agentlog stamped the record 5 s after the event happened.
KAFKA_MS = micros_of(BASE) // 1000 + 5_000


class Stamps(Projection):
    name = "stamps"
    tables = (
        Table(
            "stamps",
            key=("event_id",),
            columns={
                "event_id": "text",
                "occurred_at": "bigint",
                "timestamp_ms": "bigint",
                "offset": "bigint",
            },
            key_of=lambda e: (e.event_id,),
        ),
    )

    @handles("user_message")
    def on_message(self, event: RecordedEvent, state: State) -> None:
        row = state.row("stamps", (event.event_id,))
        row["occurred_at"] = event.occurred_at
        row["timestamp_ms"] = event.timestamp_ms
        row["offset"] = event.offset


def test_projector_triggers_and_replay_agree_on_an_event(settings: Settings, tmp_path) -> None:
    event = ev.Event(
        event_id=str(uuid.uuid4()),
        conversation_id=CONVERSATION,
        occurred_at=BASE,
        source=ev.Source(service="elsewhere"),
        payload=ev.UserMessage(text="hello", user_id="u-1"),
    )
    producer = Producer(producer_config(settings))
    producer.produce(
        settings.events_topic, encode_event(event), key=CONVERSATION.encode(), timestamp=KAFKA_MS
    )
    assert producer.flush(30) == 0
    seen = (event.event_id, micros_of(BASE), KAFKA_MS)

    # The projector.
    url = f"duckdb:{tmp_path / 'stamps.duckdb'}"
    with open_sink(url) as sink:
        runner = ProjectionRunner(settings, sink, [Stamps()], group="stamps")
        assert runner.run(once=True).applied == 1
        table = runner.tables["stamps"]
        row = sink.load(table, [(event.event_id,)])[(event.event_id,)]
    projected = (event.event_id, row["occurred_at"], row["timestamp_ms"])

    # The trigger runtime.
    handed: list[RecordedEvent] = []
    agents = Agents("stamps")

    @agents.on("user_message")
    def note(trigger_event, session) -> None:  # type: ignore[no-untyped-def]
        handed.append(trigger_event)

    TriggerRuntime(settings, agents, lambda t: None).run(once=True)
    [triggered] = handed

    # Replay.
    [replayed] = replay_conversation(settings, CONVERSATION, scan=True).events

    assert projected == seen
    assert (triggered.event_id, triggered.occurred_at, triggered.timestamp_ms) == seen
    assert triggered == replayed
    assert replayed.offset == row["offset"]
