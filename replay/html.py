"""A replay as one self-contained HTML page for people without a terminal: a timeline
(agents as lanes, LLM and tool calls as bars of their duration, failures and
escalations marked) above a table of every event with its position in the log.

Nothing is fetched from the network: the CSS and the few lines of script are inline,
the timeline is SVG drawn here. Hovering a mark shows its event; clicking it (or a
table row) shows the whole event and where it sits (topic, partition, offset).

Every word of the page but its own comes from the log, so: text is HTML-escaped; the
events' data block is JSON with `<`, `>`, `&` and the JavaScript line terminators
escaped, so no content can close it, comment it out (`<!--<script>`) or end a string;
and the Content-Security-Policy lets only this module's own script and style run (by
their SHA-256), loads nothing, and allows no base URL, form target or plugin.
"""

from __future__ import annotations

import base64
import hashlib
import html
from dataclasses import dataclass
from typing import Any

import orjson

from agentlog.consumers.projection import RecordedEvent
from agentlog.replay.conversation import Entry, Replay, Undecodable, iso, relative, time_of
from agentlog.replay.measures import measure, number_text
from agentlog.replay.transcript import (
    counted,
    readable_payload,
    repeats_note,
    state_lines,
    summary,
)

_LANE_HEIGHT = 46
_AXIS_HEIGHT = 34
_LABEL_WIDTH = 150
_PLOT_WIDTH = 1000
_RIGHT_PAD = 24
_GAP_WIDTH = 64  # a stretch of nothing, shrunk
_MIN_BURST = 24
_BURST_PAD = 10
_TICK_SPACING = 90
_LONGEST_BAR_MS = 86_400_000.0
_NICE_STEPS_MS = [
    *(10, 20, 50, 100, 200, 500),
    *(1_000, 2_000, 5_000, 10_000, 15_000, 30_000),
    *(60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000),
    *(7_200_000, 21_600_000, 43_200_000, 86_400_000),
]

# The mark of each kind of event: (css class, shape).
_MARKS: dict[str, tuple[str, str]] = {
    "conversation_started": ("k-edge", "square"),
    "conversation_ended": ("k-edge", "square"),
    "system_prompt": ("k-quiet", "circle"),
    "tools_declared": ("k-quiet", "circle"),
    "user_message": ("k-user", "circle"),
    "agent_message": ("k-agent", "circle"),
    "llm_call": ("k-llm", "circle"),
    "llm_call_failed": ("k-fail", "cross"),
    "tool_call_requested": ("k-tool", "circle"),
    "tool_call_completed": ("k-tool", "circle"),
    "tool_call_failed": ("k-fail", "cross"),
    "intent_identified": ("k-intent", "circle"),
    "handoff": ("k-handoff", "diamond"),
    "escalation": ("k-escalation", "triangle"),
    "saga_started": ("k-saga", "square"),
    "saga_step_started": ("k-saga", "circle"),
    "saga_step_completed": ("k-saga", "circle"),
    "saga_step_failed": ("k-fail", "cross"),
    "saga_step_compensated": ("k-fail", "cross"),
    "saga_ended": ("k-saga", "square"),
}


@dataclass(frozen=True)
class _Bar:
    lane: str
    start: int
    end: int
    css: str
    label: str
    index: int  # the event (table row) the bar belongs to
    open: bool = False


