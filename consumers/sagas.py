"""Sagas: a named multi-agent task of ordered steps, each with an action, a compensation
and a timeout, coordinated on the audit log and resumable from it.

    saga = Saga("refund", [
        Step("reserve", reserve_refund, compensation=release_refund, timeout=10),
        Step("charge_back", charge_back, compensation=reverse_charge_back, timeout=30),
        Step("notify", notify_customer, timeout=5),
    ])
    with Recorder(service="billing") as recorder:
        result = SagaCoordinator(recorder).run(
            saga, conversation_id="conv-42", saga_id="refund-INV-7", input={"invoice": "INV-7"}
        )
    result.outcome  # completed, compensated or compensation_failed

The coordinator records every move in the saga's conversation on the events topic, and
has Kafka acknowledge each one (the recorder's flush) before it makes the next, so the
log always knows at least what the coordinator did:

    saga_started           the saga's name, its steps and its input
    saga_step_started      before a step's action runs (attempt 2, 3... when re-run)
    saga_step_completed    the action returned; its output, as JSON
    saga_step_failed       the action raised or ran past its timeout (phase `action`), or
                           one attempt at a compensation failed (phase `compensation`)
    saga_step_compensated  a completed step was undone
    saga_ended             completed, compensated or compensation_failed

A failed or timed-out step compensates the completed steps in reverse order. A
compensation that fails is retried (`Step.compensation_attempts`, with a growing pause),
each failed attempt recorded; one that never succeeds is skipped after its last attempt
(the earlier steps are still compensated) and the saga ends `compensation_failed`,
naming it.

**Resume from the log, not memory.** `run` first reads the saga's events from the log
(the conversation's partition, which the partitioner names, up to the partition's end as
the fetch reports it) and decides every move from what is recorded there (`next_move`, a
pure function of the recorded events). A coordinator killed mid-saga and started again
with the same saga, conversation and saga id therefore goes on where the log says:
completed steps do not run again; a step started but not completed runs again (attempt
n + 1), or counts as timed out, and the saga compensates, if its timeout (counted from
its last recorded start) passed meanwhile; compensation goes on with the steps not yet
compensated. A saga whose end is recorded runs nothing and returns that end.

**Idempotency keys.** A step may run again after a restart, so each action gets
`StepContext.idempotency_key` = `"{saga_id}/{step}"` (the same for every attempt), and
each compensation `"{saga_id}/{step}/compensation"`: pass it to whatever has the side
effect (a payment API's idempotency key, a tool call's id: `tool_action` does) so the
effect happens once. A step whose action ran past its timeout may still be running (a
thread cannot be stopped); honour `StepContext.remaining()` in long actions.

One coordinator at a time per saga: two running the same saga id would both act.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as wait_for_future
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from agentlog.connection import resolved
from agentlog.errors import ConfigurationError, DecodeError, ToolError
from agentlog.events import (
    AVRO_NAMESPACE,
    Payload,
    SagaEnded,
    SagaStarted,
    SagaStepCompensated,
    SagaStepCompleted,
    SagaStepFailed,
    SagaStepStarted,
)
from agentlog.partitioner import partition_for
from agentlog.reader import partition_offset, read_partitions
from agentlog.serde import decode
from agentlog.settings import Settings
from agentlog.tool_protocol import json_text
from agentlog.topics import partition_count

__all__ = [
    "COMPENSATED",
    "COMPENSATION_FAILED",
    "COMPLETED",
    "Saga",
    "SAGA_EVENT_TYPES",
    "SagaCoordinator",
    "SagaEvent",
    "SagaHistory",
    "SagaResult",
    "SagaState",
    "Step",
    "StepContext",
    "ToolEnding",
    "next_move",
    "read_saga_events",
    "read_saga_history",
    "saga_states",
    "tool_action",
]

log = logging.getLogger(__name__)

# How a saga ends (saga_ended.outcome).
COMPLETED = "completed"
COMPENSATED = "compensated"
COMPENSATION_FAILED = "compensation_failed"
# saga_step_failed.phase
ACTION = "action"
COMPENSATION = "compensation"

_SAGA_PAYLOADS: dict[str, type[Payload]] = {
    f"{AVRO_NAMESPACE}.{p.__name__}": p
    for p in (
        SagaStarted,
        SagaStepStarted,
        SagaStepCompleted,
        SagaStepFailed,
        SagaStepCompensated,
        SagaEnded,
    )
}
SAGA_EVENT_TYPES: tuple[str, ...] = tuple(p.event_type for p in _SAGA_PAYLOADS.values())


# -- the definition ---------------------------------------------------------------------


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


# -- the recorded events and their fold -------------------------------------------------


@dataclass(frozen=True)
class SagaEvent:
    """A saga event as the log holds it."""

    event_type: str
    payload: Mapping[str, Any]
    occurred_micros: int
    event_id: str = ""
    offset: int | None = None

    @classmethod
    def of(cls, payload: Payload, occurred_micros: int, event_id: str = "") -> SagaEvent:
        return cls(payload.event_type, payload.model_dump(), occurred_micros, event_id)

    @property
    def saga_id(self) -> str:
        return str(self.payload["saga_id"])


@dataclass
class StepState:
    """What the log says of one step."""

    name: str
    attempts: int = 0  # actions started
    last_started_micros: int | None = None
    timeout_ms: float | None = None
    completed: bool = False
    output_json: str | None = None
    failure: str | None = None  # why the action failed or timed out
    compensated: bool = False
    compensation_failures: int = 0
    last_compensation_error: str | None = None

    @property
    def status(self) -> str:
        """In a word or three: not run, running, completed, failed, timed out,
        compensated, or how many compensation attempts failed."""
        if self.compensated:
            return "compensated"
        if self.compensation_failures:
            return f"compensation failed x{self.compensation_failures}"
        if self.completed:
            return "completed"
        if self.failure is not None:
            return "timed out" if self.failure.startswith("timed out") else "failed"
        if self.attempts:
            return "running" + (f" (attempt {self.attempts})" if self.attempts > 1 else "")
        return "not run"


@dataclass
class SagaState:
    """One saga folded from its recorded events (`saga_states`)."""

    saga_id: str
    name: str | None = None
    steps: list[str] = field(default_factory=list)
    input_json: str | None = None
    step_states: dict[str, StepState] = field(default_factory=dict)
    failed_step: str | None = None  # the step whose failure started the compensation
    outcome: str | None = None
    reason: str | None = None
    events: int = 0

    @property
    def status(self) -> str:
        """not started, running, compensating or ended."""
        if self.outcome is not None:
            return "ended"
        if self.failed_step is not None:
            return "compensating"
        return "running" if self.name is not None else "not started"

    def summary(self) -> str:
        """One line: the saga, where it is, and each step's status."""
        name = f" ({self.name})" if self.name else ""
        where = self.status if self.outcome is None else f"ended {self.outcome}"
        reason = f": {self.reason}" if self.reason else ""
        steps = ", ".join(f"{s.name} {s.status}" for s in self.step_states.values())
        return f"saga {self.saga_id}{name} {where}{reason}; steps: {steps or '-'}"

    def step(self, name: str) -> StepState:
        if name not in self.step_states:
            self.step_states[name] = StepState(name)
        return self.step_states[name]

    def outputs(self) -> dict[str, Any]:
        return {s.name: _loaded(s.output_json) for s in self.step_states.values() if s.completed}

    def apply(self, event: SagaEvent) -> None:
        b = event.payload
        kind = event.event_type
        self.events += 1
        if kind == "saga_started":
            self.name, self.steps, self.input_json = b["saga"], list(b["steps"]), b["input_json"]
            for name in self.steps:
                self.step(name)
        elif kind == "saga_ended":
            self.outcome, self.reason = b["outcome"], b.get("reason")
        elif kind == "saga_step_started":
            step = self.step(b["step"])
            step.attempts = max(step.attempts + 1, b.get("attempt") or 1)
            step.last_started_micros = event.occurred_micros
            step.timeout_ms = b.get("timeout_ms")
        elif kind == "saga_step_completed":
            step = self.step(b["step"])
            step.completed, step.output_json = True, b.get("output_json")
        elif kind == "saga_step_compensated":
            self.step(b["step"]).compensated = True
        elif kind == "saga_step_failed":
            step = self.step(b["step"])
            error = f"{b['error_type']}: {b['error_message']}"
            if b.get("phase", ACTION) == COMPENSATION:
                step.compensation_failures += 1
                step.last_compensation_error = error
            else:
                step.failure = ("timed out: " if b.get("timed_out") else "") + error
                if self.failed_step is None:
                    self.failed_step = step.name


