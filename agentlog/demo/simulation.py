"""A simulated customer-support agent system, recorded through the SDK (`agentlog demo`).

Each conversation is the demo's agent code (`agentlog.demo.agents.support_team`) run
against a `SimulatedSession`: the simulated world (`agentlog.demo.world`, seeded per
conversation) answers its model and tool calls, a tool executor retries transient
failures, and every event the session records is kept with its simulated time. The
conversations' events are then interleaved by time, as they would overlap in
production, and recorded. Everything is seeded, event ids and timestamps included, so a
seed reproduces the same log byte for byte.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agentlog.agent_session import AgentSession, SessionRecording
from agentlog.demo.agents import DEFAULT_POLICY, Policy, support_team
from agentlog.demo.world import World
from agentlog.errors import ToolError
from agentlog.producers import Recorder
from agentlog.serde import micros_of

SIMULATION_START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TOOL_ATTEMPTS = 3  # the executor's: a call fails for good after this many


@dataclass(frozen=True)
class _Step:
    """A recorder call to make at `at` (simulated micros). `remember` names the event
    id it returns; `cause`, an earlier one to record as its causation id."""

    at: int
    method: str
    conversation_id: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    remember: str | None = None
    cause: str | None = None


@dataclass(frozen=True)
class ToolCallMade:
    """A tool call a conversation made: its arguments and whether it succeeded."""

    tool_name: str
    arguments: dict[str, Any]
    succeeded: bool


@dataclass
class SimulationResult:
    conversations: list[str]
    events: int
    first_micros: int
    last_micros: int
    # Per conversation: its tool calls, and its outcome, as the agents made them.
    tool_calls: dict[str, list[ToolCallMade]] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)


class SimulatedSession(SessionRecording):
    """An `AgentSession` in simulated time: the world answers the calls; what it
    records is kept as timed steps (`steps`) to interleave with other conversations."""

    def __init__(self, conversation_id: str, world: World, start_micros: int) -> None:
        self.conversation_id = conversation_id
        self.world = world
        self.now = start_micros
        self.steps: list[_Step] = []
        self.tool_calls: list[ToolCallMade] = []
        self._user_messages_recorded = 0

    @property
    def user_messages(self) -> list[str]:
        return list(self.world.customer.messages)

    def start(self) -> None:
        customer = self.world.customer
        self._step(
            "start_conversation",
            channel=customer.channel,
            user_id=customer.user_id,
            metadata={"locale": "en-GB", "plan": "team"},
        )

    def llm(self, messages: Any, *, model: str, agent: str, provider: str | None = None) -> str:
        answer = self.world.llm(messages, model, agent)
        self._advance(answer.latency_ms)
        self._step(
            "llm_call",
            **answer.llm_call_fields(messages, model=model, agent=agent, provider=provider),
        )
        return answer.text

    def call_tool(self, tool_name: str, arguments: Mapping[str, Any], *, agent: str) -> Any:
        """As a tool executor does: retries transient failures, raises ToolError on the
        last."""
        arguments = dict(arguments)
        call_id = self.world.new_call_id()
        for attempt in range(1, TOOL_ATTEMPTS + 1):
            key = f"{self.conversation_id}/{call_id}/{attempt}"
            self._advance(5)
            self._step(
                "tool_call_requested",
                call_id,
                tool_name,
                arguments,
                agent=agent,
                attempt=attempt,
                remember=key,
            )
            outcome = self.world.tool(tool_name, arguments)
            self._advance(outcome.duration_ms)
            if outcome.error is None:
                self._step(
                    "tool_call_completed",
                    call_id,
                    tool_name,
                    outcome.result,
                    duration_ms=outcome.duration_ms,
                    attempt=attempt,
                    agent=agent,
                    cause=key,
                )
                self.tool_calls.append(ToolCallMade(tool_name, arguments, True))
                return outcome.result
            error_type, message = outcome.error
            self._step(
                "tool_call_failed",
                call_id,
                tool_name,
                error_type=error_type,
                error_message=message,
                duration_ms=outcome.duration_ms,
                attempt=attempt,
                retryable=attempt < TOOL_ATTEMPTS,
                agent=agent,
                cause=key,
            )
        self.tool_calls.append(ToolCallMade(tool_name, arguments, False))
        raise ToolError(
            tool_call_id=call_id,
            tool_name=tool_name,
            error_type=error_type,
            error_message=message,
            attempt=TOOL_ATTEMPTS,
            retryable=False,
        )

    def _advance(self, milliseconds: float) -> None:
        self.now += int(milliseconds * 1000)

    def _record(self, method: str, *args: Any, **kwargs: Any) -> None:
        """What the agents record (`handoff`, `agent_message`, ...): after the pause
        the world says it takes."""
        nth = self._user_messages_recorded
        if method == "user_message":
            self._user_messages_recorded += 1
        self._advance(self.world.pause_ms(method, nth))
        self._step(method, *args, **kwargs)

    def _step(
        self,
        method: str,
        *args: Any,
        remember: str | None = None,
        cause: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.steps.append(
            _Step(self.now, method, self.conversation_id, args, kwargs, remember, cause)
        )


if TYPE_CHECKING:  # what the demo's agents are typed against, checked here once
    _implements: type[AgentSession] = SimulatedSession


def seeded_event_ids(rng: random.Random) -> Callable[[], str]:
    return lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))


def simulate(
    recorder: Recorder,
    clock: SimulatedClock,
    conversations: int,
    seed: int,
    policy: Policy = DEFAULT_POLICY,
) -> SimulationResult:
    """Record `conversations` overlapping conversations in simulated-time order."""
    rng = random.Random(seed)
    start = micros_of(SIMULATION_START)
    heap: list[tuple[int, int, _Step]] = []
    result = SimulationResult([], 0, start, start)
    arrival = start
    order = 0
    for n in range(conversations):
        arrival += int(rng.expovariate(1 / 4.0) * 1_000_000)  # one every 4 s on average
        cid = f"conv-{seed}-{n:05d}"
        session = SimulatedSession(cid, World.of(seed, n), arrival)
        session.start()
        result.outcomes[cid] = support_team(session, policy)
        result.conversations.append(cid)
        result.tool_calls[cid] = session.tool_calls
        for step in session.steps:
            heap.append((step.at, order, step))
            order += 1
    heapq.heapify(heap)
    event_ids: dict[str, str] = {}
    if heap:
        result.first_micros = heap[0][0]
    while heap:
        at, _, step = heapq.heappop(heap)
        clock.now = at
        kwargs = step.kwargs
        if step.cause is not None:
            kwargs = {**kwargs, "causation_id": event_ids.pop(step.cause)}
        event_id = getattr(recorder, step.method)(step.conversation_id, *step.args, **kwargs)
        if step.remember is not None:
            event_ids[step.remember] = event_id
        result.events += 1
        result.last_micros = at
    return result


class SimulatedClock:
    """The recorder's clock during a simulation: microseconds the simulation sets."""

    def __init__(self) -> None:
        self.now = micros_of(SIMULATION_START)

    def __call__(self) -> int:
        return self.now
