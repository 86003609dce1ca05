"""The event model: one `Event` envelope whose `payload` is one of the payload records.

These pydantic models are the single definition of every event. The Avro schema in
`schemas/` is generated from them (`agentlog.codec.event_schema()`), and
tests/core/test_schemas.py fails when the two drift. Field names follow the OpenTelemetry
GenAI conventions where one exists: `provider`, `request_model`, `input_tokens`,
`output_tokens`, `tool_call_id`.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from agentlog.errors import SchemaError

AVRO_NAMESPACE = "agentlog"

# The largest magnitude of any number an event carries (1e15 ms is 31,000 years); NaN
# and the infinities are refused too. Only where events are built: readers tolerate
# what older records, or producers that bypass agentlog, hold.
NUMBER_LIMIT = 1e15
# model_validate(..., context=RECORDED): the values of a record already on the log.
RECORDED = {"recorded": True}


def number_problem(value: float) -> str | None:
    """Why `value` cannot be a number of an event, or None if it can."""
    if math.isnan(value) or math.isinf(value):
        return f"{value!r} is not a finite number"
    if abs(value) > NUMBER_LIMIT:
        return f"{value!r} is beyond {NUMBER_LIMIT:g}, no measure an event holds"
    return None


class AvroRecord(BaseModel):
    """A pydantic model that maps one-to-one onto an Avro record."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="after")
    def _numbers_are_finite(self, info: ValidationInfo) -> Self:
        """Every float field of every record (and any added later): SchemaError naming
        the field for NaN, an infinity or an absurd magnitude."""
        if info.context == RECORDED:
            return self
        for name, value in self.__dict__.items():
            values = value if isinstance(value, list) else [value]
            for each in values:
                if isinstance(each, float) and (why := number_problem(each)) is not None:
                    raise SchemaError(f"{type(self).__name__}.{name}: {why}")
        return self


class Payload(AvroRecord):
    """Base of every payload record; `event_type` is its snake_case name."""

    event_type: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.event_type = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()


class Source(AvroRecord):
    """Who wrote the event."""

    service: str
    agent: str | None = None
    version: str | None = None


class ConversationStarted(Payload):
    """A conversation began on some channel."""

    channel: str
    user_id: str | None = None
    title: str | None = None
    metadata_json: str | None = Field(default=None, description="free-form JSON object")


# The `metadata_json` key under which a re-run (`agentlog replay rerun`) records where it
# came from ({of, topic, partition, first_offset, last_offset, mode, fork_at_offset}):
# what marks a conversation as a re-run, so comparisons and exports can tell.
RERUN_METADATA_KEY = "rerun"


class ConversationEnded(Payload):
    outcome: str = Field(description="resolved, abandoned, escalated, failed, ...")
    reason: str | None = None


class SystemPrompt(Payload):
    agent: str
    content: str
    prompt_version: str | None = None


class ToolDeclaration(AvroRecord):
    name: str
    description: str
    parameters_json: str = Field(description="JSON schema of the tool's parameters")


class ToolsDeclared(Payload):
    agent: str
    tools: list[ToolDeclaration]


class UserMessage(Payload):
    text: str
    user_id: str | None = None


class AgentMessage(Payload):
    agent: str
    text: str


