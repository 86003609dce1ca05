"""`agentlog sql` and `export training --where` run SQL from whoever calls them: one
read-only query (or one condition), on a DuckDB that can read the archive and the
projections and nothing else. Each attack of the security review, refused with one line,
nothing written, the sink unchanged; and what users ask still answered."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from helpers.cli import agentlog
from helpers.offline_archive import archive_offline
from helpers.offline_log import fold_log, simulated_log, store

from agentlog.consumers.sinks import open_sink

CONVERSATIONS = 4


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An archive and a DuckDB sink holding the projections of the same log."""
    folder = tmp_path_factory.mktemp("sql")
    log = simulated_log(CONVERSATIONS)
    archive_offline(log, folder / "archive")
    # A Parquet file beside the archive, not in it: not to be read.
    with duckdb.connect() as connection:
        connection.execute(f"COPY (SELECT 'private' AS secret) TO '{folder / 'beside.parquet'}'")
    sink = folder / "projections.duckdb"
    with open_sink(f"duckdb:{sink}") as opened:
        store(opened, fold_log(log.records))
    return {"folder": folder, "archive": folder / "archive", "sink": sink}


def _sql(world: dict[str, Path], query: str, *more: str):
    return agentlog(
        "--topic-prefix", "offline.", "sql", query, "--dir", str(world["archive"]),
        "--sink", f"duckdb:{world['sink']}", *more,
        state_dir=world["folder"],
    )  # fmt: skip


def _projected(sink: Path) -> int:
    with duckdb.connect(str(sink), read_only=True) as connection:
        (count,) = connection.execute("SELECT count(*) FROM agentlog_conversations").fetchone()
    return int(count)


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_what_users_ask_is_still_answered(world: dict[str, Path]) -> None:
    run = _sql(
        world,
        "WITH calls AS (SELECT conversation_id, count(*) AS n FROM llm_calls GROUP BY ALL) "
        "SELECT c.status, sum(calls.n) AS llm_calls FROM conversations c "
        "JOIN calls USING (conversation_id) GROUP BY ALL",
        "--format", "json",
    )  # fmt: skip
    assert run.code == 0, run.err
    rows = json.loads(run.out)
    assert rows and sum(r["llm_calls"] for r in rows) > 0
    events = _sql(world, "SELECT count(DISTINCT conversation_id) AS n FROM events", "--format=json")
    assert json.loads(events.out) == [{"n": CONVERSATIONS}]


@pytest.mark.parametrize(
    ("query", "said"),
    [
        # reading any file the user can
        ("SELECT * FROM read_csv('/etc/passwd')", "Permission Error"),
        ("SELECT * FROM read_text('/etc/hostname')", "Permission Error"),
        ("SELECT * FROM glob('/etc/*')", "Permission Error"),
        ("SELECT * FROM read_parquet('{archive}/../beside.parquet')", "Permission Error"),
        ("SELECT * FROM '{folder}/beside.parquet'", "Permission Error"),
        # writing files
        ("COPY (SELECT 1) TO '{folder}/written.csv'", "statement of type COPY"),
        ("EXPORT DATABASE '{folder}/exported'", "statement of type EXPORT"),
        # several statements, the projections deleted behind the projector's back
        (
            "DETACH projections; ATTACH '{sink}' AS p2; DELETE FROM p2.agentlog_conversations",
            "holds 3 statements",
        ),
        ("SELECT 1; COPY (SELECT 1) TO '{folder}/written.csv'", "holds 2 statements"),
        ("DELETE FROM agentlog_conversations", "statement of type DELETE"),
        ("ATTACH '{sink}' AS p2", "statement of type ATTACH"),
        ("DETACH projections", "statement of type DETACH"),
        # undoing the lock, fetching code
        ("SET enable_external_access = true", "statement of type SET"),
        ("INSTALL httpfs", "statement of type LOAD"),
        ("LOAD httpfs", "statement of type LOAD"),
        ("SELECT * FROM query('DELETE FROM agentlog_conversations')", "single SELECT"),
    ],
)
def test_each_attack_is_refused_and_changes_nothing(
    world: dict[str, Path], query: str, said: str
) -> None:
    before, files = _projected(world["sink"]), _files(world["folder"])
    text = query.format(**{k: str(v) for k, v in world.items()})
    run = _sql(world, text)
    assert run.code == 1, run.out
    assert run.out == ""
    error = run.err.strip().splitlines()[-1]
    assert error.startswith("error: SQL: ") and said in error, run.err
    assert _projected(world["sink"]) == before == CONVERSATIONS
    assert _files(world["folder"]) == files


