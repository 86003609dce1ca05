"""Align two conversations event by event and say what differs.

Events are aligned on what they are (type, agent, tool), with the longest common
subsequence (difflib), so an extra or a missing event shifts nothing after it. Aligned
events are then compared field by field, leaving out what differs between any two runs
by nature: ids (event, tool call, trace, span, causation), timings, the service
that recorded them and a re-run's provenance (`metadata_json.rerun`).

`diff_lines` and `diff_document` render the result (text, with colours if given a
style; a JSON document): the CLI only prints them.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from agentlog.consumers.projection import RecordedEvent
from agentlog.display import visible
from agentlog.events import RERUN_METADATA_KEY
from agentlog.llm_calls import structured_fields
from agentlog.replay.conversation import Replay
from agentlog.replay.transcript import counted, plain, readable_payload, short, summary

# Differ between any two runs, so they say nothing about behaviour.
NATURALLY_DIFFERENT = frozenset(
    {
        "event_id",
        "conversation_id",
        "occurred_at",
        "trace_id",
        "span_id",
        "causation_id",
        "tool_call_id",
        "duration_ms",
        "latency_ms",
        # an LLM call's: the provider's ids, its whole response body and its timing
        "response_id",
        "provider_response_json",
        "time_to_first_token_ms",
        # who recorded it: a re-run records as its own service and version
        "source.service",
        "source.version",
        # where a re-run came from: the original has none
        f"metadata_json.{RERUN_METADATA_KEY}",
    }
)


@dataclass(frozen=True)
class Step:
    """One line of the alignment: `same`, `changed` (with the fields that differ),
    `only_a` or `only_b`."""

    kind: str
    a: RecordedEvent | None
    b: RecordedEvent | None
    differences: tuple[tuple[str, Any, Any], ...] = ()


@dataclass
class ConversationDiff:
    steps: list[Step]
    ignored: frozenset[str] = field(default_factory=frozenset)

    def count(self, kind: str) -> int:
        return sum(1 for s in self.steps if s.kind == kind)

    @property
    def identical(self) -> bool:
        return all(s.kind == "same" for s in self.steps)


def signature(event: RecordedEvent) -> tuple[str, Any, Any]:
    """What an event is, for alignment: its type and who or what it is about."""
    b = event.payload
    who = b.get("agent") or b.get("from_agent") or event.source.get("agent")
    what = b.get("tool_name") or b.get("to_agent") or b.get("step") or b.get("intent")
    return (event.event_type, who, what)


def comparable(event: RecordedEvent, ignored: frozenset[str]) -> dict[str, Any]:
    """The event's fields that say what happened, objects flattened into dotted names
    (`source.agent`, `arguments_json.invoice_id`: JSON text fields compared as JSON)."""
    fields: dict[str, Any] = {"event_type": event.event_type}
    _flatten("source", event.source, fields)
    payload = event.payload
    if event.event_type in ("llm_call", "llm_call_failed"):
        payload = _llm_call_comparable(event.event_type, payload)
    for name, value in readable_payload(payload).items():
        _flatten(name, value, fields)
    return {k: v for k, v in fields.items() if not _ignored(k, ignored)}


# An LLM call's request and answer, compared in the one structured shape (so a call
# recorded before v4 and one recorded whole compare on what they both say).
_LLM_CALL_RECORDED_SHAPE = frozenset(
    {
        "input_json",
        "output_text",
        "finish_reason",
        "finish_reasons",
        "input_messages_json",
        "system_instructions_json",
        "tool_definitions_json",
        "output_messages_json",
        "request_parameters_json",
    }
)


def _llm_call_comparable(event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The call's fields with its messages as the structured view has them, and tool call
    ids (which differ between any two runs) left out of the messages."""
    call = structured_fields(event_type, payload)
    fields = {k: v for k, v in payload.items() if k not in _LLM_CALL_RECORDED_SHAPE}
    fields["input_messages"] = _without_call_ids(call.input_messages)
    fields["system_instructions"] = call.system_instructions
    fields["tool_definitions"] = call.tool_definitions
    fields["output_messages"] = _without_call_ids(call.output_messages)
    fields["request_parameters"] = call.request_parameters
    fields["finish_reasons"] = call.finish_reasons
    return fields


def _without_call_ids(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            **m,
            "parts": [
                {k: v for k, v in p.items() if k != "id"}
                if p.get("type") in ("tool_call", "tool_call_response")
                else p
                for p in m["parts"]
            ],
        }
        for m in messages
    ]


def _ignored(name: str, ignored: frozenset[str]) -> bool:
    """Whether a dotted field name is left out: it, one of its parts (`tool_call_id`
    wherever it sits) or one of the objects it is in (`metadata_json.rerun`) is ignored."""
    parts = name.split(".")
    prefixes = (".".join(parts[:n]) for n in range(1, len(parts) + 1))
    return bool(ignored.intersection(parts)) or any(p in ignored for p in prefixes)


