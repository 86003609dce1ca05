"""Compliance bundles: the events replay yields, transcripts, a manifest whose checksums
match its files, and `export verify` catching a changed byte."""

from __future__ import annotations

import hashlib
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers.cli import agentlog
from helpers.offline_archive import archive_offline
from helpers.offline_log import TOPIC, events_of, simulated_log
from helpers.workloads import record

from agentlog.analytics.compliance import ComplianceBundle, ComplianceRequest
from agentlog.demo.agents import support_team
from agentlog.replay import replay_conversation
from agentlog.runtime import export_compliance, rerun_recording
from agentlog.settings import Settings


def _base(settings: Settings) -> tuple[str, ...]:
    return ("--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix)


def test_a_bundle_holds_what_replay_yields_and_verify_catches_a_changed_byte(
    settings: Settings, tmp_path: Path
) -> None:
    record(settings, 8)
    base = _base(settings)
    wanted = ["conv-1-00002", "conv-1-00005"]
    bundle = tmp_path / "bundle"
    run = agentlog(
        *base, "export", "compliance", "--conversation", wanted[0], "--conversation",
        wanted[1], "--requested-by", "auditor@acme.example", "--out", str(bundle),
        state_dir=tmp_path,
    )  # fmt: skip
    assert run.code == 0, run.err
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["request"]["conversations"] == wanted
    assert manifest["request"]["requested_by"] == "auditor@acme.example"
    assert "export compliance" in manifest["request"]["command"]
    # Every file but the manifest is listed with its SHA-256, and nothing else is there.
    present = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert present - {"manifest.json"} == set(manifest["files"])
    for name, listed in manifest["files"].items():
        data = (bundle / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == listed["sha256"] and len(data) == listed["bytes"]
    for cid in wanted:
        assert {f"transcripts/{cid}.txt", f"transcripts/{cid}.html"} <= present
    # The events are those replay reads from Kafka for the same conversations.
    lines = [json.loads(line) for line in (bundle / "events.jsonl").read_text().splitlines()]
    expected = []
    for cid in wanted:
        replay = replay_conversation(settings, cid, scan=True)
        expected += [(e.partition, e.offset, e.event_id, e.payload) for e in replay.events]
    assert sorted((e["partition"], e["offset"], e["event_id"], e["payload"]) for e in lines) == (
        sorted(expected, key=lambda e: (e[0], e[1]))
    )
    assert manifest["counts"] == {"events": len(expected), "conversations": 2}
    spans = manifest["offsets"][settings.events_topic]
    assert sum(s["events"] for s in spans.values()) == len(expected)
    text = (bundle / f"transcripts/{wanted[0]}.txt").read_text()
    assert text.startswith(f"conversation {wanted[0]}:") and "user_message" in text
    html = (bundle / f"transcripts/{wanted[0]}.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and wanted[0] in html

    ok = agentlog("export", "verify", str(bundle), state_dir=tmp_path)
    assert ok.code == 0 and "all" in ok.out and "match manifest.json" in ok.out
    # One changed byte is caught, and named.
    target = bundle / "events.jsonl"
    data = bytearray(target.read_bytes())
    data[10] ^= 0x01
    target.write_bytes(bytes(data))
    bad = agentlog("export", "verify", str(bundle), state_dir=tmp_path)
    assert bad.code == 1
    assert "events.jsonl: changed" in bad.err and bad.err.strip().splitlines()[-1].startswith(
        "error: "
    )
    # An existing bundle is never written over.
    again = agentlog(
        *base, "export", "compliance", "--conversation", wanted[0], "--out", str(bundle),
        state_dir=tmp_path,
    )  # fmt: skip
    assert again.code == 1 and "exists already" in again.err


def test_a_zipped_bundle_for_a_user_and_a_time_range(settings: Settings, tmp_path: Path) -> None:
    record(settings, 6)
    base = _base(settings)
    sql = agentlog(
        *base, "sql",
        "SELECT user_id, count(DISTINCT conversation_id) AS n FROM events "
        "WHERE user_id IS NOT NULL GROUP BY 1 ORDER BY 1 LIMIT 1",
        "--format", "json", state_dir=tmp_path,
    )  # fmt: skip
    assert sql.code == 0, sql.err  # empty archive: the export below brings it up to date
    archive = agentlog(*base, "archive", "run", "--once", state_dir=tmp_path)
    assert archive.code == 0, archive.err
    user = json.loads(
        agentlog(
            *base,
            "sql",
            "SELECT user_id FROM events WHERE user_id IS NOT NULL ORDER BY 1 LIMIT 1",
            "--format",
            "json",
            state_dir=tmp_path,
        ).out  # fmt: skip
    )[0]["user_id"]
    out = tmp_path / "user.zip"
    run = agentlog(
        *base, "export", "compliance", "--user", user, "--since", "2026-11-02T00:00:00",
        "--until", "2026-11-03T00:00:00", "--out", str(out), state_dir=tmp_path,
    )  # fmt: skip
    assert run.code == 0, run.err
    with zipfile.ZipFile(out) as bundle:
        manifest = json.loads(bundle.read("manifest.json"))
        lines = [json.loads(x) for x in bundle.read("events.jsonl").decode().splitlines()]
    assert manifest["request"]["user"] == user
    assert manifest["request"]["since"] == "2026-11-02T00:00:00Z"
    started = [e for e in lines if e["event_type"] == "conversation_started"]
    assert started and all(e["payload"]["user_id"] == user for e in started)
    assert agentlog("export", "verify", str(out), state_dir=tmp_path).code == 0
    nothing = agentlog(
        *base, "export", "compliance", "--user", "nobody", "--out", str(tmp_path / "none"),
        state_dir=tmp_path,
    )  # fmt: skip
    assert nothing.code == 1 and "holds no events" in nothing.err
    unasked = agentlog(
        *base, "export", "compliance", "--out", str(tmp_path / "x"), state_dir=tmp_path
    )
    assert unasked.code == 2 and "say what to export" in unasked.err


def test_a_bundle_keeps_the_users_reruns_and_names_them(tmp_path: Path) -> None:
    """A re-run repeats the user's conversation (their messages, their user id): a bundle
    for the user holds it (leaving it out would leave their data out), and the manifest
    says which conversations are re-runs, of what."""
    log = simulated_log(6, seed=7)
    conversations: dict[str, list] = {}
    for event in events_of(log.records):
        conversations.setdefault(event.conversation_id, []).append(event)
    original = sorted(conversations)[0]
    user = conversations[original][0].payload["user_id"]
    report = rerun_recording(
        conversations[original], support_team, recorder=log, new_conversation_id="again-0"
    )
    assert report.matched, report.lines()
    archive = tmp_path / "archive"
    archive_offline(log, archive)

    def bundle(name: str, request: ComplianceRequest) -> dict:
        out = tmp_path / name
        export_compliance(archive, TOPIC, request, out)
        return json.loads((out / "manifest.json").read_text())

    for_user = bundle("user", ComplianceRequest(user=user))
    assert {original, "again-0"} <= set(for_user["conversations"])
    assert for_user["reruns"] == {"again-0": original}
    asked = bundle("asked", ComplianceRequest(conversations=(original,)))
    assert asked["conversations"] == [original] and asked["reruns"] == {}


def test_a_bundle_stopped_by_an_error_leaves_nothing_behind(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive_offline(simulated_log(3, seed=7), archive)
    out = tmp_path / "bundle"
    everything = ComplianceRequest(since=datetime(2000, 1, 1, tzinfo=UTC))
    with pytest.raises(RuntimeError, match="stopped"):
        with ComplianceBundle(archive, TOPIC, everything, out) as bundle:
            assert bundle.events > 0 and len(bundle.conversations) == 3
            raise RuntimeError("stopped")
    assert bundle.report is None
    assert sorted(tmp_path.iterdir()) == [archive]  # no bundle, no scratch folder