class _Scale:
    """Time to x. Stretches where nothing happens and nothing runs, longer than a second
    and a 25th of the whole, shrink to a fixed-width break (labelled with how long they
    were), so bursts of activity keep their detail; time inside a burst is linear."""

    def __init__(self, intervals: list[tuple[int, int]]) -> None:
        ordered = sorted(intervals)
        span = max(e for _, e in ordered) - ordered[0][0]
        idle = max(1_000_000, span // 25)
        bursts: list[list[int]] = []
        for began, ended in ordered:
            if bursts and began - bursts[-1][1] <= idle:
                bursts[-1][1] = max(bursts[-1][1], ended)
            else:
                bursts.append([began, ended])
        gap = min(_GAP_WIDTH, _PLOT_WIDTH * 0.4 / max(len(bursts) - 1, 1))
        spare = _PLOT_WIDTH - gap * (len(bursts) - 1) - _MIN_BURST * len(bursts)
        busy = sum(e - b for b, e in bursts)
        x = float(_LABEL_WIDTH)
        # (first time, last time, left x, right x) of each burst
        self.bursts: list[tuple[int, int, float, float]] = []
        self.gaps: list[tuple[float, float, int]] = []  # (left x, right x, duration)
        for i, (began, ended) in enumerate(bursts):
            share = (ended - began) / busy if busy else 1 / len(bursts)
            width = _MIN_BURST + spare * share
            self.bursts.append((began, ended, x, x + width))
            x += width
            if i + 1 < len(bursts):
                self.gaps.append((x, x + gap, bursts[i + 1][0] - ended))
                x += gap

    def x(self, micros: int) -> float:
        for began, ended, left, right in self.bursts:
            if micros <= ended:
                if micros < began:  # inside the break before this burst
                    return left - 2
                if ended == began:
                    return (left + right) / 2
                pad = min(_BURST_PAD, (right - left) / 4)
                return left + pad + (micros - began) / (ended - began) * (right - left - 2 * pad)
        return self.bursts[-1][3]

    def ticks(self, start: int) -> list[int]:
        """Tick times (at round times after `start`), at least one per burst, never two
        labels closer than a label's width."""
        chosen: list[int] = []
        last_x = -1e9
        for began, ended, left, right in self.bursts:
            span_ms = (ended - began) / 1000
            fit = max(1.0, (right - left) / _TICK_SPACING)
            step = next((s for s in _NICE_STEPS_MS if span_ms / s <= fit), _NICE_STEPS_MS[-1])
            step_us = step * 1000
            first = start + -(-(began - start) // step_us) * step_us
            candidates = list(range(first, ended + 1, step_us)) or [began]
            for tick in candidates:
                x = self.x(tick)
                if x - last_x >= _TICK_SPACING * 0.7:
                    chosen.append(tick)
                    last_x = x
        return chosen


def timeline_page(replay: Replay) -> str:
    # Records repeating an earlier event change nothing: the summary counts them, the
    # timeline leaves them out.
    entries = [e for e in replay.entries if e.offset not in replay.repeat_of]
    start = replay.start_micros
    end = max([time_of(e) for e in entries] + [start])
    call_agents = _tool_call_agents(entries)
    lanes = _lanes(entries, call_agents)
    lane_of = [_lane(e, call_agents) for e in entries]
    bars = _bars(entries, lane_of, start, end)
    scale = _Scale([(time_of(e), time_of(e)) for e in entries] + [(b.start, b.end) for b in bars])
    title = f"Replay of {replay.conversation_id}"
    return _PAGE.format(
        title=_e(title),
        topic=_e(replay.topic),
        policy=_POLICY,
        style=_STYLE,
        script=_SCRIPT,
        heading=_e(title),
        summary=_summary(replay),
        svg=_svg(entries, lanes, lane_of, bars, scale, start),
        rows="\n".join(_row(i, e, start) for i, e in enumerate(entries)),
        data=_json_for_script([_detail(e, start) for e in entries]),
    )


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


# Inside a <script> element the HTML parser, not JSON, decides where it ends: "</script"
# closes it and "<!--<script" makes it run past its end tag. JSON allows these escapes
# in its strings (the only place the characters can be), and JSON.parse undoes them.
_SCRIPT_SAFE = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def _json_for_script(value: Any) -> str:
    return orjson.dumps(value).decode().translate(_SCRIPT_SAFE)


def _sha256_source(text: str) -> str:
    """A CSP source allowing the inline element whose text is exactly `text`."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _tool_call_agents(entries: list[Entry]) -> dict[str, str]:
    agents = {}
    for e in entries:
        if isinstance(e, RecordedEvent) and e.event_type == "tool_call_requested":
            agent = e.payload.get("agent") or e.source.get("agent")
            if agent:
                agents[e.payload["tool_call_id"]] = agent
    return agents


def _lane(entry: Entry, call_agents: dict[str, str]) -> str:
    if isinstance(entry, Undecodable):
        return "conversation"
    body, kind = entry.payload, entry.event_type
    if kind == "user_message":
        return "user"
    if kind in ("conversation_started", "conversation_ended"):
        return "conversation"
    if kind == "handoff":
        sender: str = body["from_agent"]
        return sender
    if kind.startswith("tool_call_"):
        found = call_agents.get(body["tool_call_id"]) or body.get("agent")
        return found or entry.source.get("agent") or "tools"
    return body.get("agent") or entry.source.get("agent") or "conversation"


def _lanes(entries: list[Entry], call_agents: dict[str, str]) -> list[str]:
    lanes = ["conversation", "user"]
    for entry in entries:
        names = [_lane(entry, call_agents)]
        if isinstance(entry, RecordedEvent) and entry.event_type == "handoff":
            names.append(entry.payload["to_agent"])
        for name in names:
            if name not in lanes:
                lanes.append(name)
    return lanes


def _bars(entries: list[Entry], lane_of: list[str], start: int, end: int) -> list[_Bar]:
    """LLM calls end when recorded and last their latency (drawn from the conversation's
    first event at the earliest: the axis starts there); a tool call attempt runs from
    its request to its completion or failure (still open at the end: to the end)."""
    bars: list[_Bar] = []
    open_attempts: dict[tuple[str, int], tuple[int, RecordedEvent]] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, RecordedEvent):
            continue
        body, kind = entry.payload, entry.event_type
        if kind == "llm_call":
            # Drawn no longer than a day: a recorded latency may be anything (measures.py).
            latency = min(measure(body["latency_ms"]) or 0.0, _LONGEST_BAR_MS)
            began = max(start, entry.occurred_at - int(latency * 1000))
            label = f"{body['request_model']} {number_text(body['latency_ms'], ',.0f')} ms"
            bars.append(_Bar(lane_of[index], began, entry.occurred_at, "b-llm", label, index))
        elif kind == "llm_call_failed":
            latency = min(measure(body["latency_ms"]) or 0.0, _LONGEST_BAR_MS)
            began = max(start, entry.occurred_at - int(latency * 1000))
            label = (
                f"{body['request_model']} {number_text(body['latency_ms'], ',.0f')} ms "
                f"{body['error_type']}"
            )
            bars.append(_Bar(lane_of[index], began, entry.occurred_at, "b-fail", label, index))
        elif kind == "tool_call_requested":
            open_attempts[(body["tool_call_id"], body["attempt"])] = (index, entry)
        elif kind in ("tool_call_completed", "tool_call_failed"):
            found = open_attempts.pop((body["tool_call_id"], body["attempt"]), None)
            began = found[1].occurred_at if found else entry.occurred_at
            failed = kind == "tool_call_failed"
            label = f"{body['tool_name']} {number_text(body['duration_ms'], ',.0f')} ms" + (
                f" {body['error_type']}" if failed else ""
            )
            css = "b-fail" if failed else "b-tool"
            bars.append(_Bar(lane_of[index], began, entry.occurred_at, css, label, index))
    for index, entry in open_attempts.values():
        label = f"{entry.payload['tool_name']} (no result yet)"
        bars.append(_Bar(lane_of[index], entry.occurred_at, end, "b-open", label, index, open=True))
    return bars


def _shape(shape: str, x: float, y: float) -> str:
    if shape == "square":
        return f'<rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" rx="2"/>'
    if shape == "diamond":
        points = f"{x:.1f},{y - 7:.1f} {x + 7:.1f},{y:.1f} {x:.1f},{y + 7:.1f} {x - 7:.1f},{y:.1f}"
        return f'<polygon points="{points}"/>'
    if shape == "triangle":
        points = f"{x:.1f},{y - 8:.1f} {x + 8:.1f},{y + 6:.1f} {x - 8:.1f},{y + 6:.1f}"
        return f'<polygon points="{points}"/>'
    if shape == "cross":
        return (
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="7"/>'
            f'<path class="x" d="M{x - 3.5:.1f},{y - 3.5:.1f} L{x + 3.5:.1f},{y + 3.5:.1f} '
            f'M{x + 3.5:.1f},{y - 3.5:.1f} L{x - 3.5:.1f},{y + 3.5:.1f}"/>'
        )
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5"/>'


def _svg(
    entries: list[Entry],
    lanes: list[str],
    lane_of: list[str],
    bars: list[_Bar],
    scale: _Scale,
    start: int,
) -> str:
    height = _AXIS_HEIGHT + len(lanes) * _LANE_HEIGHT + 8
    width = _LABEL_WIDTH + _PLOT_WIDTH + _RIGHT_PAD
    y_of = {
        lane: _AXIS_HEIGHT + i * _LANE_HEIGHT + _LANE_HEIGHT / 2 for i, lane in enumerate(lanes)
    }
    parts = [
        f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="timeline of the conversation">'
    ]
    for i, lane in enumerate(lanes):
        top = _AXIS_HEIGHT + i * _LANE_HEIGHT
        parts.append(
            f'<rect class="lane{" alt" if i % 2 else ""}" x="0" y="{top}" width="{width}" '
            f'height="{_LANE_HEIGHT}"/>'
            f'<text class="lane-label" x="12" y="{top + _LANE_HEIGHT / 2 + 4:.1f}">'
            f"{_e(lane)}</text>"
        )
    for left, right, duration in scale.gaps:
        parts.append(
            f'<rect class="gap" x="{left:.1f}" y="{_AXIS_HEIGHT}" width="{right - left:.1f}" '
            f'height="{height - 8 - _AXIS_HEIGHT}" fill="url(#hatch)"/>'
            f'<text class="gap-label" transform="translate({(left + right) / 2 + 4:.1f} '
            f'{_AXIS_HEIGHT + 8}) rotate(90)">{_e(_duration(duration))}</text>'
        )
    for tick in scale.ticks(start):
        x = scale.x(tick)
        parts.append(
            f'<line class="tick" x1="{x:.1f}" y1="{_AXIS_HEIGHT - 6}" x2="{x:.1f}" '
            f'y2="{height - 8}"/><text class="tick-label" x="{x:.1f}" y="{_AXIS_HEIGHT - 12}">'
            f"{_e(relative(tick - start))}</text>"
        )
    for entry in entries:  # escalations: a flag across every lane
        if isinstance(entry, RecordedEvent) and entry.event_type == "escalation":
            x = scale.x(entry.occurred_at)
            parts.append(
                f'<line class="escalated" x1="{x:.1f}" y1="{_AXIS_HEIGHT}" x2="{x:.1f}" '
                f'y2="{height - 8}"/>'
            )
    for bar in bars:
        x1, x2 = scale.x(bar.start), scale.x(bar.end)
        y = y_of[bar.lane]
        parts.append(
            f'<rect class="bar {bar.css}" data-index="{bar.index}" x="{x1:.1f}" y="{y - 13:.1f}" '
            f'width="{max(x2 - x1, 3):.1f}" height="8" rx="2"><title>{_e(bar.label)}</title>'
            "</rect>"
        )
    for entry in entries:  # handoffs: from one lane to the other
        if isinstance(entry, RecordedEvent) and entry.event_type == "handoff":
            x = scale.x(entry.occurred_at)
            y1, y2 = y_of[entry.payload["from_agent"]], y_of[entry.payload["to_agent"]]
            parts.append(
                f'<line class="handoff" x1="{x:.1f}" y1="{y1:.1f}" x2="{x:.1f}" y2="{y2:.1f}" '
                'marker-end="url(#arrow)"/>'
            )
    parts.append(
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'class="arrow-head"/></marker><pattern id="hatch" width="8" height="8" '
        'patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="8" '
        'height="8" class="gap-bg"/><line x1="0" y1="0" x2="0" y2="8" class="gap-line"/>'
        "</pattern></defs>"
    )
    for index, entry in enumerate(entries):
        x, y = scale.x(time_of(entry)), y_of[lane_of[index]]
        if isinstance(entry, Undecodable):
            css, shape, kind = "k-fail", "cross", "undecodable record"
            text = entry.problem
        else:
            css, shape = _MARKS.get(entry.event_type, ("k-quiet", "circle"))
            kind, text = entry.event_type, summary(entry)
        tip = (
            f"{kind} at {relative(time_of(entry) - start)}\n"
            f"{entry.topic} partition {entry.partition} offset {entry.offset}\n{text}"
        )
        parts.append(
            f'<g class="mark {css}" data-index="{index}" data-offset="{entry.offset}" '
            f'tabindex="0"><title>{_e(tip)}</title>{_shape(shape, x, y + 4)}</g>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _duration(micros: int) -> str:
    """A break's label: how long nothing happened."""
    seconds = micros / 1_000_000
    if seconds < 60:
        return f"{seconds:.1f} s idle"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min idle"
    return f"{seconds / 3600:.1f} h idle"


def _summary(replay: Replay) -> str:
    location = replay.location
    recorded = replay.recorded
    end = max(time_of(e) for e in recorded)
    how = {"index": "the conversation_index", "archive": "the Parquet archive"}.get(
        location.method, "a scan of the partition"
    )
    repeats = len(replay.repeat_of)
    facts = [
        f"<b>{counted(len(recorded) - repeats, 'event')}</b> on "
        f"<code>{_e(replay.topic)}</code> partition "
        f"<b>{replay.partition}</b>, offsets <b>{recorded[0].offset}</b>..<b>"
        f"{recorded[-1].offset}</b> (found through {how})",
        f"{_e(iso(replay.start_micros))} .. {_e(iso(end))} "
        f"({_e(relative(end - replay.start_micros).lstrip('+'))})",
    ]
    if repeats:
        facts.append(f"{_e(repeats_note(repeats))} (same event id): they change nothing")
    state = [_e(line.strip()) for line in state_lines(replay)]
    notes = "".join(f'<p class="note">note: {_e(n)}</p>' for n in replay.notes)
    return (
        '<ul class="facts">'
        + "".join(f"<li>{f}</li>" for f in facts)
        + '</ul><div class="state"><b>'
        + state[0]
        + "</b><br>"
        + "<br>".join(state[1:])
        + "</div>"
        + notes
    )


def _row(index: int, entry: Entry, start: int) -> str:
    if isinstance(entry, Undecodable):
        kind, css, text = "undecodable", "k-fail", f"{entry.size} bytes: {entry.problem}"
    else:
        kind, text = entry.event_type, summary(entry)
        css = _MARKS.get(kind, ("k-quiet", ""))[0]
    return (
        f'<tr id="event-{index}" class="{css}" data-index="{index}" '
        f'data-offset="{entry.offset}"><td class="num">{index + 1}</td>'
        f'<td class="when" title="{_e(iso(time_of(entry)))}">'
        f"{_e(relative(time_of(entry) - start))}</td>"
        f'<td class="where" title="{_e(entry.topic)} partition {entry.partition} offset '
        f'{entry.offset}">p{entry.partition}@{entry.offset}</td>'
        f'<td class="kind"><span class="swatch"></span>{_e(kind)}</td>'
        f'<td class="what">{_e(text)}</td></tr>'
    )


def _detail(entry: Entry, start: int) -> dict[str, Any]:
    where = {
        "topic": entry.topic,
        "partition": entry.partition,
        "offset": entry.offset,
        "time": iso(time_of(entry)),
        "since_start": relative(time_of(entry) - start),
    }
    if isinstance(entry, Undecodable):
        return {**where, "undecodable": entry.problem, "size": entry.size}
    event = {
        "event_type": entry.event_type,
        "event_id": entry.event_id,
        "source": {k: v for k, v in entry.source.items() if v is not None},
        "trace_id": entry.trace_id,
        "span_id": entry.span_id,
        "causation_id": entry.causation_id,
        "payload": readable_payload(entry.payload),
    }
    return {**where, **{k: v for k, v in event.items() if v is not None}}


_STYLE = """
:root { --ink: #1d2433; --muted: #667085; --line: #e4e7ec; --bg: #ffffff;
  --lane: #f8f9fb; --user: #0e7490; --agent: #15803d; --llm: #9333ea; --tool: #2563eb;
  --fail: #dc2626; --handoff: #d97706; --intent: #ca8a04; --saga: #475467; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 28px; color: var(--ink); background: var(--bg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
h1 { font-size: 20px; margin: 0 0 8px; }
code, .where, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
.facts { margin: 0 0 8px; padding-left: 18px; color: var(--muted); }
.facts b { color: var(--ink); }
.state { background: var(--lane); border: 1px solid var(--line); border-radius: 6px;
  padding: 8px 12px; margin: 8px 0 12px; }
.note { color: #b54708; margin: 4px 0; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; margin: 10px 0; color: var(--muted); }
.legend span::before { content: ""; display: inline-block; width: 12px; height: 8px;
  margin-right: 6px; border-radius: 2px; background: currentColor; }
.legend .l-llm { color: var(--llm); } .legend .l-tool { color: var(--tool); }
.legend .l-fail { color: var(--fail); } .legend .l-handoff { color: var(--handoff); }
.legend .l-user { color: var(--user); } .legend .l-agent { color: var(--agent); }
.legend .l-saga { color: var(--saga); }
.scroller { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; }
svg { display: block; }
.lane { fill: var(--bg); } .lane.alt { fill: var(--lane); }
.lane-label { font-size: 13px; font-weight: 600; fill: var(--ink); }
.tick { stroke: var(--line); } .tick-label { font-size: 11px; fill: var(--muted);
  text-anchor: middle; }
.bar { opacity: .75; cursor: pointer; } .b-llm { fill: var(--llm); } .b-tool { fill: var(--tool); }
.b-fail { fill: var(--fail); } .b-open { fill: none; stroke: var(--tool);
  stroke-dasharray: 3 2; }
.mark { cursor: pointer; stroke: #fff; stroke-width: 1.5; outline: none; }
.mark:hover, .mark:focus { stroke: var(--ink); stroke-width: 2; }
.mark.selected { stroke: var(--ink); stroke-width: 3; }
.mark .x { stroke: #fff; stroke-width: 2; }
.k-edge { fill: var(--ink); } .k-quiet { fill: #98a2b3; } .k-user { fill: var(--user); }
.k-agent { fill: var(--agent); } .k-llm { fill: var(--llm); } .k-tool { fill: var(--tool); }
.k-fail { fill: var(--fail); } .k-intent { fill: var(--intent); }
.k-handoff { fill: var(--handoff); } .k-escalation { fill: var(--fail); }
.k-saga { fill: var(--saga); }
.handoff { stroke: var(--handoff); stroke-width: 2; stroke-dasharray: 4 3; }
.arrow-head { fill: var(--handoff); }
.escalated { stroke: var(--fail); stroke-width: 1.5; stroke-dasharray: 6 4; opacity: .6; }
.columns { display: grid; grid-template-columns: minmax(0, 3fr) minmax(280px, 2fr);
  gap: 16px; margin-top: 16px; align-items: start; }
table { border-collapse: collapse; width: 100%; font-size: 13px; table-layout: fixed; }
col.c-num { width: 36px; } col.c-when { width: 84px; } col.c-where { width: 92px; }
col.c-kind { width: 196px; }
.what { word-break: break-word; }
th { text-align: left; color: var(--muted); font-weight: 600; border-bottom: 1px solid var(--line);
  padding: 4px 6px; position: sticky; top: 0; background: var(--bg); }
td { padding: 3px 6px; border-bottom: 1px solid var(--line); vertical-align: top; }
tr { cursor: pointer; } tr:hover td { background: var(--lane); }
tr.selected td { background: #fef0c7; }
.num, .when { color: var(--muted); white-space: nowrap; text-align: right; }
.where { color: var(--muted); font-size: 12px; word-break: break-all; }
.kind { white-space: nowrap; font-weight: 600; }
.swatch { display: inline-block; width: 9px; height: 9px; border-radius: 50%;
  margin-right: 6px; background: #98a2b3; }
tr.k-edge .swatch { background: var(--ink); } tr.k-user .swatch { background: var(--user); }
tr.k-agent .swatch { background: var(--agent); } tr.k-llm .swatch { background: var(--llm); }
tr.k-tool .swatch { background: var(--tool); } tr.k-fail .swatch,
tr.k-escalation .swatch { background: var(--fail); }
tr.k-fail .kind, tr.k-escalation .kind { color: var(--fail); }
tr.k-handoff .swatch { background: var(--handoff); } tr.k-intent .swatch {
  background: var(--intent); } tr.k-saga .swatch { background: var(--saga); }
.table-box { max-height: 70vh; overflow: auto; border: 1px solid var(--line); border-radius: 6px; }
#detail { position: sticky; top: 12px; border: 1px solid var(--line); border-radius: 6px;
  padding: 10px 12px; background: var(--lane); min-height: 120px; }
#detail h2 { font-size: 14px; margin: 0 0 6px; }
#detail pre { white-space: pre-wrap; word-break: break-word; font-size: 12px; margin: 0; }
.gap-bg { fill: #f2f4f7; } .gap-line { stroke: #d0d5dd; stroke-width: 2; }
.gap-label { font-size: 11px; fill: #475467; font-style: italic; paint-order: stroke;
  stroke: #f2f4f7; stroke-width: 4px; }
.legend .l-gap { color: #d0d5dd; }
"""

_SCRIPT = """
(function () {
  var events = JSON.parse(document.getElementById('events-data').textContent);
  var selected = null;
  function select(index, scroll) {
    document.querySelectorAll('.selected').forEach(function (el) {
      el.classList.remove('selected');
    });
    document.querySelectorAll('[data-index="' + index + '"]').forEach(function (el) {
      if (!el.classList.contains('bar')) el.classList.add('selected');
    });
    var event = events[index];
    var title = (event.event_type || 'undecodable record') + ' at ' + event.since_start;
    document.getElementById('detail-title').textContent = title;
    document.getElementById('detail-where').textContent =
      event.topic + ' partition ' + event.partition + ' offset ' + event.offset + ' \\u00b7 ' +
      event.time;
    document.getElementById('detail-body').textContent = JSON.stringify(event, null, 2);
    var row = document.getElementById('event-' + index);
    if (scroll && row) row.scrollIntoView({block: 'nearest'});
    selected = index;
  }
  document.addEventListener('click', function (e) {
    var target = e.target.closest('[data-index]');
    if (target) select(Number(target.getAttribute('data-index')), true);
  });
  document.addEventListener('keydown', function (e) {
    var target = e.target.closest && e.target.closest('.mark');
    if (target && (e.key === 'Enter' || e.key === ' ')) {
      select(Number(target.getAttribute('data-index')), true);
      e.preventDefault();
    } else if (selected !== null && (e.key === 'ArrowDown' || e.key === 'ArrowUp')) {
      var next = selected + (e.key === 'ArrowDown' ? 1 : -1);
      if (next >= 0 && next < events.length) { select(next, true); e.preventDefault(); }
    }
  });
  if (events.length) select(0, false);
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{policy}">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<h1>{heading}</h1>
{summary}
<div class="legend"><span class="l-user">user</span>
<span class="l-agent">agent message</span>
<span class="l-llm">LLM call (bar: latency)</span>
<span class="l-tool">tool call (bar: duration)</span>
<span class="l-fail">failure / escalation (dashed line)</span>
<span class="l-handoff">handoff</span>
<span class="l-saga">saga (square: start or end; circle: a step; red cross: failed or undone)</span>
<span class="l-gap">nothing happening</span></div>
<div class="scroller">
{svg}
</div>
<div class="columns">
<div class="table-box">
<table id="events">
<colgroup><col class="c-num"><col class="c-when"><col class="c-where"><col class="c-kind">
<col></colgroup>
<thead><tr><th>#</th><th>time</th><th title="partition@offset in {topic}">position</th>
<th>event</th><th>what happened</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</div>
<aside id="detail"><h2 id="detail-title">Click an event</h2>
<div id="detail-where" class="where"></div><pre id="detail-body"></pre></aside>
</div>
<script type="application/json" id="events-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""

# Only the page's own style and script, by hash: were markup to get in through the data,
# an injected <script> or <style> would not run.
_POLICY = (
    f"default-src 'none'; script-src {_sha256_source(_SCRIPT)}; "
    f"style-src {_sha256_source(_STYLE)}; base-uri 'none'; form-action 'none'; "
    "object-src 'none'"
)
