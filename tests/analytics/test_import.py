"""`agentlog import` puts OpenAI chat JSONL on the log, and `export training
--no-redact` gives the same conversations back; a malformed file imports nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

from helpers.chat_conversations import CONVERSATIONS, TOOLS, tool_call
from helpers.cli import agentlog
from helpers.kafka_python_reader import read_all
from helpers.training_checks import check_training_file

from agentlog.settings import Settings


def _base(settings: Settings) -> tuple[str, ...]:
    return ("--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix)


def test_import_then_export_gives_the_same_conversations(
    settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "history.jsonl"
    source.write_text("".join(json.dumps(c) + "\n" for c in CONVERSATIONS))
    base = _base(settings)
    done = agentlog(*base, "import", str(source), state_dir=tmp_path)
    assert done.code == 0, done.err
    assert "imported 3 conversations" in done.out
    # The ids are named, as docs/analytics.md (Import) says they are made.
    assert (
        "conversations: import-history-000001, import-history-000002, import-history-000003"
        in done.out
    )
    assert "see one: agentlog replay import-history-000001" in done.out
    # Right after the import: the export brings the archive up to date itself.
    out = tmp_path / "back.jsonl"
    exported = agentlog(
        *base, "export", "training", "--out", str(out), "--no-redact", state_dir=tmp_path
    )
    assert exported.code == 0, exported.err
    back = check_training_file(out)
    assert back == CONVERSATIONS
    provenance = [json.loads(line) for line in out.with_name("back.provenance.jsonl").open()]
    assert [p["conversation_id"] for p in provenance] == [
        "import-history-000001",
        "import-history-000002",
        "import-history-000003",
    ]
    # Importing again repeats the same events: the export is unchanged, and the import
    # says so when the projections already hold the conversations.
    projected = agentlog(*base, "project", "run", "--once", state_dir=tmp_path)
    assert projected.code == 0, projected.err
    repeated = agentlog(*base, "import", str(source), state_dir=tmp_path)
    assert repeated.code == 0, repeated.err
    assert "note: 3 conversations of the file were already on the log" in repeated.err
    assert "importing again changes nothing" in repeated.err
    replayed = agentlog(*base, "replay", "import-history-000001", state_dir=tmp_path)
    assert replayed.code == 0, replayed.err
    assert "records repeat earlier events" in replayed.out.splitlines()[0]
    again = tmp_path / "again.jsonl"
    assert (
        agentlog(
            *base, "export", "training", "--out", str(again), "--no-redact", state_dir=tmp_path
        ).code
        == 0
    )
    assert check_training_file(again) == CONVERSATIONS
    # With redaction (the default), the e-mail is gone.
    redacted = tmp_path / "redacted.jsonl"
    assert (
        agentlog(*base, "export", "training", "--out", str(redacted), state_dir=tmp_path).code == 0
    )
    assert "jo@example.com" not in redacted.read_text() and "[EMAIL]" in redacted.read_text()


def test_a_malformed_line_is_named_and_nothing_is_imported(
    settings: Settings, tmp_path: Path
) -> None:
    good = json.dumps(CONVERSATIONS[0])
    unanswered = json.dumps({"messages": CONVERSATIONS[0]["messages"][:3], "tools": TOOLS})
    cases = {
        "broken.jsonl": (f"{good}\n{{not json\n", "line 2 is not JSON"),
        "open-call.jsonl": (
            f"{good}\n{good}\n{unanswered}\n",
            "line 3: tool call call_1 (message 2) is not answered",
        ),
        "role.jsonl": (
            json.dumps({"messages": [{"role": "robot", "content": "x"}]}) + "\n",
            "line 1: message 0 has unknown role 'robot'",
        ),
    }
    for name, (text, reason) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        run = agentlog(*_base(settings), "import", str(path), state_dir=tmp_path)
        assert run.code == 1, run.out
        assert run.err.strip().startswith(f"error: {path}: {reason}")
        assert len(run.err.strip().splitlines()) == 1
    missing = agentlog(*_base(settings), "import", str(tmp_path / "nope.jsonl"), state_dir=tmp_path)
    assert missing.code == 1 and "cannot read" in missing.err and "nope.jsonl" in missing.err
    assert read_all(settings.bootstrap_servers, settings.events_topic) == []


def test_a_pipe_or_a_device_is_refused_unread(tmp_path: Path) -> None:
    """Import reads its file twice: a FIFO nobody writes to would wait forever for a
    writer, and /dev/zero (one endless line) would fill the memory."""
    fifo = tmp_path / "history.jsonl"
    os.mkfifo(fifo)
    for named in (fifo, Path("/dev/zero")):
        # No broker: the file is refused before anything is asked of one.
        run = agentlog("--bootstrap", "127.0.0.1:9", "import", str(named), state_dir=tmp_path)
        assert run.code == 1, run.out
        (error,) = run.err.strip().splitlines()
        assert error.startswith(f"error: cannot read {named}: not a regular file"), error


def _with_a_2mb_line(tmp_path: Path, good_lines: int) -> Path:
    """Good conversations, then one whose tool result is 2 MB (line good_lines + 1)."""
    big = {
        "messages": [
            {"role": "user", "content": "Export the table"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [tool_call("x1", "get_weather", '{"city": "Oslo"}')],
            },
            {"role": "tool", "tool_call_id": "x1", "content": "r" * 2_000_000},
            {"role": "assistant", "content": "Done."},
        ],
        "tools": TOOLS,
    }
    path = tmp_path / "history.jsonl"
    with path.open("w") as out:
        for n in range(good_lines):
            out.write(json.dumps(CONVERSATIONS[n % len(CONVERSATIONS)]) + "\n")
        out.write(json.dumps(big) + "\n")
    return path


def test_a_line_too_large_for_a_record_imports_nothing(settings: Settings, tmp_path: Path) -> None:
    path = _with_a_2mb_line(tmp_path, 300)
    run = agentlog(
        *_base(settings),
        "import",
        str(path),
        state_dir=tmp_path,
        env={"AGENTLOG_CLAIM_CHECK": "false"},
    )
    assert run.code == 1, run.out
    assert run.err.strip().startswith(
        f"error: {path}: line 301: its tool_call_completed event is 2000"
    )
    assert "over the Kafka record limit of 1000000 bytes (message.max.bytes)" in run.err
    assert "nothing was imported" in run.err and len(run.err.strip().splitlines()) == 1
    assert read_all(settings.bootstrap_servers, settings.events_topic) == []


def test_with_the_claim_check_a_large_line_is_imported_whole(
    settings: Settings, tmp_path: Path
) -> None:
    path = _with_a_2mb_line(tmp_path, 2)
    run = agentlog(*_base(settings), "import", str(path), state_dir=tmp_path)
    assert run.code == 0, run.err
    on_topic = read_all(settings.bootstrap_servers, settings.events_topic, expect=29)
    assert len(on_topic) == 12 + 10 + 7  # two conversations of the file, then the large one
    assert all(len(r.value) < 300_000 for r in on_topic)
    from agentlog.serde import claim_check_store, decode_event

    blobs = claim_check_store(settings.with_overrides(state_dir=tmp_path))
    results = [
        e.payload.result_json
        for e in (decode_event(r.value, blobs=blobs) for r in on_topic)
        if e.event_type == "tool_call_completed" and e.conversation_id.endswith("000003")
    ]
    assert results == ["r" * 2_000_000]
