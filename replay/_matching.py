"""Matching a re-run's calls to the recording: the recorded calls (a tool call is all the
attempts of one call id, served as one call whose outcome is the last attempt's; an LLM
call is one event), and `CallScript`, which hands each new call the recorded call that
answers it:

- `strict`: the calls come in the recorded order, each the same tool (or model) with
  the same arguments (or input messages);
- `fifo`: per tool and arguments (or model and input), in any order.

The first call that does not fit is the divergence: a different tool, different
arguments, an extra call (the recording's calls of that kind are used up) or a call the
recording does not have at all. It is raised as `Diverged`, a `BaseException`, so agent
code that catches `Exception` cannot swallow it. With a fork offset, calls recorded
after it are not served: the caller answers them live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

import orjson

from agentlog.consumers.projection import RecordedEvent

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
            return f"tool {self.name}({short_json(self.arguments)}) at {self.position}"
        return f"LLM call to {self.name} with input {short_json(self.arguments)} at {self.position}"


@dataclass(frozen=True)
class Divergence:
    kind: str  # different_tool, different_arguments, extra_call, unrecorded_call, no_result
    message: str
    recorded: RecordedCall | None  # where in the recording it happened, if anywhere


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
            arguments = json_value(body["arguments_json"])
            calls.append(
                RecordedCall("tool", body["tool_name"], arguments, event, None, ((event, None),))
            )
        elif event.event_type in ("tool_call_completed", "tool_call_failed"):
            index = of_call_id.get(body["tool_call_id"])
            if index is not None:
                calls[index] = _ended(calls[index], event)
        elif event.event_type == "llm_call":
            calls.append(
                RecordedCall(
                    "llm", body["request_model"], json_value(body["input_json"]), event, event
                )
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


def json_value(text: str | None) -> Any:
    """Recorded JSON text as a value (text that is not JSON as itself)."""
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def as_recorded(value: Any) -> Any:
    """A value as it reads back from the JSON the recorder writes."""
    return orjson.loads(orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS))


def short_json(value: Any, limit: int = 80) -> str:
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


class CallScript:
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
            return f"tool {name}({short_json(arguments)})"
        return f"an LLM call to {name} with input {short_json(arguments)}"

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
