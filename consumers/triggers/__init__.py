"""Event-driven triggers: `Agents` declares handlers for event types, `TriggerRuntime`
runs them for the events on the log — per conversation in log order, at least once, a
handler that fails for good parking its conversation behind a dead letter until it is
redriven or skipped.

The parts: `_agents` (what handlers are declared with), `_runtime` (the group member's
loop, per-conversation queues and the handler pool), `_parking` (dead letters, parked
conversations, redrive and skip), `_follower` (the dead-letter topic's control
records)."""

from agentlog.consumers.triggers._agents import (
    GROUP_PREFIX,
    Agents,
    HandlerFunction,
    LlmFunction,
    Predicate,
    Trigger,
    load_agents,
    trigger_event_ids,
)
from agentlog.consumers.triggers._runtime import SessionFactory, TriggerProgress, TriggerRuntime

__all__ = [
    "GROUP_PREFIX",
    "Agents",
    "HandlerFunction",
    "LlmFunction",
    "Predicate",
    "SessionFactory",
    "Trigger",
    "TriggerProgress",
    "TriggerRuntime",
    "load_agents",
    "trigger_event_ids",
]
