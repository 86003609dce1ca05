"""The HTML timeline is one self-contained page that a browser renders with every event
in it: checked in headless Chromium (Debian's `chromium`), which also takes a screenshot."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

from conftest import absent
from helpers.cli import agentlog
from helpers.kafka_python_reader import read_all

from agentlog.producers import Recorder
from agentlog.settings import Settings

CONVERSATION = "conv-html"
NASTY = "</script><script>document.title='owned'</script> & <b>not bold</b>"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        absent("chromium", "headless Chromium is not installed (Debian: apt-get install chromium)")
    return found


def _run_chromium(page: Path, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )


def _record(settings: Settings) -> None:
    now = [1_790_000_000_000_000]

    def tick(ms: int):
        def clock() -> int:
            now[0] += ms * 1000
            return now[0]

        return clock

    with Recorder(settings, clock_micros=tick(1500)) as r:
        r.start_conversation(CONVERSATION, channel="web_chat", user_id="u-1")
        r.user_message(CONVERSATION, NASTY)
        r.llm_call(
            CONVERSATION,
            agent="triage",
            provider="openai",
            request_model="gpt-4o-mini",
            input=[{"role": "user", "content": "x"}],
            output_text="Routing to billing.",
            input_tokens=300,
            output_tokens=9,
            latency_ms=900.0,
        )
        r.handoff(CONVERSATION, "triage", "billing", reason="intent billing")
        first = r.tool_call_requested(
            CONVERSATION, "call-1", "lookup_invoice", {"invoice_id": "INV-1"}, agent="billing"
        )
        r.tool_call_failed(
            CONVERSATION,
            "call-1",
            "lookup_invoice",
            error_type="TimeoutError",
            error_message="no answer",
            duration_ms=1400.0,
            causation_id=first,
            retryable=True,
        )
        second = r.tool_call_requested(
            CONVERSATION,
            "call-1",
            "lookup_invoice",
            {"invoice_id": "INV-1"},
            agent="billing",
            attempt=2,
        )
        r.tool_call_completed(
            CONVERSATION,
            "call-1",
            "lookup_invoice",
            {"total": 12.5},
            duration_ms=1300.0,
            attempt=2,
            causation_id=second,
        )
        r.escalation(CONVERSATION, "billing", "customer asked for a human")
        r.agent_message(CONVERSATION, "billing", "A colleague will reply by email.")
    with Recorder(settings, clock_micros=tick(45_000)) as r:  # a long quiet stretch
        r.end_conversation(CONVERSATION, "escalated")


def test_the_timeline_page_renders_every_event_offline(settings: Settings, tmp_path) -> None:
    _record(settings)
    page = tmp_path / "timeline.html"
    base = ("--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix)
    run = agentlog(
        *base, "replay", CONVERSATION, "--format", "html", "--out", str(page), state_dir=tmp_path
    )
    assert run.code == 0, run.err
    text = page.read_text()
    # Self-contained: no address outside the page (the SVG namespace is a name, not a fetch).
    urls = set(re.findall(r"(?:https?:)?//[\w.-]+[^\s\"'<>]*", text))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    assert not re.search(r"<(link|img|iframe)\b|@import|url\((?!#)", text)

    positions = [
        r.offset
        for r in read_all(settings.bootstrap_servers, settings.events_topic)
        if r.key == CONVERSATION.encode()
    ]
    assert len(positions) == 11

    dumped = _run_chromium(page, "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    for offset in positions:  # each event: a mark on the timeline and a row of the table
        assert len(re.findall(rf'data-offset="{offset}"', dom)) == 2, offset
        # ...whose position shows on hover (the mark's title) and on the row.
        assert len(re.findall(rf"partition \d+ offset {offset}\b", dom)) >= 2, offset
    assert dom.count('class="mark k-fail"') == 1  # the failed attempt
    assert dom.count('class="mark k-escalation"') == 1
    assert dom.count('class="escalated"') == 1
    assert dom.count('class="bar b-tool"') == 1 and dom.count('class="bar b-fail"') == 1
    assert dom.count('class="bar b-llm"') == 1
    assert dom.count('class="handoff"') == 1
    assert re.search(r'class="gap-label"[^>]*>4\d\.\d s idle<', dom)
    assert [m for m in re.findall(r'class="lane-label"[^>]*>([^<]+)<', dom)] == [
        "conversation",
        "user",
        "triage",
        "billing",
    ]
    # The script ran (it shows the first event) and the hostile text stayed text.
    assert '<h2 id="detail-title">conversation_started at +0:00.000</h2>' in dom
    assert "&lt;/script&gt;&lt;script&gt;document.title='owned'" in dom
    assert "<title>Replay of conv-html</title>" in dom

    shot = tmp_path / "timeline.png"
    taken = _run_chromium(page, "--window-size=1400,1000", f"--screenshot={shot}")
    assert taken.returncode == 0, taken.stderr[-2000:]
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1400, 1000)
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
    if os.environ.get("AGENTLOG_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["AGENTLOG_KEEP_SCREENSHOT"])
