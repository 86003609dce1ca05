"""Training exports from an archive (written without a broker): the trajectory of each
conversation, filters, redaction, split, weights, provenance, Parquet, and the
validation that keeps invalid conversations out with their reason."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers.offline_archive import archive_offline
from helpers.offline_log import TOPIC, OfflineLog, events_of, simulated_log
from helpers.support_log import TOOLS, support_log
from helpers.training_checks import check_example, check_training_file

from agentlog.analytics.training import TrainingOptions, export_training
from agentlog.analytics.views import open_views
from agentlog.demo.agents import support_team
from agentlog.errors import ExportError
from agentlog.runtime import rerun_recording


def export(tmp_path: Path, log: OfflineLog, name: str = "out.jsonl", **options):
    archive = tmp_path / "archive"
    if not (archive / TOPIC).exists():
        archive_offline(log, archive)
    report = export_training(archive, TOPIC, TrainingOptions(out=tmp_path / name, **options))
    return report


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_trajectory_with_parallel_calls_a_final_failure_and_redaction(tmp_path: Path) -> None:
    report = export(tmp_path, support_log(), weight_failed=0)
    assert report.invalid == [("conv-open", "tool call call-d (message 1) is not answered")]
    examples = check_training_file(tmp_path / "out.jsonl")
    by_first_user = {
        e["messages"][1 if e["messages"][0]["role"] == "system" else 0]["content"]: e
        for e in examples
    }
    escalated = by_first_user["Charged twice! Mail [EMAIL] or call [PHONE]"]
    calls = [
        {"id": "call-a", "type": "function",
         "function": {"name": "lookup_invoice", "arguments": '{"invoice_id":"INV-1"}'}},
        {"id": "call-b", "type": "function",
         "function": {"name": "issue_refund", "arguments": '{"amount":12.5}'}},
    ]  # fmt: skip
    assert escalated["messages"] == [
        {"role": "system", "content": "You are the billing agent."},
        {"role": "user", "content": "Charged twice! Mail [EMAIL] or call [PHONE]"},
        {"role": "assistant", "content": "Checking both.", "tool_calls": calls, "weight": 0},
        {"role": "tool", "tool_call_id": "call-a", "content": '{"total":12.5}'},
        {
            "role": "tool",
            "tool_call_id": "call-b",
            "content": '{"error":{"type":"Timeout","message":"slow again"}}',
        },
        {
            "role": "assistant",
            "content": "Sorry, the refund failed; a colleague will help.",
            "weight": 1,
        },
    ]
    assert escalated["parallel_tool_calls"] is True
    assert [t["function"]["name"] for t in escalated["tools"]] == ["lookup_invoice", "issue_refund"]
    assert escalated["tools"][0]["function"]["parameters"] == TOOLS[0]["parameters"]
    # Tool declarations are redacted too (descriptions and parameters; names stay).
    assert (
        escalated["tools"][1]["function"]["description"] == "Refund a payment; questions to [EMAIL]"
    )
    resolved = by_first_user["Invoice INV-2 please"]
    assert [m["role"] for m in resolved["messages"]] == [
        "user", "assistant", "tool", "assistant", "user", "assistant",
    ]  # fmt: skip
    assert resolved["messages"][1]["content"] is None
    assert "parallel_tool_calls" not in resolved
    assert report.redactions == {"[EMAIL]": 2, "[PHONE]": 1}
    # Provenance: one line per example, its offsets in the log.
    provenance = lines(tmp_path / "out.provenance.jsonl")
    assert [p["line"] for p in provenance] == [1, 2]
    assert {p["conversation_id"] for p in provenance} == {"conv-parallel", "conv-resolved"}
    log = support_log()
    for entry in provenance:
        offsets = [
            (r.partition, r.offset)
            for r in log.records
            if r.key.decode() == entry["conversation_id"]
        ]
        (span,) = entry["offsets"]
        assert (span["partition"], span["first"]) == min(offsets)
        assert (span["partition"], span["last"]) == max(offsets)
        assert entry["events"] == len(offsets) and entry["topic"] == TOPIC


def test_no_redact_keeps_the_text_and_filters_leave_conversations_out(tmp_path: Path) -> None:
    log = support_log()
    kept = export(tmp_path, log, "raw.jsonl", redact=False)
    (first,) = [
        e
        for e in lines(tmp_path / "raw.jsonl")
        if len(e["messages"]) == 6 and e["messages"][0]["role"] == "system"
    ]
    assert "jo.doe@example.com" in first["messages"][1]["content"]
    assert kept.redactions == {}
    no_failures = export(tmp_path, log, "ok.jsonl", failed_tool_calls="exclude")
    assert no_failures.excluded == {"a tool call failed": 1}
    not_escalated = export(tmp_path, log, "calm.jsonl", escalated="exclude")
    assert not_escalated.excluded == {"escalated": 1}
    where = export(tmp_path, log, "where.jsonl", where="outcome = 'resolved' AND tool_calls = 1")
    assert where.excluded == {"--where": 2} and where.examples == {"all": 1}
    assert lines(tmp_path / "where.provenance.jsonl")[0]["conversation_id"] == "conv-resolved"
    with pytest.raises(ExportError, match="--where 'no_such_column = 1'.*outcome"):
        export(tmp_path, log, "bad.jsonl", where="no_such_column = 1")
    assert not (tmp_path / "bad.jsonl").exists()


def test_split_is_deterministic_by_conversation_and_parquet_holds_the_same(
    tmp_path: Path,
) -> None:
    log = simulated_log(120)
    first = export(tmp_path, log, "a.jsonl", split=0.8)
    again = export(tmp_path, log, "b.jsonl", split=0.8)
    # --out names the training file; the validation file is beside it.
    train_a = lines(tmp_path / "a.provenance.jsonl")
    valid_a = lines(tmp_path / "a.validation.provenance.jsonl")
    assert not (tmp_path / "a.train.jsonl").exists()
    assert train_a == [{**p, "file": "a.jsonl"} for p in lines(tmp_path / "b.provenance.jsonl")]
    ids_train = {p["conversation_id"] for p in train_a}
    ids_valid = {p["conversation_id"] for p in valid_a}
    assert not ids_train & ids_valid
    assert len(ids_train | ids_valid) + len(first.invalid) == 120
    assert 0.65 < len(ids_train) / (len(ids_train) + len(ids_valid)) < 0.95
    assert first.examples == again.examples
    for name in ("a.jsonl", "a.validation.jsonl"):
        check_training_file(tmp_path / name)
    export(tmp_path, log, "c.parquet", split=0.8)
    table = pq.read_table(tmp_path / "c.parquet").to_pylist()
    assert [row["conversation_id"] for row in table] == [p["conversation_id"] for p in train_a]
    jsonl = lines(tmp_path / "a.jsonl")
    for row, example in zip(table, jsonl, strict=True):
        messages = [{k: v for k, v in m.items() if v is not None} for m in row["messages"]]
        expected = [{k: v for k, v in m.items() if v is not None} for m in example["messages"]]
        assert messages == expected
        assert json.loads(row["tools"]) == example["tools"]


def test_trl_format_has_arguments_as_objects_and_named_tool_messages(tmp_path: Path) -> None:
    export(tmp_path, support_log(), "trl.jsonl", form="trl")
    examples = lines(tmp_path / "trl.jsonl")
    calls = [c for e in examples for m in e["messages"] for c in m.get("tool_calls") or []]
    assert calls and all(isinstance(c["function"]["arguments"], dict) for c in calls)
    tools = [m for e in examples for m in e["messages"] if m["role"] == "tool"]
    assert {m["name"] for m in tools} == {"lookup_invoice", "issue_refund"}
    assert all("parallel_tool_calls" not in e for e in examples)


def test_the_independent_checks_catch_what_the_exporter_must_refuse() -> None:
    """The checks used on the demo's file do fail on bad examples."""
    good = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "1", "content": "{}"},
            {"role": "assistant", "content": "done"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    }  # fmt: skip
    check_example(good)
    broken = [
        {**good, "tools": []},
        {**good, "messages": good["messages"][:2] + good["messages"][3:]},
        {**good, "messages": [good["messages"][0], good["messages"][2], good["messages"][3]]},
        {**good, "messages": [good["messages"][0]]},
        {**good, "extra": 1},
    ]
    for example in broken:
        with pytest.raises(AssertionError):
            check_example(example)


