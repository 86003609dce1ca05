"""`agentlog sql` answers over the archive and the projections, also while the archiver
and the projector keep writing, in a table, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
from pathlib import Path

from helpers import wait_for
from helpers.cli import agentlog, agentlog_process
from helpers.workloads import record

from agentlog.settings import Settings


def _base(settings: Settings) -> tuple[str, ...]:
    return ("--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix)


def test_sql_answers_while_the_archiver_and_the_projector_run(
    settings: Settings, tmp_path: Path
) -> None:
    base = _base(settings)
    sink = f"duckdb:{tmp_path / 'live.duckdb'}"
    archive = str(tmp_path / "archive")
    env = {"AGENTLOG_ARCHIVE_FLUSH_SECONDS": "0.3"}
    written = record(settings, 10)
    running = [
        agentlog_process(*base, "project", "run", "--sink", sink, stderr=subprocess.DEVNULL),
        agentlog_process(
            *base, "archive", "run", "--dir", archive, env=env, stderr=subprocess.DEVNULL
        ),
    ]
    query = (
        "SELECT (SELECT count(*) FROM events) AS events, "
        "(SELECT count(*) FROM conversations) AS conversations"
    )

    def counts(events: int, conversations: int):
        """The run if the archive holds `events` and the projections `conversations`."""
        run = agentlog(
            *base, "sql", query, "--format", "json", "--dir", archive, "--sink", sink,
            state_dir=tmp_path,
        )  # fmt: skip
        if run.code != 0:
            return None
        found = json.loads(run.out)[0]
        return (
            run if found["events"] == events and found["conversations"] >= conversations else None
        )

    try:
        first = wait_for(
            lambda: counts(written, 10), 90, "sql to see the archived events and projected rows"
        )
        assert "snapshot of" in first.err  # the projector holds its file
        more = record(settings, 5, seed=2)
        wait_for(lambda: counts(written + more, 15), 90, "sql to see the events recorded later")
        assert all(p.poll() is None for p in running), "archiver and projector keep running"
        joined = agentlog(
            *base, "sql",
            "SELECT c.outcome, count(*) AS llm_calls, sum(l.input_tokens) AS tokens "
            "FROM llm_calls l JOIN conversations c USING (conversation_id) "
            "GROUP BY c.outcome ORDER BY c.outcome",
            "--format", "csv", "--dir", archive, "--sink", sink,
            state_dir=tmp_path,
        )  # fmt: skip
        assert joined.code == 0, joined.err
        table = list(csv.DictReader(io.StringIO(joined.out)))
        assert table and {"outcome", "llm_calls", "tokens"} == set(table[0])
        assert sum(int(r["llm_calls"]) for r in table) > 0
        assert all(p.poll() is None for p in running), "archiver and projector keep running"
    finally:
        for process in running:
            process.send_signal(signal.SIGINT)
        for process in running:
            process.communicate(timeout=60)
    # With the projector gone, the file itself is read: every conversation is there.
    assert counts(written + more, 15) is not None
    assert [p.returncode for p in running] == [130, 130]  # Ctrl-C, after writing what was held


def test_sql_over_another_sink_and_its_errors(
    settings: Settings, tmp_path: Path, sink_url: str
) -> None:
    base = _base(settings)
    record(settings, 6)
    archive = str(tmp_path / "archive")
    assert (
        agentlog(*base, "project", "run", "--once", "--sink", sink_url, state_dir=tmp_path).code
        == 0
    )
    assert (
        agentlog(*base, "archive", "run", "--once", "--dir", archive, state_dir=tmp_path).code == 0
    )
    run = agentlog(
        *base, "sql",
        "SELECT c.conversation_id, c.status, count(*) AS events FROM events e "
        "JOIN conversations c USING (conversation_id) GROUP BY ALL ORDER BY 1",
        "--dir", archive, "--sink", sink_url,
        state_dir=tmp_path,
    )  # fmt: skip
    assert run.code == 0, run.err
    lines = run.out.strip().splitlines()
    assert lines[0].split() == ["conversation_id", "status", "events"]
    assert lines[-1] == "(6 rows)"
    assert all(line.split()[1] == "ended" for line in lines[2:-1])

    bad = agentlog(*base, "sql", "SELECT * FROM nowhere", "--dir", archive, state_dir=tmp_path)
    assert bad.code == 1
    assert bad.err.splitlines()[-1].startswith("error: SQL: Catalog Error: Table with name nowhere")
    assert "views: records, events" in bad.err


def test_after_the_projections_were_cleared_only_working_views_are_listed(
    tmp_path: Path,
) -> None:
    import duckdb

    sink = tmp_path / "cleared.duckdb"
    duckdb.connect(str(sink)).close()  # the file is there, its tables are not
    run = agentlog(
        "sql", "SELECT * FROM conversations", "--sink", f"duckdb:{sink}", state_dir=tmp_path
    )
    assert run.code == 1
    error = run.err.strip().splitlines()[-1]
    assert error.startswith("error: SQL: Catalog Error")
    listed = error.rsplit("(views: ", 1)[1]
    assert "records" in listed and "conversations" not in listed, error
    assert "agentlog_conversations" in run.err and "`agentlog project run`" in run.err
