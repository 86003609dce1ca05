"""Re-run agent code on a recorded conversation: its tool calls and LLM calls are
answered from the log, nothing real is called, and the report names where the new code
leaves the recording.

The agent is a function of a `Session`, which stands in for the recorder it uses in
production (it implements `agentlog.agent_session.AgentSession`): `session.call_tool(
name, arguments, agent=...)`, `@session.tool` and `session.tool_call(...)` for tools,
`session.llm(...)` for models, and every other recorder method (`agent_message`,
`handoff`, ...) with the conversation id filled in. A recorded tool call is all the
attempts of one call id (retries belong to the executor, not to the agent): served as
one call whose outcome is the last attempt's. The session answers each call from the
recording:

- `strict`: the calls come in the recorded order, each the same tool (or model) with
  the same arguments (or input messages);
- `fifo`: per tool and arguments (or model and input), in any order.

The first call that does not fit is the divergence: a different tool, different
arguments, an extra call (the recording's calls of that kind are used up) or a call the
recording does not have at all. It stops the run (a `BaseException`, so agent code that
catches `Exception` cannot swallow it). With `fork_at`, calls recorded up to that event
are served and the live functions (`live_llm`, `live_tool`, the functions under
`@session.tool`) answer after it. Given a recorder (a
`agentlog.producers.Recorder`; replay does not import producers), the re-run is
recorded as a new conversation: the original's start, with the provenance (the original and
its offsets) under `metadata.rerun`.
"""

from __future__ import annotations

import builtins
import functools
import inspect
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import orjson

from agentlog.agent_session import AgentSession, LlmAnswer, SessionRecording
from agentlog.consumers.projection import RecordedEvent
from agentlog.errors import RecordedToolFailure, ReplayError, ToolError
from agentlog.events import RERUN_METADATA_KEY
from agentlog.replay.conversation import Replay, replay_conversation
from agentlog.replay.transcript import counted
from agentlog.settings import Settings
from agentlog.tool_protocol import new_tool_call_id

MODES = ("strict", "fifo")


# A tool call attempt as recorded: its request, and its ending (None: never answered).
Attempt = tuple[RecordedEvent, RecordedEvent | None]


@dataclass(frozen=True)
class RecordedCall:
    """A call the recording answered: a tool call (the attempts of one call id, the
    first request naming its place in the log, the last attempt's ending its outcome)
    or an LLM call."""

    kind: str  # "tool" or "llm"
    name: str  # the tool, or the model
    arguments: Any  # tool arguments, or the input messages (parsed JSON)
    request: RecordedEvent
    outcome: RecordedEvent | None  # tool: completed/failed (None: never answered)
    attempts: tuple[Attempt, ...] = ()  # tool: every attempt, in order

    @property
    def position(self) -> str:
        e = self.request
        return f"{e.topic}[{e.partition}]@{e.offset}"

    def describe(self) -> str:
        if self.kind == "tool":
            return f"tool {self.name}({_text(self.arguments)}) at {self.position}"
        return f"LLM call to {self.name} with input {_text(self.arguments)} at {self.position}"


@dataclass(frozen=True)
class Divergence:
    kind: str  # different_tool, different_arguments, extra_call, unrecorded_call, no_result
    message: str
    recorded: RecordedCall | None  # where in the recording it happened, if anywhere


@dataclass
class RerunReport:
    original: str
    new_conversation_id: str
    mode: str
    served: list[RecordedCall] = field(default_factory=list)
    live_calls: list[str] = field(default_factory=list)  # answered live, after the fork
    divergence: Divergence | None = None
    unconsumed: list[RecordedCall] = field(default_factory=list)
    recorded: bool = False  # written to the log as a new conversation

    @property
    def matched(self) -> bool:
        return self.divergence is None and not self.unconsumed

    def lines(self) -> list[str]:
        written = f" as {self.new_conversation_id}" if self.recorded else " (not recorded)"
        live = f", {len(self.live_calls)} answered live after the fork" if self.live_calls else ""
        out = [
            f"re-ran {self.original} ({self.mode}){written}: "
            f"{counted(len(self.served), 'call')} served from the log{live}"
        ]
        if self.divergence is not None:
            out.append(f"divergence ({self.divergence.kind}): {self.divergence.message}")
        for call in self.unconsumed:
            out.append(f"not called: {call.describe()}")
        if self.matched:
            out.append("no divergence: the code made the recorded calls")
        return out