def test_reruns_stay_out_of_training_data_unless_asked_for(tmp_path: Path) -> None:
    """A re-run (`agentlog replay rerun` recorded it) repeats a conversation; it is not a
    new one. Training exports leave re-runs out, known by their start's provenance
    whatever their id, and `--include-reruns` keeps them."""
    log = simulated_log(20, seed=7)
    plain = export(tmp_path / "plain", simulated_log(20, seed=7))
    conversations: dict[str, list] = {}
    for event in events_of(log.records):
        conversations.setdefault(event.conversation_id, []).append(event)
    originals = sorted(conversations)[:3]
    for n, cid in enumerate(originals):
        report = rerun_recording(
            conversations[cid], support_team, recorder=log, new_conversation_id=f"again-{n}"
        )
        assert report.matched, report.lines()
    left_out = export(tmp_path / "default", log)
    assert left_out.examples == plain.examples
    assert left_out.excluded == {"a re-run": 3}
    kept = export(tmp_path / "kept", log, include_reruns=True)
    assert sum(kept.examples.values()) == sum(plain.examples.values()) + 3
    exported = {p["conversation_id"] for p in lines(tmp_path / "kept" / "out.provenance.jsonl")}
    assert {"again-0", "again-1", "again-2"} <= exported
    # `agentlog sql` sees them too: which conversations are re-runs, and of what.
    with open_views(tmp_path / "default" / "archive", TOPIC, None) as views:
        _, rows = views.query("SELECT conversation_id, rerun_of, mode FROM reruns ORDER BY 1")
    assert rows == [(f"again-{n}", cid, "strict") for n, cid in enumerate(originals)]