def saga_states(events: Iterable[SagaEvent]) -> dict[str, SagaState]:
    """The state of every saga among `events` (in log order), by saga id, in the order
    they first appear. The one fold of saga events: the coordinator decides from it, and
    `agentlog sagas show` prints it."""
    states: dict[str, SagaState] = {}
    for event in events:
        state = states.get(event.saga_id)
        if state is None:
            state = states[event.saga_id] = SagaState(event.saga_id)
        state.apply(event)
    return states


# -- what next ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Begin:
    """Record saga_started."""


@dataclass(frozen=True)
class RunStep:
    step: str
    attempt: int


@dataclass(frozen=True)
class TimedOut:
    """A step started and never ended, and its timeout has passed: record it failed."""

    step: str
    attempt: int
    timeout_ms: float


@dataclass(frozen=True)
class Compensate:
    step: str
    attempt: int


@dataclass(frozen=True)
class End:
    """Record saga_ended."""

    outcome: str
    reason: str | None


@dataclass(frozen=True)
class Finished:
    """The saga's end is recorded: nothing to do."""

    outcome: str
    reason: str | None


Move = Begin | RunStep | TimedOut | Compensate | End | Finished


def next_move(saga: Saga, state: SagaState, now_micros: int) -> Move:
    """What the coordinator does next, given only what the log recorded of the saga."""
    if state.outcome is not None:
        return Finished(state.outcome, state.reason)
    if state.name is None:
        return Begin()
    if state.steps != saga.step_names:
        raise ConfigurationError(
            f"saga {state.saga_id} was recorded with the steps {state.steps}, but this "
            f"definition of {saga.name!r} has {saga.step_names}: resume it with the "
            "definition it started with"
        )
    if state.failed_step is None:
        for step in saga.steps:
            recorded = state.step(step.name)
            if recorded.completed:
                continue
            if recorded.attempts == 0:
                return RunStep(step.name, 1)
            # Started, and no ending recorded: the coordinator stopped while it ran.
            timeout_ms = recorded.timeout_ms or step.timeout * 1000
            started = recorded.last_started_micros or 0
            if now_micros >= started + timeout_ms * 1000:
                return TimedOut(step.name, recorded.attempts, timeout_ms)
            return RunStep(step.name, recorded.attempts + 1)
        return End(COMPLETED, None)
    given_up = []
    for step in reversed(saga.steps):
        recorded = state.step(step.name)
        if not recorded.completed or recorded.compensated or step.compensation is None:
            continue
        if recorded.compensation_failures >= step.compensation_attempts:
            given_up.append(recorded)
            continue
        return Compensate(step.name, recorded.compensation_failures + 1)
    failed = state.step(state.failed_step)
    why = f"step {failed.name} {failed.failure}"
    if given_up:
        undone = "; ".join(
            f"{s.name} after {s.compensation_failures} attempts ({s.last_compensation_error})"
            for s in given_up
        )
        return End(COMPENSATION_FAILED, f"{why}; could not compensate {undone}")
    return End(COMPENSATED, why)


