"""Consumers of the event log: the projection runner, sinks, projections, dead letters,
and the tool workers that run the tool calls agents request."""

from agentlog.consumers.projection import Projection, RecordedEvent, State, Table, handles
from agentlog.consumers.projections import BUILT_IN, load_projection
from agentlog.consumers.runner import DEFAULT_GROUP, Progress, ProjectionRunner
from agentlog.consumers.sinks import Fenced, Sink, open_sink
from agentlog.consumers.throughput import tune_process_for_throughput
from agentlog.consumers.tool_registry import ToolRegistry, ToolSpec, load_registry
from agentlog.consumers.tool_workers import DEFAULT_TOOL_GROUP, ToolWorker, WorkerProgress

__all__ = [
    "BUILT_IN",
    "DEFAULT_GROUP",
    "DEFAULT_TOOL_GROUP",
    "Fenced",
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
    "WorkerProgress",
    "handles",
    "load_projection",
    "load_registry",
    "open_sink",
    "tune_process_for_throughput",
]
