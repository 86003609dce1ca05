"""A trigger runtime for an `Agents` definition, wired for live work: what its handlers
record goes through a recorder whose event ids derive from the trigger event, their tool
calls go to the tool workers through a `ToolClient`, each handler gets a `LiveSession`,
and the recorder is flushed before the runtime commits an offset. `agentlog agents run`
and the demo's live phase both run their agents through it.

    with agents_runtime(settings, agents, service="support") as runtime:
        runtime.run(once=True)

The recorder and the tool client are closed (flushed) when the block ends: stop the
runtime, and wait for it, inside the block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from agentlog.consumers.triggers import (
    Agents,
    Trigger,
    TriggerProgress,
    TriggerRuntime,
    trigger_event_ids,
)
from agentlog.producers import Recorder, ToolClient
from agentlog.runtime._live_session import LiveSession, Transcripts
from agentlog.settings import Settings
from agentlog.start_from import EARLIEST, StartFrom


@contextmanager
def agents_runtime(
    settings: Settings,
    agents: Agents,
    *,
    service: str,
    version: str | None = None,
    tool_timeout: float = 60.0,
    transcripts: Transcripts | None = None,
    group: str | None = None,
    concurrency: int = 8,
    on_progress: Callable[[TriggerProgress], None] | None = None,
    start: StartFrom = EARLIEST,
    start_asked: bool = False,
    notice: Callable[[str], None] | None = None,
) -> Iterator[TriggerRuntime]:
    """A `TriggerRuntime` running `agents`' handlers, each with a `LiveSession`: records
    as `service` (`version`), with ids derived from the trigger event
    (`trigger_event_ids`, so a handler run again records the same ids); tool calls wait
    `tool_timeout` seconds for their result; the model is `agents.llm`. `transcripts`
    (default: a new one) is where the sessions find the customer's messages, for agents
    whose conditions note them too. The other arguments are the runtime's."""
    with (
        Recorder(
            settings, service=service, version=version, new_event_id=trigger_event_ids
        ) as recorder,
        ToolClient(settings, service=service, version=version, timeout=tool_timeout) as tools,
    ):
        seen = Transcripts() if transcripts is None else transcripts

        def live_session(trigger: Trigger) -> LiveSession:
            return LiveSession(
                trigger, recorder, tools, tool_timeout, llm=agents.llm, transcripts=seen
            )

        yield TriggerRuntime(
            settings,
            agents,
            live_session,
            group=group,
            concurrency=concurrency,
            on_progress=on_progress,
            flush=recorder.flush,
            start=start,
            start_asked=start_asked,
            notice=notice,
        )