# -- reading the log ---------------------------------------------------------------------


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
            return _loaded(self.result_json)
        raise ToolError(
            tool_call_id=self.tool_call_id,
            tool_name=self.tool_name,
            error_type=self.error_type,
            error_message=self.error_message,
            attempt=self.attempt,
            retryable=self.retryable,
        )


@dataclass
class SagaHistory:
    """What a conversation's partition holds of a saga: its events in log order, and
    the endings of its tool calls (call ids `SAGA_ID/...`, as `tool_action` names them)."""

    events: list[SagaEvent] = field(default_factory=list)
    tool_endings: dict[str, ToolEnding] = field(default_factory=dict)


def read_saga_events(
    settings: Settings,
    conversation_id: str,
    saga_id: str | None = None,
    *,
    timeout: float = 30.0,
) -> list[SagaEvent]:
    """The saga events of a conversation (of one saga, given its id), in log order, read
    from the conversation's partition to its end. An event id seen twice (a producer's
    retry) counts once."""
    return read_saga_history(settings, conversation_id, saga_id, timeout=timeout).events


def read_saga_history(
    settings: Settings,
    conversation_id: str,
    saga_id: str | None = None,
    *,
    timeout: float = 30.0,
) -> SagaHistory:
    """`read_saga_events`, and (given a saga id) the endings of the saga's tool calls."""
    topic = settings.events_topic
    partition = partition_for(conversation_id, partition_count(settings, topic))
    key = conversation_id.encode()
    calls = None if saga_id is None else f"{saga_id}/"
    seen: set[str] = set()
    history = SagaHistory()
    for message in read_partitions(settings, topic, partitions=[partition], idle_timeout=timeout):
        if message.key() != key:
            continue
        _, offset = partition_offset(message)
        try:
            record = decode(message.value(), topic=topic, partition=partition, offset=offset)
        except DecodeError as exc:
            # Not an agentlog event (the dead-letter tools show it); a saga event is not.
            log.warning("saga history: skipping %s", exc)
            continue
        name, body = record["payload"]
        if record["event_id"] in seen or record["conversation_id"] != conversation_id:
            continue
        seen.add(record["event_id"])
        if name in _TOOL_ENDINGS:
            call_id = body["tool_call_id"]
            if calls and call_id.startswith(calls) and call_id not in history.tool_endings:
                history.tool_endings[call_id] = _tool_ending(name, body)
            continue
        if name not in _SAGA_PAYLOADS or (saga_id is not None and body["saga_id"] != saga_id):
            continue
        event_type = _SAGA_PAYLOADS[name].event_type
        history.events.append(
            SagaEvent(event_type, body, record["occurred_at"], record["event_id"], offset)
        )
    return history