class Diverged(BaseException):  # noqa: N818  (a signal that stops the run, not an error)
    """Raised inside the agent at its first call that leaves the recording."""

    def __init__(self, divergence: Divergence) -> None:
        super().__init__(divergence.message)
        self.divergence = divergence


def recorded_calls(events: list[RecordedEvent]) -> list[RecordedCall]:
    """The recording's calls in log order (of their first request): each tool call with
    its attempts, each LLM call."""
    calls: list[RecordedCall] = []
    of_call_id: dict[str, int] = {}  # tool call id -> index in calls
    for event in events:
        body = event.payload
        if event.event_type == "tool_call_requested":
            index = of_call_id.get(body["tool_call_id"])
            if index is not None and body["attempt"] > 1:  # a retry of that call
                call = calls[index]
                calls[index] = _with_attempt(call, (event, None))
                continue
            of_call_id[body["tool_call_id"]] = len(calls)
            arguments = _json(body["arguments_json"])
            calls.append(
                RecordedCall("tool", body["tool_name"], arguments, event, None, ((event, None),))
            )
        elif event.event_type in ("tool_call_completed", "tool_call_failed"):
            index = of_call_id.get(body["tool_call_id"])
            if index is not None:
                calls[index] = _ended(calls[index], event)
        elif event.event_type == "llm_call":
            calls.append(
                RecordedCall("llm", body["request_model"], _json(body["input_json"]), event, event)
            )
    return calls


def _with_attempt(call: RecordedCall, attempt: Attempt) -> RecordedCall:
    return RecordedCall(
        call.kind, call.name, call.arguments, call.request, None, (*call.attempts, attempt)
    )


def _ended(call: RecordedCall, ending: RecordedEvent) -> RecordedCall:
    """The call with `ending` as the outcome of the attempt it answers; the call's
    outcome is its last attempt's (None while that one is unanswered)."""
    attempts = list(call.attempts)
    for i in range(len(attempts) - 1, -1, -1):
        request, outcome = attempts[i]
        if outcome is None and request.payload["attempt"] == ending.payload["attempt"]:
            attempts[i] = (request, ending)
            break
    else:
        return call  # an ending of an attempt the recording did not request: ignored
    last = attempts[-1][1]
    return RecordedCall(call.kind, call.name, call.arguments, call.request, last, tuple(attempts))


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _normal(value: Any) -> Any:
    """A value as it reads back from the JSON the recorder writes."""
    return orjson.loads(orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS))


