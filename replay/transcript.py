"""A replay as people read it in a terminal: a header saying where the conversation
sits in the log, a line per event (time after the start, partition@offset, type, what
happened), and the state the events fold to.

Colours come from a `style(text, **click.style options)` function the caller passes
(the CLI passes click.style on a terminal only); the default leaves text plain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson

from agentlog.consumers.projection import RecordedEvent, Row
from agentlog.consumers.projections.tool_calls import COMPLETED, finally_failed
from agentlog.consumers.sagas import SAGA_EVENT_TYPES, SagaEvent, saga_states
from agentlog.display import visible
from agentlog.llm_calls import json_text, structured_fields
from agentlog.replay.conversation import Entry, Replay, Undecodable, iso, relative, time_of
from agentlog.replay.measures import measure, number_text

Style = Callable[..., str]


def plain(text: str, **_: Any) -> str:
    return text


# How each event type stands out: failures and escalations in red, people in cyan.
_COLOURS: dict[str, dict[str, Any]] = {
    "conversation_started": {"bold": True},
    "conversation_ended": {"bold": True},
    "system_prompt": {"dim": True},
    "tools_declared": {"dim": True},
    "user_message": {"fg": "cyan"},
    "agent_message": {"fg": "green"},
    "llm_call": {"fg": "magenta"},
    "llm_call_failed": {"fg": "red", "bold": True},
    "tool_call_requested": {"fg": "blue"},
    "tool_call_completed": {"fg": "blue"},
    "tool_call_failed": {"fg": "red", "bold": True},
    "intent_identified": {"fg": "yellow"},
    "handoff": {"fg": "yellow", "bold": True},
    "escalation": {"fg": "red", "bold": True},
    "saga_started": {"fg": "white", "bold": True},
    "saga_step_started": {"fg": "white"},
    "saga_step_completed": {"fg": "white"},
    "saga_step_failed": {"fg": "red", "bold": True},
    "saga_step_compensated": {"fg": "red"},
    "saga_ended": {"fg": "white", "bold": True},
}
_TYPE_WIDTH = max(len(t) for t in _COLOURS)


def short(value: Any, limit: int = 80) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _compact_json(text: str | None, limit: int = 80) -> str:
    if text is None:
        return "-"
    try:
        return short(orjson.dumps(orjson.loads(text)).decode(), limit)
    except orjson.JSONDecodeError:
        return short(text, limit)


def summary(event: RecordedEvent) -> str:
    """What happened, in one line without the event type, fit to be shown: what the
    record holds cannot reach a terminal or a page as control characters."""
    return visible(_what_happened(event))


def _what_happened(event: RecordedEvent) -> str:
    b = event.payload
    kind = event.event_type
    if kind == "conversation_started":
        return f"on {b['channel']}" + (f" by {b['user_id']}" if b.get("user_id") else "")
    if kind == "conversation_ended":
        return f"outcome {b['outcome']}" + (f": {short(b['reason'])}" if b.get("reason") else "")
    if kind == "system_prompt":
        version = f" ({b['prompt_version']})" if b.get("prompt_version") else ""
        return f"{b['agent']}{version}: {short(b['content'], 60)}"
    if kind == "tools_declared":
        tools = ", ".join(t["name"] for t in b["tools"])
        return f"{b['agent']}: {tools}" if b.get("agent") else tools
    if kind == "user_message":
        return f'"{short(b["text"])}"'
    if kind == "agent_message":
        return f'{b["agent"]}: "{short(b["text"])}"'
    if kind == "llm_call":
        finish = f", {b['finish_reason']}" if b.get("finish_reason") else ""
        return (
            f"{b['agent']}: {b['request_model']} ({b['provider']}) {b['input_tokens']:,} in / "
            f"{b['output_tokens']:,} out tokens, "
            f"{number_text(b['latency_ms'], ',.0f')} ms{finish}: "
            f'"{short(b["output_text"], 50)}"{_model_tool_calls(kind, b)}'
        )
    if kind == "llm_call_failed":
        status = f" (HTTP {b['status_code']})" if b.get("status_code") is not None else ""
        return (
            f"{b['agent']}: {b['request_model']} ({b['provider']}) failed after "
            f"{number_text(b['latency_ms'], ',.0f')} ms: {b['error_type']}{status}: "
            f"{short(b['error_message'], 60)}"
        )
    if kind == "tool_call_requested":
        agent = f"{b['agent']}: " if b.get("agent") else ""
        return (
            f"{agent}{b['tool_name']}({_compact_json(b['arguments_json'], 60)}) "
            f"attempt {b['attempt']} [{b['tool_call_id']}]"
        )
    if kind == "tool_call_completed":
        return (
            f"{b['tool_name']} in {number_text(b['duration_ms'], ',.0f')} ms -> "
            f"{_compact_json(b['result_json'], 60)} [{b['tool_call_id']}]"
        )
    if kind == "tool_call_failed":
        retry = ", will retry" if b.get("retryable") else ""
        return (
            f"{b['tool_name']} attempt {b['attempt']} after "
            f"{number_text(b['duration_ms'], ',.0f')} ms: "
            f"{b['error_type']}: {short(b['error_message'], 60)}{retry} [{b['tool_call_id']}]"
        )
    if kind == "intent_identified":
        return f"{b['agent']}: {b['intent']} ({number_text(b['confidence'], '.0%')} sure)"
    if kind == "handoff":
        reason = f" ({short(b['reason'])})" if b.get("reason") else ""
        return f"{b['from_agent']} -> {b['to_agent']}{reason}"
    if kind == "escalation":
        return f"{b['agent']} -> {b['target']}: {short(b['reason'])}"
    if kind.startswith("saga_"):
        return _saga_summary(kind, b)
    return short(orjson.dumps(b).decode())


def _model_tool_calls(kind: str, b: dict[str, Any]) -> str:
    """What the model returned beyond its text (schema v4 records say so part by part):
    the tool calls it chose, and a refusal."""
    call = structured_fields(kind, b)
    shown = ""
    if call.tool_calls:
        shown = "; model calls " + ", ".join(
            f"{short(c.name, 40)}({short(json_text(c.arguments), 40)})"
            + (f" [{short(c.id, 40)}]" if c.id else "")
            for c in call.tool_calls
        )
    refusals = [
        p["content"]
        for m in call.output_messages
        for p in m["parts"]
        if p["type"] == "refusal" and isinstance(p.get("content"), str)
    ]
    if refusals:
        shown += f'; refused: "{short(" ".join(refusals), 50)}"'
    return shown


def _saga_summary(kind: str, b: dict[str, Any]) -> str:
    """A saga's events name the saga, then what happened to which step."""
    saga = f"saga {b['saga_id']}"
    if kind == "saga_started":
        return f"{saga} ({b['saga']}): steps {' -> '.join(b['steps'])}"
    if kind == "saga_ended":
        reason = f": {short(b['reason'])}" if b.get("reason") else ""
        return f"{saga} {b['outcome']}{reason}"
    step = f"{saga} step {b['step']}"
    if kind == "saga_step_started":
        again = f" (attempt {b['attempt']})" if (b.get("attempt") or 1) > 1 else ""
        timeout = measure(b.get("timeout_ms"))
        limit = f", timeout {timeout / 1000:g} s" if timeout else ""
        return f"{step}{again}{limit}"
    if kind == "saga_step_completed":
        return f"{step} -> {_compact_json(b.get('output_json'), 60)}"
    if kind == "saga_step_failed":
        what = "compensation" if b.get("phase") == "compensation" else "action"
        how = "timed out" if b.get("timed_out") else "failed"
        return (
            f"{step}: {what} {how} (attempt {b['attempt']}): "
            f"{b['error_type']}: {short(b['error_message'], 60)}"
        )
    return f"{step} compensated: {short(b['reason'])}"


