"""The one exception family of agentlog; every message says what to do next.

    AgentlogError
    ├── ConfigurationError      settings or flags that cannot work
    │   └── MissingExtra        an integration whose extra is not installed (also an
    │                           ImportError)
    ├── BrokerUnavailable       no broker to talk to, or it stopped answering
    ├── DevBrokerError          the embedded broker could not be started or found
    ├── TopicError              topics could not be created or described
    ├── SchemaError             an .avsc file or schema lookup is wrong
    ├── DecodeError             bytes on a topic are not an agentlog event
    ├── DeliveryFailed          events the broker did not acknowledge (carries them as
    │                           UndeliveredEvent)
    ├── SpoolError              the recorder's local spool cannot be used
    ├── SinkError               a projection sink cannot store state
    ├── Fenced                  another consumer stored offsets for a partition this
    │                           batch covers (the projection runner re-reads and goes on)
    ├── ToolError               a tool call ended in tool_call_failed (its error type,
    │                           message and attempts, as the worker recorded them)
    ├── ToolTimeout             an awaited tool call had no result in time
    ├── ArchiveError            the Parquet archive cannot be written or does not match
    │                           the log
    ├── ExportError             an export, import or bundle check cannot be done as asked
    └── DemoError               `agentlog demo`'s live agents did not finish in time

`except AgentlogError` catches everything agentlog raises on purpose; anything else
escaping agentlog is a bug (the CLI shows its traceback with `--traceback`).
"""

from __future__ import annotations

from dataclasses import dataclass


class AgentlogError(Exception):
    """Base of every error agentlog raises on purpose."""


class ConfigurationError(AgentlogError):
    """Settings or flags that cannot work; the message names the setting or flag."""


class MissingExtra(ConfigurationError, ImportError):
    """An integration needs a package its extra installs: the message is the one line
    that installs it."""


class BrokerUnavailable(AgentlogError):
    """No broker to talk to, or it stopped answering for longer than the wait allows."""


class DevBrokerError(AgentlogError):
    """The embedded dev broker could not be started, stopped or found."""


class TopicError(AgentlogError):
    """agentlog's topics could not be created or described, or they are missing."""


class SchemaError(AgentlogError):
    """An event does not fit its Avro schema (naming the field), or a schema file or
    lookup is wrong."""


class DecodeError(AgentlogError):
    """Raised for bytes that are not an agentlog event; names where they came from."""

    def __init__(
        self,
        reason: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.reason = reason
        self.topic = topic
        self.partition = partition
        self.offset = offset
        where = ""
        if topic is not None:
            where = f" at {topic}[{partition}]@{offset}"
        super().__init__(f"cannot decode record{where}: {reason}")


@dataclass(frozen=True)
class UndeliveredEvent:
    """An encoded event the broker did not acknowledge, kept so nothing is lost."""

    topic: str
    key: bytes | None
    value: bytes | None
    error: str


class DeliveryFailed(AgentlogError):
    """Events were not acknowledged by the broker; `undelivered` holds them for a retry."""

    def __init__(self, undelivered: list[UndeliveredEvent]) -> None:
        self.undelivered = undelivered
        first = undelivered[0].error if undelivered else "unknown error"
        super().__init__(
            f"{len(undelivered)} event(s) were not delivered to Kafka (first error: {first}); "
            "check that the broker is reachable, then re-send them from DeliveryFailed.undelivered"
        )


class SpoolError(AgentlogError):
    """The spool directory cannot be used (in use by another recorder, unwritable)."""


class SinkError(AgentlogError):
    """A projection sink cannot store or read state."""


class Fenced(AgentlogError):
    """Another consumer stored offsets for a partition this batch covers: a rebalance
    moved it, or this member is a zombie. The batch stored nothing."""


class ToolError(AgentlogError):
    """The tool call ended in `tool_call_failed`: the tool raised for good, ran out of
    attempts, timed out, or no worker knows the tool."""

    def __init__(
        self,
        *,
        tool_call_id: str,
        tool_name: str,
        error_type: str,
        error_message: str,
        attempt: int,
        retryable: bool,
    ) -> None:
        self.tool_call_id = tool_call_id
        self.tool_name = tool_name
        self.error_type = error_type
        self.error_message = error_message
        self.attempt = attempt
        self.retryable = retryable
        super().__init__(
            f"tool call {tool_call_id} ({tool_name}) failed on attempt {attempt}: "
            f"{error_type}: {error_message}"
        )


class ToolTimeout(AgentlogError):
    """An awaited tool call had no result in time; the call itself may still end later
    (its result is recorded on the events topic either way)."""


class ArchiveError(AgentlogError):
    """The Parquet archive cannot be written, or it does not match the log."""


class ExportError(AgentlogError):
    """An export, an import or a bundle check cannot be done as asked."""


class DemoError(AgentlogError):
    """`agentlog demo`'s live agents did not come to the end of their story in time."""


class OtlpRejected(AgentlogError):
    """An OTLP export request the receiver refuses whole (`status`: the HTTP answer):
    not OTLP (400), too large (413)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
