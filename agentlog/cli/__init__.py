"""The `agentlog` command line. Every failure is one line on stderr and a non-zero exit."""

from __future__ import annotations

import sys

import click
from confluent_kafka import KafkaException

from agentlog.cli import (  # noqa: F401  (they register commands)
    conversations,
    demo,
    dev,
    project,
    replay,
    tail,
    topics,
)
from agentlog.cli._app import cli
from agentlog.errors import AgentlogError


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="agentlog", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except AgentlogError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KafkaException as exc:
        click.echo(f"error: Kafka: {exc.args[0].str() if exc.args else exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # a driver's error (DuckDB, psycopg...) is still one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        click.echo(f"error: {type(exc).__module__}.{type(exc).__name__}: {first}", err=True)
        sys.exit(1)
