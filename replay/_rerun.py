"""Re-running agent code on a recorded conversation: the entry points.

`rerun(settings, conversation_id, agent)` reads the conversation and runs `agent` (a
function of a `Session`) on it; `rerun_recording(events, agent)` does the same for
events already read. Neither records the re-run: `agentlog.runtime.rerun` does, given a
recorder, through the same `RerunPlan`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentlog.agent_session import LlmAnswer
from agentlog.consumers.projection import RecordedEvent
from agentlog.errors import ReplayError
from agentlog.events import RERUN_METADATA_KEY
from agentlog.replay._matching import MODES, CallScript, Diverged, json_value, recorded_calls
from agentlog.replay._report import RerunReport
from agentlog.replay._session import Session
from agentlog.replay.conversation import Replay, replay_conversation
from agentlog.settings import Settings

# What the agent is: a function of the session it runs with.
Agent = Callable[[Session], Any]
LiveLlm = Callable[..., LlmAnswer | str]
LiveTool = Callable[..., Any]


@dataclass(frozen=True)
class RerunPlan:
    """A recording made ready to re-run: the calls to serve and the report they fill.
    `run` runs agent code with a session made from it."""

    events: list[RecordedEvent]
    mode: str
    fork_offset: int | None
    script: CallScript
    report: RerunReport

    @classmethod
    def of(
        cls,
        events: list[RecordedEvent],
        *,
        mode: str = "strict",
        fork_offset: int | None = None,
        new_conversation_id: str | None = None,
    ) -> RerunPlan:
        """The plan for a conversation's events (in log order); the re-run's conversation
        is `new_conversation_id`, default `<original>-rerun-<random>`."""
        _check_mode(mode)
        if not events:
            raise ReplayError("a re-run needs the recording of a conversation: no events given")
        conversation_id = events[0].conversation_id
        new_id = new_conversation_id or f"{conversation_id}-rerun-{uuid.uuid4().hex[:8]}"
        return cls(
            events,
            mode,
            fork_offset,
            CallScript(recorded_calls(events), mode, fork_offset),
            RerunReport(conversation_id, new_id, mode),
        )

    @property
    def new_conversation_id(self) -> str:
        return self.report.new_conversation_id

    @property
    def user_messages(self) -> list[str]:
        """The recording's user messages: what drives the agent."""
        return [e.payload["text"] for e in self.events if e.event_type == "user_message"]

    def session(
        self, *, live_llm: LiveLlm | None = None, live_tool: LiveTool | None = None
    ) -> Session:
        """A session that serves this plan's calls and records nothing."""
        return Session(
            self.script,
            self.new_conversation_id,
            user_messages=self.user_messages,
            report=self.report,
            live_llm=live_llm,
            live_tool=live_tool,
        )

    def run(self, session: Session, agent: Agent) -> RerunReport:
        """Run `agent` with `session` (made from this plan) until it returns or
        diverges; the report, with the recorded calls it never made."""
        try:
            agent(session)
        except Diverged as diverged:
            self.report.divergence = self.report.divergence or diverged.divergence
        if self.report.divergence is None:
            self.report.unconsumed = self.script.unconsumed()
        return self.report


def plan_rerun(
    settings: Settings,
    conversation_id: str,
    *,
    mode: str = "strict",
    fork_at: str | None = None,
    sink_url: str | None = None,
    new_conversation_id: str | None = None,
) -> RerunPlan:
    """The plan for the recording of `conversation_id`, read from the log. `fork_at`: an
    event id or offset of the conversation; calls recorded after it are not served."""
    _check_mode(mode)
    original = replay_conversation(settings, conversation_id, sink_url=sink_url)
    return RerunPlan.of(
        original.events,
        mode=mode,
        fork_offset=_fork_offset(original, fork_at) if fork_at is not None else None,
        new_conversation_id=new_conversation_id,
    )


def rerun(
    settings: Settings,
    conversation_id: str,
    agent: Agent,
    *,
    mode: str = "strict",
    fork_at: str | None = None,
    live_llm: LiveLlm | None = None,
    live_tool: LiveTool | None = None,
    sink_url: str | None = None,
    new_conversation_id: str | None = None,
) -> RerunReport:
    """Run `agent` on the recording of `conversation_id` and report how it compares.

    `fork_at`: an event id or offset of the conversation; calls recorded after it are
    not served (the tool functions, `live_tool(name, arguments, agent=...)` and
    `live_llm` answer). Nothing is recorded (`agentlog.runtime.rerun` records the
    re-run as `new_conversation_id`)."""
    plan = plan_rerun(
        settings,
        conversation_id,
        mode=mode,
        fork_at=fork_at,
        sink_url=sink_url,
        new_conversation_id=new_conversation_id,
    )
    return plan.run(plan.session(live_llm=live_llm, live_tool=live_tool), agent)


def rerun_recording(
    events: list[RecordedEvent],
    agent: Agent,
    *,
    mode: str = "strict",
    fork_offset: int | None = None,
    live_llm: LiveLlm | None = None,
    live_tool: LiveTool | None = None,
    new_conversation_id: str | None = None,
) -> RerunReport:
    """`rerun` on a conversation's events already read (in log order)."""
    plan = RerunPlan.of(
        events, mode=mode, fork_offset=fork_offset, new_conversation_id=new_conversation_id
    )
    return plan.run(plan.session(live_llm=live_llm, live_tool=live_tool), agent)


def rerun_start(events: list[RecordedEvent], mode: str, fork_offset: int | None) -> dict[str, Any]:
    """The re-run's `start_conversation` arguments: the original's start (channel, user,
    title, metadata), so `replay diff` finds them the same, with the provenance added
    under the one metadata key `RERUN_METADATA_KEY`, which `replay diff` leaves out and exports
    recognise re-runs by."""
    started = next((e for e in events if e.event_type == "conversation_started"), None)
    first, last = events[0], events[-1]
    body = started.payload if started is not None else {}
    metadata = json_value(body.get("metadata_json"))
    if not isinstance(metadata, dict):  # none recorded (or not an object): provenance only
        metadata = {}
    metadata[RERUN_METADATA_KEY] = {
        "of": first.conversation_id,
        "topic": first.topic,
        "partition": first.partition,
        "first_offset": first.offset,
        "last_offset": last.offset,
        "mode": mode,
        "fork_at_offset": fork_offset,
    }
    return {
        "channel": body.get("channel") or "rerun",
        "user_id": body.get("user_id"),
        "title": body.get("title"),
        "metadata": metadata,
    }


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ReplayError(f"unknown mode {mode!r}: use strict or fifo")


def _fork_offset(original: Replay, fork_at: str) -> int:
    for event in original.events:
        if event.event_id == fork_at or str(event.offset) == fork_at:
            return event.offset
    raise ReplayError(
        f"--fork-at {fork_at!r} is neither the event id nor the offset of an event of "
        f"{original.conversation_id} (offsets {original.events[0].offset}.."
        f"{original.events[-1].offset})"
    )