class LlmCall(Payload):
    """One model invocation (OpenTelemetry GenAI: gen_ai.* attributes).

    Since schema v4 the call is recorded whole: the request and the response as the
    structured messages of the OpenTelemetry GenAI conventions (JSON text in the
    `*_json` fields; see docs/llm-calls.md for the shapes and the version followed).
    Records written before v4 carry only `input_json` and `output_text`;
    `agentlog.llm_calls.structured_call` reads either into one shape."""

    agent: str
    provider: str
    request_model: str
    response_model: str | None = None
    input_json: str = Field(
        default="null",
        description="the messages sent as the caller gave them, as JSON text (before v4 the "
        "only record of the request; null when input_messages_json holds it)",
    )
    output_text: str = Field(default="", description="the text of the answer")
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float
    finish_reason: str | None = None
    operation: str = Field(
        default="chat", description="gen_ai.operation.name: chat, text_completion, ..."
    )
    input_messages_json: str | None = Field(
        default=None, description="gen_ai.input.messages: OTel GenAI InputMessages, JSON text"
    )
    system_instructions_json: str | None = Field(
        default=None,
        description="gen_ai.system_instructions: OTel GenAI SystemInstructions, JSON text",
    )
    tool_definitions_json: str | None = Field(
        default=None, description="gen_ai.tool.definitions: the tools offered, JSON text"
    )
    output_messages_json: str | None = Field(
        default=None, description="gen_ai.output.messages: OTel GenAI OutputMessages, JSON text"
    )
    request_parameters_json: str | None = Field(
        default=None,
        description="sampling and request parameters (temperature, max_tokens, tool_choice, "
        "response_format, ...), JSON object text",
    )
    response_id: str | None = Field(default=None, description="gen_ai.response.id")
    finish_reasons: list[str] = Field(
        default=[], description="gen_ai.response.finish_reasons, one per output message"
    )
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    time_to_first_token_ms: float | None = Field(
        default=None, description="streamed calls: from the request to the first chunk"
    )
    streamed: bool = False
    provider_response_json: str | None = Field(
        default=None,
        description="the provider's response body as JSON text (a stream's assembled whole)",
    )


class LlmCallFailed(Payload):
    """A model invocation that got no answer: rate limited, timed out, refused (v4)."""

    agent: str
    provider: str
    request_model: str
    error_type: str = Field(description="e.g. RateLimitError, APITimeoutError, BadRequestError")
    error_message: str
    latency_ms: float
    status_code: int | None = Field(default=None, description="the provider's HTTP status")
    operation: str = "chat"
    input_messages_json: str | None = None
    system_instructions_json: str | None = None
    tool_definitions_json: str | None = None
    request_parameters_json: str | None = None


class ToolCallRequested(Payload):
    tool_call_id: str
    tool_name: str
    arguments_json: str
    agent: str | None = None
    attempt: int = 1


class ToolCallCompleted(Payload):
    tool_call_id: str
    tool_name: str
    result_json: str
    duration_ms: float
    attempt: int = 1


class ToolCallFailed(Payload):
    tool_call_id: str
    tool_name: str
    error_type: str
    error_message: str
    duration_ms: float
    attempt: int = 1
    retryable: bool = False


class IntentIdentified(Payload):
    agent: str
    intent: str
    confidence: float


class Handoff(Payload):
    from_agent: str
    to_agent: str
    reason: str | None = None


class Escalation(Payload):
    agent: str
    reason: str
    target: str = Field(default="human", description="who takes over: human, supervisor, ...")


class SagaStepStarted(Payload):
    """A saga's coordinator began a step's action (again, after a restart: `attempt` 2...)."""

    saga_id: str
    step: str
    input_json: str | None = None
    attempt: int = 1
    timeout_ms: float | None = Field(
        default=None, description="how long the action may take before the saga compensates"
    )


class SagaStepCompleted(Payload):
    saga_id: str
    step: str
    output_json: str | None = None


class SagaStepCompensated(Payload):
    saga_id: str
    step: str
    reason: str


class SagaStarted(Payload):
    """A coordinator began a saga: a named multi-agent task of ordered steps."""

    saga_id: str
    saga: str = Field(description="the saga's name (what kind of task)")
    steps: list[str] = Field(description="the step names, in the order they run")
    input_json: str | None = None


class SagaStepFailed(Payload):
    """A step's action failed or timed out (the saga compensates), or one attempt at its
    compensation failed (retried up to a bound, then the saga ends compensation_failed)."""

    saga_id: str
    step: str
    error_type: str
    error_message: str
    timed_out: bool = False
    phase: str = Field(default="action", description="action or compensation")
    attempt: int = 1


