"""Re-running agent code with the re-run recorded: the session serves the calls from the
recording (replay) and records what the code does through a recorder (producers), as a
new conversation that starts as the original did, with its provenance under
`metadata.rerun`. And `run_live`: the same agent code for real, every call live,
recorded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from agentlog.agent_session import LlmAnswer
from agentlog.consumers.projection import RecordedEvent
from agentlog.producers import Recorder
from agentlog.replay import (
    CallScript,
    RerunPlan,
    RerunReport,
    Session,
    plan_rerun,
    rerun_start,
)
from agentlog.replay import rerun as rerun_unrecorded
from agentlog.replay import rerun_recording as rerun_recording_unrecorded
from agentlog.settings import Settings

Agent = Callable[[Session], Any]
LiveLlm = Callable[..., LlmAnswer | str]
LiveTool = Callable[..., Any]


class RecordingSession(Session):
    """A re-run's session that records what the agent code does through `recorder`, in
    the session's conversation; the recorder's other methods (`record`, ...) are the
    session's too, as in production."""

    def __init__(
        self,
        recorder: Recorder,
        script: CallScript | None,
        conversation_id: str,
        *,
        user_messages: list[str],
        report: RerunReport,
        live_llm: LiveLlm | None = None,
        live_tool: LiveTool | None = None,
    ) -> None:
        super().__init__(
            script,
            conversation_id,
            user_messages=user_messages,
            report=report,
            live_llm=live_llm,
            live_tool=live_tool,
        )
        self.recorder = recorder

    def _record(self, method: str, *args: Any, **kwargs: Any) -> object:
        recorded: object = getattr(self.recorder, method)(self.conversation_id, *args, **kwargs)
        return recorded

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        return functools.partial(getattr(self.recorder, name), self.conversation_id)


def rerun(
    settings: Settings,
    conversation_id: str,
    agent: Agent,
    *,
    recorder: Recorder | None = None,
    mode: str = "strict",
    fork_at: str | None = None,
    live_llm: LiveLlm | None = None,
    live_tool: LiveTool | None = None,
    sink_url: str | None = None,
    new_conversation_id: str | None = None,
) -> RerunReport:
    """`agentlog.replay.rerun`, recorded through `recorder` (if given) as
    `new_conversation_id` (default `<original>-rerun-<random>`)."""
    if recorder is None:
        return rerun_unrecorded(
            settings,
            conversation_id,
            agent,
            mode=mode,
            fork_at=fork_at,
            live_llm=live_llm,
            live_tool=live_tool,
            sink_url=sink_url,
            new_conversation_id=new_conversation_id,
        )
    plan = plan_rerun(
        settings,
        conversation_id,
        mode=mode,
        fork_at=fork_at,
        sink_url=sink_url,
        new_conversation_id=new_conversation_id,
    )
    return _recorded(plan, agent, recorder, live_llm, live_tool)


def rerun_recording(
    events: list[RecordedEvent],
    agent: Agent,
    *,
    recorder: Recorder | None = None,
    mode: str = "strict",
    fork_offset: int | None = None,
    live_llm: LiveLlm | None = None,
    live_tool: LiveTool | None = None,
    new_conversation_id: str | None = None,
) -> RerunReport:
    """`agentlog.replay.rerun_recording` (events already read), recorded through
    `recorder` if given."""
    if recorder is None:
        return rerun_recording_unrecorded(
            events,
            agent,
            mode=mode,
            fork_offset=fork_offset,
            live_llm=live_llm,
            live_tool=live_tool,
            new_conversation_id=new_conversation_id,
        )
    plan = RerunPlan.of(
        events, mode=mode, fork_offset=fork_offset, new_conversation_id=new_conversation_id
    )
    return _recorded(plan, agent, recorder, live_llm, live_tool)


def _recorded(
    plan: RerunPlan,
    agent: Agent,
    recorder: Recorder,
    live_llm: LiveLlm | None,
    live_tool: LiveTool | None,
) -> RerunReport:
    session = RecordingSession(
        recorder,
        plan.script,
        plan.new_conversation_id,
        user_messages=plan.user_messages,
        report=plan.report,
        live_llm=live_llm,
        live_tool=live_tool,
    )
    recorder.start_conversation(
        plan.new_conversation_id, **rerun_start(plan.events, plan.mode, plan.fork_offset)
    )
    plan.report.recorded = True
    return plan.run(session, agent)


def run_live(
    agent: Agent,
    conversation_id: str,
    user_messages: list[str],
    *,
    recorder: Recorder,
    live_llm: LiveLlm,
    live_tool: LiveTool | None = None,
    channel: str = "chat",
) -> None:
    """Run `agent` for real on `user_messages` (every tool and LLM call live), recorded
    by `recorder` as a conversation started here: the same agent code as in production."""
    recorder.start_conversation(conversation_id, channel=channel)
    report = RerunReport(conversation_id, conversation_id, "live")
    session = RecordingSession(
        recorder,
        None,
        conversation_id,
        user_messages=user_messages,
        report=report,
        live_llm=live_llm,
        live_tool=live_tool,
    )
    agent(session)
