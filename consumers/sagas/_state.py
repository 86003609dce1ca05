"""Where a saga is, from its recorded events alone: the one fold of saga events
(`saga_states`) and the coordinator's decision of what to do next (`next_move`), both
free of Kafka, clocks and side effects."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentlog.consumers.sagas._steps import ACTION, COMPENSATION, Saga, loaded
from agentlog.errors import ConfigurationError
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

# How a saga ends (saga_ended.outcome).
COMPLETED = "completed"
COMPENSATED = "compensated"
COMPENSATION_FAILED = "compensation_failed"
SAGA_PAYLOADS: dict[str, type[Payload]] = {
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
SAGA_EVENT_TYPES: tuple[str, ...] = tuple(p.event_type for p in SAGA_PAYLOADS.values())


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
    # Runs of the same saga id that ended before this one started (an agent retried or
    # redriven runs its saga again).
    earlier_runs: list[SagaState] = field(default_factory=list)

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
        runs = ""
        if self.earlier_runs:
            ended = ", ".join(f"ended {run.outcome}" for run in self.earlier_runs)
            earlier = "the earlier run" if len(self.earlier_runs) == 1 else "earlier runs"
            runs = f" (run {len(self.earlier_runs) + 1}; {earlier} {ended})"
        return f"saga {self.saga_id}{name} {where}{reason}; steps: {steps or '-'}{runs}"

    def step(self, name: str) -> StepState:
        if name not in self.step_states:
            self.step_states[name] = StepState(name)
        return self.step_states[name]

    def input(self) -> Any:
        """The saga's input, as recorded in saga_started (JSON values; None if none)."""
        return loaded(self.input_json)

    def outputs(self) -> dict[str, Any]:
        """The completed steps' outputs, as recorded, by step."""
        return {s.name: loaded(s.output_json) for s in self.step_states.values() if s.completed}

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
        elif event.event_type == "saga_started" and state.outcome is not None:
            earlier = [*state.earlier_runs, state]
            state = states[event.saga_id] = SagaState(event.saga_id, earlier_runs=earlier)
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
