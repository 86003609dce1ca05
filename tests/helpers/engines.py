"""What each broker engine can do, as the tests ask it: a test that depends on an
engine's behaviour branches on a capability, never on the engine's name, so that every
engine running real Apache Kafka (the dev engine from its jars, testcontainers) takes
Kafka's branches and Tansu takes its own. The differences are DESIGN.md's Tansu notes,
each pinned by a test in test_engine_differences.py or by the test that needs it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capabilities:
    # The log is on disk: `dev down` then `dev up` finds it again (Tansu: memory only).
    keeps_log_across_restart: bool
    # ListOffsets answers the latest offset right after batched produce.
    list_offsets_correct: bool
    # `isolation.level=read_committed` hides aborted transactional records.
    read_committed: bool
    # `retention.ms` is enforced: records past it are deleted (Tansu stores it only).
    enforces_retention: bool
    # `delete_records` deletes (Tansu crashes the connection on it).
    deletes_records: bool
    # CreatePartitions adds partitions to a topic (Tansu 0.6 cannot).
    adds_partitions: bool
    # A topic's `max.message.bytes` refuses larger records (Tansu stores it only).
    enforces_max_message_bytes: bool
    # Producing to a topic that does not exist fails (Tansu creates it on first produce).
    refuses_missing_topics: bool
    # DescribeGroups lists a stable group's members (Tansu answers an empty list).
    reports_group_members: bool


TANSU = Capabilities(
    keeps_log_across_restart=False,
    list_offsets_correct=False,
    read_committed=False,
    enforces_retention=False,
    deletes_records=False,
    adds_partitions=False,
    enforces_max_message_bytes=False,
    refuses_missing_topics=False,
    reports_group_members=False,
)

KAFKA = Capabilities(
    keeps_log_across_restart=True,
    list_offsets_correct=True,
    read_committed=True,
    enforces_retention=True,
    deletes_records=True,
    adds_partitions=True,
    enforces_max_message_bytes=True,
    refuses_missing_topics=True,
    reports_group_members=True,
)

# testcontainers runs Apache Kafka too (configured in conftest.py as the dev engine is:
# no topics made on first use, retention checked within seconds).
_BY_ENGINE = {"tansu": TANSU, "kafka": KAFKA, "testcontainers": KAFKA}


def capabilities_of(engine: str) -> Capabilities:
    """The capabilities of the engine of this name; KeyError for an engine not described
    here, so a new engine cannot silently take another's branches."""
    return _BY_ENGINE[engine]