def _text(value: Any, limit: int = 80) -> str:
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Script:
    """The recorded calls and which of them the new code has used."""

    def __init__(self, calls: list[RecordedCall], mode: str, fork_offset: int | None) -> None:
        self.calls = calls
        self.used = [False] * len(calls)
        self.mode = mode
        self.fork_offset = fork_offset

    def served_before_fork(self, call: RecordedCall) -> bool:
        return self.fork_offset is None or call.request.offset <= self.fork_offset

    def take(self, kind: str, name: str, arguments: Any) -> RecordedCall | None:
        """The recorded call that answers this one; None: answer it live (after the
        fork). Raises Diverged if the recording cannot answer it."""
        open_calls = [
            i for i, c in enumerate(self.calls) if not self.used[i] and self.served_before_fork(c)
        ]
        if self.mode == "strict":
            index = open_calls[0] if open_calls else None
            if index is not None:
                call = self.calls[index]
                if call.kind != kind or call.name != name:
                    raise Diverged(self._different(kind, name, arguments, call))
                if call.arguments != arguments:
                    raise Diverged(self._different_arguments(kind, name, arguments, call))
                self.used[index] = True
                return call
        else:
            same = [
                i for i in open_calls if self.calls[i].kind == kind and self.calls[i].name == name
            ]
            for i in same:
                if self.calls[i].arguments == arguments:
                    self.used[i] = True
                    return self.calls[i]
            if same:
                raise Diverged(
                    self._different_arguments(kind, name, arguments, self.calls[same[0]])
                )
        if self.fork_offset is not None:
            return None
        return self._missing(kind, name, arguments)

    def _label(self, kind: str, name: str, arguments: Any) -> str:
        if kind == "tool":
            return f"tool {name}({_text(arguments)})"
        return f"an LLM call to {name} with input {_text(arguments)}"

    def _different(self, kind: str, name: str, arguments: Any, call: RecordedCall) -> Divergence:
        return Divergence(
            "different_tool" if kind == call.kind == "tool" else "different_call",
            f"the code called {self._label(kind, name, arguments)} where the recording has "
            f"{call.describe()}",
            call,
        )

    def _different_arguments(
        self, kind: str, name: str, arguments: Any, call: RecordedCall
    ) -> Divergence:
        what = "arguments" if kind == "tool" else "input messages"
        return Divergence(
            "different_arguments",
            f"the code called {self._label(kind, name, arguments)} with other {what} than "
            f"{call.describe()}",
            call,
        )

    def _missing(self, kind: str, name: str, arguments: Any) -> NoReturn:
        recorded = [c for c in self.calls if c.kind == kind and c.name == name]
        label = self._label(kind, name, arguments)
        if recorded:
            raise Diverged(
                Divergence(
                    "extra_call",
                    f"the code called {label} once more than the recording ("
                    f"{len(recorded)} such calls, the last at {recorded[-1].position})",
                    recorded[-1],
                )
            )
        raise Diverged(
            Divergence("unrecorded_call", f"the code called {label}: the recording has none", None)
        )

    def unconsumed(self) -> list[RecordedCall]:
        return [
            c for i, c in enumerate(self.calls) if not self.used[i] and self.served_before_fork(c)
        ]


