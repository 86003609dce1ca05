"""Consumers of the event log: the projection runner, sinks, projections, dead letters."""

from agentlog.consumers.projection import Projection, RecordedEvent, State, Table, handles
from agentlog.consumers.projections import BUILT_IN, load_projection
from agentlog.consumers.runner import DEFAULT_GROUP, Progress, ProjectionRunner
from agentlog.consumers.sinks import Fenced, Sink, open_sink
from agentlog.consumers.throughput import tune_process_for_throughput

__all__ = [
    "BUILT_IN",
    "DEFAULT_GROUP",
    "Fenced",
    "Progress",
    "Projection",
    "ProjectionRunner",
    "RecordedEvent",
    "Sink",
    "State",
    "Table",
    "handles",
    "load_projection",
    "open_sink",
    "tune_process_for_throughput",
]