_TOOL_ENDINGS = ("agentlog.ToolCallCompleted", "agentlog.ToolCallFailed")


def _tool_ending(name: str, body: Mapping[str, Any]) -> ToolEnding:
    if name == "agentlog.ToolCallCompleted":
        return ToolEnding(body["tool_call_id"], body["tool_name"], True, body["result_json"])
    return ToolEnding(
        body["tool_call_id"],
        body["tool_name"],
        False,
        error_type=body["error_type"],
        error_message=body["error_message"],
        attempt=body["attempt"],
        retryable=body["retryable"],
    )


# -- the coordinator ---------------------------------------------------------------------


class SagaRecorder(Protocol):
    """What the coordinator needs of a recorder (`agentlog.Recorder` is one)."""

    def record(
        self, conversation_id: str, payload: Payload, *, causation_id: str | None = ...
    ) -> str: ...

    def flush(self, timeout: float | None = ...) -> None: ...


@dataclass(frozen=True)
class SagaResult:
    """How a saga ended, as recorded."""

    saga_id: str
    outcome: str
    reason: str | None
    outputs: dict[str, Any]  # the completed steps' outputs
    compensated: list[str]  # the steps undone, in the order they were
    resumed: bool  # the log held events of this saga before this run

    @property
    def completed(self) -> bool:
        return self.outcome == COMPLETED


