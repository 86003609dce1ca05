"""agentlog: the flight recorder for AI agents on Kafka."""

from agentlog.errors import (
    AgentlogError,
    BrokerUnavailable,
    ConfigurationError,
    DecodeError,
    DeliveryFailed,
    DevBrokerError,
    SchemaError,
    SinkError,
    TopicError,
)
from agentlog.events import EVENT_TYPES, Event, Source
from agentlog.settings import Settings

__version__ = "0.1.0"

__all__ = [
    "EVENT_TYPES",
    "AgentlogError",
    "BrokerUnavailable",
    "ConfigurationError",
    "DecodeError",
    "DeliveryFailed",
    "DevBrokerError",
    "Event",
    "SchemaError",
    "Settings",
    "SinkError",
    "Source",
    "TopicError",
]
