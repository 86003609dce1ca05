"""`agentlog sql "SELECT ..."`: DuckDB over the archive and the projections."""

from __future__ import annotations

import base64
import csv
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import duckdb
import orjson

from agentlog.analytics.views import is_vanished_file, open_views
from agentlog.cli._app import AppContext, cli, pass_app, sink_option
from agentlog.display import visible
from agentlog.errors import ExportError

# A query that met a file compaction had just deleted runs again on a fresh listing.
_ATTEMPTS = 3


@cli.command()
@click.argument("query")
@click.option(
    "--format",
    "output",
    type=click.Choice(["table", "csv", "json", "jsonl"]),
    default="table",
    show_default=True,
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="the archive (default: AGENTLOG_ARCHIVE_DIR, else STATE_DIR/archive)",
)
@sink_option
@pass_app
def sql(app: AppContext, query: str, output: str, directory: Path | None, sink: str | None) -> None:
    """Ask the archive and the projections in SQL (DuckDB dialect).

    Views: records, events, messages, llm_calls, tool_events, reruns (the archive) and
    conversations, tool_calls, conversation_index (the projections); see docs/analytics.md.
    Nothing waits for the archiver or the projector: the archive is read as its files
    are, a projector's DuckDB file through its latest snapshot.
    """
    settings = app.settings.with_overrides(archive_dir=directory, sink=sink)
    for attempt in range(_ATTEMPTS):
        with open_views(settings.archive_root, settings.events_topic, settings.sink_url) as views:
            if attempt == 0:
                for note in views.notes:
                    click.echo(f"note: {note}", err=True)
            try:
                names, rows = views.query(query)
                break
            except duckdb.Error as exc:
                if is_vanished_file(exc) and attempt + 1 < _ATTEMPTS:
                    continue
                first = str(exc).strip().splitlines()[0]
                raise ExportError(f"SQL: {first} (views: {', '.join(views.names)})") from None
    write_rows(names, rows, output)


def write_rows(names: list[str], rows: list[tuple[Any, ...]], output: str) -> None:
    if output == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        # CSV keeps values whole for a file or a pipe; on a terminal, people read it, so
        # control characters from the log are shown, never emitted.
        shown = _csv_value if not sys.stdout.isatty() else _visible_csv_value
        writer.writerow([shown(n) for n in names])
        writer.writerows([[shown(v) for v in row] for row in rows])
    elif output == "json":
        documents = [dict(zip(names, row, strict=True)) for row in rows]
        click.echo(orjson.dumps(documents, default=_json_value, option=_JSON_OPTIONS).decode())
    elif output == "jsonl":
        for row in rows:
            document = dict(zip(names, row, strict=True))
            click.echo(orjson.dumps(document, default=_json_value, option=_JSON_OPTIONS).decode())
    else:
        click.echo(table(names, rows))


_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime | date | bytes | Decimal):
        return _json_value(value)
    if isinstance(value, list | dict):
        return orjson.dumps(value, default=_json_value).decode()
    return value


def _visible_csv_value(value: Any) -> Any:
    text = _csv_value(value)
    return visible(text) if isinstance(text, str) else text


def _cell(value: Any, limit: int = 60) -> str:
    if value is None:
        return ""
    text = _csv_value(value)
    text = visible(" ".join(str(text).split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table(names: list[str], rows: list[tuple[Any, ...]]) -> str:
    """Aligned columns for people; long values shortened (CSV and JSON keep them whole)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(n), *(len(r[i]) for r in cells)]) for i, n in enumerate(names)]
    numeric = [
        all(isinstance(row[i], int | float | Decimal) or row[i] is None for row in rows) and rows
        for i in range(len(names))
    ]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if numeric[i] else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    out = [line(names), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    out.append(f"({len(rows):,} row{'' if len(rows) == 1 else 's'})")
    return "\n".join(out)
