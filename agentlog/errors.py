"""The one exception family of agentlog; every message says what to do next.

    AgentlogError
    ├── ConfigurationError      settings or flags that cannot work
    │   └── MissingExtra        an integration whose extra is not installed (also an
    │                           ImportError)
    ├── BrokerUnavailable       no broker to talk to, or it stopped answering
    │   ├── NotAssigned         the consumer group assigned this member nothing in time
    │   └── DeadLettersNotTaken the dead-letter topic did not take a batch's letters
    ├── DevBrokerError          the embedded broker could not be started or found
    ├── TopicError              topics could not be created or described
    ├── SchemaError             an .avsc file or schema lookup is wrong
    ├── DecodeError             bytes on a topic are not an agentlog event
    ├── BlobUnavailable         a claim-check blob is missing, unreadable or altered
    ├── DeliveryFailed          events the broker did not acknowledge (carries them as
    │                           UndeliveredEvent)
    ├── SpoolError              the recorder's local spool cannot be used
    ├── SinkError               a projection sink cannot store state
    │   └── NotTheAppliedLog    the topic is not the log the sink's state was built from
    │       └── PartitionsChanged  ... nor has it the partition count it was built with
    ├── Fenced                  another consumer stored offsets for a partition this
    │                           batch covers (the projection runner re-reads and goes on)
    ├── ArgumentsError          a tool call's arguments do not fit the tool
    ├── ToolError               a tool call ended in tool_call_failed (its error type,
    │                           message and attempts, as the worker recorded them)
    ├── ToolTimeout             an awaited tool call had no result in time
    ├── CommitPastUnfinished    a bug guard: a tool worker was about to commit past
    │                           unfinished work (also an AssertionError)
    ├── ReplayError             replay cannot answer what was asked
    │   ├── ConversationNotFound  no record of the conversation where it must be
    │   ├── OffsetBeyondEnd     --until-offset past the partition's end
    │   └── BeforeFirstEvent    a stop (--at, --until-offset) before the first event
    ├── RecordedToolFailure     a re-run's recorded tool failure of a non-builtin type
    ├── ArchiveError            the Parquet archive cannot be written or does not match
    │   │                       the log
    │   └── ArchiveBusy         another archiver holds the archive's writer lock
    ├── ExportError             an export, import or bundle check cannot be done as asked
    ├── OtlpRejected            an OTLP request the receiver refuses whole (400, 413)
    ├── OtlpUnavailable         Kafka did not take OTLP events in time, no spool held
    │                           them (503)
    └── DemoError               `agentlog demo`'s live agents did not finish in time

`except AgentlogError` catches everything agentlog raises on purpose; anything else
escaping agentlog is a bug (the CLI shows its traceback with `--traceback`). Every class
here is exported by the package face too (`from agentlog import SpoolError`); the parts
(`agentlog.replay`, `agentlog.integrations.otlp`, ...) re-export their own, and define
none. One thing that stops a run is deliberately no error: a re-run's `Diverged`
(`agentlog.replay`) is a `BaseException`, so that agent code catching `Exception` does
not swallow it.
"""

from dataclasses import dataclass as _dataclass

__all__ = [
    "AgentlogError",
    "ArchiveBusy",
    "ArchiveError",
    "ArgumentsError",
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
    "RecordedToolFailure",
    "ReplayError",
    "SchemaError",
    "SinkError",
    "SpoolError",
    "ToolError",
    "ToolTimeout",
    "TopicError",
    "UndeliveredEvent",
]


class AgentlogError(Exception):
    """Base of every error agentlog raises on purpose."""


class ConfigurationError(AgentlogError):
    """Settings, flags or files named by them that cannot work; the message names the
    value and what to set instead."""


class MissingExtra(ConfigurationError, ImportError):
    """An integration needs a package its extra installs: the message is the one line
    that installs it."""


class BrokerUnavailable(AgentlogError):
    """No broker answered within the bound, or it stopped answering; the message says
    what was waited for and for how long. A broker that refused the connection (a TLS
    handshake or SASL login that failed) is named as such, with the settings to check."""


class NotAssigned(BrokerUnavailable):
    """The consumer group assigned this member nothing within the bound."""


class DeadLettersNotTaken(BrokerUnavailable):
    """The dead-letter topic did not acknowledge a batch's dead letters in time (the
    batch is not committed: it is read again)."""


class DevBrokerError(AgentlogError):
    """The embedded dev broker could not be started, found or stopped."""


class TopicError(AgentlogError):
    """agentlog's topics could not be created or described, or are not as expected."""


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


@_dataclass(frozen=True)
class UndeliveredEvent:
    """An encoded event the broker did not acknowledge, kept so nothing is lost."""

    topic: str
    key: bytes | None
    value: bytes | None
    error: str


class BlobUnavailable(AgentlogError):
    """A claim-check blob is missing, unreadable or not the content its reference names
    (serde turns this into a DecodeError naming the reference)."""


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
    """A projection sink cannot store or read its state."""


class NotTheAppliedLog(SinkError):
    """The topic is not the log the sink's state was built from."""


class PartitionsChanged(NotTheAppliedLog):
    """The topic's partition count is not the one the sink's state was built with."""


class Fenced(AgentlogError):
    """Another consumer stored offsets for a partition this batch covers: a rebalance
    moved it, or this member is a zombie. The batch stored nothing."""


class ArgumentsError(AgentlogError):
    """A tool call's arguments do not fit the tool's parameters (the worker records the
    call as failed with this error type)."""


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


class CommitPastUnfinished(AgentlogError, AssertionError):
    """A bug: the worker was about to commit past a request it has not finished (or has
    never been handed), which would leave that call with no ending, for good."""


class ReplayError(AgentlogError):
    """Replay cannot answer what was asked; the message names the bad value."""


class ConversationNotFound(ReplayError):
    """No record of the conversation where it must be (the partition its key maps to,
    the sink's index, the archive)."""


class OffsetBeyondEnd(ReplayError):
    """--until-offset is past the end of the conversation's partition."""


class BeforeFirstEvent(ReplayError):
    """A stop (--at, --until-offset) comes before the conversation's first event."""


class RecordedToolFailure(AgentlogError):
    """A recorded tool failure of a type that is not a Python builtin exception, raised
    into the agent during a re-run where the tool failed when it was recorded."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.error_message = message


class ArchiveError(AgentlogError):
    """The Parquet archive cannot be written, or it does not match the log."""


class ArchiveBusy(ArchiveError):
    """Another archiver holds the archive's writer lock."""


class ExportError(AgentlogError):
    """An export, an import or a bundle check cannot be done as asked."""


class OtlpUnavailable(AgentlogError):
    """Kafka did not take the OTLP receiver's events in time and no spool holds them
    (the receiver answers 503, so the exporter retries)."""


class DemoError(AgentlogError):
    """`agentlog demo`'s live agents did not come to the end of their story in time."""


class OtlpRejected(AgentlogError):
    """An OTLP export request the receiver refuses whole (`status`: the HTTP answer):
    not OTLP (400), too large (413)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
