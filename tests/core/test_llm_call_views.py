"""`agentlog sql` views of LLM calls (schema v4 and before): the structured columns, the
tool calls the models chose one per row, failed calls, and a hostile record that cannot
break a query."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.offline_archive import archive_offline
from helpers.offline_log import TOPIC, OfflineLog

from agentlog.analytics.views import open_views
from agentlog.events import LlmCall

LLM = {"agent": "weather", "provider": "openai", "request_model": "gpt-4o"}
ANSWER = [
    {
        "role": "assistant",
        "parts": [
            {"type": "text", "content": "Checking."},
            {"type": "tool_call", "id": "c1", "name": "weather", "arguments": {"city": "Paris"}},
            {"type": "tool_call", "id": "c2", "name": "weather", "arguments": {"city": "Rome"}},
        ],
        "finish_reason": "tool_call",
    }
]


def _log() -> OfflineLog:
    log = OfflineLog()
    log.llm_call(
        "new",
        **LLM,
        latency_ms=10.0,
        input_tokens=100,
        output_tokens=20,
        input_messages=[{"role": "user", "parts": [{"type": "text", "content": "Paris, Rome?"}]}],
        output_messages=ANSWER,
        request_parameters={"temperature": 0.5},
        response_id="r-1",
        cache_read_input_tokens=64,
        reasoning_tokens=5,
        time_to_first_token_ms=4.5,
        streamed=True,
    )
    log.llm_call(
        "old", **LLM, input=[{"role": "user", "content": "hi"}], output_text="hello",
        input_tokens=1, output_tokens=1, latency_ms=1.0, finish_reason="stop",
    )  # fmt: skip
    log.llm_call_failed(
        "new", **LLM, error_type="RateLimitError", error_message="slow down",
        latency_ms=3.0, status_code=429,
    )  # fmt: skip
    # Whoever can produce to the topic can write text that is not JSON.
    log.record("bad", LlmCall(**LLM, latency_ms=1.0, output_messages_json="[{not json"))
    return log


def test_llm_call_views_hold_the_structured_call(tmp_path: Path) -> None:
    archive_offline(_log(), tmp_path)
    with open_views(tmp_path, TOPIC, None) as views:
        names, rows = views.query(
            "SELECT conversation_id, recorded_whole, finish_reasons, cache_read_input_tokens, "
            "reasoning_tokens, time_to_first_token_ms, streamed, response_id, "
            "output_messages, request_parameters, input_messages "
            "FROM llm_calls ORDER BY conversation_id"
        )
        calls = {row[0]: dict(zip(names, row, strict=True)) for row in rows}
        new, old, bad = calls["new"], calls["old"], calls["bad"]
        assert new["recorded_whole"] and not old["recorded_whole"]
        assert new["finish_reasons"] == ["tool_call"] and old["finish_reasons"] == ["stop"]
        assert (new["cache_read_input_tokens"], new["reasoning_tokens"]) == (64, 5)
        assert new["time_to_first_token_ms"] == 4.5 and new["streamed"] is True
        assert new["response_id"] == "r-1"
        assert json.loads(new["output_messages"]) == ANSWER
        assert json.loads(new["request_parameters"]) == {"temperature": 0.5}
        # An older call's answer is its text, in the same shape.
        assert json.loads(old["output_messages"]) == [
            {"role": "assistant", "parts": [{"type": "text", "content": "hello"}],
             "finish_reason": "stop"}
        ]  # fmt: skip
        assert old["input_messages"] is None
        # Text that is not JSON reads as no messages; the query still answers.
        assert bad["recorded_whole"] and bad["output_messages"] is not None

        _, tool_calls = views.query(
            "SELECT conversation_id, tool_call_id, tool_name, arguments FROM llm_tool_calls "
            "ORDER BY tool_call_id"
        )
        assert [(c, i, n, json.loads(a)) for c, i, n, a in tool_calls] == [
            ("new", "c1", "weather", {"city": "Paris"}),
            ("new", "c2", "weather", {"city": "Rome"}),
        ]
        _, failures = views.query(
            "SELECT conversation_id, error_type, error_message, status_code FROM llm_call_failures"
        )
        assert failures == [("new", "RateLimitError", "slow down", 429)]
