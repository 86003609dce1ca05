"""The session a handler run by the trigger runtime gets: a full `AgentSession`.

Agent code written against `AgentSession` (e.g. `agentlog.demo.agents`) runs unchanged
in a handler: what it records goes through the runtime's recorder (ids derived from
the trigger event, `trigger_event_ids`), its model calls are answered by the `llm`
of its `Agents` object and recorded as LLM calls, and its tool calls are run by the
tool workers (`agentlog tools work`) through a `ToolClient`.

The customer's messages (`user_messages`) are those of the conversation this process
saw go by, in log order, up to the trigger event (`Transcripts`): handlers of
`user_message` events see each one. The customer's channel records their messages, so
agent code that records the message that triggered it (`session.user_message(text)`)
records nothing twice.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agentlog.agent_session import AgentSession, LlmAnswer, SessionRecording
from agentlog.consumers.projection import RecordedEvent
from agentlog.consumers.triggers import LlmFunction, Trigger
from agentlog.errors import ConfigurationError
from agentlog.producers import Recorder, ToolClient


class Transcripts:
    """The customer's messages of each conversation, as this process saw them (in log
    order; a process started later sees the messages from then on). Noting a message
    again (a retry, a redrive) changes nothing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: dict[str, dict[int, str]] = {}  # conversation -> offset -> text

    def note(self, event: RecordedEvent) -> int:
        """Note a `user_message` event; its position among its conversation's messages."""
        with self._lock:
            seen = self._messages.setdefault(event.conversation_id, {})
            seen.setdefault(event.offset, str(event.payload["text"]))
            return sorted(seen).index(event.offset)

    def so_far(self, event: RecordedEvent) -> list[str]:
        """The conversation's messages up to `event` (included), in order."""
        with self._lock:
            seen = self._messages.get(event.conversation_id, {})
            return [seen[offset] for offset in sorted(seen) if offset <= event.offset]

    def forget(self, conversation_id: str) -> None:
        with self._lock:
            self._messages.pop(conversation_id, None)


class LiveSession(SessionRecording):
    """What a handler gets beside its event: the recorder's methods bound to the
    event's conversation (`session.agent_message(agent, text)`), `session.llm(...)`
    answered by the agents' `llm`, and `session.call_tool(name, arguments)` run by the
    tool workers."""

    def __init__(
        self,
        trigger: Trigger,
        recorder: Recorder,
        tools: ToolClient,
        tool_timeout: float,
        *,
        llm: LlmFunction | None = None,
        transcripts: Transcripts | None = None,
    ) -> None:
        self.trigger = trigger
        self.event = trigger.event
        self.conversation_id = trigger.event.conversation_id
        self.recorder = recorder
        self._tools = tools
        self._tool_timeout = tool_timeout
        self._llm = llm
        if transcripts is not None and self.event.event_type == "user_message":
            transcripts.note(self.event)
        self._user_messages = (
            transcripts.so_far(self.event)
            if transcripts is not None
            else [str(self.event.payload["text"])]
            if self.event.event_type == "user_message"
            else []
        )

    @property
    def user_messages(self) -> list[str]:
        return list(self._user_messages)

    def llm(self, messages: Any, *, model: str, agent: str, provider: str | None = None) -> str:
        """The agents' model's answer, recorded as an LLM call."""
        if self._llm is None:
            raise ConfigurationError(
                f"{agent} asked a model, but agents {self.trigger.agents!r} have no llm: "
                "declare Agents(..., llm=my_model)"
            )
        started = time.perf_counter()
        answer = self._llm(
            messages,
            model=model,
            agent=agent,
            provider=provider,
            conversation_id=self.conversation_id,
        )
        measured = round((time.perf_counter() - started) * 1000, 1)
        answered = LlmAnswer.of(answer, measured)
        self.recorder.llm_call(
            self.conversation_id,
            **answered.llm_call_fields(messages, model=model, agent=agent, provider=provider),
            causation_id=self.event.event_id,
        )
        return answered.text

    def call_tool(
        self,
        tool_name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        agent: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Ask the tool workers for a call and wait for its result (ToolError if it
        failed, ToolTimeout if no ending came in time)."""
        # The request goes through another producer: what the agent recorded before the
        # call is on the log first, so the log keeps the agent's order.
        self.recorder.flush()
        call = self._tools.request(
            self.conversation_id,
            tool_name,
            dict(arguments) if arguments is not None else None,
            agent=agent,
            causation_id=self.event.event_id,
        )
        return call.result(self._tool_timeout if timeout is None else timeout)

    def user_message(self, text: str, *, user_id: str | None = None) -> object:
        """Record a customer's message, unless it is the one that triggered this
        handler (their channel recorded it: it is on the log once)."""
        if self.event.event_type == "user_message" and self.event.payload["text"] == text:
            return self.event.event_id
        return self._record("user_message", text, user_id=user_id)

    def _record(self, method: str, *args: Any, **kwargs: Any) -> object:
        return getattr(self.recorder, method)(self.conversation_id, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # Any other recorder method, bound to the conversation.
        if name.startswith("_"):
            raise AttributeError(name)
        return functools.partial(getattr(self.recorder, name), self.conversation_id)


if TYPE_CHECKING:  # what agent code is typed against, checked here once
    _implements: type[AgentSession] = LiveSession
