"""Making Apache Kafka refuse a record as too large: a topic limit and a payload that
compression cannot shrink below it. (Tansu stores a topic's max.message.bytes but does
not enforce it.)"""

from __future__ import annotations

import base64
import os

from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from agentlog.kafka_config import admin_client
from agentlog.settings import Settings


def limit_record_size(settings: Settings, max_message_bytes: int) -> None:
    """Lower the events topic's max.message.bytes."""
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        settings.events_topic,
        incremental_configs=[
            ConfigEntry(
                "max.message.bytes",
                str(max_message_bytes),
                incremental_operation=AlterConfigOpType.SET,
            )
        ],
    )
    admin = admin_client(settings)  # kept alive until the answer is in
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def incompressible(size: int) -> str:
    return base64.b64encode(os.urandom(size * 3 // 4)).decode()
