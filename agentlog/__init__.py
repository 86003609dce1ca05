"""agentlog: the flight recorder for AI agents on Kafka.

    from agentlog import Recorder, Projection, Table, handles, Settings

`Recorder` (and `AsyncRecorder`) record a conversation's events; a `Projection` with
its `Table`s and `handles` methods folds them into queryable state. Everything else
lives in the subpackages: `agentlog.producers`, `agentlog.consumers`, and the event
model in `agentlog.events`.
"""

# Modules, not names, so that nothing public but __all__ is bound here.
import importlib
import importlib.metadata
import typing

from agentlog.errors import (
    AgentlogError,
    BrokerUnavailable,
    ConfigurationError,
    DecodeError,
    DeliveryFailed,
    DevBrokerError,
    Fenced,
    SchemaError,
    SinkError,
    ToolError,
    ToolTimeout,
    TopicError,
)
from agentlog.settings import Settings

if typing.TYPE_CHECKING:
    from agentlog.consumers import Projection, Table, handles
    from agentlog.producers import AsyncRecorder, Recorder

__version__ = importlib.metadata.version("agentlog")

__all__ = [
    "AgentlogError",
    "AsyncRecorder",
    "BrokerUnavailable",
    "ConfigurationError",
    "DecodeError",
    "DeliveryFailed",
    "DevBrokerError",
    "Fenced",
    "Projection",
    "Recorder",
    "SchemaError",
    "Settings",
    "SinkError",
    "Table",
    "ToolError",
    "ToolTimeout",
    "TopicError",
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


def __getattr__(name: str) -> typing.Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'agentlog' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