def test_reruns_recorded_before_their_provenance_had_its_own_key_stay_out(
    tmp_path: Path,
) -> None:
    """Earlier re-runs kept their provenance at the top of the metadata (`rerun_of`,
    offsets, mode): the training data a user already has must lose them too."""
    log = support_log()
    log.start_conversation(
        "old-rerun", channel="web_chat", user_id="u-2", title="re-run of conv-resolved",
        metadata={"rerun_of": "conv-resolved", "topic": TOPIC, "partition": 0,
                  "first_offset": 0, "last_offset": 8, "mode": "strict", "fork_at_offset": None},
    )  # fmt: skip
    log.user_message("old-rerun", "Invoice INV-2 please")
    log.agent_message("old-rerun", "billing", "It is 3 EUR.")
    log.end_conversation("old-rerun", "resolved")
    log.start_conversation("not-a-rerun", channel="web_chat", metadata={"rerun": "no", "a": 1})
    log.user_message("not-a-rerun", "Hello")
    log.agent_message("not-a-rerun", "billing", "Hi")
    report = export(tmp_path, log)
    assert report.excluded == {"a re-run": 1}
    exported = {p["conversation_id"] for p in lines(tmp_path / "out.provenance.jsonl")}
    assert "not-a-rerun" in exported and "old-rerun" not in exported
    with open_views(tmp_path / "archive", TOPIC, None) as views:
        _, rows = views.query("SELECT conversation_id, rerun_of, rerun_last_offset FROM reruns")
    assert rows == [("old-rerun", "conv-resolved", 8)]


def _answer(text: str, *calls: tuple[str | None, str, dict]) -> list[dict]:
    parts: list[dict] = [{"type": "text", "content": text}] if text else []
    parts += [
        {"type": "tool_call", "id": i, "name": name, "arguments": args} for i, name, args in calls
    ]
    return [
        {"role": "assistant", "parts": parts, "finish_reason": "tool_call" if calls else "stop"}
    ]


