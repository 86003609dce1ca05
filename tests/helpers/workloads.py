"""Logs the broker tests start from: simulated support conversations recorded (the
demo's simulator, seeded, so the same seed writes the same events), projected once, or
the events topic deleted and created again (another log under the same name)."""

from __future__ import annotations

import random

from agentlog.consumers import BUILT_IN, ProjectionRunner, open_sink
from agentlog.demo.simulation import SimulatedClock, seeded_event_ids, simulate
from agentlog.kafka_config import admin_client
from agentlog.producers import Recorder
from agentlog.settings import Settings
from agentlog.topics import create_topics, topic_identity
from helpers.waiting import wait_for


def record(settings: Settings, conversations: int, seed: int = 1) -> int:
    """Record `conversations` simulated conversations; the number of events written."""
    clock = SimulatedClock()
    with Recorder(
        settings, clock_micros=clock, new_event_id=seeded_event_ids(random.Random(seed))
    ) as recorder:
        return simulate(recorder, clock, conversations, seed).events


def record_workload(settings: Settings, conversations: int, seed: int = 3) -> int:
    """The projection tests' workload: `record` with their seed."""
    return record(settings, conversations, seed)


def project_once(settings: Settings, projections=None, group="g", batch_size=1000):
    with open_sink(settings.sink_url) as sink:
        runner = ProjectionRunner(
            settings,
            sink,
            projections or [p() for p in BUILT_IN.values()],
            group=group,
            batch_size=batch_size,
        )
        return runner.run(once=True)


def created_again(settings: Settings) -> None:
    """Delete the events topic and create it again under the same name."""
    topic = settings.events_topic
    admin = admin_client(settings)
    admin.delete_topics([topic], request_timeout=30)[topic].result()

    def created() -> bool:
        try:
            if create_topics(settings)[topic] != "created":
                return False
            topic_identity(settings, topic)  # its new identity is known too
            return True
        except Exception:  # Kafka deletes asynchronously: creating may fail for a moment
            return False

    wait_for(created, 60, f"{topic} to be created again after its deletion")
