"""SQL over the archive and the projections: one in-memory DuckDB with views.

From the archive (Parquet files read in place; never locked, so the archiver goes on):

    records             every record archived, once per (topic, partition, offset),
                        undecodable ones included (`decode_error`, `raw_value`)
    events              every event once (by event id), with the envelope, the payload's
                        key fields and `payload_json`; `date` is its UTC day
    messages            user, agent and system-prompt messages (`role`, `text`)
    llm_calls           LLM calls: model, provider, tokens (cached, reasoning), latency, time
                        to first token, finish reasons, response id, output text, and the
                        OpenTelemetry GenAI messages as JSON (`input_messages`,
                        `system_instructions`, `tool_definitions`, `output_messages`,
                        `request_parameters`); `recorded_whole` is false for calls recorded
                        before schema v4, whose `output_messages` is their text alone and
                        whose request is `input_json` as given
    llm_tool_calls      the tool calls the models chose (v4 calls), one row per call
    llm_call_failures   LLM calls that got no answer: error type, message, HTTP status
    tool_events         tool calls requested, completed and failed, attempt by attempt
    reruns              conversations recorded by `agentlog replay rerun`: the original
                        (`rerun_of`), its offsets, the mode and the fork; known by the
                        provenance in their start's metadata, whatever their id

From the projections (the DuckDB sink opened read-only, or its published snapshot
while a projector holds the file; another sink's tables copied in):

    conversations       agentlog_conversations: status, outcome, agents, counts, times
    tool_calls          agentlog_tool_calls: one row per call id
    conversation_index  agentlog_conversation_index: where each conversation sits

The SQL asked of them comes from whoever runs `agentlog sql` or `--where`, so the
database is locked down before any of it runs (`lock_down`): a DuckDB sink file is the
database itself, opened read-only (no DETACH of it, no second read-write ATTACH), no
file can be read but the archive's Parquet files, no extension installed or loaded,
and the configuration locked so that none of this can be SET back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from agentlog.analytics.archive_files import topic_root
from agentlog.analytics.columns import SCHEMA
from agentlog.analytics.sql_guard import one_query
from agentlog.consumers.projections import BUILT_IN
from agentlog.consumers.sinks import open_sink
from agentlog.consumers.sinks.duckdb_snapshot import snapshot_path, taken_at
from agentlog.errors import SinkError
from agentlog.events import RERUN_METADATA_KEY

PROJECTION_VIEWS = {
    "conversations": "agentlog_conversations",
    "tool_calls": "agentlog_tool_calls",
    "conversation_index": "agentlog_conversation_index",
}


def _json(text: str) -> str:
    """The JSON value of a JSON text field, NULL where the text is not JSON (what any
    producer wrote: a bad one must not fail every query of the view)."""
    return f"CASE WHEN json_valid({text}) THEN CAST({text} AS JSON) END"


_EVENT_COLUMNS = ", ".join(
    f'"{name}"' for name in SCHEMA.names if name not in ("decode_error", "raw_value")
)
ARCHIVE_VIEWS = {
    "events": f"""
        SELECT {_EVENT_COLUMNS}, "date" FROM records WHERE decode_error IS NULL
        QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY "partition", "offset") = 1
    """,
    "messages": """
        SELECT conversation_id, occurred_at,
               CASE event_type WHEN 'user_message' THEN 'user'
                               WHEN 'agent_message' THEN 'assistant' ELSE 'system' END AS role,
               coalesce(agent, source_agent) AS agent, user_id, text,
               topic, "partition", "offset", event_id, "date"
        FROM events WHERE event_type IN ('user_message', 'agent_message', 'system_prompt')
    """,
    "llm_calls": f"""
        SELECT conversation_id, occurred_at, agent, provider, request_model,
               payload_json->>'response_model' AS response_model,
               coalesce(payload_json->>'operation', 'chat') AS operation,
               input_tokens, output_tokens,
               TRY_CAST(payload_json->>'cache_read_input_tokens' AS BIGINT)
                   AS cache_read_input_tokens,
               TRY_CAST(payload_json->>'cache_creation_input_tokens' AS BIGINT)
                   AS cache_creation_input_tokens,
               TRY_CAST(payload_json->>'reasoning_tokens' AS BIGINT) AS reasoning_tokens,
               latency_ms,
               TRY_CAST(payload_json->>'time_to_first_token_ms' AS DOUBLE)
                   AS time_to_first_token_ms,
               coalesce(TRY_CAST(payload_json->>'streamed' AS BOOLEAN), false) AS streamed,
               finish_reason,
               coalesce(TRY_CAST(payload_json->'finish_reasons' AS VARCHAR[]),
                        CASE WHEN finish_reason IS NOT NULL THEN [finish_reason] END)
                   AS finish_reasons,
               payload_json->>'response_id' AS response_id,
               text AS output_text,
               payload_json->>'input_json' AS input_json,
               {_json("payload_json->>'input_messages_json'")} AS input_messages,
               {_json("payload_json->>'system_instructions_json'")} AS system_instructions,
               {_json("payload_json->>'tool_definitions_json'")} AS tool_definitions,
               coalesce(
                   {_json("payload_json->>'output_messages_json'")},
                   json_array(json_object(
                       'role', 'assistant',
                       'parts', CASE WHEN coalesce(text, '') = '' THEN json_array()
                                     ELSE json_array(json_object('type', 'text',
                                                                 'content', text)) END,
                       'finish_reason', finish_reason))
               ) AS output_messages,
               {_json("payload_json->>'request_parameters_json'")} AS request_parameters,
               payload_json->>'output_messages_json' IS NOT NULL AS recorded_whole,
               topic, "partition", "offset", event_id, "date"
        FROM events WHERE event_type = 'llm_call'
    """,
    "llm_tool_calls": """
        SELECT conversation_id, occurred_at, agent, request_model,
               part->>'id' AS tool_call_id, part->>'name' AS tool_name,
               part->'arguments' AS arguments,
               topic, "partition", "offset", event_id, "date"
        FROM (
            SELECT *, unnest(json_extract(output_messages, '$[*].parts[*]')) AS part
            FROM llm_calls WHERE recorded_whole AND output_messages IS NOT NULL
        )
        WHERE part->>'type' = 'tool_call'
    """,
    "llm_call_failures": f"""
        SELECT conversation_id, occurred_at, agent, provider, request_model,
               coalesce(payload_json->>'operation', 'chat') AS operation,
               error_type, error_message,
               TRY_CAST(payload_json->>'status_code' AS BIGINT) AS status_code, latency_ms,
               {_json("payload_json->>'input_messages_json'")} AS input_messages,
               {_json("payload_json->>'request_parameters_json'")} AS request_parameters,
               topic, "partition", "offset", event_id, "date"
        FROM events WHERE event_type = 'llm_call_failed'
    """,
    "tool_events": """
        SELECT conversation_id, occurred_at, replace(event_type, 'tool_call_', '') AS kind,
               tool_call_id, tool_name, attempt, agent, arguments_json, result_json,
               error_type, error_message, duration_ms,
               topic, "partition", "offset", event_id, "date"
        FROM events WHERE event_type LIKE 'tool_call_%'
    """,
    # Straight from the files (not `events`, which orders every record to drop repeats):
    # training exports ask this on every run, so it reads starts only. Re-runs recorded
    # before the provenance had its own key kept it at the top of the metadata, the
    # original named `rerun_of`: they are re-runs too.
    "reruns": f"""
        SELECT conversation_id, coalesce(rerun->>'of', rerun->>'rerun_of') AS rerun_of,
               rerun->>'mode' AS mode,
               CAST(rerun->>'fork_at_offset' AS BIGINT) AS fork_at_offset,
               rerun->>'topic' AS rerun_topic,
               CAST(rerun->>'partition' AS BIGINT) AS rerun_partition,
               CAST(rerun->>'first_offset' AS BIGINT) AS rerun_first_offset,
               CAST(rerun->>'last_offset' AS BIGINT) AS rerun_last_offset,
               occurred_at, topic, "partition", "offset", event_id, "date"
        FROM (
            SELECT *, CASE
                WHEN NOT json_valid(metadata) THEN NULL
                WHEN json_type(metadata, '$.{RERUN_METADATA_KEY}') = 'OBJECT'
                    THEN json_extract(metadata, '$.{RERUN_METADATA_KEY}')
                WHEN json_type(metadata, '$.rerun_of') = 'VARCHAR' THEN metadata::JSON
            END AS rerun
            FROM (
                SELECT *, payload_json->>'metadata_json' AS metadata FROM archive_files
                WHERE decode_error IS NULL AND event_type = 'conversation_started'
            )
        )
        WHERE json_type(rerun) = 'OBJECT'
        QUALIFY row_number() OVER (PARTITION BY conversation_id ORDER BY "partition", "offset") = 1
    """,
}


@dataclass
class Views:
    connection: duckdb.DuckDBPyConnection
    notes: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # the views made: those a query can use

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """The columns and rows of `sql`, which must be one SELECT (ExportError if not)."""
        result = self.connection.execute(one_query(sql))
        names = [d[0] for d in result.description or []]
        return names, result.fetchall()

    def arrow(self, sql: str) -> pa.Table:
        return self.connection.sql(sql).to_arrow_table()

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Views:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _literal(text: str | Path) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def archive_views(
    connection: duckdb.DuckDBPyConnection,
    archive: Path,
    topic: str,
    notes: list[str],
    made: list[str],
) -> None:
    """`records` and the views over it, on the archive's files as they are now (their
    names added to `made`)."""
    root = topic_root(archive, topic)
    if any(root.glob("date=*/*.parquet")):
        pattern = _literal(root / "date=*" / "*.parquet")
        connection.execute(
            f"""CREATE OR REPLACE TEMP VIEW archive_files AS
                SELECT * FROM read_parquet({pattern}, hive_partitioning = true,
                                           hive_types = {{'date': DATE}})"""
        )
    else:
        notes.append(f"the archive {root} is empty: run `agentlog archive run`")
        connection.register("_empty_archive", SCHEMA.empty_table())
        connection.execute(
            "CREATE OR REPLACE TEMP VIEW archive_files AS "
            "SELECT *, NULL::DATE AS date FROM _empty_archive"
        )
    # Compaction leaves a merged file beside its parts for a while: each offset once.
    connection.execute(
        """CREATE OR REPLACE TEMP VIEW records AS
           SELECT DISTINCT ON ("partition", "offset") * FROM archive_files
           ORDER BY "partition", "offset" """
    )
    for name, body in ARCHIVE_VIEWS.items():
        connection.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {body}")
    made.extend(["records", *ARCHIVE_VIEWS])


def projection_views(
    connection: duckdb.DuckDBPyConnection, sink_url: str, notes: list[str], made: list[str]
) -> None:
    """`conversations`, `tool_calls`, `conversation_index` from the projection sink, those
    whose table it has (their names added to `made`). A DuckDB sink is `connection`'s
    own database (see `_connect`)."""
    if sink_url.startswith("duckdb:"):
        catalog, file = connection.execute(
            "SELECT database_name, path FROM duckdb_databases() "
            "WHERE database_name = current_database()"
        ).fetchall()[0]
        if file is None:  # in memory: no sink file, nothing projected yet
            notes.append(f"no projections at {sink_url}: run `agentlog project run`")
            return
        present = {
            row[0]
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_catalog = ? AND table_schema = 'main'",
                [catalog],
            ).fetchall()
        }
        for view, table in PROJECTION_VIEWS.items():
            if table in present:
                connection.execute(
                    f"CREATE OR REPLACE TEMP VIEW {view} AS "
                    f"SELECT * FROM {_identifier(catalog)}.main.{table}"
                )
                made.append(view)
        missing = [t for t in PROJECTION_VIEWS.values() if t not in present]
        if missing:
            tables = ", ".join(missing)
            notes.append(
                f"no {tables} table{'' if len(missing) == 1 else 's'} in {sink_url} (cleared?): "
                "`agentlog project run` builds them again"
            )
        return
    # PostgreSQL (DuckDB's postgres extension is not available offline) or memory: the
    # tables are copied in through the sink's own reads.
    definitions = {t.name: t for p in BUILT_IN.values() for t in p.tables}
    with open_sink(sink_url, read_only=True) as sink:
        if sink.reading_note:
            notes.append(sink.reading_note)
        for view, name in PROJECTION_VIEWS.items():
            definition = definitions[name]
            try:
                rows = sink.select(definition)
            except SinkError as exc:
                notes.append(f"{view}: {exc}")
                continue
            connection.register(f"_{view}", _arrow_rows(definition.columns, rows))
            connection.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM _{view}")
            made.append(view)


_ARROW_TYPES = {
    "text": pa.string(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us"),
    "text[]": pa.list_(pa.string()),
}


def _arrow_rows(columns: dict[str, str], rows: list[dict[str, Any]]) -> pa.Table:
    return pa.table(
        {
            name: pa.array([row.get(name) for row in rows], _ARROW_TYPES[kind])
            for name, kind in columns.items()
        }
    )


def open_views(
    archive: Path, topic: str, sink_url: str | None, *, threads: int | None = None
) -> Views:
    """A DuckDB with the archive's and (given a sink) the projections' views, locked
    down (see the module)."""
    notes: list[str] = []
    made: list[str] = []
    connection = _connect(sink_url, notes)
    try:
        connection.execute("SET TimeZone = 'UTC'")
        if threads is not None:
            connection.execute(f"SET threads = {int(threads)}")
        archive_views(connection, archive, topic, notes, made)
        if sink_url is not None:
            projection_views(connection, sink_url, notes, made)
        lock_down(connection, topic_root(archive, topic))
    except BaseException:
        connection.close()
        raise
    return Views(connection, notes, made)


# Set when the database opens: extensions are never fetched nor loaded behind a query
# (those DuckDB ships built in, parquet and json, are there already).
_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


def _connect(sink_url: str | None, notes: list[str]) -> duckdb.DuckDBPyConnection:
    """The database the views live in: a DuckDB sink's file opened read-only (its
    snapshot while a projector holds it), else an in-memory one. Opening the file
    read-only makes the whole database read-only: no query can write to it, detach it
    or attach it again for writing."""
    if sink_url is None or not sink_url.startswith("duckdb:"):
        return duckdb.connect(":memory:", config=_CONFIG)
    path = Path(sink_url.removeprefix("duckdb:").removeprefix("//")).expanduser()
    if not path.exists():
        return duckdb.connect(":memory:", config=_CONFIG)
    try:
        return duckdb.connect(str(path), read_only=True, config=_CONFIG)
    except duckdb.Error as exc:
        snapshot = snapshot_path(path)
        if "lock" not in str(exc).lower() or not snapshot.exists():
            raise SinkError(f"cannot read the projections in {path}: {exc}") from None
    notes.append(f"a projector holds {path}: reading its snapshot of {taken_at(snapshot)}")
    return duckdb.connect(str(snapshot), read_only=True, config=_CONFIG)


def lock_down(connection: duckdb.DuckDBPyConnection, archive_root: Path) -> None:
    """From here on the connection reads the archive's files and the database it has,
    nothing else: no other file (read_csv('/etc/passwd'), COPY ... TO, ATTACH), no
    extension, and no SET that would undo it."""
    # The views name the files by the path given; DuckDB may compare the resolved one.
    allowed = {str(archive_root) + "/", str(archive_root.resolve()) + "/"}
    connection.execute(f"SET allowed_directories = [{', '.join(map(_literal, sorted(allowed)))}]")
    connection.execute("SET enable_external_access = false")
    connection.execute("SET lock_configuration = true")


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def rerun_originals(views: Views) -> dict[str, str]:
    """Each re-run conversation of the archive, with the conversation it re-ran."""
    rows = views.connection.execute("SELECT conversation_id, rerun_of FROM reruns").fetchall()
    return dict(rows)


def is_vanished_file(error: Exception) -> bool:
    """A query that read the archive while compaction deleted parts it had listed."""
    text = str(error).lower()
    return isinstance(error, duckdb.IOException) and (
        "no such file" in text or "no files found" in text or "cannot open file" in text
    )
