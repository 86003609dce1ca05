"""Agents that react to events: what each declares, and the ids of the events it records.

    agents = Agents("support", attempts=3)

    @agents.on("conversation_started")
    def triage(event, session): ...

    @agents.on("intent_identified", where=lambda e: e.payload["intent"] == "billing")
    def billing(event, session): ...

    agents = Agents("support", llm=my_model)  # answers `session.llm(messages, ...)`

`agentlog agents run mymodule` runs them (`triggers.TriggerRuntime`): a handler gets the
`RecordedEvent` that triggered it and a session the runtime's session factory made for
this invocation (the CLI's is a live session on a Recorder and a ToolClient). Each
handler is declared on its own, so adding an agent changes no other agent.

A handler runs at least once per triggering event (a crash before the runtime commits
means it runs again). Events it records get ids derived from the trigger event's id, the
handler and their order in the invocation (`trigger_event_ids`, given to the recorder as
`new_event_id`), so a repeat records the same ids and projections drop the duplicates.
A retry after a failure, and a redrive, get ids of their own: the failed run's events
stay on the log, and what the new run records may differ.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from agentlog.consumers.projection import RecordedEvent
from agentlog.errors import ConfigurationError
from agentlog.events import EVENT_TYPES
from agentlog.loading import load_module, load_object

HandlerFunction = Callable[[RecordedEvent, Any], Any]
# Answers a handler's `session.llm(messages, model=, agent=, provider=)`: called as
# llm(messages, model=..., agent=..., provider=..., conversation_id=...) and returns the
# answer's text, or an object with `text` and, as known, `finish_reason`, `provider`,
# `response_model`, `input_tokens`, `output_tokens`, `latency_ms` (what gets recorded).
LlmFunction = Callable[..., Any]
Predicate = Callable[[RecordedEvent], bool]
GROUP_PREFIX = "agentlog-agents-"


@dataclass(frozen=True)
class Reaction:
    """One handler: the event type it reacts to and the condition on the event."""

    name: str
    event_type: str
    function: HandlerFunction
    where: Predicate | None = None

    def wants(self, event: RecordedEvent) -> bool:
        return self.where is None or bool(self.where(event))


@dataclass(frozen=True)
class Trigger:
    """One invocation of a handler: what the session factory is given."""

    event: RecordedEvent
    agents: str
    handler: str
    attempt: int
    redrive: int = 0  # which redrive of the event's dead letter runs it (0: not a redrive)


class Agents:
    """A named set of handlers, run by one consumer group (`agentlog-agents-<name>`).

    A handler that raises is retried `attempts` times in all, waiting `backoff` seconds
    before the second attempt, doubling up to `max_backoff` (a random half of it, so
    retries spread out); then its event becomes a dead letter and parks its conversation.
    `llm` is the model the handlers' sessions ask (`LlmFunction`); without one,
    `session.llm(...)` is a configuration error.
    """

    def __init__(
        self,
        name: str,
        *,
        attempts: int = 3,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        llm: LlmFunction | None = None,
    ) -> None:
        if not name or not all(c.isalnum() or c in "-_." for c in name):
            raise ConfigurationError(f"agents name {name!r}: use letters, digits, '-', '_', '.'")
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ConfigurationError(f"attempts must be a whole number >= 1, got {attempts!r}")
        if backoff < 0 or max_backoff < 0:
            raise ConfigurationError("backoff and max_backoff must not be negative")
        self.name = name
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.llm = llm
        self._reactions: list[Reaction] = []

    @property
    def group(self) -> str:
        return f"{GROUP_PREFIX}{self.name}"

    def on(
        self, event_type: str, *, where: Predicate | None = None, name: str | None = None
    ) -> Callable[[HandlerFunction], HandlerFunction]:
        """Declare a handler of `event_type` events (those `where` accepts, if given)."""
        if event_type not in EVENT_TYPES:
            raise ConfigurationError(
                f"unknown event type {event_type!r}; known: {', '.join(EVENT_TYPES)}"
            )

        def register(function: HandlerFunction) -> HandlerFunction:
            handler = name or getattr(function, "__name__", None) or repr(function)
            if any(r.name == handler for r in self._reactions):
                raise ConfigurationError(f"{self.name} already has a handler named {handler!r}")
            self._reactions.append(Reaction(handler, event_type, function, where))
            return function

        return register

    @property
    def reactions(self) -> list[Reaction]:
        return list(self._reactions)

    def event_types(self) -> set[str]:
        return {r.event_type for r in self._reactions}

    def reactions_to(self, event_type: str, after: str | None = None) -> list[Reaction]:
        """The handlers of an event type in declaration order (from the one named
        `after` on, when a redrive resumes at the handler that failed)."""
        found = [r for r in self._reactions if r.event_type == event_type]
        if after is not None:
            names = [r.name for r in found]
            if after in names:
                found = found[names.index(after) :]
        return found

    def backoff_before(self, attempt: int) -> float:
        """Seconds to wait before `attempt` (2, 3, ...)."""
        ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 2))
        return random.uniform(ceiling / 2, ceiling)


def load_agents(reference: str) -> Agents:
    """The Agents object named `package.module:NAME`, or the one in `package.module`."""
    module_name, colon, _ = reference.partition(":")
    if not module_name:
        raise ConfigurationError(f"agents {reference!r} is not MODULE[:NAME]")
    if colon:
        return load_object(reference, Agents, "agents", "support_agents:agents")
    module = load_module(module_name, "agents")
    candidates = {n: v for n, v in vars(module).items() if isinstance(v, Agents)}
    if not candidates:
        raise ConfigurationError(
            f"module {module_name!r} has no Agents object (agents = Agents('name'))"
        )
    if len(candidates) > 1:
        raise ConfigurationError(
            f"module {module_name!r} has several Agents objects ({', '.join(sorted(candidates))})"
            f": name one, e.g. {module_name}:{sorted(candidates)[0]}"
        )
    found = next(iter(candidates.values()))
    if not found.reactions:
        raise ConfigurationError(f"{reference!r} declares no handlers (@agents.on(...))")
    return found


# -- deterministic ids of the events a handler records ----------------------------------

_NAMESPACE = uuid.UUID("5f0c6a52-2a4e-4d0c-9a53-6a1f0b7d2c11")


class _InvocationIds:
    def __init__(self, trigger: Trigger) -> None:
        # A run after a failed one (a retry, a redrive) may record other events than the
        # failed run left on the log: it gets ids of its own. A repeat of the same run
        # (after a crash) gets the same.
        run = (
            f"attempt-{trigger.attempt}/redrive-{trigger.redrive}/"
            if trigger.attempt > 1 or trigger.redrive
            else ""
        )
        self.base = f"{trigger.event.event_id}/{trigger.handler}/{run}"
        self.count = 0

    def next(self) -> str:
        self.count += 1
        return str(uuid.uuid5(_NAMESPACE, f"{self.base}{self.count}"))


_invocation: ContextVar[_InvocationIds | None] = ContextVar("agentlog_trigger", default=None)


def trigger_event_ids() -> str:
    """A new event id: inside a handler invocation, the n-th id of that invocation (the
    same when the invocation is repeated after a crash; a retry's and a redrive's are
    their own); elsewhere a random one. Give it to a recorder as `new_event_id`."""
    ids = _invocation.get()
    return ids.next() if ids is not None else str(uuid.uuid4())


def invoke(reaction: Reaction, trigger: Trigger, make_session: Callable[[], Any]) -> None:
    """Make the session and run the handler, with the ids of the events either records
    derived from the trigger."""
    token = _invocation.set(_InvocationIds(trigger))
    try:
        reaction.function(trigger.event, make_session())
    finally:
        _invocation.reset(token)