def v4_log() -> OfflineLog:
    """Conversations recorded whole (schema v4): the model's parallel calls; agent code
    calling a tool on its own; a tool run under ids of the agent's own."""
    log = OfflineLog()
    llm = {"agent": "billing", "provider": "openai", "request_model": "gpt-4o", "latency_ms": 5.0}
    c = "conv-v4"
    log.tools_declared(c, "billing", TOOLS)
    log.user_message(c, "Refund INV-1")
    log.llm_call(
        c,
        **llm,
        output_messages=_answer(
            "Checking.",
            ("m-1", "lookup_invoice", {"invoice_id": "INV-1"}),
            ("m-2", "issue_refund", {"amount": 12.5}),
        ),
    )
    # Agent code, not the model, looks something up before running the model's calls.
    log.tool_call_requested(c, "audit-1", "lookup_invoice", {"invoice_id": "AUDIT"})
    log.tool_call_completed(c, "audit-1", "lookup_invoice", {"ok": True}, duration_ms=1.0)
    log.tool_call_requested(c, "m-1", "lookup_invoice", {"invoice_id": "INV-1"})
    log.tool_call_requested(c, "m-2", "issue_refund", {"amount": 12.5})
    log.tool_call_completed(c, "m-2", "issue_refund", {"refunded": 12.5}, duration_ms=2.0)
    log.tool_call_completed(c, "m-1", "lookup_invoice", {"total": 12.5}, duration_ms=2.0)
    log.llm_call(c, **llm, output_messages=_answer("Refunded 12.50."))
    log.end_conversation(c, "resolved")

    d = "conv-v4-own-ids"
    log.user_message(d, "INV-2?")
    # No tools_declared: the tools the LLM call offered are the example's tools.
    offered = [{"type": "function", **TOOLS[0]}]
    log.llm_call(
        d,
        **llm,
        tool_definitions=offered,
        output_messages=_answer("", ("m-9", "lookup_invoice", {"n": 2})),
    )
    log.tool_call_requested(d, "run-1", "lookup_invoice", {"n": 2})
    log.tool_call_completed(d, "run-1", "lookup_invoice", {"total": 3}, duration_ms=1.0)
    log.llm_call(d, **llm, output_messages=_answer("3 EUR."))
    return log


def test_v4_takes_the_tool_calls_from_what_the_model_returned(tmp_path: Path) -> None:
    report = export(tmp_path, v4_log(), redact=False)
    assert report.invalid == []
    by_id = {
        p["conversation_id"]: e
        for p, e in zip(
            lines(tmp_path / "out.provenance.jsonl"),
            check_training_file(tmp_path / "out.jsonl"),
            strict=True,
        )
    }
    assert by_id["conv-v4"]["messages"] == [
        {"role": "user", "content": "Refund INV-1"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "m-1",
                    "type": "function",
                    "function": {"name": "lookup_invoice", "arguments": '{"invoice_id":"INV-1"}'},
                },
                {
                    "id": "m-2",
                    "type": "function",
                    "function": {"name": "issue_refund", "arguments": '{"amount":12.5}'},
                },
            ],
        },  # fmt: skip
        # The agent's own lookup (audit-1) is no turn of the model's: left out.
        {"role": "tool", "tool_call_id": "m-2", "content": '{"refunded":12.5}'},
        {"role": "tool", "tool_call_id": "m-1", "content": '{"total":12.5}'},
        {"role": "assistant", "content": "Refunded 12.50."},
    ]
    assert by_id["conv-v4"]["parallel_tool_calls"] is True
    own_ids = by_id["conv-v4-own-ids"]["messages"]
    assert own_ids[1]["tool_calls"][0]["id"] == "m-9" and own_ids[1]["content"] is None
    assert own_ids[2] == {"role": "tool", "tool_call_id": "m-9", "content": '{"total":3}'}
    assert by_id["conv-v4-own-ids"]["tools"] == [
        {
            "type": "function",
            "function": {k: TOOLS[0][k] for k in ("name", "description", "parameters")},
        }
    ]
    provenance = lines(tmp_path / "out.provenance.jsonl")
    assert {p["tool_calls_from"] for p in provenance} == {"model"}


def test_recordings_before_v4_say_their_tool_calls_are_guessed(tmp_path: Path) -> None:
    export(tmp_path, support_log(), weight_failed=0)
    provenance = {
        p["conversation_id"]: p["tool_calls_from"] for p in lines(tmp_path / "out.provenance.jsonl")
    }
    assert provenance == {"conv-parallel": "guessed", "conv-resolved": "guessed"}
