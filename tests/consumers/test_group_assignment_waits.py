"""A second `agentlog demo` on the same broker: its groups start afresh, and a member the
group never assigns says what it waited for (the group's rebalance), not that the broker
may be down while it answers."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

from agentlog.consumers import ToolRegistry, ToolWorker
from agentlog.consumers.consumer_groups import groups_on_broker
from agentlog.demo.live import _COORDINATOR_MOVING, _start_at_end
from agentlog.errors import BrokerUnavailable
from agentlog.kafka_config import group_consumer_config
from agentlog.producers import Recorder
from agentlog.reader import partition_ends
from agentlog.settings import Settings


def test_a_member_never_assigned_names_the_group_not_the_broker(settings: Settings) -> None:
    registry = ToolRegistry()

    @registry.tool
    def noop() -> str:
        return "ok"

    hurried = settings.model_copy(update={"assignment_timeout_s": 0.001})
    worker = ToolWorker(hurried, registry, group=f"never-{uuid.uuid4().hex[:8]}")
    with pytest.raises(BrokerUnavailable) as raised:
        worker.run()
    message = str(raised.value)
    assert "assigned this member no partition of" in message, message
    assert "the group's rebalance did not finish" in message, message
    assert "is Kafka" not in message, message  # it answered: no doubt cast on it


def _commit(settings: Settings, group: str, topic: str, offsets: dict[int, int]) -> None:
    consumer = Consumer(group_consumer_config(settings, group))
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                consumer.commit(
                    offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                    asynchronous=False,
                )
                return
            except KafkaException as exc:
                # A new group's coordinator is being found (Kafka, under load): again.
                if exc.args[0].code() not in _COORDINATOR_MOVING or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        consumer.close()


def test_the_demo_starts_a_group_its_members_left_afresh_at_the_end(settings: Settings) -> None:
    with Recorder(settings) as recorder:
        for n in range(6):
            recorder.user_message(f"conv-{n}", "hello")
    group = f"demo-tools-{uuid.uuid4().hex[:8]}"
    # What an earlier demo's group left: offsets on the topic, and on another topic.
    _commit(settings, group, settings.tool_requests_topic, {0: 0})
    _commit(settings, group, settings.events_topic, {0: 0})
    _start_at_end(settings, group, settings.tool_requests_topic)
    (found,) = groups_on_broker(settings, [], named=[group])
    ends = partition_ends(settings, settings.tool_requests_topic)
    assert found.committed == {(settings.tool_requests_topic, p): e for p, e in ends.items()}
    # The group was deleted before it started again: nothing of the earlier one is left.
    assert (settings.events_topic, 0) not in found.committed
