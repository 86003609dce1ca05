"""Sagas: a named multi-agent task of ordered steps, each with an action, a compensation
and a timeout. This part holds what a saga is made of (`Saga`, `Step`, `tool_action`)
and the fold of its recorded events (`saga_states`, `next_move`), which replay and
`agentlog sagas` read. The coordinator that runs a saga records as well as reads, so it
lives in the composition layer: `agentlog.runtime.SagaCoordinator`.

The parts: `_steps` (what a saga is made of, tool calls as steps), `_state` (the fold of
saga events and `next_move`), `_log` (reading a saga's history)."""

from agentlog.consumers.sagas._log import SagaHistory, read_saga_events, read_saga_history
from agentlog.consumers.sagas._state import (
    COMPENSATED,
    COMPENSATION_FAILED,
    COMPLETED,
    SAGA_EVENT_TYPES,
    Begin,
    Compensate,
    End,
    Finished,
    Move,
    RunStep,
    SagaEvent,
    SagaState,
    StepState,
    TimedOut,
    next_move,
    saga_states,
)
from agentlog.consumers.sagas._steps import (
    ACTION,
    COMPENSATION,
    Saga,
    Step,
    StepContext,
    ToolEnding,
    ToolRequester,
    tool_action,
)

__all__ = [
    "ACTION",
    "COMPENSATED",
    "COMPENSATION",
    "COMPENSATION_FAILED",
    "COMPLETED",
    "SAGA_EVENT_TYPES",
    "Begin",
    "Compensate",
    "End",
    "Finished",
    "Move",
    "RunStep",
    "Saga",
    "SagaEvent",
    "SagaHistory",
    "SagaState",
    "Step",
    "StepContext",
    "StepState",
    "TimedOut",
    "ToolEnding",
    "ToolRequester",
    "next_move",
    "read_saga_events",
    "read_saga_history",
    "saga_states",
    "tool_action",
]
