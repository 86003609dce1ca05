"""The saga coordinator: runs a saga's steps, recording each move through a recorder
(producers) and resuming from what the log holds (consumers), which is why it lives in the
composition layer. What a saga is made of and the fold of its events stay with the
consumers (`agentlog.consumers.sagas`).

    from agentlog.consumers.sagas import Saga, Step
    from agentlog.producers import Recorder
    from agentlog.runtime import SagaCoordinator

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
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from concurrent.futures import wait as wait_for_future
from dataclasses import dataclass
from typing import Any

from agentlog.connection import resolved
from agentlog.consumers.sagas import (
    ACTION,
    COMPENSATION,
    COMPENSATION_FAILED,
    COMPLETED,
    Begin,
    Compensate,
    Finished,
    RunStep,
    Saga,
    SagaEvent,
    SagaHistory,
    SagaState,
    StepContext,
    TimedOut,
    next_move,
    read_saga_history,
    saga_states,
)
from agentlog.errors import ConfigurationError
from agentlog.events import (
    Payload,
    SagaEnded,
    SagaStarted,
    SagaStepCompensated,
    SagaStepCompleted,
    SagaStepFailed,
    SagaStepStarted,
)
from agentlog.producers import Recorder
from agentlog.settings import Settings
from agentlog.tool_protocol import json_text

log = logging.getLogger(__name__)


# -- the coordinator ---------------------------------------------------------------------


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
    """Runs sagas, recording each move through `recorder` (each flushed, so acknowledged
    by Kafka, before the next move) and resuming from what the events topic of `settings`
    (default: the environment's, or the dev broker) holds; give the recorder the same.
    `retry_backoff`: the pause after the first failed compensation attempt (doubled after
    each further one); `read_timeout` bounds the read of the log, `flush_timeout` each
    acknowledgement."""

    def __init__(
        self,
        recorder: Recorder,
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
            input=state.input(),
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


def _bounded(function: Callable[[StepContext], Any], context: StepContext, timeout: float) -> Any:
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


def _now_micros() -> int:
    return time.time_ns() // 1000
