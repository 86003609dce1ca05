"""The session agent code runs with during a re-run: it stands in for the recorder the
code uses in production (it implements `agentlog.agent_session.AgentSession`):
`session.call_tool(name, arguments, agent=...)`, `@session.tool` and
`session.tool_call(...)` for tools, `session.llm(...)` for models, and the recorder's
other methods (`agent_message`, `handoff`, ...) with the conversation id filled in.

Each call is answered from the recording (`CallScript`); after the fork, by the live
functions (`live_llm`, `live_tool`, the functions under `@session.tool`). What the
session records it hands to `_record`, which records nothing here: a re-run recorded
as a new conversation is `agentlog.runtime`'s (replay does not import the producers).
"""

from __future__ import annotations

import builtins
import functools
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentlog.agent_session import AgentSession, LlmAnswer, SessionRecording
from agentlog.consumers.projection import RecordedEvent
from agentlog.errors import RecordedToolFailure, ReplayError, ToolError
from agentlog.replay._matching import (
    CallScript,
    Diverged,
    Divergence,
    RecordedCall,
    as_recorded,
    json_value,
)
from agentlog.replay._report import RerunReport
from agentlog.tool_protocol import bound_arguments, new_tool_call_id


@dataclass
class _Call:
    """What `tool_call` yields: set `result` (or call `complete`) in a live call; a
    served call (`replayed`) already holds the recorded result."""

    tool_name: str
    tool_call_id: str
    result: Any = None
    replayed: bool = False

    def complete(self, result: Any) -> None:
        if not self.replayed:
            self.result = result


