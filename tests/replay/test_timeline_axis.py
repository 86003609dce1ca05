"""The HTML timeline's time axis starts at the conversation's first event: an LLM call
recorded soon after the start with a long latency is not drawn before it; the legend
names the saga marks."""

from __future__ import annotations

import re

from helpers.offline_log import OfflineLog, events_of

from agentlog.replay.documents import transcript_documents


def _page() -> str:
    now = [1_764_000_000_000_000]

    def clock() -> int:
        now[0] += 100_000  # 100 ms between events
        return now[0]

    log = OfflineLog(clock_micros=clock)
    log.start_conversation("c1", channel="web")
    log.llm_call(
        "c1", agent="billing", provider="openai", request_model="gpt-4o", input=[],
        output_text="hi", input_tokens=1, output_tokens=1, latency_ms=5000.0,
        finish_reason="stop",
    )  # fmt: skip
    log.end_conversation("c1", "resolved")
    return transcript_documents("c1", events_of(log.records))["html"]


def test_no_bar_and_no_tick_before_the_first_event() -> None:
    page = _page()
    ticks = re.findall(r'<text class="tick-label" x="([\d.]+)"[^>]*>([^<]*)</text>', page)
    assert ticks and not any(label.startswith("-") for _, label in ticks), ticks
    zero = [float(x) for x, label in ticks if label == "+0:00.000"]
    (bar,) = re.findall(r'<rect class="bar b-llm"[^>]* x="([\d.]+)"', page)
    assert zero and float(bar) == zero[0]  # the 5 s call is cut at the start


def test_the_legend_names_the_saga_marks() -> None:
    legend = re.search(r'<div class="legend">(.*?)</div>', _page(), re.S)
    assert legend is not None
    assert 'class="l-saga">saga (square: start or end; circle: a step' in legend.group(1)