def test_beneath_the_parser_the_database_is_locked(world: dict[str, Path]) -> None:
    """Were a statement to get past the check, DuckDB itself refuses it."""
    from agentlog.analytics.views import open_views

    with open_views(world["archive"], "offline.events", f"duckdb:{world['sink']}") as views:
        connection = views.connection
        assert connection.execute("SELECT count(*) FROM events").fetchone()[0] > 0
        for statement, refusal in [
            ("SELECT * FROM read_csv('/etc/passwd')", duckdb.PermissionException),
            (f"COPY (SELECT 1) TO '{world['folder']}/x.csv'", duckdb.PermissionException),
            ("SET enable_external_access = true", duckdb.InvalidInputException),
            ("SET allowed_directories = ['/']", duckdb.InvalidInputException),
            ("SET autoload_known_extensions = true", duckdb.InvalidInputException),
            ("LOAD httpfs", duckdb.Error),
            ("DELETE FROM agentlog_conversations", duckdb.InvalidInputException),
            # the sink is the database, opened read-only: it cannot be let go of ...
            ("DETACH projections", duckdb.BinderException),
        ]:
            with pytest.raises(refusal):
                connection.execute(statement)
        # ... and attaching its file again gives no way to write either.
        try:
            connection.execute(f"ATTACH '{world['sink']}' AS p2")
        except duckdb.Error:
            pass
        else:
            with pytest.raises(duckdb.Error):
                connection.execute("DELETE FROM p2.agentlog_conversations")
    assert _projected(world["sink"]) == CONVERSATIONS
    assert not (world["folder"] / "x.csv").exists()


@pytest.mark.parametrize(
    "where",
    [
        "true; COPY (SELECT 1) TO '{folder}/written.csv'",
        "true) UNION (SELECT 'x'",
        "true ORDER BY 1",
        "true LIMIT 1",
        "status = 'ended' GROUP BY ALL",
        "",
    ],
)
def test_a_where_that_is_more_than_a_condition_is_refused(
    world: dict[str, Path], where: str
) -> None:
    files = _files(world["folder"])
    out = world["folder"] / "training.jsonl"
    run = agentlog(
        "--topic-prefix", "offline.", "export", "training", "--no-update",
        "--dir", str(world["archive"]),
        "--out", str(out), "--where", where.format(folder=world["folder"]),
        state_dir=world["folder"],
    )  # fmt: skip
    assert run.code == 1, run.out
    error = run.err.strip().splitlines()[-1]
    assert error.startswith("error: --where ") and "one SQL expression" in error, run.err
    assert _files(world["folder"]) == files


def test_a_where_condition_still_picks_conversations(world: dict[str, Path]) -> None:
    out = world["folder"] / "picked.jsonl"
    run = agentlog(
        "--topic-prefix", "offline.", "export", "training", "--no-update",
        "--dir", str(world["archive"]),
        "--out", str(out), "--where", "status = 'ended' --",
        state_dir=world["folder"],
    )  # fmt: skip
    assert run.code == 0, run.err
    assert len(out.read_text().splitlines()) > 0
    out.unlink()
    none = agentlog(
        "--topic-prefix", "offline.", "export", "training", "--no-update",
        "--dir", str(world["archive"]),
        "--out", str(out), "--where", "status = 'nothing like it'",
        state_dir=world["folder"],
    )  # fmt: skip
    assert none.code == 0, none.err
    assert not out.exists() or out.read_text() == ""
