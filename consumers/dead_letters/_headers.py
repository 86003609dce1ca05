"""The dead-letter topic's names: the headers a dead letter carries (agentlog's and Kafka
Connect's), the states and actions of a letter, the kinds of consumer that write them."""

from __future__ import annotations

from typing import cast

from confluent_kafka import Message

DEAD_LETTER_ID = "agentlog.dead-letter-id"
ORIGIN_TOPIC = "agentlog.origin.topic"
ORIGIN_PARTITION = "agentlog.origin.partition"
ORIGIN_OFFSET = "agentlog.origin.offset"
ORIGIN_TIMESTAMP = "agentlog.origin.timestamp"
ERROR = "agentlog.error"
ATTEMPTS = "agentlog.attempts"
DEAD_LETTERED_AT = "agentlog.dead-lettered-at"
CONSUMER_GROUP = "agentlog.consumer-group"
# projection | trigger (a letter written before there were kinds is a projection's).
CONSUMER_KIND = "agentlog.consumer-kind"
# The conversation a trigger letter parks.
CONVERSATION = "agentlog.conversation"
# The trigger handler that failed (agent/handler), so a redrive runs it and the later ones.
HANDLER = "agentlog.handler"
# On a parked record: the id of the letter it waits behind.
PARKED_BEHIND = "agentlog.parked-behind"
# On a control record: what happened to the letter it names.
ACTION = "agentlog.dlq.action"

PROJECTION = "projection"
TRIGGER = "trigger"
OPEN, REDRIVEN, SKIPPED, PURGED, RESOLVED, REOPENED = (
    "open",
    "redriven",
    "skipped",
    "purged",
    "resolved",
    "reopened",
)
ACTIONS = (REDRIVEN, SKIPPED, PURGED, RESOLVED, REOPENED)

CONNECT_TOPIC = "__connect.errors.topic"
CONNECT_PARTITION = "__connect.errors.partition"
CONNECT_OFFSET = "__connect.errors.offset"
CONNECT_EXCEPTION_CLASS = "__connect.errors.exception.class.name"
CONNECT_EXCEPTION_MESSAGE = "__connect.errors.exception.message"


def dead_letter_id(topic: str, partition: int, offset: int) -> str:
    """The id of the dead letter of the record at this origin."""
    return f"{topic}/{partition}/{offset}"


Headers = list[tuple[str, bytes]]
# Headers the dead-letter topic adds; the rest are the original record's.
_ADDED_PREFIXES = ("__connect.errors.",)
_ADDED = {
    DEAD_LETTER_ID,
    ORIGIN_TOPIC,
    ORIGIN_PARTITION,
    ORIGIN_OFFSET,
    ORIGIN_TIMESTAMP,
    ERROR,
    ATTEMPTS,
    DEAD_LETTERED_AT,
    CONSUMER_GROUP,
    CONSUMER_KIND,
    CONVERSATION,
    HANDLER,
    PARKED_BEHIND,
    ACTION,
}


def headers_of(record: Message) -> Headers:
    """A record's headers as (name, bytes) pairs (a consumed record's are a list)."""
    pairs = cast(list[tuple[str, bytes | None]], list(record.headers() or []))
    return [(k, v if v is not None else b"") for k, v in pairs]


def original_headers(headers: Headers) -> Headers:
    """The headers the record had on its own topic (what a redrive sends back)."""
    return [(k, v) for k, v in headers if k not in _ADDED and not k.startswith(_ADDED_PREFIXES)]
