"""The SDK agents use to record their conversations to Kafka."""

from agentlog.errors import DeliveryFailed, UndeliveredEvent
from agentlog.producers.async_recorder import AsyncRecorder
from agentlog.producers.recorder import Recorder, ToolCall, current_conversation

__all__ = [
    "AsyncRecorder",
    "DeliveryFailed",
    "Recorder",
    "ToolCall",
    "UndeliveredEvent",
    "current_conversation",
]
