"""agentlog: the flight recorder for AI agents on Kafka.

    from agentlog import Recorder, Projection, Table, handles, Settings

`Recorder` (and `AsyncRecorder`) record a conversation's events; a `Projection` with
its `Table`s and `handles` methods folds them into queryable state. Everything else
lives in the subpackages: `agentlog.producers`, `agentlog.consumers`, and the event
model in `agentlog.events`.
"""

# Modules under private names, so that nothing public but __all__ is bound here.
import importlib as _importlib
import importlib.metadata as _metadata
import typing as _typing

from agentlog.errors import (
    AgentlogError,
    ArchiveBusy,
    ArchiveError,
    ArgumentsError,
    BeforeFirstEvent,
    BlobUnavailable,
    BrokerUnavailable,
    CommitPastUnfinished,
    ConfigurationError,
    ConversationNotFound,
    DeadLettersNotTaken,
    DecodeError,
    DeliveryFailed,
    DemoError,
    DevBrokerError,
    ExportError,
    Fenced,
    MissingExtra,
    NotAssigned,
    NotTheAppliedLog,
    OffsetBeyondEnd,
    OtlpRejected,
    OtlpUnavailable,
    PartitionsChanged,
    RecordedToolFailure,
    ReplayError,
    SchemaError,
    SinkError,
    SpoolError,
    ToolError,
    ToolTimeout,
    TopicError,
    UndeliveredEvent,
)
from agentlog.settings import Settings

if _typing.TYPE_CHECKING:
    from agentlog.consumers import Projection, Table, handles
    from agentlog.producers import AsyncRecorder, Recorder

__version__ = _metadata.version("agentlog")

__all__ = [
    "AgentlogError",
    "ArchiveBusy",
    "ArchiveError",
    "ArgumentsError",
    "AsyncRecorder",
    "BeforeFirstEvent",
    "BlobUnavailable",
    "BrokerUnavailable",
    "CommitPastUnfinished",
    "ConfigurationError",
    "ConversationNotFound",
    "DeadLettersNotTaken",
    "DecodeError",
    "DeliveryFailed",
    "DemoError",
    "DevBrokerError",
    "ExportError",
    "Fenced",
    "MissingExtra",
    "NotAssigned",
    "NotTheAppliedLog",
    "OffsetBeyondEnd",
    "OtlpRejected",
    "OtlpUnavailable",
    "PartitionsChanged",
    "Projection",
    "RecordedToolFailure",
    "Recorder",
    "ReplayError",
    "SchemaError",
    "Settings",
    "SinkError",
    "SpoolError",
    "Table",
    "ToolError",
    "ToolTimeout",
    "TopicError",
    "UndeliveredEvent",
    "__version__",
    "handles",
]

# The recorder and the projection API belong to parts built on the core. Loaded on first
# use (PEP 562), so that importing a core module (agentlog.settings, agentlog.events...)
# does not load the producers and consumers with it.
_LAZY = {
    "AsyncRecorder": "agentlog.producers",
    "Recorder": "agentlog.producers",
    "Projection": "agentlog.consumers",
    "Table": "agentlog.consumers",
    "handles": "agentlog.consumers",
}


def __getattr__(name: str) -> _typing.Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'agentlog' has no attribute {name!r}")
    value = getattr(_importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
