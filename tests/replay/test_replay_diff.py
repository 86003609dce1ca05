"""`agentlog replay diff A B` aligns two conversations event by event: an extra or a missing
event shifts nothing after it, and aligned events name the fields that differ."""

from __future__ import annotations

import json

from helpers.cli import agentlog

from agentlog.consumers.projection import RecordedEvent
from agentlog.producers import Recorder
from agentlog.replay.diff import diff_conversations, diff_document, diff_lines
from agentlog.replay.documents import replay_of_events
from agentlog.settings import Settings


def _event(n: int, kind: str, cid: str = "a", **payload) -> RecordedEvent:
    return RecordedEvent(
        f"{cid}-{n}", cid, 1_000_000 * n, kind, payload, {"service": "s"}, None, None, None,
        "t", 0, n,
    )  # fmt: skip


def _run(cid: str, *, tool: str = "lookup", argument: str = "INV-1", extra: bool = False):
    events = [
        _event(0, "conversation_started", cid, channel="web"),
        _event(1, "user_message", cid, text="hi"),
        _event(2, "tool_call_requested", cid, tool_name=tool, tool_call_id=f"{cid}-c",
               arguments_json=f'{{"id":"{argument}"}}', agent="billing", attempt=1),
    ]  # fmt: skip
    if extra:
        events.append(_event(3, "escalation", cid, agent="billing", reason="r", target="human"))
    events.append(_event(4, "conversation_ended", cid, outcome="resolved"))
    return events


def test_identical_runs_differ_only_in_ids_and_times() -> None:
    result = diff_conversations(_run("a"), _run("b"))
    assert result.identical
    assert [s.kind for s in result.steps] == ["same"] * 4


def test_a_re_run_recorded_by_another_service_is_identical() -> None:
    """`replay rerun` records as its own service and version: who recorded an event says
    nothing about what the agent did."""
    rerun = _run("b")
    for event in rerun:
        event.source.update(service="agentlog-rerun", version="rerun-1")
    assert diff_conversations(_run("a"), rerun).identical


def _started(cid: str, **metadata) -> list[RecordedEvent]:
    return [
        _event(0, "conversation_started", cid, channel="web", metadata_json=json.dumps(metadata))
    ]


def test_a_re_runs_provenance_is_left_out_and_nothing_else() -> None:
    """A re-run's start is the original's plus `metadata.rerun`: that key alone is left
    out, a field of that name anywhere else still counts."""
    rerun = {"of": "a", "first_offset": 0, "last_offset": 4, "mode": "strict"}
    assert diff_conversations(
        _started("a", locale="en"), _started("b", locale="en", rerun=rerun)
    ).identical
    [step] = diff_conversations(
        _started("a", locale="en"), _started("b", locale="fr", rerun=rerun)
    ).steps
    assert [name for name, _, _ in step.differences] == ["metadata_json.locale"]
    [step] = diff_conversations(
        _started("a", note={"rerun": 1}), _started("b", note={"rerun": 2})
    ).steps
    assert [name for name, _, _ in step.differences] == ["metadata_json.note.rerun"]


def test_an_extra_event_is_one_line_and_the_rest_stays_aligned() -> None:
    result = diff_conversations(_run("a"), _run("b", extra=True))
    assert [s.kind for s in result.steps] == ["same", "same", "same", "only_b", "same"]
    result = diff_conversations(_run("a", extra=True), _run("b"))
    assert [s.kind for s in result.steps] == ["same", "same", "same", "only_a", "same"]


def test_changed_arguments_and_another_tool_are_named() -> None:
    result = diff_conversations(_run("a"), _run("b", argument="INV-2"))
    [changed] = [s for s in result.steps if s.kind == "changed"]
    assert changed.differences == (("arguments_json.id", "INV-1", "INV-2"),)
    result = diff_conversations(_run("a"), _run("b", tool="refund"))
    [changed] = [s for s in result.steps if s.kind == "changed"]
    assert ("tool_name", "lookup", "refund") in changed.differences
    ignored = diff_conversations(_run("a"), _run("b", argument="INV-2"), ignore=["id"])
    assert ignored.identical