class _StepTimedOut(Exception):
    pass


class SagaCoordinator:
    """Runs sagas, recording each move through `recorder` (it must acknowledge on
    `flush`, as `agentlog.Recorder` does) and resuming from what the events topic of
    `settings` (default: the environment's, or the dev broker) holds; give the recorder
    the same. `retry_backoff`: the pause after the first failed compensation attempt
    (doubled after each further one); `read_timeout` bounds the read of the log."""

    def __init__(
        self,
        recorder: SagaRecorder,
        settings: Settings | None = None,
        *,
        retry_backoff: float = 0.2,
        read_timeout: float = 30.0,
        flush_timeout: float = 30.0,
    ) -> None:
        self.settings = resolved(settings or Settings())
        self.recorder = recorder
        self.retry_backoff = retry_backoff
        self.read_timeout = read_timeout
        self.flush_timeout = flush_timeout

    def run(
        self, saga: Saga, *, conversation_id: str, saga_id: str, input: Any = None
    ) -> SagaResult:
        """Run (or resume, or just report) the saga `saga_id` of `conversation_id` until
        it ends. `input` is recorded when the saga starts; a resumed saga uses the
        recorded one. Errors from recording (DeliveryFailed, BrokerUnavailable) stop
        the run; run it again to resume."""
        if not saga_id or "/" in saga_id:
            raise ConfigurationError(f"a saga id needs a value without '/', got {saga_id!r}")
        history = read_saga_history(
            self.settings, conversation_id, saga_id, timeout=self.read_timeout
        )
        run = _Run(self, saga, conversation_id, saga_id, history)
        return run.until_ended(input)


