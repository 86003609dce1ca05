"""The SDK agents use to record their conversations to Kafka, and to ask tool workers
for tool calls."""

from agentlog.errors import DeliveryFailed, ToolError, ToolTimeout, UndeliveredEvent
from agentlog.producers.async_recorder import AsyncRecorder
from agentlog.producers.recorder import Recorder, ToolCall, current_conversation
from agentlog.producers.tool_requests import PendingToolCall, ToolClient

__all__ = [
    "AsyncRecorder",
    "DeliveryFailed",
    "PendingToolCall",
    "Recorder",
    "ToolCall",
    "ToolClient",
    "ToolError",
    "ToolTimeout",
    "UndeliveredEvent",
    "current_conversation",
]
