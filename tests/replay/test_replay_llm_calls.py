"""Replay shows LLM calls recorded whole (schema v4): the tool calls the model chose, as
such, in the transcript, the JSON and the HTML page; a failed LLM call as a failure;
and `replay diff` compares calls in the one structured shape."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.offline_archive import archive_offline
from helpers.offline_log import TOPIC, OfflineLog, events_of

from agentlog.analytics.archive_reader import ParquetArchive
from agentlog.replay import replay_conversation
from agentlog.replay.diff import diff_conversations
from agentlog.replay.export import as_json
from agentlog.replay.html import timeline_page
from agentlog.replay.transcript import transcript
from agentlog.settings import Settings

OFFLINE = Settings(topic_prefix="offline.", bootstrap_servers="127.0.0.1:9")
CID = "conv-weather"
LLM = {"agent": "weather", "provider": "openai", "request_model": "gpt-4o"}
ASKED = [{"role": "user", "parts": [{"type": "text", "content": "Paris and Rome?"}]}]


def _calls(*cities: str, ids: str = "call") -> list[dict]:
    parts = [
        {"type": "tool_call", "id": f"{ids}_{c}", "name": "weather", "arguments": {"city": c}}
        for c in cities
    ]
    return [{"role": "assistant", "parts": parts, "finish_reason": "tool_call"}]


def _conversation(log: OfflineLog, cid: str = CID, *, ids: str = "call", rome: str = "Rome"):
    log.user_message(cid, "Paris and Rome?")
    log.llm_call_failed(
        cid,
        **LLM,
        error_type="RateLimitError",
        error_message="Rate limit reached",
        latency_ms=35.0,
        status_code=429,
        input_messages=ASKED,
    )
    log.llm_call(
        cid,
        **LLM,
        latency_ms=400.0,
        input_messages=ASKED,
        output_messages=_calls("Paris", rome, ids=ids),
        response_id=f"resp-{ids}",
    )
    for city in ("Paris", rome):
        log.tool_call_requested(cid, f"{ids}_{city}", "weather", {"city": city})
        log.tool_call_completed(cid, f"{ids}_{city}", "weather", {"c": 18}, duration_ms=3.0)
    log.llm_call(
        cid,
        **LLM,
        latency_ms=300.0,
        output_messages=[
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": "18C in both."}],
                "finish_reason": "stop",
            }
        ],
    )


def _replayed(tmp_path: Path):
    log = OfflineLog()
    _conversation(log)
    archive_offline(log, tmp_path)
    return replay_conversation(OFFLINE, CID, source="archive", archive=ParquetArchive(tmp_path))


def test_the_transcript_shows_the_models_tool_calls_and_the_failed_call(tmp_path: Path) -> None:
    lines = list(transcript(_replayed(tmp_path)))
    (failed,) = [x for x in lines if "llm_call_failed" in x]
    assert "gpt-4o (openai) failed after 35 ms: RateLimitError (HTTP 429): Rate limit" in failed
    asked, answered = [x for x in lines if " llm_call " in x]
    assert asked.endswith(
        'model calls weather({"city":"Paris"}) [call_Paris], weather({"city":"Rome"}) [call_Rome]'
    )
    assert "model calls" not in answered and '"18C in both."' in answered


def test_the_json_replay_carries_every_call_in_the_structured_shape(tmp_path: Path) -> None:
    events = json.loads(as_json(_replayed(tmp_path)))["events"]
    calls = [e for e in events if e["event_type"] == "llm_call"]
    assert calls[0]["llm_call"]["tool_calls"] == [
        {"id": "call_Paris", "name": "weather", "arguments": {"city": "Paris"}},
        {"id": "call_Rome", "name": "weather", "arguments": {"city": "Rome"}},
    ]
    assert calls[0]["llm_call"]["input_messages"] == ASKED
    assert calls[0]["llm_call"]["model_tool_calls_known"] is True
    # The recorded text stays as it was recorded.
    assert json.loads(calls[0]["payload"]["output_messages_json"]) == _calls("Paris", "Rome")
    (failed,) = [e for e in events if e["event_type"] == "llm_call_failed"]
    assert failed["payload"]["status_code"] == 429
    assert failed["llm_call"]["input_messages"] == ASKED


def test_the_html_page_marks_the_failed_call_and_shows_the_models_calls(tmp_path: Path) -> None:
    page = timeline_page(_replayed(tmp_path))
    assert "RateLimitError" in page and "failed after 35 ms" in page
    assert "model calls weather(" in page
    assert "gpt-4o 35 ms RateLimitError" in page  # the failed call's bar


def test_diff_ignores_call_ids_and_response_ids_but_names_a_changed_tool_call() -> None:
    a, b, c = OfflineLog(), OfflineLog(), OfflineLog()
    _conversation(a, "a")
    _conversation(b, "b", ids="other")
    _conversation(c, "c", rome="Milan")
    run_a, run_b, run_c = (events_of(x.records) for x in (a, b, c))
    assert diff_conversations(run_a, run_b).identical
    changed = [s for s in diff_conversations(run_a, run_c).steps if s.kind == "changed"]
    first = changed[0]
    assert first.a is not None and first.a.event_type == "llm_call"
    assert [name for name, _, _ in first.differences] == ["output_messages"]


def test_diff_compares_an_old_and_a_v4_recording_of_the_same_answer() -> None:
    old, new = OfflineLog(), OfflineLog()
    old.llm_call(
        "o", **LLM, input=[{"role": "user", "content": "hi"}], output_text="hello",
        input_tokens=1, output_tokens=1, latency_ms=1.0, finish_reason="stop",
    )  # fmt: skip
    new.llm_call(
        "n",
        **LLM,
        input_tokens=1,
        output_tokens=1,
        latency_ms=2.0,
        input_messages=[{"role": "user", "parts": [{"type": "text", "content": "hi"}]}],
        output_messages=[
            {"role": "assistant", "parts": [{"type": "text", "content": "hello"}],
             "finish_reason": "stop"}
        ],
    )  # fmt: skip
    assert diff_conversations(events_of(old.records), events_of(new.records)).identical
    assert TOPIC == OFFLINE.events_topic


def test_a_refusal_is_shown_as_one() -> None:
    from agentlog.replay.transcript import summary

    log = OfflineLog()
    log.llm_call(
        "r", **LLM, latency_ms=1.0,
        output_messages=[{"role": "assistant", "finish_reason": "content_filter",
                          "parts": [{"type": "refusal", "content": "I can't help with that."}]}],
    )  # fmt: skip
    (event,) = events_of(log.records)
    assert summary(event).endswith('; refused: "I can\'t help with that."')
