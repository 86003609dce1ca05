"""Consumers of the event log: the projection runner, sinks, projections, dead letters,
the tool workers that run the tool calls agents request, and the trigger runtime that
runs agents' handlers for the events they react to."""

from agentlog.consumers.dead_letters import DeadLetterStates, LetterState, dead_letter_states
from agentlog.consumers.projection import Projection, RecordedEvent, State, Table, handles
from agentlog.consumers.projections import BUILT_IN, load_projection
from agentlog.consumers.runner import DEFAULT_GROUP, Progress, ProjectionRunner
from agentlog.consumers.sinks import Fenced, Sink, open_sink
from agentlog.consumers.throughput import tune_process_for_throughput
from agentlog.consumers.tools import (
    DEFAULT_TOOL_GROUP,
    ToolRegistry,
    ToolSpec,
    ToolWorker,
    WorkerProgress,
    load_registry,
)
from agentlog.consumers.triggers import (
    Agents,
    Trigger,
    TriggerProgress,
    TriggerRuntime,
    trigger_event_ids,
)

__all__ = [
    "Agents",
    "BUILT_IN",
    "DEFAULT_GROUP",
    "DEFAULT_TOOL_GROUP",
    "DeadLetterStates",
    "Fenced",
    "LetterState",
    "Progress",
    "Projection",
    "ProjectionRunner",
    "RecordedEvent",
    "Sink",
    "State",
    "Table",
    "ToolRegistry",
    "ToolSpec",
    "ToolWorker",
    "Trigger",
    "TriggerProgress",
    "TriggerRuntime",
    "WorkerProgress",
    "dead_letter_states",
    "handles",
    "load_projection",
    "load_registry",
    "open_sink",
    "trigger_event_ids",
    "tune_process_for_throughput",
]
