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

The parts: `saga_steps` (what a saga is made of, tool calls as steps), `saga_state` (the
fold of saga events and `next_move`), `saga_log` (reading a saga's history), and this
module (the coordinator, and the names users import).
"""

from agentlog.consumers._sagas import (
    ACTION,
    COMPENSATED,
    COMPENSATION,
    COMPENSATION_FAILED,
    COMPLETED,
    SAGA_EVENT_TYPES,
    Saga,
    SagaCoordinator,
    SagaEvent,
    SagaHistory,
    SagaRecorder,
    SagaResult,
    SagaState,
    Step,
    StepContext,
    StepState,
    ToolEnding,
    ToolRequester,
    next_move,
    read_saga_events,
    read_saga_history,
    saga_states,
    tool_action,
)

__all__ = [
    "ACTION",
    "COMPENSATED",
    "COMPENSATION",
    "COMPENSATION_FAILED",
    "COMPLETED",
    "SAGA_EVENT_TYPES",
    "Saga",
    "SagaCoordinator",
    "SagaEvent",
    "SagaHistory",
    "SagaRecorder",
    "SagaResult",
    "SagaState",
    "Step",
    "StepContext",
    "StepState",
    "ToolEnding",
    "ToolRequester",
    "next_move",
    "read_saga_events",
    "read_saga_history",
    "saga_states",
    "tool_action",
]