def _flatten(name: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _flatten(f"{name}.{key}", inner, into)
    else:
        into[name] = value


def diff_conversations(
    a: Iterable[RecordedEvent], b: Iterable[RecordedEvent], *, ignore: Iterable[str] = ()
) -> ConversationDiff:
    left, right = list(a), list(b)
    ignored = NATURALLY_DIFFERENT | frozenset(ignore)
    matcher = difflib.SequenceMatcher(
        None, [signature(e) for e in left], [signature(e) for e in right], autojunk=False
    )
    steps: list[Step] = []
    for tag, a1, a2, b1, b2 in matcher.get_opcodes():
        if tag == "equal":
            steps.extend(
                _pair(x, y, ignored) for x, y in zip(left[a1:a2], right[b1:b2], strict=True)
            )
            continue
        # Replaced runs: events of the same type facing each other are one event changed
        # (another tool, another agent); the rest is only on one side.
        ours, theirs = left[a1:a2], right[b1:b2]
        while ours or theirs:
            if ours and theirs and ours[0].event_type == theirs[0].event_type:
                steps.append(_pair(ours.pop(0), theirs.pop(0), ignored))
            elif ours and (not theirs or ours[0].event_type not in _types(theirs)):
                steps.append(Step("only_a", ours.pop(0), None))
            else:
                steps.append(Step("only_b", None, theirs.pop(0)))
    return ConversationDiff(steps, ignored)


def _types(events: list[RecordedEvent]) -> set[str]:
    return {e.event_type for e in events}


def _pair(a: RecordedEvent, b: RecordedEvent, ignored: frozenset[str]) -> Step:
    x, y = comparable(a, ignored), comparable(b, ignored)
    differences = tuple(
        (name, x.get(name), y.get(name))
        for name in sorted(set(x) | set(y))
        if x.get(name) != y.get(name)
    )
    return Step("changed" if differences else "same", a, b, differences)


# -- rendering (`agentlog replay diff` prints these) ------------------------------------

# Each kind of step: its mark and its look (click.style's keywords).
MARK_STYLE: dict[str, tuple[str, dict[str, str | bool]]] = {
    "same": ("=", {"dim": True}),
    "changed": ("~", {"fg": "yellow", "bold": True}),
    "only_a": ("-", {"fg": "red", "bold": True}),
    "only_b": ("+", {"fg": "green", "bold": True}),
}


def _position(event: RecordedEvent | None) -> str:
    return "." if event is None else f"p{event.partition}@{event.offset}"


def _values(left: object, right: object, width: int = 70) -> str:
    """`left -> right` as JSON, long texts shown from a little before where they part."""
    a, b = (json.dumps(v, ensure_ascii=False) for v in (left, right))
    common = len(os.path.commonprefix([a, b]))
    if common > 30 and max(len(a), len(b)) > width:
        a, b = "…" + a[common - 20 :], "…" + b[common - 20 :]
    return visible(f"{short(a, width)} -> {short(b, width)}")


def diff_lines(
    a: Replay,
    b: Replay,
    result: ConversationDiff,
    *,
    style: Callable[..., str] = plain,
    brief: bool = False,
) -> Iterator[str]:
    """`replay diff`'s text: the two conversations, then each step of the alignment
    (`=` same, `~` changed with the fields that differ, `-` only in A, `+` only in B;
    `brief`: the steps that differ), then the counts. `style` is `click.style` for
    colours, `plain` (the default) for none. Recorded text is shown visible (no
    control characters)."""
    yield style(
        visible(
            f"--- {a.conversation_id}: {counted(len(a.events), 'event')} on "
            f"{a.topic}[{a.partition}]"
        ),
        fg="red",
    )
    yield style(
        visible(
            f"+++ {b.conversation_id}: {counted(len(b.events), 'event')} on "
            f"{b.topic}[{b.partition}]"
        ),
        fg="green",
    )
    width = max([len(_position(s.a)) for s in result.steps] + [1])
    for step in result.steps:
        if brief and step.kind == "same":
            continue
        mark, look = MARK_STYLE[step.kind]
        event = step.a or step.b
        assert event is not None
        yield style(
            f"{mark} {_position(step.a):<{width}} {_position(step.b):<{width}}  "
            f"{event.event_type:<22} {summary(event)}",
            **look,
        )
        for name, left, right in step.differences:
            yield f"      {name}: {_values(left, right)}"
    yield ""
    yield (
        f"{result.count('same')} same, {result.count('changed')} changed, "
        f"{result.count('only_a')} only in {a.conversation_id}, "
        f"{result.count('only_b')} only in {b.conversation_id}"
        + (" (ignoring " + ", ".join(sorted(result.ignored)) + ")")
    )


def diff_document(a: Replay, b: Replay, result: ConversationDiff) -> dict[str, Any]:
    """`replay diff --format json`: the alignment as a JSON document."""

    def where(event: RecordedEvent | None) -> dict[str, Any] | None:
        if event is None:
            return None
        return {
            "partition": event.partition,
            "offset": event.offset,
            "event_type": event.event_type,
            "event_id": event.event_id,
        }

    document: dict[str, Any] = {
        "a": {"conversation_id": a.conversation_id, "topic": a.topic},
        "b": {"conversation_id": b.conversation_id, "topic": b.topic},
        "ignored": sorted(result.ignored),
        "identical": result.identical,
        "counts": {k: result.count(k) for k in MARK_STYLE},
        "steps": [
            {
                "kind": step.kind,
                "a": where(step.a),
                "b": where(step.b),
                "differences": [
                    {"field": name, "a": left, "b": right} for name, left, right in step.differences
                ],
            }
            for step in result.steps
        ],
    }
    return document