def _record(settings: Settings, cid: str, invoice: str, escalate: bool) -> None:
    with Recorder(settings) as r:
        r.start_conversation(cid, channel="web_chat")
        r.user_message(cid, "charged twice")
        with r.conversation(cid):
            with r.tool_call("lookup_invoice", {"invoice_id": invoice}, agent="billing") as call:
                call.complete({"total": 10})
        if escalate:
            r.escalation(cid, "billing", "customer asked for a human")
        r.agent_message(cid, "billing", "Refund on its way.")
        r.end_conversation(cid, "resolved")


def test_diff_command_aligns_two_recorded_conversations(settings: Settings, tmp_path) -> None:
    _record(settings, "conv-a", "INV-1", escalate=False)
    _record(settings, "conv-b", "INV-2", escalate=True)
    base = ("--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix)
    run = agentlog(*base, "replay", "diff", "conv-a", "conv-b", state_dir=tmp_path)
    assert run.code == 1, run.err  # they differ: as diff(1), so a script can gate on it
    lines = run.out.splitlines()
    assert lines[0].startswith("--- conv-a: 6 events") and lines[1].startswith("+++ conv-b")
    marks = [line.split()[0] for line in lines[2:] if line[:1] and line[0] in "=~-+"]
    assert marks == ["=", "=", "~", "=", "+", "=", "="]
    assert '      arguments_json.invoice_id: "INV-1" -> "INV-2"' in lines
    assert "5 same, 1 changed, 0 only in conv-a, 1 only in conv-b" in lines[-1]
    brief = agentlog(*base, "replay", "diff", "conv-a", "conv-b", "--brief", state_dir=tmp_path)
    assert [line[:1] for line in brief.out.splitlines()[2:] if line[:1] and line[0] in "=~-+"] == [
        "~",
        "+",
    ]
    document = json.loads(
        agentlog(
            *base, "replay", "diff", "conv-a", "conv-b", "--format", "json", state_dir=tmp_path
        ).out
    )
    assert document["counts"] == {"same": 5, "changed": 1, "only_a": 0, "only_b": 1}
    assert document["steps"][4]["b"]["event_type"] == "escalation"
    same = agentlog(*base, "replay", "diff", "conv-a", "conv-a", "--brief", state_dir=tmp_path)
    assert same.code == 0, same.err
    assert "6 same, 0 changed" in same.out
    missing = agentlog(*base, "replay", "diff", "conv-a", "conv-zzz", state_dir=tmp_path)
    assert missing.code == 1 and "no conversation 'conv-zzz'" in missing.err


def test_the_diff_is_rendered_as_text_and_as_a_document() -> None:
    a, b = _run("a"), _run("b", argument="INV-2", extra=True)
    first, second = replay_of_events("a", a), replay_of_events("b", b)
    result = diff_conversations(a, b)
    lines = list(diff_lines(first, second, result))
    assert lines[:2] == ["--- a: 4 events on t[0]", "+++ b: 5 events on t[0]"]
    assert [line[:1] for line in lines[2:9]] == ["=", "=", "~", " ", "+", "=", ""]
    assert lines[5] == '      arguments_json.id: "INV-1" -> "INV-2"'
    assert lines[-1].startswith("3 same, 1 changed, 0 only in a, 1 only in b (ignoring ")
    brief = list(diff_lines(first, second, result, brief=True))
    assert [line[:1] for line in brief[2:5]] == ["~", " ", "+"]
    document = diff_document(first, second, result)
    assert document["identical"] is False
    assert document["counts"] == {"same": 3, "changed": 1, "only_a": 0, "only_b": 1}
    assert document["steps"][2]["differences"] == [
        {"field": "arguments_json.id", "a": "INV-1", "b": "INV-2"}
    ]
