"""The `agentlog` command: its commands registered, and its one way of failing (see the
face, `agentlog.cli`)."""

from __future__ import annotations

import sys
import traceback
from typing import NoReturn

import click
from confluent_kafka import KafkaException

from agentlog.cli import (  # noqa: F401  (they register commands)
    agents,
    archive,
    conversations,
    demo,
    dev,
    dlq,
    export,
    importing,
    ingest,
    project,
    replay,
    sagas,
    sql,
    status,
    tail,
    tools,
    topics,
)
from agentlog.cli._app import AppContext, cli
from agentlog.display import visible
from agentlog.errors import AgentlogError
from agentlog.secret_redaction import without_secrets


def main(argv: list[str] | None = None) -> None:
    app = AppContext()
    try:
        cli.main(args=argv, prog_name="agentlog", standalone_mode=False, obj=app)
    except click.exceptions.Abort:
        _fail(app, "aborted", 130)
    except click.UsageError as exc:  # the usage and click's own "Error:", exit 2
        exc.show()
        sys.exit(exc.exit_code)
    except click.ClickException as exc:  # a command's failure: the one-line form of all
        _fail(app, f"error: {exc.format_message()}", exc.exit_code)
    except AgentlogError as exc:
        _fail(app, f"error: {exc}")
    except KafkaException as exc:
        _fail(app, f"error: Kafka: {exc.args[0].str() if exc.args else exc}")
    except KeyboardInterrupt:
        _fail(app, "interrupted", 130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # a driver's error (DuckDB, psycopg...) is still one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _fail(app, f"error: {type(exc).__module__}.{type(exc).__name__}: {first}")


def _fail(app: AppContext, line: str, code: int = 1) -> NoReturn:
    """The one line on stderr, under the traceback of the error in hand if asked for.
    An error quotes what it refused (a flag, a record's field, a driver's message): one
    line whatever that holds, its control characters shown, no password in it."""
    if app.wants_traceback():
        traceback.print_exc()
    click.echo(visible(without_secrets(line)), err=True)
    sys.exit(code)
