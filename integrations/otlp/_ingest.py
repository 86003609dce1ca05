"""Spans into events, exactly once, in conversation order.

Spans are held per trace until their conversation is known: a span carrying its own
`gen_ai.conversation.id` / `session.id`, or of a trace whose key is already known, goes
out at once; others wait (in memory, bounded) until their trace's root span arrives or
`hold_s` passes without news of the trace, then take the trace's key (else the trace
id). What goes out together goes in span start order. `accept_*` return only once the
events are durable (on Kafka, or in the spool); else they raise `OtlpUnavailable`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentlog.errors import (
    BrokerUnavailable,
    DeliveryFailed,
    OtlpUnavailable,
    SchemaError,
    SpoolError,
)
from agentlog.integrations.otlp import _mapping as mapping
from agentlog.integrations.otlp._decode import LogRecord, Span

log = logging.getLogger("agentlog.integrations.otlp")

_MAX_TRACES = 10_000  # traces held at once; beyond, the oldest goes out with what it has
_MAX_HELD_SPANS = 100_000
_MAX_KNOWN_KEYS = 100_000  # trace id -> conversation, for spans of a trace arriving later


@dataclass
class _Trace:
    spans: dict[str, Span] = field(default_factory=dict)
    logs: dict[str, list[LogRecord]] = field(default_factory=dict)  # span id -> records
    conversation_id: str | None = None
    session_id: str | None = None
    agents: dict[str, str] = field(default_factory=dict)  # span id -> agent name
    parents: dict[str, str] = field(default_factory=dict)
    last_seen: float = 0.0
    root_seen: bool = False


@dataclass
class Counters:
    requests: int = 0
    spans_received: int = 0
    spans_accepted: int = 0
    spans_dropped: int = 0  # not GenAI
    spans_rejected: int = 0
    log_records_received: int = 0
    log_records_rejected: int = 0
    events_produced: int = 0
    unavailable: int = 0
    last_rejection: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Ingest:
    def __init__(
        self,
        recorder: Any,
        *,
        spooled: bool,
        flush_timeout_s: float = 10.0,
        hold_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.recorder = recorder
        self.spooled = spooled
        self.flush_timeout_s = flush_timeout_s
        self.hold_s = hold_s
        self.clock = clock
        self.counters = Counters()
        self._traces: OrderedDict[str, _Trace] = OrderedDict()
        self._held = 0
        self._keys: OrderedDict[str, str] = OrderedDict()
        self._released: OrderedDict[tuple[str, str], None] = OrderedDict()
        # One request at a time produces and flushes: a flush's failures are then this
        # request's (and held spans'), never another request's answered with 200.
        self._lock = threading.Lock()
        # Since when (self.clock()) Kafka has not taken a batch: said in one line when it
        # begins and one when it ends, not once per 503.
        self._unavailable_since: float | None = None

    # --- in -------------------------------------------------------------------------

    def accept_spans(self, spans: list[Span]) -> tuple[int, str]:
        """Take a request's spans; (rejected, why) for partial_success."""
        with self._lock:
            self.counters.requests += 1
            self.counters.spans_received += len(spans)
            now = self.clock()
            touched: set[str] = set()
            for span in spans:
                trace = self._trace(span.trace_id, now)
                conversation, session = mapping.own_key(span)
                trace.conversation_id = trace.conversation_id or conversation
                trace.session_id = trace.session_id or session
                name = mapping.agent_name(span)
                if name is not None:
                    trace.agents[span.span_id] = name
                if span.parent_span_id:
                    trace.parents[span.span_id] = span.parent_span_id
                else:
                    trace.root_seen = True
                if mapping.kind(span) in ("llm", "tool"):
                    if span.span_id not in trace.spans:
                        trace.spans[span.span_id] = span
                        self._held += 1
                else:
                    self.counters.spans_dropped += 1
                touched.add(span.trace_id)
            ready = [t for t in touched if self._ready(t)]
            ready += self._overflow()
            return self._release(ready)

    def accept_logs(self, records: list[LogRecord]) -> tuple[int, str]:
        with self._lock:
            self.counters.requests += 1
            self.counters.log_records_received += len(records)
            rejected, why = 0, ""
            now = self.clock()
            for record in records:
                name = record.event_name or str(record.attributes.get("event.name", ""))
                if not name.startswith("gen_ai."):
                    continue  # not GenAI content: nothing to keep
                if not record.trace_id or not record.span_id:
                    rejected, why = rejected + 1, "a gen_ai log record without its span's ids"
                    continue
                if (record.trace_id, record.span_id) in self._released:
                    rejected += 1
                    why = "a gen_ai log record arrived after its span was recorded"
                    continue
                trace = self._trace(record.trace_id, now)
                held = trace.logs.setdefault(record.span_id, [])
                if len(held) < 1000:
                    held.append(record)
            self.counters.log_records_rejected += rejected
            if why:
                self.counters.last_rejection = why
            return rejected, why

    def sweep(self) -> None:
        """Send out traces that waited `hold_s` for their root (a background thread)."""
        with self._lock:
            now = self.clock()
            stale = [t for t, trace in self._traces.items() if now - trace.last_seen >= self.hold_s]
            if stale:
                try:
                    self._release(stale)
                except OtlpUnavailable:
                    pass  # held again; the next sweep tries again

    def close(self) -> None:
        """Send out everything held (shutdown)."""
        with self._lock:
            if self._traces:
                self._release(list(self._traces))

    # --- holding ----------------------------------------------------------------------

    def _trace(self, trace_id: str, now: float) -> _Trace:
        trace = self._traces.get(trace_id)
        if trace is None:
            trace = self._traces[trace_id] = _Trace()
            known = self._keys.get(trace_id)
            if known is not None:
                trace.conversation_id = known
        else:
            self._traces.move_to_end(trace_id)
        trace.last_seen = now
        return trace

    def _ready(self, trace_id: str) -> bool:
        trace = self._traces[trace_id]
        return trace.root_seen or trace.conversation_id is not None or trace_id in self._keys

    def _overflow(self) -> list[str]:
        out: list[str] = []
        held = self._held
        for trace_id, trace in self._traces.items():
            if len(self._traces) - len(out) <= _MAX_TRACES and held <= _MAX_HELD_SPANS:
                break
            out.append(trace_id)
            held -= len(trace.spans)
        return out

    def _conversation(self, trace_id: str, trace: _Trace, span: Span) -> str:
        conversation, session = mapping.own_key(span)
        return (
            conversation
            or trace.conversation_id
            or session
            or trace.session_id
            or self._keys.get(trace_id)
            or trace_id
        )

    def _agent(self, trace: _Trace, span: Span) -> str:
        current: str | None = span.span_id
        for _ in range(64):  # a cycle of parent ids cannot hold us
            if current is None:
                break
            if current in trace.agents:
                return trace.agents[current]
            current = trace.parents.get(current)
        service = span.resource.get("service.name")
        if isinstance(service, str) and service and not service.startswith("unknown_service"):
            return service[:256]
        return "agent"

    # --- out --------------------------------------------------------------------------

    def _release(self, trace_ids: list[str]) -> tuple[int, str]:
        taken = {t: self._traces.pop(t) for t in dict.fromkeys(trace_ids) if t in self._traces}
        emits: list[mapping.Emit] = []
        rejected, why = 0, ""
        for trace_id, trace in taken.items():
            self._held -= len(trace.spans)
            key = trace.conversation_id or trace.session_id
            if key is not None:
                self._remember(trace_id, key)
            for span in sorted(trace.spans.values(), key=lambda s: (s.start_ns, s.span_id)):
                conversation = self._conversation(trace_id, trace, span)
                agent = self._agent(trace, span)
                try:
                    if mapping.kind(span) == "llm":
                        emits.append(
                            mapping.llm_call(
                                span, trace.logs.get(span.span_id, []), conversation, agent
                            )
                        )
                    else:
                        emits.extend(mapping.tool_call(span, conversation, agent))
                except Exception as exc:  # noqa: BLE001 - one bad span never stops the rest
                    rejected += 1
                    why = f"span {span.span_id}: {type(exc).__name__}: {exc}"[:300]
        produced = 0
        try:
            for emit in emits:
                try:
                    getattr(self.recorder, emit.method)(**emit.kwargs)
                    produced += 1
                except SchemaError as exc:
                    rejected += 1
                    why = f"span {emit.kwargs.get('span_id')}: {exc}"[:300]
            if not self.spooled:
                self.recorder.flush(self.flush_timeout_s)
        except (BrokerUnavailable, DeliveryFailed, SpoolError) as exc:
            # Hold every span again: spans from earlier requests (answered 200) go out
            # with the next release; this request's are sent again by the exporter.
            for trace_id, trace in taken.items():
                self._traces[trace_id] = trace
                self._held += len(trace.spans)
            self.counters.unavailable += 1
            cause = str(exc).splitlines()[0][:300]
            if self._unavailable_since is None:
                self._unavailable_since = self.clock()
                log.warning(
                    "OTLP receiver: Kafka does not take events (%s); answering 503 with "
                    "Retry-After until it does (exporters send their batches again)",
                    cause,
                )
            raise OtlpUnavailable(cause) from None
        if self._unavailable_since is not None:
            gone = self.clock() - self._unavailable_since
            self._unavailable_since = None
            log.warning("OTLP receiver: Kafka takes events again after %.0fs; going on", gone)
        for trace_id, trace in taken.items():
            for span_id in trace.spans:
                self._released[(trace_id, span_id)] = None
        while len(self._released) > _MAX_KNOWN_KEYS:
            self._released.popitem(last=False)
        spans = sum(len(t.spans) for t in taken.values())
        self.counters.spans_accepted += spans - rejected
        self.counters.spans_rejected += rejected
        self.counters.events_produced += produced
        if why:
            self.counters.last_rejection = why
        return rejected, why

    def _remember(self, trace_id: str, key: str) -> None:
        self._keys[trace_id] = key
        self._keys.move_to_end(trace_id)
        while len(self._keys) > _MAX_KNOWN_KEYS:
            self._keys.popitem(last=False)
