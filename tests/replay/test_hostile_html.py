"""The HTML timeline keeps working whatever the events hold: `<!--<script>`, `</script>`
and U+2028 in any field cannot close or comment out its data, clicking a mark still shows
that event, and a script the page did not bring does not run (its CSP allows its own by
hash). Checked in headless Chromium."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from pathlib import Path

from helpers.cli import agentlog
from helpers.offline_archive import archive_offline
from helpers.offline_log import TOPIC, OfflineLog
from test_replay_html import _run_chromium

CONVERSATION = "conv-hostile-html"
HOSTILE = [
    "<!--<script>",
    "</script><script>document.title='owned'</script>",
    "line\u2028separator\u2029paragraph",
    "-->]]></style><style>*{display:none}</style>",
]

# What a user does: click the last mark of the timeline; the probe writes what the
# detail pane then shows into the page, for --dump-dom to carry out.
PROBE = """(function () {
  var marks = document.querySelectorAll('.mark');
  marks[marks.length - 1].dispatchEvent(new MouseEvent('click', {bubbles: true}));
  var out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify({
    marks: marks.length,
    title: document.getElementById('detail-title').textContent,
    body: document.getElementById('detail-body').textContent
  });
  document.body.appendChild(out);
})();"""
UNHASHED = "document.title = 'an unhashed script ran';"


def _hash(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


def _page(tmp_path: Path) -> str:
    log = OfflineLog()
    log.start_conversation(CONVERSATION, channel="web", user_id="<!--<script>")
    for text in HOSTILE:
        log.user_message(CONVERSATION, text)
    log.agent_message(CONVERSATION, "agent\u2028<!--", HOSTILE[0])
    archive = tmp_path / "archive"
    archive_offline(log, archive)
    out = tmp_path / "timeline.html"
    run = agentlog(
        "--topic-prefix", TOPIC.removesuffix("events"), "replay", CONVERSATION,
        "--source", "archive", "--archive-dir", str(archive),
        "--format", "html", "--out", str(out),
        state_dir=tmp_path,
    )  # fmt: skip
    assert run.code == 0, run.err
    return out.read_text()


def test_hostile_text_cannot_break_the_data_block_and_clicking_still_works(
    tmp_path: Path,
) -> None:
    page = _page(tmp_path)
    data = re.search(r'<script type="application/json" id="events-data">(.*?)</script>', page)
    assert data is not None
    assert not re.search(r"[<>&\u2028\u2029]", data.group(1))  # all escaped
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert policy is not None
    rules = dict(r.strip().split(" ", 1) for r in policy.group(1).split(";"))
    assert rules["default-src"] == "'none'" and rules["base-uri"] == "'none'"
    assert rules["form-action"] == "'none'" and rules["object-src"] == "'none'"
    assert "unsafe-inline" not in policy.group(1)
    assert re.fullmatch(r"'sha256-[A-Za-z0-9+/]{43}='", rules["script-src"])

    # The page as the user opens it, with the probe allowed by its hash as the page's
    # own script is; and one script more, not allowed.
    probed = page.replace("script-src ", f"script-src {_hash(PROBE)} ", 1).replace(
        "</body>", f"<script>{PROBE}</script><script>{UNHASHED}</script></body>", 1
    )
    opened = tmp_path / "probed.html"
    opened.write_text(probed)
    dumped = _run_chromium(opened, "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.DOTALL)
    assert found is not None, "the page's script or the click did not run"
    shown = json.loads(html.unescape(found.group(1)))
    events = 2 + len(HOSTILE)
    assert shown["marks"] == events
    assert shown["title"].startswith("agent_message at ")
    detail = json.loads(shown["body"])  # the whole event, as recorded
    assert detail["payload"]["text"] == HOSTILE[0]
    assert detail["payload"]["agent"] == "agent\u2028<!--"
    assert detail["offset"] == events - 1
    # Neither the unhashed script nor any the content tried to slip in set the title.
    assert "<title>Replay of conv-hostile-html</title>" in dom
    # Every row of the table is there, the hostile text as text.
    assert len(re.findall(r'<tr id="event-\d+"', dom)) == events
    assert "&lt;!--&lt;script&gt;" in dom