class _Run:
    """One coordinator's run of one saga: the recorded events so far, and the moves."""

    def __init__(
        self,
        coordinator: SagaCoordinator,
        saga: Saga,
        conversation_id: str,
        saga_id: str,
        history: SagaHistory,
    ) -> None:
        self.c = coordinator
        self.saga = saga
        self.conversation_id = conversation_id
        self.saga_id = saga_id
        self.resumed = bool(history.events)
        self.events = list(history.events)
        self.tool_endings = history.tool_endings
        self.last_event_id: str | None = self.events[-1].event_id if self.events else None
        self.steps = {s.name: s for s in saga.steps}

    def state(self) -> SagaState:
        return saga_states(self.events).get(self.saga_id) or SagaState(self.saga_id)

    def until_ended(self, input: Any) -> SagaResult:
        while True:
            state = self.state()
            move = next_move(self.saga, state, _now_micros())
            if isinstance(move, Finished):
                return self._result(state)
            if isinstance(move, Begin):
                self._record(
                    SagaStarted(
                        saga_id=self.saga_id,
                        saga=self.saga.name,
                        steps=self.saga.step_names,
                        input_json=None if input is None else json_text(input),
                    )
                )
            elif isinstance(move, RunStep):
                self._run_step(move, state)
            elif isinstance(move, TimedOut):
                self._record(
                    SagaStepFailed(
                        saga_id=self.saga_id,
                        step=move.step,
                        error_type="TimeoutError",
                        error_message=f"no ending recorded within {move.timeout_ms / 1000:g} s "
                        "(the coordinator stopped while the step ran)",
                        timed_out=True,
                        attempt=move.attempt,
                    )
                )
            elif isinstance(move, Compensate):
                self._compensate(move, state)
            else:
                self._record(
                    SagaEnded(saga_id=self.saga_id, outcome=move.outcome, reason=move.reason)
                )
                if move.outcome == COMPENSATION_FAILED:
                    log.error("saga %s ended %s: %s", self.saga_id, move.outcome, move.reason)

    def _run_step(self, move: RunStep, state: SagaState) -> None:
        step = self.steps[move.step]
        self._record(
            SagaStepStarted(
                saga_id=self.saga_id,
                step=step.name,
                attempt=move.attempt,
                timeout_ms=step.timeout * 1000,
            )
        )
        context = self._context(state, step.name, ACTION, move.attempt, step.timeout)
        try:
            output = _bounded(step.action, context, step.timeout)
        except Exception as exc:
            self._record(_failed(self.saga_id, step.name, exc, ACTION, move.attempt))
            return
        self._record(
            SagaStepCompleted(
                saga_id=self.saga_id,
                step=step.name,
                output_json=None if output is None else json_text(output),
            )
        )

    def _compensate(self, move: Compensate, state: SagaState) -> None:
        step = self.steps[move.step]
        assert step.compensation is not None  # next_move compensates only such steps
        if move.attempt > 1:
            time.sleep(min(30.0, self.c.retry_backoff * 2 ** (move.attempt - 2)))
        timeout = step.compensation_timeout or step.timeout
        context = self._context(state, step.name, COMPENSATION, move.attempt, timeout)
        try:
            _bounded(step.compensation, context, timeout)
        except Exception as exc:
            self._record(_failed(self.saga_id, step.name, exc, COMPENSATION, move.attempt))
            return
        failed = state.step(state.failed_step or "")
        self._record(
            SagaStepCompensated(
                saga_id=self.saga_id,
                step=step.name,
                reason=f"step {failed.name} {failed.failure}",
            )
        )

    def _context(
        self, state: SagaState, step: str, phase: str, attempt: int, timeout: float
    ) -> StepContext:
        return StepContext(
            conversation_id=self.conversation_id,
            saga_id=self.saga_id,
            step=step,
            phase=phase,
            attempt=attempt,
            input=_loaded(state.input_json),
            outputs=state.outputs(),
            deadline=time.time() + timeout,
            tool_endings=self.tool_endings,
        )

    def _record(self, payload: Payload) -> None:
        """Record one move and have Kafka acknowledge it before the next."""
        event_id = self.c.recorder.record(
            self.conversation_id, payload, causation_id=self.last_event_id
        )
        self.c.recorder.flush(self.c.flush_timeout)
        self.last_event_id = event_id
        self.events.append(SagaEvent.of(payload, _now_micros(), event_id))

    def _result(self, state: SagaState) -> SagaResult:
        compensated = [
            e.payload["step"] for e in self.events if e.event_type == "saga_step_compensated"
        ]
        return SagaResult(
            saga_id=self.saga_id,
            outcome=state.outcome or "",
            reason=state.reason,
            outputs=state.outputs(),
            compensated=compensated,
            resumed=self.resumed,
        )


def _failed(saga_id: str, step: str, exc: Exception, phase: str, attempt: int) -> SagaStepFailed:
    timed_out = isinstance(exc, _StepTimedOut)
    return SagaStepFailed(
        saga_id=saga_id,
        step=step,
        error_type="TimeoutError" if timed_out else type(exc).__name__,
        error_message=str(exc),
        timed_out=timed_out,
        phase=phase,
        attempt=attempt,
    )


def _bounded(function: Action, context: StepContext, timeout: float) -> Any:
    """`function(context)` in a thread of its own, waited for at most `timeout` seconds
    (a daemon thread: an action that never returns does not keep the process alive)."""
    outcome: Future[Any] = Future()

    def call() -> None:
        try:
            value = function(context)
            if inspect.isawaitable(value):
                value = asyncio.run(_awaited(value))
            outcome.set_result(value)
        except BaseException as exc:  # handed to the coordinator, which records it
            outcome.set_exception(exc)

    threading.Thread(target=call, name=f"agentlog-saga-{context.step}", daemon=True).start()
    done, _ = wait_for_future([outcome], timeout)
    if not done:
        what = "compensation" if context.phase == COMPENSATION else "action"
        raise _StepTimedOut(f"the {what} of step {context.step} took longer than {timeout:g} s")
    return outcome.result()


async def _awaited(value: Awaitable[Any]) -> Any:
    return await value


def _loaded(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _now_micros() -> int:
    return time.time_ns() // 1000


# -- tool calls as steps ---------------------------------------------------------------


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