class Session(SessionRecording):
    """What the agent code runs with during a re-run (see the module docstring)."""

    def __init__(
        self,
        script: CallScript | None,
        conversation_id: str,
        *,
        user_messages: list[str],
        report: RerunReport,
        live_llm: Callable[..., LlmAnswer | str] | None = None,
        live_tool: Callable[..., Any] | None = None,
    ) -> None:
        self._user_messages = user_messages
        self.conversation_id = conversation_id
        self._script = script
        self._live_llm = live_llm
        self._live_tool = live_tool
        self._report = report

    @property
    def user_messages(self) -> list[str]:
        """The user's messages (in a re-run, the recording's): what drives the agent."""
        return list(self._user_messages)

    # -- LLM ----------------------------------------------------------------------------

    def llm(self, messages: Any, *, model: str, agent: str, provider: str | None = None) -> str:
        """The model's answer text: the recorded one, or (after the fork, or in a live
        session) the live function's."""
        return self.llm_answer(messages, model=model, agent=agent, provider=provider).text

    def llm_answer(
        self, messages: Any, *, model: str, agent: str, provider: str | None = None
    ) -> LlmAnswer:
        served = self._take("llm", model, as_recorded(messages))
        if served is not None:
            b = served.request.payload
            answer = LlmAnswer(
                b["output_text"],
                b.get("finish_reason"),
                b["input_tokens"],
                b["output_tokens"],
                b["latency_ms"],
                b["provider"],
                b.get("response_model"),
            )
        else:
            answer = self._live_answer(messages, model, agent)
        self._record(
            "llm_call",
            **answer.llm_call_fields(messages, model=model, agent=agent, provider=provider),
        )
        return answer

    def _live_answer(self, messages: Any, model: str, agent: str) -> LlmAnswer:
        if self._live_llm is None:
            raise ReplayError(
                f"an LLM call to {model} must be answered live (after the fork) but no live "
                "LLM function was given"
            )
        self._report.live_calls.append(f"LLM call to {model}")
        started = time.perf_counter()
        answer = self._live_llm(messages, model=model, agent=agent)
        return LlmAnswer.of(answer, (time.perf_counter() - started) * 1000)

    # -- tools --------------------------------------------------------------------------

    def call_tool(self, tool_name: str, arguments: Mapping[str, Any], *, agent: str) -> Any:
        """The tool's result: the recorded call's (its last attempt's), or (after the
        fork, or in a live session) `live_tool`'s. Raises ToolError when the call failed
        for good. With a recorder, the call's attempts are recorded as they were."""
        served = self._take("tool", tool_name, as_recorded(arguments))
        if served is None:
            return self._live_tool_call(tool_name, arguments, agent)
        if served.outcome is None:
            raise Diverged(
                Divergence(
                    "no_result", f"{served.describe()} has no recorded result to serve", served
                )
            )
        call_id = new_tool_call_id()
        for request, ending in served.attempts:
            attempt = request.payload["attempt"]
            requested = self._record(
                "tool_call_requested", call_id, tool_name, arguments, agent=agent, attempt=attempt
            )
            if ending is not None:
                self._record_ending(call_id, tool_name, agent, requested, ending)
        ending = served.outcome
        if ending.event_type == "tool_call_failed":
            b = ending.payload
            raise ToolError(
                tool_call_id=b["tool_call_id"],
                tool_name=tool_name,
                error_type=b["error_type"],
                error_message=b["error_message"],
                attempt=b["attempt"],
                retryable=False,
            )
        return json_value(ending.payload["result_json"])

    def _record_ending(
        self,
        call_id: str,
        tool_name: str,
        agent: str,
        requested: object,
        ending: RecordedEvent,
    ) -> None:
        b = ending.payload
        ids = (call_id, tool_name)
        agent_named = _ending_agent(ending, agent)
        common = {"duration_ms": b["duration_ms"], "attempt": b["attempt"], "agent": agent_named}
        if ending.event_type == "tool_call_failed":
            self._record(
                "tool_call_failed",
                *ids,
                error_type=b["error_type"],
                error_message=b["error_message"],
                retryable=b.get("retryable", False),
                causation_id=requested,
                **common,
            )
        else:
            self._record(
                "tool_call_completed",
                *ids,
                json_value(b["result_json"]),
                causation_id=requested,
                **common,
            )

    def _live_tool_call(self, tool_name: str, arguments: Mapping[str, Any], agent: str) -> Any:
        if self._live_tool is None:
            raise ReplayError(
                f"a call of tool {tool_name} must be answered live (after the fork) but no "
                "live tool function was given"
            )
        self._report.live_calls.append(f"tool {tool_name}")
        call_id = new_tool_call_id()
        ids = (call_id, tool_name)
        requested = self._record("tool_call_requested", *ids, arguments, agent=agent)
        started = time.perf_counter()
        try:
            result = self._live_tool(tool_name, dict(arguments), agent=agent)
        except Exception as exc:
            failed = exc if isinstance(exc, ToolError) else None
            error_type = failed.error_type if failed else type(exc).__name__
            message = failed.error_message if failed else str(exc)
            self._record(
                "tool_call_failed",
                *ids,
                error_type=error_type,
                error_message=message,
                duration_ms=(time.perf_counter() - started) * 1000,
                agent=agent,
                causation_id=requested,
            )
            if failed is not None:
                raise
            raise ToolError(
                tool_call_id=call_id,
                tool_name=tool_name,
                error_type=error_type,
                error_message=message,
                attempt=1,
                retryable=False,
            ) from exc
        self._record(
            "tool_call_completed",
            *ids,
            result,
            duration_ms=(time.perf_counter() - started) * 1000,
            agent=agent,
            causation_id=requested,
        )
        return result

    def tool(self, function: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
        """Decorator, as `Recorder.tool`: calls are answered from the recording (the
        function runs only when answered live)."""

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            tool_name = name or fn.__name__

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                with self.tool_call(tool_name, bound_arguments(fn, args, kwargs)) as call:
                    if not call.replayed:
                        call.result = fn(*args, **kwargs)
                return call.result

            return wrapper

        return decorate(function) if function is not None else decorate

    @contextmanager
    def tool_call(
        self,
        tool_name: str,
        arguments: Any,
        *,
        agent: str | None = None,
        tool_call_id: str | None = None,
        attempt: int = 1,
    ) -> Iterator[_Call]:
        """As `Recorder.tool_call`; a served call arrives `replayed` with its recorded
        result (its block should not call the real tool: check `call.replayed`), a
        recorded failure is raised on entry."""
        served = self._take("tool", tool_name, as_recorded(arguments))
        call_id = tool_call_id or new_tool_call_id()
        requested = self._record(
            "tool_call_requested", call_id, tool_name, arguments, agent=agent, attempt=attempt
        )
        if served is None:
            self._report.live_calls.append(f"tool {tool_name}")
        call = _Call(tool_name, call_id)
        started = time.perf_counter()
        if served is not None:
            call.replayed = True
            outcome = served.outcome
            if outcome is None:
                raise Diverged(
                    Divergence(
                        "no_result",
                        f"{served.describe()} has no recorded result to serve",
                        served,
                    )
                )
            if outcome.event_type == "tool_call_failed":
                self._finish(call, requested, attempt, agent, outcome, None)
                raise _failure(outcome.payload["error_type"], outcome.payload["error_message"])
            call.result = json_value(outcome.payload["result_json"])
            yield call
            self._finish(call, requested, attempt, agent, outcome, None)
            return
        try:
            yield call
        except Exception as exc:
            self._finish(call, requested, attempt, agent, None, (exc, started))
            raise
        self._finish(call, requested, attempt, agent, None, (None, started))

    def _finish(
        self,
        call: _Call,
        requested: object,
        attempt: int,
        agent: str | None,
        outcome: RecordedEvent | None,
        live: tuple[Exception | None, float] | None,
    ) -> None:
        ids = (call.tool_call_id, call.tool_name)
        if outcome is not None:
            b = outcome.payload
            duration, failed = b["duration_ms"], outcome.event_type == "tool_call_failed"
            error = (b.get("error_type"), b.get("error_message")) if failed else None
            agent = _ending_agent(outcome, agent)
        else:
            exc, started = live or (None, time.perf_counter())
            duration = (time.perf_counter() - started) * 1000
            error = (type(exc).__name__, str(exc)) if exc is not None else None
        if error is not None:
            self._record(
                "tool_call_failed",
                *ids,
                error_type=error[0],
                error_message=error[1],
                duration_ms=duration,
                attempt=attempt,
                agent=agent,
                causation_id=requested,
            )
        else:
            self._record(
                "tool_call_completed",
                *ids,
                call.result,
                duration_ms=duration,
                attempt=attempt,
                agent=agent,
                causation_id=requested,
            )

    def _take(self, kind: str, name: str, arguments: Any) -> RecordedCall | None:
        if self._script is None:
            return None
        try:
            served = self._script.take(kind, name, arguments)
        except Diverged as diverged:
            if self._report.divergence is None:
                self._report.divergence = diverged.divergence
            raise
        if served is not None:
            self._report.served.append(served)
        return served

    # -- everything else the recorder records --------------------------------------------

    def _record(self, method: str, *args: Any, **kwargs: Any) -> object:
        """Every event the session records goes through here, as the recorder method
        `method` of this conversation would record it: a re-run that is not recorded
        records nothing (`agentlog.runtime` records one). Returns the event id, if
        recorded (None here)."""
        return None

    def __getattr__(self, name: str) -> Callable[..., Any]:
        # Every session method is defined above: a misspelt one (`agnet_message`)
        # raises here as it does in production, never records nothing silently.
        if name.startswith("_"):
            raise AttributeError(name)
        raise AttributeError(f"a session has no method {name!r}")


if TYPE_CHECKING:  # what agent code is typed against, checked here once
    _implements: type[AgentSession] = Session


def _ending_agent(recorded: RecordedEvent, agent: str | None) -> str | None:
    """The agent a served tool ending names: the calling agent, as tool workers record
    it; none where the recorded ending named none (recorded before endings named their
    agent), so a re-run of unchanged code records what the original did."""
    return agent if recorded.source.get("agent") else None


def _failure(error_type: str, message: str) -> Exception:
    """The recorded failure as an exception: the builtin of that name if there is one."""
    found = getattr(builtins, error_type, None)
    if isinstance(found, type) and issubclass(found, Exception):
        try:
            return found(message)
        except TypeError:
            pass
    return RecordedToolFailure(error_type, message)