class SagaEnded(Payload):
    """A saga is over; nothing of it runs again."""

    saga_id: str
    outcome: str = Field(description="completed, compensated or compensation_failed")
    reason: str | None = None


# Written out (not built from a tuple) so type checkers know every member; the order is
# the Avro union's branch order, which the schema fingerprint depends on.
AnyPayload = Annotated[
    ConversationStarted
    | ConversationEnded
    | SystemPrompt
    | ToolsDeclared
    | UserMessage
    | AgentMessage
    | LlmCall
    | ToolCallRequested
    | ToolCallCompleted
    | ToolCallFailed
    | IntentIdentified
    | Handoff
    | Escalation
    | SagaStepStarted
    | SagaStepCompleted
    | SagaStepCompensated
    | SagaStarted
    | SagaStepFailed
    | SagaEnded
    | LlmCallFailed,
    Field(union_mode="left_to_right"),
]
PAYLOAD_TYPES: tuple[type[Payload], ...] = get_args(get_args(AnyPayload)[0])
# Payload records added after schema v2 introduced the claim check: on the wire they come
# after it, so that every earlier record keeps its union branch number.
PAYLOAD_TYPES_AFTER_CLAIM_CHECK: tuple[type[Payload], ...] = (
    SagaStarted,
    SagaStepFailed,
    SagaEnded,
    LlmCallFailed,
)


class ClaimCheck(AvroRecord):
    """Stands in on Kafka for an event too large for a record: the encoded event is in the
    claim-check store, and readers fetch it, verify it and decode it in place of this."""

    reference: str = Field(description="where the encoded event is kept (a file: URI)")
    size: int = Field(description="bytes of the encoded event")
    sha256: str = Field(description="SHA-256 of the encoded event, hex")
    payload_type: str = Field(description="Avro name of the payload the event carries")


# The payload union on the wire: the event types of schema v1, the claim check (v2), then
# the event types added since (v3: the saga's start, failures and end; v4: the failed
# LLM call), so that a branch number never changes meaning. Readers never return a
# ClaimCheck: they resolve it.
WIRE_PAYLOAD_TYPES: tuple[type[AvroRecord], ...] = (
    *(p for p in PAYLOAD_TYPES if p not in PAYLOAD_TYPES_AFTER_CLAIM_CHECK),
    ClaimCheck,
    *PAYLOAD_TYPES_AFTER_CLAIM_CHECK,
)
CLAIM_CHECK_RECORD_NAME = f"{AVRO_NAMESPACE}.ClaimCheck"

PAYLOAD_BY_EVENT_TYPE: dict[str, type[Payload]] = {p.event_type: p for p in PAYLOAD_TYPES}
PAYLOAD_BY_RECORD_NAME: dict[str, type[Payload]] = {
    f"{AVRO_NAMESPACE}.{p.__name__}": p for p in PAYLOAD_TYPES
}
EVENT_TYPES: tuple[str, ...] = tuple(PAYLOAD_BY_EVENT_TYPE)


class Event(AvroRecord):
    """The envelope every record on `agentlog.events` carries."""

    event_id: str = Field(description="uuid, unique per event; consumers dedup on it")
    conversation_id: str
    occurred_at: datetime = Field(description="UTC; also the Kafka record timestamp")
    source: Source
    trace_id: str | None = Field(default=None, description="OpenTelemetry trace id (hex)")
    span_id: str | None = Field(default=None, description="OpenTelemetry span id (hex)")
    causation_id: str | None = Field(default=None, description="event_id this one answers")
    payload: AnyPayload

    @property
    def event_type(self) -> str:
        return self.payload.event_type


EVENT_TYPE_BY_RECORD_NAME: dict[str, str] = {
    name: payload.event_type for name, payload in PAYLOAD_BY_RECORD_NAME.items()
}
