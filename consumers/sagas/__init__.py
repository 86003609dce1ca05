"""Sagas: a named multi-agent task of ordered steps, each with an action, a compensation
and a timeout, coordinated on the audit log and resumable from it (`SagaCoordinator`).
The fold of saga events (`saga_states`, `next_move`) is what replay and `agentlog
sagas` read."""

from agentlog.consumers.sagas._coordinator import SagaCoordinator, SagaRecorder, SagaResult
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
    "SagaCoordinator",
    "SagaEvent",
    "SagaHistory",
    "SagaRecorder",
    "SagaResult",
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
