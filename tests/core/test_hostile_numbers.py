"""Valid but hostile numbers: NaN, infinities and 1e300 are refused where events are
built (the models, the recorder's encoder), and tolerated where records already on the
log are read (replay's transcript and HTML, compliance bundles, the archive)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from helpers.cli import agentlog
from helpers.offline_archive import archive_offline
from helpers.offline_log import TOPIC, OfflineLog
from helpers.sample_events import sample_events

from agentlog import events as ev
from agentlog.analytics.compliance import ComplianceRequest, verify_bundle
from agentlog.codec import compile_codec
from agentlog.codec import current as current_schema
from agentlog.errors import DecodeError, SchemaError
from agentlog.producers import Recorder
from agentlog.recorded import Position, event_of
from agentlog.replay.documents import transcript_documents
from agentlog.runtime import export_compliance
from agentlog.serde import (
    SINGLE_OBJECT_MAGIC,
    EventEncoder,
    _raw_schema,
    decode,
    decode_event,
    event_to_avro,
)
from agentlog.settings import Settings

HOSTILE = [float("nan"), float("inf"), float("-inf"), 1e300, -1e300]
FLOAT_FIELDS = ("latency_ms", "duration_ms", "confidence", "timeout_ms")


def _float_fields() -> list[tuple[ev.Payload, str]]:
    """(a sample payload, one of its float fields) for every float field of every
    payload type the samples hold: new fields are covered as they are added."""
    found = []
    for event in sample_events():
        for name, value in event.payload.__dict__.items():
            if isinstance(value, float):
                found.append((event.payload, name))
    assert {name for _, name in found} >= {"latency_ms", "duration_ms", "confidence"}
    return found


def _raw_encoder() -> Any:
    """An encoder of the current schema that takes any double, as a producer bypassing
    agentlog (or an older agentlog) writes them."""
    version = current_schema()
    codec = compile_codec(_raw_schema(version.version))
    header = SINGLE_OBJECT_MAGIC + version.fingerprint
    return lambda *fields: bytes(codec.encode_fields(bytearray(header), *fields))


# -- refused where events are built ----------------------------------------------------


@pytest.mark.parametrize("bad", HOSTILE, ids=repr)
def test_the_models_refuse_non_finite_numbers_naming_the_field(bad: float) -> None:
    for payload, name in _float_fields():
        with pytest.raises(SchemaError, match=f"^{type(payload).__name__}.{name}: "):
            type(payload).model_validate({**payload.model_dump(), name: bad})
    saga = ev.SagaStepStarted(saga_id="s", step="a", timeout_ms=5000.0)
    with pytest.raises(SchemaError, match="SagaStepStarted.timeout_ms"):
        ev.SagaStepStarted(saga_id=saga.saga_id, step="a", timeout_ms=bad)


@pytest.mark.parametrize("bad", HOSTILE, ids=repr)
def test_the_recorder_refuses_them_before_anything_is_sent(bad: float) -> None:
    recorder = Recorder(Settings(bootstrap_servers="127.0.0.1:9"), service="s")
    try:
        with pytest.raises(SchemaError, match=r"LlmCall\.latency_ms is "):
            recorder.llm_call(
                "c",
                agent="a",
                provider="p",
                request_model="m",
                input=[],
                output_text="",
                input_tokens=1,
                output_tokens=1,
                latency_ms=bad,
            )
        with pytest.raises(SchemaError, match=r"IntentIdentified\.confidence is "):
            recorder.intent_identified("c", "a", "billing", bad)
    finally:
        recorder.close(timeout=1)


def test_ordinary_numbers_are_kept() -> None:
    assert ev.IntentIdentified(agent="a", intent="b", confidence=0.0).confidence == 0.0
    assert ev.LlmCall.model_validate(
        {**sample_events()[6].payload.model_dump(), "latency_ms": 86_400_000.5}
    ).latency_ms == pytest.approx(86_400_000.5)


# -- tolerated where records are read ---------------------------------------------------


@pytest.mark.parametrize("bad", [*HOSTILE, None], ids=repr)
def test_replay_renders_a_conversation_holding_them(bad: float | None) -> None:
    entries = []
    for n, event in enumerate(sample_events()):
        record = event_to_avro(event)
        name, body = record["payload"]
        body = {k: (bad if k in FLOAT_FIELDS else v) for k, v in body.items()}
        record["payload"] = (name, body)
        entries.append(event_of(record, Position("t", 0, n, None)))
    rendered = transcript_documents("conv-sample", entries)  # None: the archive's NaN
    assert "? ms" in rendered["txt"] and "(? sure)" in rendered["txt"]
    assert "? ms" in rendered["html"] and "</html>" in rendered["html"]


def test_a_record_holding_them_decodes_as_it_was_written() -> None:
    event = sample_events()[6]
    record = event_to_avro(event)
    record["payload"][1]["latency_ms"] = float("nan")
    with pytest.raises(SchemaError):
        EventEncoder().encode(record)
    value = _raw_encoder()(*record.values())
    assert decode_event(value).payload.latency_ms != decode_event(value).payload.latency_ms


def test_an_event_time_no_calendar_holds_is_a_decode_error() -> None:
    record = event_to_avro(sample_events()[0])
    for micros in (2**62, -(2**62), 2**63 - 1):
        value = _raw_encoder()(*{**record, "occurred_at": micros}.values())
        with pytest.raises(DecodeError, match=f"occurred_at {micros} is outside the years"):
            decode(value)


def _hostile_log() -> OfflineLog:
    """conv-calm as any agent records it, conv-hostile with every float field hostile."""
    log = OfflineLog()
    log._encode = _raw_encoder()  # type: ignore[assignment]  # what a raw producer writes
    for conversation, bad in (("conv-calm", 1.5), ("conv-hostile", float("nan"))):
        log.start_conversation(conversation, channel="web", user_id="u-1")
        log.intent_identified(conversation, "triage", "billing", bad)
        log.llm_call(
            conversation,
            agent="billing",
            provider="openai",
            request_model="gpt-4o",
            input=[],
            output_text="ok",
            input_tokens=1,
            output_tokens=1,
            latency_ms=float("inf") if bad != 1.5 else 800.0,
        )
        log.tool_call_requested(conversation, "call-1", "lookup", {})
        log.tool_call_completed(conversation, "call-1", "lookup", {}, duration_ms=bad * 1e300)
        log.end_conversation(conversation, "resolved")
    return log


def test_a_compliance_bundle_over_them_holds_every_conversation(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive_offline(_hostile_log(), archive)
    since = ComplianceRequest(since=datetime(2000, 1, 1, tzinfo=UTC))
    report = export_compliance(archive, TOPIC, since, tmp_path / "all")
    assert sorted(report.conversations) == ["conv-calm", "conv-hostile"]
    assert report.untranscribed == {}
    transcript = (tmp_path / "all" / "transcripts" / "conv-hostile.txt").read_text()
    assert "(? sure)" in transcript and "? ms" in transcript
    one = ComplianceRequest(conversations=("conv-hostile",))
    export_compliance(archive, TOPIC, one, tmp_path / "one")
    assert verify_bundle(tmp_path / "one").problems == []


def test_a_bundle_names_a_conversation_it_cannot_render_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "archive"
    archive_offline(_hostile_log(), archive)

    def render(conversation_id: str, events: list) -> dict[str, str]:
        # A conversation's records that replay's renderer did not foresee.
        if conversation_id == "conv-hostile":
            raise OverflowError("cannot convert float infinity to integer")
        return transcript_documents(conversation_id, events)

    monkeypatch.setattr("agentlog.runtime._compliance.transcript_documents", render)
    since = ComplianceRequest(since=datetime(2000, 1, 1, tzinfo=UTC))
    report = export_compliance(archive, TOPIC, since, tmp_path / "b")
    assert report.untranscribed == {
        "conv-hostile": "OverflowError: cannot convert float infinity to integer"
    }
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["untranscribed"] == report.untranscribed
    assert sorted(manifest["conversations"]) == ["conv-calm", "conv-hostile"]
    assert (tmp_path / "b" / "transcripts" / "conv-calm.html").exists()
    assert not (tmp_path / "b" / "transcripts" / "conv-hostile.html").exists()
    assert verify_bundle(tmp_path / "b").problems == []


# -- through the commands, on every engine -----------------------------------------------


def test_replay_and_exports_of_records_holding_them(settings: Settings, tmp_path: Path) -> None:
    raw = Producer(
        {"bootstrap.servers": settings.bootstrap_servers, "partitioner": "murmur2_random"}
    )
    for record in _hostile_log().records:
        raw.produce(settings.events_topic, record.value, record.key, timestamp=record.timestamp)
    assert raw.flush(30) == 0
    base = ("--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix)
    page = tmp_path / "hostile.html"
    replayed = agentlog(
        *base, "replay", "conv-hostile", "--format", "html", "--out", str(page),
        state_dir=tmp_path,
    )  # fmt: skip
    assert replayed.code == 0, replayed.err
    assert "? ms" in page.read_text()
    text = agentlog(*base, "replay", "conv-hostile", state_dir=tmp_path)
    assert text.code == 0 and "(? sure)" in text.out, text.err
    out = tmp_path / "bundle"
    bundle = agentlog(
        *base, "export", "compliance", "--since", "2000-01-01", "--out", str(out),
        state_dir=tmp_path,
    )  # fmt: skip
    assert bundle.code == 0, bundle.err
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["conversations"]) == ["conv-calm", "conv-hostile"]
    assert "untranscribed" not in manifest
    # The archive kept the NaN confidence as null; a bundle of that conversation alone
    # renders it all the same.
    alone = agentlog(
        *base, "export", "compliance", "--conversation", "conv-hostile", "--out",
        str(tmp_path / "alone"), state_dir=tmp_path,
    )  # fmt: skip
    assert alone.code == 0, alone.err
    assert agentlog("export", "verify", str(tmp_path / "alone"), state_dir=tmp_path).code == 0
