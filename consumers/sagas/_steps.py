"""What a saga is made of: steps, each with an action, a compensation and a timeout,
and the context each action is given (`agentlog.runtime.SagaCoordinator` runs them)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from agentlog.errors import ConfigurationError, ToolError

# What a step's run is for (saga_step_failed.phase, StepContext.phase).
ACTION = "action"
COMPENSATION = "compensation"


@dataclass(frozen=True)
class ToolEnding:
    """How a tool call of a saga ended, as the log recorded it first."""

    tool_call_id: str
    tool_name: str
    completed: bool
    result_json: str | None = None
    error_type: str = ""
    error_message: str = ""
    attempt: int = 1
    retryable: bool = False

    def outcome(self) -> Any:
        """The call's result, or its ToolError, as an awaited call would give them."""
        if self.completed:
            return loaded(self.result_json)
        raise ToolError(
            tool_call_id=self.tool_call_id,
            tool_name=self.tool_name,
            error_type=self.error_type,
            error_message=self.error_message,
            attempt=self.attempt,
            retryable=self.retryable,
        )


@dataclass(frozen=True)
class StepContext:
    """What a step's action (or compensation) is given."""

    conversation_id: str
    saga_id: str
    step: str
    phase: str  # "action" or "compensation"
    attempt: int
    input: Any  # the saga's input, as recorded in saga_started (JSON values)
    outputs: Mapping[str, Any]  # the outputs of the steps completed so far, as recorded
    deadline: float  # time.time() by which it should be done
    # The saga's tool calls that had ended in the log when this coordinator started, by
    # call id: a step re-run after a restart takes its call's recorded ending from here.
    tool_endings: Mapping[str, ToolEnding] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        """The same for every attempt of this step's action (or of its compensation)."""
        key = f"{self.saga_id}/{self.step}"
        return key if self.phase == ACTION else f"{key}/{COMPENSATION}"

    @property
    def output(self) -> Any:
        """This step's recorded output (what a compensation undoes); None before it."""
        return self.outputs.get(self.step)

    def remaining(self) -> float:
        """Seconds left before the timeout (0 once it passed)."""
        return max(0.0, self.deadline - time.time())


Action = Callable[[StepContext], Any]


@dataclass(frozen=True)
class Step:
    """One step: `action(context)` returns its output (JSON-able; recorded) or raises;
    `compensation(context)` undoes a completed action (None: nothing to undo). Either
    may be an `async def`. `timeout` (seconds) bounds the action, and each attempt at the
    compensation unless `compensation_timeout` says otherwise."""

    name: str
    action: Action
    compensation: Action | None = None
    timeout: float = 30.0
    compensation_timeout: float | None = None
    compensation_attempts: int = 3

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ConfigurationError(f"a step needs a name without '/', got {self.name!r}")
        if self.timeout <= 0 or (self.compensation_timeout or 1) <= 0:
            raise ConfigurationError(f"step {self.name}: timeouts must be positive seconds")
        if self.compensation_attempts < 1:
            raise ConfigurationError(f"step {self.name}: compensation_attempts must be >= 1")


@dataclass(frozen=True)
class Saga:
    """A named multi-agent task: `steps` run in order."""

    name: str
    steps: Sequence[Step]

    def __post_init__(self) -> None:
        names = [s.name for s in self.steps]
        if not names:
            raise ConfigurationError(f"saga {self.name} has no steps")
        if len(set(names)) != len(names):
            raise ConfigurationError(f"saga {self.name} names a step twice: {names}")

    @property
    def step_names(self) -> list[str]:
        return [s.name for s in self.steps]


class PendingResult(Protocol):
    def result(self, timeout: float | None = ...) -> Any: ...


class ToolRequester(Protocol):
    """What a tool step needs of a tool client (`agentlog.producers.ToolClient` is one)."""

    def request(
        self,
        conversation_id: str,
        tool_name: str,
        arguments: Any = ...,
        *,
        tool_call_id: str | None = ...,
    ) -> PendingResult: ...


def tool_action(
    tools: ToolRequester,
    tool_name: str,
    arguments: Callable[[StepContext], Any] | Mapping[str, Any] | None = None,
) -> Action:
    """A step action (or compensation) that asks the tool workers for `tool_name` and
    waits for its result until the step's timeout. The call's id is the step's
    idempotency key. A step re-run after a restart whose call had already ended in the
    log takes that ending (result or ToolError) without asking again; one whose call had
    not ended asks for the same call id again, so the tool (which receives the call id)
    can make its side effect once. `arguments`: the tool's
    keyword arguments, or a function of the step's context that returns them."""

    def act(context: StepContext) -> Any:
        call_id = context.idempotency_key
        ended = context.tool_endings.get(call_id)
        if ended is not None:  # a run before a restart got this far: not again
            return ended.outcome()
        given = arguments(context) if callable(arguments) else arguments
        call = tools.request(context.conversation_id, tool_name, given, tool_call_id=call_id)
        return call.result(timeout=max(0.001, context.remaining()))

    return act


def loaded(text: str | None) -> Any:
    """A recorded JSON text as the values it holds (None stays None)."""
    return None if text is None else orjson.loads(text)
