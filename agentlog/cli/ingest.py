"""`agentlog ingest otlp`: an OTLP/HTTP receiver putting instrumented agents on the log."""

from __future__ import annotations

import threading

import click

from agentlog.cli._app import AppContext, cli, pass_app
from agentlog.cli._signals import until_signalled


@cli.group()
def ingest() -> None:
    """Take events from other systems onto the log."""


@ingest.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", type=click.IntRange(0, 65535), default=4318, show_default=True)
@click.option(
    "--token",
    envvar="AGENTLOG_OTLP_TOKEN",
    help="demand `Authorization: Bearer TOKEN` (or the setting AGENTLOG_OTLP_TOKEN)",
)
@click.option(
    "--max-body",
    type=click.IntRange(1024, 1 << 30),
    default=16 * 1024 * 1024,
    show_default=True,
    help="largest request body in bytes, also once decompressed (larger: 413)",
)
@click.option(
    "--hold",
    type=click.FloatRange(0, 600),
    default=5.0,
    show_default=True,
    help="seconds a span waits for its trace's conversation key (its root span)",
)
@pass_app
def otlp(
    app: AppContext, host: str, port: int, token: str | None, max_body: int, hold: float
) -> None:
    """OTLP/HTTP on HOST:PORT: POST /v1/traces and /v1/logs (protobuf or JSON, gzip).

    GenAI spans (OpenTelemetry GenAI, OpenInference, OpenLLMetry) become LLM and tool
    calls in their conversation; see docs/otlp.md."""
    from agentlog.integrations.otlp import serve
    from agentlog.producers import Recorder

    settings = app.kafka_settings()
    if token is None and settings.otlp_token is not None:
        token = settings.otlp_token.get_secret_value()
    if token is not None and not token.strip():
        raise click.BadParameter("the token is empty", param_hint="--token")
    recorder = Recorder(settings, service="otlp-receiver")
    stop = threading.Event()
    # A receiver asked to stop has done its job: exit 0 on SIGINT as on SIGTERM.
    try:
        with (
            until_signalled(stop.set),
            serve(
                recorder,
                spooled=settings.spool_dir is not None,
                host=host,
                port=port,
                token=token,
                max_body=max_body,
                hold_s=hold,
                status_file=settings.otlp_status_file,
            ) as receiver,
        ):
            auth = "bearer token required" if token else "no token"
            click.echo(f"OTLP/HTTP receiver on {receiver.url} ({auth}); Ctrl-C stops", err=True)
            stop.wait()
    finally:
        recorder.close(10)
