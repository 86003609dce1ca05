"""The training export's "escalated" and "a tool call failed" are what the one fold
(the projector's `conversations` and `tool_calls` state) says of each conversation, not
decisions of its own: a conversation the projection shows with a finally failed call is
left out by `--failed-tool-calls exclude`, whatever the trajectory's messages show."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from helpers.offline_archive import archive_offline
from helpers.offline_log import TOPIC, OfflineLog, events_of, fold_log, simulated_log

from agentlog.analytics.training import TrainingOptions, export_training, trajectories
from agentlog.analytics.views import open_views
from agentlog.consumers.projections.conversations import TABLE as CONVERSATIONS
from agentlog.consumers.projections.conversations import escalated
from agentlog.consumers.projections.tool_calls import TABLE as TOOL_CALLS
from agentlog.consumers.projections.tool_calls import finally_failed
from agentlog.consumers.projections.verdicts import DECIDED_BY, NOTHING_DECIDED, verdicts

LOOKUP = {
    "name": "lookup_invoice",
    "description": "Fetch an invoice",
    "parameters": {"type": "object", "properties": {"n": {"type": "number"}}},
}
LLM = {"agent": "billing", "provider": "openai", "request_model": "gpt-4o", "latency_ms": 5.0}


def _answer(text: str, *calls: tuple[str, str, dict]) -> list[dict]:
    parts: list[dict] = [{"type": "text", "content": text}] if text else []
    parts += [
        {"type": "tool_call", "id": i, "name": name, "arguments": args} for i, name, args in calls
    ]
    return [
        {"role": "assistant", "parts": parts, "finish_reason": "tool_call" if calls else "stop"}
    ]


def _own_call_fails(log: OfflineLog, c: str) -> None:
    """Recorded whole (v4): the model's call is answered, but a tool that agent code
    called on its own (no turn of the model's) finally failed."""
    log.tools_declared(c, "billing", [LOOKUP])
    log.user_message(c, "Refund INV-1")
    log.llm_call(c, **LLM, output_messages=_answer("", ("m-1", "lookup_invoice", {"n": 1})))
    log.tool_call_requested(c, "audit-1", "audit", {"n": 1}, agent="billing")
    log.tool_call_failed(
        c, "audit-1", "audit", error_type="Down", error_message="audit store down",
        duration_ms=1.0,
    )  # fmt: skip
    log.tool_call_requested(c, "m-1", "lookup_invoice", {"n": 1}, agent="billing")
    log.tool_call_completed(c, "m-1", "lookup_invoice", {"total": 1}, duration_ms=1.0)
    log.llm_call(c, **LLM, output_messages=_answer("It is 1 EUR."))
    log.end_conversation(c, "resolved")


def _retry_under_way(log: OfflineLog, c: str) -> None:
    """A call failed once and its retry is requested, not answered yet: it has not
    finally failed (the projection shows it `requested`)."""
    log.tools_declared(c, "billing", [LOOKUP])
    log.user_message(c, "Invoice INV-2?")
    log.llm_call(c, **LLM, output_text="Looking.", input_tokens=1, output_tokens=1)
    log.tool_call_requested(c, "r-1", "lookup_invoice", {"n": 2}, agent="billing")
    log.tool_call_failed(
        c, "r-1", "lookup_invoice", error_type="Timeout", error_message="slow",
        duration_ms=9.0, retryable=True,
    )  # fmt: skip
    log.tool_call_requested(c, "r-1", "lookup_invoice", {"n": 2}, attempt=2)


def _retried_then_completed(log: OfflineLog, c: str) -> None:
    log.tools_declared(c, "billing", [LOOKUP])
    log.user_message(c, "Invoice INV-3?")
    log.tool_call_requested(c, "t-1", "lookup_invoice", {"n": 3}, agent="billing")
    log.tool_call_failed(
        c, "t-1", "lookup_invoice", error_type="Timeout", error_message="slow",
        duration_ms=9.0, retryable=True,
    )  # fmt: skip
    log.tool_call_requested(c, "t-1", "lookup_invoice", {"n": 3}, attempt=2)
    log.tool_call_completed(c, "t-1", "lookup_invoice", {"total": 3}, duration_ms=1.0, attempt=2)
    log.agent_message(c, "billing", "It is 3 EUR.")
    log.end_conversation(c, "resolved")


def _escalation_then_resolved(log: OfflineLog, c: str) -> None:
    log.user_message(c, "A person please")
    log.escalation(c, "billing", "asked for a person")
    log.agent_message(c, "billing", "A colleague will help.")
    log.end_conversation(c, "resolved")


def _ended_escalated(log: OfflineLog, c: str) -> None:
    """Ended `escalated` with no escalation event; a handoff between agents is none."""
    log.user_message(c, "Help")
    log.handoff(c, "triage", "billing", reason="billing question")
    log.agent_message(c, "billing", "Passing you on.")
    log.end_conversation(c, "escalated")


def _handoff_only(log: OfflineLog, c: str) -> None:
    log.user_message(c, "Help")
    log.handoff(c, "triage", "billing", reason="billing question")
    log.agent_message(c, "billing", "Sorted.")
    log.end_conversation(c, "resolved")


CRAFTED = {
    "own-call-fails": _own_call_fails,
    "retry-under-way": _retry_under_way,
    "retried-then-completed": _retried_then_completed,
    "escalation-then-resolved": _escalation_then_resolved,
    "ended-escalated": _ended_escalated,
    "handoff-only": _handoff_only,
}


@cache  # the same log for every test (none changes it)
def varied_log() -> OfflineLog:
    """The demo's simulated support system (escalations, failed and retried tools,
    sagas), and the crafted conversations above."""
    log = simulated_log(400, seed=11)
    for conversation_id, record in CRAFTED.items():
        record(log, conversation_id)
    return log


def by_the_fold(log: OfflineLog) -> dict[str, tuple[bool, set[str]]]:
    """Per conversation, as the projector's state has it: escalated, and the ids of the
    calls that finally failed."""
    folded = fold_log(log.records)
    decided = {
        cid: (escalated(row), set[str]()) for (cid,), row in folded.changed[CONVERSATIONS].items()
    }
    for (cid, call_id), row in folded.changed[TOOL_CALLS].items():
        if finally_failed(row):
            decided[cid][1].add(call_id)
    return decided


def export(tmp_path: Path, log: OfflineLog, name: str, **options) -> set[str]:
    """The ids of the conversations exported."""
    archive = tmp_path / "archive"
    if not archive.exists():
        archive_offline(log, archive)
    out = tmp_path / name
    export_training(archive, TOPIC, TrainingOptions(out=out, redact=False, **options))
    provenance = out.with_name(f"{out.stem}.provenance.jsonl")
    return {json.loads(line)["conversation_id"] for line in provenance.read_text().splitlines()}


def test_a_call_agent_code_made_that_finally_failed_is_a_failed_tool_call(tmp_path: Path) -> None:
    log = OfflineLog()
    _own_call_fails(log, "own-call-fails")
    _retried_then_completed(log, "retried-then-completed")
    assert by_the_fold(log)["own-call-fails"] == (False, {"audit-1"})
    assert export(tmp_path, log, "all.jsonl") == {"own-call-fails", "retried-then-completed"}
    assert export(tmp_path, log, "ok.jsonl", failed_tool_calls="exclude") == {
        "retried-then-completed"
    }


def test_a_failure_whose_retry_is_under_way_has_not_finally_failed(tmp_path: Path) -> None:
    log = OfflineLog()
    _retry_under_way(log, "retry-under-way")
    assert by_the_fold(log)["retry-under-way"] == (False, set())
    assert export(tmp_path, log, "ok.jsonl", failed_tool_calls="exclude") == {"retry-under-way"}


def test_the_export_decides_every_conversation_as_the_projection_does(tmp_path: Path) -> None:
    log = varied_log()
    expected = by_the_fold(log)
    # The set is varied enough to tell: some of each, on both questions.
    assert 0 < sum(e for e, _ in expected.values()) < len(expected)
    assert 0 < sum(bool(f) for _, f in expected.values()) < len(expected)
    archive = tmp_path / "archive"
    archive_offline(log, archive)
    with open_views(archive, TOPIC, None) as views:
        decided = {
            t.conversation_id: (t.verdict.escalated, set(t.verdict.failed_calls))
            for t in trajectories(views)
        }
    assert decided == expected
    everything = export(tmp_path, log, "all.jsonl")
    calm = export(tmp_path, log, "calm.jsonl", escalated="exclude")
    assert calm == {c for c in everything if not expected[c][0]}
    clean = export(tmp_path, log, "clean.jsonl", failed_tool_calls="exclude")
    assert clean == {c for c in everything if not expected[c][1]}


def test_folding_only_the_deciding_events_gives_the_verdict_of_folding_all() -> None:
    """What lets the export fold only `DECIDED_BY`: the answers do not change."""
    events = events_of(varied_log().records)
    everything = verdicts(events)
    assert len(everything) == len({e.conversation_id for e in events})
    deciding = verdicts([e for e in events if e.event_type in DECIDED_BY])
    assert {c: deciding.get(c, NOTHING_DECIDED) for c in everything} == everything
    assert everything["own-call-fails"].failed_calls == {"audit-1"}
    assert everything["ended-escalated"].escalated
    assert everything["escalation-then-resolved"].escalated
    assert not everything["handoff-only"].escalated