# The recorded calls and which are used, for the client integrations' serving too.
CallScript = _Script


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
        script: _Script | None,
        conversation_id: str,
        *,
        user_messages: list[str],
        report: RerunReport,
        recorder: Any = None,
        live_llm: Callable[..., LlmAnswer | str] | None = None,
        live_tool: Callable[..., Any] | None = None,
    ) -> None:
        self._user_messages = user_messages
        self.conversation_id = conversation_id
        self._script = script
        self._recorder = recorder
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
        served = self._take("llm", model, _normal(messages))
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
        if self._recorder is not None:
            self._recorder.llm_call(
                self.conversation_id,
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
        served = self._take("tool", tool_name, _normal(arguments))
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
            requested = None
            if self._recorder is not None:
                requested = self._recorder.tool_call_requested(
                    self.conversation_id, call_id, tool_name, arguments, agent=agent,
                    attempt=attempt,
                )  # fmt: skip
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
        return _json(ending.payload["result_json"])

    def _record_ending(
        self,
        call_id: str,
        tool_name: str,
        agent: str,
        requested: str | None,
        ending: RecordedEvent,
    ) -> None:
        if self._recorder is None:
            return
        b = ending.payload
        ids = (self.conversation_id, call_id, tool_name)
        agent_named = _ending_agent(ending, agent)
        common = {"duration_ms": b["duration_ms"], "attempt": b["attempt"], "agent": agent_named}
        if ending.event_type == "tool_call_failed":
            self._recorder.tool_call_failed(
                *ids,
                error_type=b["error_type"],
                error_message=b["error_message"],
                retryable=b.get("retryable", False),
                causation_id=requested,
                **common,
            )
        else:
            self._recorder.tool_call_completed(
                *ids, _json(b["result_json"]), causation_id=requested, **common
            )

    def _live_tool_call(self, tool_name: str, arguments: Mapping[str, Any], agent: str) -> Any:
        if self._live_tool is None:
            raise ReplayError(
                f"a call of tool {tool_name} must be answered live (after the fork) but no "
                "live tool function was given"
            )
        self._report.live_calls.append(f"tool {tool_name}")
        call_id = new_tool_call_id()
        ids = (self.conversation_id, call_id, tool_name)
        requested = None
        if self._recorder is not None:
            requested = self._recorder.tool_call_requested(*ids, arguments, agent=agent)
        started = time.perf_counter()
        try:
            result = self._live_tool(tool_name, dict(arguments), agent=agent)
        except Exception as exc:
            failed = exc if isinstance(exc, ToolError) else None
            error_type = failed.error_type if failed else type(exc).__name__
            message = failed.error_message if failed else str(exc)
            if self._recorder is not None:
                self._recorder.tool_call_failed(
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
        if self._recorder is not None:
            self._recorder.tool_call_completed(
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
                with self.tool_call(tool_name, _bound_arguments(fn, args, kwargs)) as call:
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
        served = self._take("tool", tool_name, _normal(arguments))
        call_id = tool_call_id or f"call_{uuid.uuid4().hex[:24]}"
        requested = None
        if self._recorder is not None:
            requested = self._recorder.tool_call_requested(
                self.conversation_id, call_id, tool_name, arguments, agent=agent, attempt=attempt
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
            call.result = _json(outcome.payload["result_json"])
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
        requested: str | None,
        attempt: int,
        agent: str | None,
        outcome: RecordedEvent | None,
        live: tuple[Exception | None, float] | None,
    ) -> None:
        if self._recorder is None:
            return
        ids = (self.conversation_id, call.tool_call_id, call.tool_name)
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
            self._recorder.tool_call_failed(
                *ids,
                error_type=error[0],
                error_message=error[1],
                duration_ms=duration,
                attempt=attempt,
                agent=agent,
                causation_id=requested,
            )
        else:
            self._recorder.tool_call_completed(
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
        """What `SessionRecording`'s methods record: with the recorder, if any."""
        if self._recorder is None:
            return None
        return getattr(self._recorder, method)(self.conversation_id, *args, **kwargs)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        """The recorder's other methods (`record`, ...) for this conversation."""
        if name.startswith("_"):
            raise AttributeError(name)
        if self._recorder is None:
            # Every session method is defined above: a misspelt one (`agnet_message`)
            # raises here as it does in production, never records nothing silently.
            raise AttributeError(f"a session has no method {name!r}")
        method = getattr(self._recorder, name)
        return functools.partial(method, self.conversation_id)


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


def _bound_arguments(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The arguments as `Recorder.tool` records them: by parameter name, defaults in."""
    try:
        bound = inspect.signature(function).bind(*args, **kwargs)
    except TypeError:
        return {"args": list(args), "kwargs": kwargs}
    bound.apply_defaults()
    return dict(bound.arguments)


def rerun(
    settings: Settings,
    conversation_id: str,
    agent: Callable[[Session], Any],
    *,
    mode: str = "strict",
    fork_at: str | None = None,
    recorder: Any = None,
    live_llm: Callable[..., LlmAnswer | str] | None = None,
    live_tool: Callable[..., Any] | None = None,
    sink_url: str | None = None,
    new_conversation_id: str | None = None,
) -> RerunReport:
    """Run `agent` on the recording of `conversation_id` and report how it compares.

    `fork_at`: an event id or offset of the conversation; calls recorded after it are
    not served (the tool functions, `live_tool(name, arguments, agent=...)` and
    `live_llm` answer). `recorder`: where to record the re-run (as
    `new_conversation_id`, default `<original>-rerun-<random>`)."""
    if mode not in MODES:
        raise ReplayError(f"unknown mode {mode!r}: use strict or fifo")
    original = replay_conversation(settings, conversation_id, sink_url=sink_url)
    return rerun_recording(
        original.events,
        agent,
        mode=mode,
        fork_offset=_fork_offset(original, fork_at) if fork_at is not None else None,
        recorder=recorder,
        live_llm=live_llm,
        live_tool=live_tool,
        new_conversation_id=new_conversation_id,
    )


def rerun_recording(
    events: list[RecordedEvent],
    agent: Callable[[Session], Any],
    *,
    mode: str = "strict",
    fork_offset: int | None = None,
    recorder: Any = None,
    live_llm: Callable[..., LlmAnswer | str] | None = None,
    live_tool: Callable[..., Any] | None = None,
    new_conversation_id: str | None = None,
) -> RerunReport:
    """`rerun` on a conversation's events already read (in log order)."""
    if mode not in MODES:
        raise ReplayError(f"unknown mode {mode!r}: use strict or fifo")
    if not events:
        raise ReplayError("a re-run needs the recording of a conversation: no events given")
    conversation_id = events[0].conversation_id
    new_id = new_conversation_id or f"{conversation_id}-rerun-{uuid.uuid4().hex[:8]}"
    report = RerunReport(conversation_id, new_id, mode)
    script = _Script(recorded_calls(events), mode, fork_offset)
    session = Session(
        script,
        new_id,
        user_messages=[e.payload["text"] for e in events if e.event_type == "user_message"],
        report=report,
        recorder=recorder,
        live_llm=live_llm,
        live_tool=live_tool,
    )
    if recorder is not None:
        recorder.start_conversation(new_id, **rerun_start(events, mode, fork_offset))
        report.recorded = True
    try:
        agent(session)
    except Diverged as diverged:
        report.divergence = report.divergence or diverged.divergence
    if report.divergence is None:
        report.unconsumed = script.unconsumed()
    return report


def rerun_start(events: list[RecordedEvent], mode: str, fork_offset: int | None) -> dict[str, Any]:
    """The re-run's `start_conversation` arguments: the original's start (channel, user,
    title, metadata), so `replay diff` finds them the same, with the provenance added
    under the one metadata key `RERUN_METADATA_KEY`, which `replay diff` leaves out and exports
    recognise re-runs by."""
    started = next((e for e in events if e.event_type == "conversation_started"), None)
    first, last = events[0], events[-1]
    body = started.payload if started is not None else {}
    metadata = _json(body.get("metadata_json"))
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


def run_live(
    agent: Callable[[Session], Any],
    conversation_id: str,
    user_messages: list[str],
    *,
    recorder: Any,
    live_llm: Callable[..., LlmAnswer | str],
    live_tool: Callable[..., Any] | None = None,
    channel: str = "chat",
) -> None:
    """Run `agent` for real on `user_messages` (every tool and LLM call live), recorded
    by `recorder` as a conversation started here: the same agent code as in production."""
    recorder.start_conversation(conversation_id, channel=channel)
    report = RerunReport(conversation_id, conversation_id, "live")
    session = Session(
        None,
        conversation_id,
        user_messages=user_messages,
        report=report,
        recorder=recorder,
        live_llm=live_llm,
        live_tool=live_tool,
    )
    agent(session)


def _fork_offset(original: Replay, fork_at: str) -> int:
    for event in original.events:
        if event.event_id == fork_at or str(event.offset) == fork_at:
            return event.offset
    raise ReplayError(
        f"--fork-at {fork_at!r} is neither the event id nor the offset of an event of "
        f"{original.conversation_id} (offsets {original.events[0].offset}.."
        f"{original.events[-1].offset})"
    )
