"""The dead-letter topic folded into letter states (no broker): letters, parked records
and control records, in the order they were appended."""

from __future__ import annotations

from confluent_kafka import Message

from agentlog.consumers import dead_letters as dl
from agentlog.consumers.dead_letters import DeadLetterStates
from agentlog.errors import ConfigurationError

GROUP = "agentlog-agents-support"


class Topic:
    """A dead-letter topic partition being appended to."""

    def __init__(self) -> None:
        self.states = DeadLetterStates()
        self.offset = 0

    def append(self, headers: dict[str, str], value: bytes | None = b"event") -> None:
        record = Message(
            topic="agentlog.dlq",
            partition=0,
            offset=self.offset,
            key=b"conv-1",
            value=value,
            headers=[(k, v.encode()) for k, v in headers.items()],
        )
        self.offset += 1
        self.states.add(record)

    def letter(self, origin_offset: int, group: str = GROUP, kind: str = dl.TRIGGER) -> str:
        letter_id = f"agentlog.events/0/{origin_offset}"
        headers = {
            dl.DEAD_LETTER_ID: letter_id,
            dl.ORIGIN_TOPIC: "agentlog.events",
            dl.ORIGIN_PARTITION: "0",
            dl.ORIGIN_OFFSET: str(origin_offset),
            dl.ERROR: "handler raised RuntimeError: boom",
            dl.ATTEMPTS: "3",
            dl.CONSUMER_GROUP: group,
            dl.CONNECT_EXCEPTION_CLASS: "builtins.RuntimeError",
            dl.DEAD_LETTERED_AT: f"2026-01-01T00:00:{origin_offset:02d}+00:00",
        }
        if kind:
            headers[dl.CONSUMER_KIND] = kind
        if kind == dl.TRIGGER:
            headers[dl.CONVERSATION] = "conv-1"
        self.append(headers)
        return letter_id

    def parked(self, behind: str, origin_offset: int) -> None:
        self.append(
            {
                dl.PARKED_BEHIND: behind,
                dl.ORIGIN_TOPIC: "agentlog.events",
                dl.ORIGIN_PARTITION: "0",
                dl.ORIGIN_OFFSET: str(origin_offset),
                dl.CONSUMER_GROUP: GROUP,
            },
            value=b"parked %d" % origin_offset,
        )

    def control(self, letter_id: str, action: str, group: str = GROUP) -> None:
        self.append(
            {dl.ACTION: action, dl.DEAD_LETTER_ID: letter_id, dl.CONSUMER_GROUP: group},
            value=None,
        )


def test_a_trigger_letter_parks_its_conversation_with_its_later_events_in_order() -> None:
    topic = Topic()
    letter_id = topic.letter(4)
    topic.parked(letter_id, 9)
    topic.parked(letter_id, 7)
    topic.parked(letter_id, 9)  # parked again by a runtime restarted before committing
    letter = topic.states.find(letter_id)
    assert (letter.state, letter.kind, letter.conversation) == (dl.OPEN, dl.TRIGGER, "conv-1")
    assert [p.origin_offset for p in letter.parked] == [7, 9]
    assert topic.states.parked_conversations() == {GROUP: {"conv-1"}}
    assert topic.states.open_by_group() == {GROUP: 1}
    assert topic.states.ends == {0: 4}


def test_redrive_then_resolve_unparks_and_a_second_redrive_changes_nothing() -> None:
    topic = Topic()
    letter_id = topic.letter(4)
    topic.control(letter_id, dl.REDRIVEN)
    assert topic.states.find(letter_id).state == dl.REDRIVEN
    assert topic.states.parked_conversations() == {GROUP: {"conv-1"}}  # until it ran
    topic.control(letter_id, dl.REDRIVEN)
    topic.control(letter_id, dl.RESOLVED)
    topic.control(letter_id, dl.REDRIVEN)
    letter = topic.states.find(letter_id)
    assert (letter.state, letter.history) == (dl.RESOLVED, [dl.REDRIVEN, dl.RESOLVED])
    assert topic.states.parked_conversations() == {}
    assert topic.states.open_by_group() == {}


def test_a_redrive_that_failed_again_reopens_the_letter() -> None:
    topic = Topic()
    letter_id = topic.letter(4)
    topic.control(letter_id, dl.REDRIVEN)
    topic.append(
        {
            dl.ACTION: dl.REOPENED,
            dl.DEAD_LETTER_ID: letter_id,
            dl.CONSUMER_GROUP: GROUP,
            dl.ERROR: "handler raised KeyError: 'x'",
        },
        value=None,
    )
    letter = topic.states.find(letter_id)
    assert (letter.state, letter.error) == (dl.OPEN, "handler raised KeyError: 'x'")
    topic.control(letter_id, dl.SKIPPED)
    assert topic.states.find(letter_id).state == dl.SKIPPED


def test_purge_hides_a_letter_and_letters_sent_twice_count_once() -> None:
    topic = Topic()
    first = topic.letter(1, kind="")  # written before letters had kinds: a projection's
    topic.letter(1, kind="")
    second = topic.letter(2, kind=dl.PROJECTION)
    assert topic.states.find(first).kind == dl.PROJECTION
    assert topic.states.open_by_group() == {GROUP: 2}
    topic.control(first, dl.PURGED)
    assert [letter.id for letter in topic.states.visible()] == [second]
    topic.control(second, dl.REDRIVEN)  # a projection letter is done once redriven
    assert topic.states.open_by_group() == {}


def test_the_same_origin_in_two_groups_is_two_letters_told_apart_by_group() -> None:
    topic = Topic()
    letter_id = topic.letter(3, group="projector", kind=dl.PROJECTION)
    topic.letter(3, group=GROUP)
    topic.control(letter_id, dl.REDRIVEN, group="projector")
    assert topic.states.find(letter_id, "projector").state == dl.REDRIVEN
    assert topic.states.find(letter_id, GROUP).state == dl.OPEN
    try:
        topic.states.find(letter_id)
    except ConfigurationError as exc:
        assert "pass --group" in str(exc)
    else:
        raise AssertionError("an ambiguous id was accepted")


def test_original_headers_leave_out_what_the_dead_letter_topic_added() -> None:
    headers = [
        ("traceparent", b"00-abc"),
        (dl.DEAD_LETTER_ID, b"t/0/1"),
        (dl.CONNECT_TOPIC, b"t"),
        (dl.PARKED_BEHIND, b"t/0/1"),
    ]
    assert dl.original_headers(headers) == [("traceparent", b"00-abc")]