def header(replay: Replay) -> list[str]:
    location = replay.location
    recorded = replay.recorded
    start, end = replay.start_micros, max(time_of(e) for e in recorded)
    how = {
        "index": "through the conversation_index",
        "archive": "from the Parquet archive",
    }.get(location.method, "by scanning the partition")
    repeats = len(replay.repeat_of)
    also = f" ({repeats_note(repeats)})" if repeats else ""
    lines = [
        f"conversation {replay.conversation_id}: "
        f"{counted(len(recorded) - repeats, 'event')}{also}, "
        f"{iso(start)} .. {iso(end)} ({relative(end - start).lstrip('+')})",
        f"  on {replay.topic}[{replay.partition}] offsets {recorded[0].offset}.."
        f"{recorded[-1].offset}; read {counted(replay.records_read, 'record')} {how}",
    ]
    return [visible(text) for text in lines]


def counted(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def repeats_note(count: int) -> str:
    """Records whose event id came earlier (a file imported twice): they change nothing."""
    if count == 1:
        return "1 record repeats an earlier event"
    return f"{count:,} records repeat earlier events"


def position(entry: Entry) -> str:
    return f"p{entry.partition}@{entry.offset}"


def line(
    entry: Entry,
    start_micros: int,
    style: Style = plain,
    *,
    repeat_of: int | None = None,
    position_width: int = 0,
) -> str:
    """The entry's line; `repeat_of`: the offset of the earlier record of its event id
    (the line says so, dimmed); `position_width`: the width of the widest position, so
    that the columns line up."""
    when = style(f"{relative(time_of(entry) - start_micros):>10}", dim=True)
    where = style(f"{position(entry):<{position_width}}", dim=True)
    if repeat_of is not None and isinstance(entry, RecordedEvent):
        kind = style(f"{entry.event_type:<{_TYPE_WIDTH}}", dim=True)
        again = f"repeat of p{entry.partition}@{repeat_of} (same event id): changes nothing"
        return f"{when}  {where}  {kind}  {style(again, dim=True)}"
    if isinstance(entry, Undecodable):
        kind = style(f"{'undecodable':<{_TYPE_WIDTH}}", fg="red", bold=True)
        return f"{when}  {where}  {kind}  {entry.size} bytes: {visible(entry.problem)}"
    colour = _COLOURS.get(entry.event_type, {})
    kind = style(f"{entry.event_type:<{_TYPE_WIDTH}}", **colour)
    return f"{when}  {where}  {kind}  {summary(entry)}"


def details(entry: Entry) -> list[str]:
    """--verbose: the whole event, JSON text fields shown as JSON."""
    if isinstance(entry, Undecodable):
        return [f"timestamp {iso(entry.timestamp_micros)}, {entry.size} bytes: {entry.problem}"]
    envelope = {
        "topic": entry.topic,
        "partition": entry.partition,
        "offset": entry.offset,
        "event_id": entry.event_id,
        "occurred_at": iso(entry.occurred_at),
        "source": {k: v for k, v in entry.source.items() if v is not None},
        "trace_id": entry.trace_id,
        "span_id": entry.span_id,
        "causation_id": entry.causation_id,
        "payload": readable_payload(entry.payload),
    }
    present = {k: v for k, v in envelope.items() if v is not None}
    text = orjson.dumps(present, option=orjson.OPT_INDENT_2).decode()
    return [visible(line) for line in text.splitlines()]


def readable_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with its `*_json` text fields parsed, for reading (not for machines:
    `--format json` keeps the recorded text)."""
    readable = {}
    for name, value in payload.items():
        if name.endswith("_json") and isinstance(value, str):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                pass
        elif value is None:
            continue
        elif isinstance(value, list):
            value = [readable_payload(v) if isinstance(v, dict) else v for v in value]
        readable[name] = value
    return readable


def state_lines(replay: Replay, style: Style = plain) -> list[str]:
    row: Row | None = replay.conversation
    title = "state"
    if replay.stopped:
        repeats = replay.repeat_of
        shown = sum(1 for e in replay.entries if e.offset not in repeats)
        title += f" at {replay.stopped}, after {shown} of {len(replay.recorded) - len(repeats)}"
        title += " events"
    if row is None:
        return [style(f"{title}: no events", bold=True)]
    status = row["status"] + (f", outcome {row['outcome']}" if row["outcome"] else "")
    lines = [
        f"{title}: {status}",
        f"  agents {', '.join(row['agents']) or '-'} (now {row['current_agent'] or '-'}), "
        f"intent {row['intent'] or '-'}, {counted(row['turns'], 'turn')}",
        f"  {counted(row['llm_calls'], 'LLM call')} ({row['input_tokens']:,} in / "
        f"{row['output_tokens']:,} out tokens), {counted(row['tool_calls'], 'tool call')} "
        f"({counted(row['tool_errors'], 'failed attempt')}, {row['open_tool_calls']} open), "
        f"{counted(row['escalations'], 'escalation')}",
    ]
    for call in replay.state.get("agentlog_tool_calls", []):
        detail = (
            f"{call['error_type']}: {short(call['error_message'], 50)}"
            if finally_failed(call)
            else f"{number_text(call['latency_ms'] or 0, ',.0f')} ms"
            if call["status"] == COMPLETED
            else "waiting"
        )
        lines.append(
            f"  tool {call['tool_name']} {call['status']} after "
            f"{counted(call['attempts'], 'attempt')}: {detail}"
        )
    sagas = saga_states(
        SagaEvent(e.event_type, e.payload, e.occurred_at, e.event_id, e.offset)
        for e in replay.events
        if e.event_type in SAGA_EVENT_TYPES
    )
    lines.extend(f"  {saga.summary()}" for saga in sagas.values())
    # Agents, intents, tools and errors are the record's words: shown, then styled.
    return [style(visible(lines[0]), bold=True), *(visible(text) for text in lines[1:])]


def transcript(replay: Replay, *, style: Style = plain, verbose: bool = False) -> Iterator[str]:
    first, second = header(replay)
    yield style(first, bold=True)
    yield second
    start = replay.start_micros
    repeats = replay.repeat_of
    width = max((len(position(e)) for e in replay.entries), default=0)
    for entry in replay.entries:
        yield line(entry, start, style, repeat_of=repeats.get(entry.offset), position_width=width)
        if verbose:
            for text in details(entry):
                yield "      " + style(text, dim=True)
    yield ""
    yield from state_lines(replay, style)
