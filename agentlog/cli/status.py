"""`agentlog status`: lag, age of the oldest unprocessed record, members, redelivery,
dead letters and parked conversations of every consumer group; `--serve PORT` offers
the same figures to Prometheus."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import click
import orjson

from agentlog.cli._app import AppContext, cli, pass_app, reading_sink, sink_option
from agentlog.cli._signals import until_signalled
from agentlog.cli.metrics import MetricsPage, exposition, metrics_server
from agentlog.cli.sql import table
from agentlog.consumers import open_sink
from agentlog.consumers.consumer_groups import groups_on_broker
from agentlog.consumers.group_activity import GroupActivity
from agentlog.consumers.group_status import StatusReport, collect_status
from agentlog.consumers.sinks import Sink
from agentlog.display import visible
from agentlog.errors import AgentlogError, ConfigurationError
from agentlog.secret_redaction import without_secrets
from agentlog.settings import Settings


@cli.command()
@sink_option
@click.option(
    "--group",
    "groups",
    multiple=True,
    metavar="GROUP",
    help="only this consumer group, repeatable (default: every group that committed "
    "offsets on the events or tool-requests topic)",
)
@click.option(
    "--format",
    "output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.5, 300),
    default=5.0,
    show_default=True,
    help="seconds each step may wait for Kafka",
)
@click.option(
    "--window",
    type=click.IntRange(1, 10_000_000),
    default=10_000,
    show_default=True,
    help="redelivery rate: records of each tool-requests partition looked at (the latest)",
)
@click.option(
    "--pending-after",
    type=click.FloatRange(0, 86_400),
    default=60.0,
    show_default=True,
    help="tool requests without an ending for longer than this many seconds are counted "
    "as overdue (a caller waiting on them has likely given up)",
)
@click.option(
    "--serve",
    "port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    help="serve the figures at http://HOST:PORT/metrics (Prometheus) until Ctrl-C",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="address --serve listens on")
@click.option(
    "--interval",
    type=click.FloatRange(0.5, 3600),
    default=15.0,
    show_default=True,
    help="with --serve: seconds between collections",
)
@click.option(
    "--forget",
    "forget",
    multiple=True,
    metavar="GROUP",
    help="leave this group (which has no members) out from now on, until it consumes again; "
    "repeatable",
)
@pass_app
def status(
    app: AppContext,
    sink: str | None,
    groups: tuple[str, ...],
    output: str,
    timeout: float,
    window: int,
    pending_after: float,
    port: int | None,
    host: str,
    interval: float,
    forget: tuple[str, ...],
) -> None:
    """Per consumer group and partition: committed offset, end, lag and the age of the
    oldest unprocessed record; per group: members, redelivery rate, dead letters and
    parked conversations. Projectors' offsets are read from the sink (--sink, else
    AGENTLOG_SINK, else the default DuckDB file if it exists), others' from Kafka."""
    settings = app.kafka_settings().with_overrides(sink=sink)
    sink_url = _sink_url(settings)

    activity = GroupActivity(settings.state_dir / "status-groups.json")

    def collect(quiet: bool) -> StatusReport:
        with _sink_for_reading(sink_url, quiet) as opened:
            report = collect_status(
                settings,
                groups=groups,
                sink=opened,
                timeout=timeout,
                window=window,
                pending_after=pending_after,
                activity=activity,
                forget=forget,
            )
        _save(activity)
        return report

    if forget:
        missing = set(forget) - {g.group for g in collect_forgetting(settings, forget, timeout)}
        if missing:
            raise ConfigurationError(
                f"no consumer group {sorted(missing)[0]!r} committed offsets on "
                f"{settings.events_topic} or {settings.tool_requests_topic}"
            )
        click.echo(
            f"forgotten until they consume again: {', '.join(sorted(set(forget)))}", err=True
        )
    if port is not None:
        _serve(collect, host, port, interval)
        return
    report = collect(False)
    receiver = otlp_receiver(settings)
    if output == "json":
        data = as_json(report)
        if receiver is not None:
            data["otlp_receiver"] = receiver
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(as_table(report, settings))
        if receiver is not None:
            click.echo("\n" + otlp_receiver_line(receiver))


_OTLP_FIGURES = (
    "requests",
    "spans_received",
    "spans_accepted",
    "spans_dropped",
    "spans_rejected",
    "log_records_received",
    "log_records_rejected",
    "events_produced",
    "unavailable",
)


def otlp_receiver(settings: Settings) -> dict[str, object] | None:
    """The counters `agentlog ingest otlp` last wrote (its state file), if any: only
    the known figures, as integers, and the last rejection as printable text."""
    path = settings.otlp_status_file
    try:
        with path.open("rb") as handle:
            raw = handle.read(65_537)
        data = orjson.loads(raw) if len(raw) <= 65_536 else None
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    out: dict[str, object] = {
        name: data[name]
        for name in _OTLP_FIGURES
        if isinstance(data.get(name), int) and not isinstance(data.get(name), bool)
    }
    for text in ("url", "last_rejection"):
        if isinstance(data.get(text), str):
            out[text] = visible(data[text][:300])  # the file is anyone's to write
    return out


def otlp_receiver_line(receiver: dict[str, object]) -> str:
    figures = ", ".join(
        f"{name.replace('_', ' ')} {receiver[name]}" for name in _OTLP_FIGURES if name in receiver
    )
    line = f"OTLP receiver {receiver.get('url', '?')}: {figures}"
    if receiver.get("last_rejection"):
        line += f"\n  last rejection: {receiver['last_rejection']}"
    return line


def collect_forgetting(settings: Settings, forget: tuple[str, ...], timeout: float) -> list[Any]:
    """The groups named by --forget as the broker knows them."""
    return groups_on_broker(
        settings, [settings.events_topic, settings.tool_requests_topic], timeout=timeout
    )


def _save(activity: GroupActivity) -> None:
    try:
        activity.save()
    except OSError as exc:  # observations only: status goes on without them
        click.echo(f"note: cannot keep group activity in {activity.path}: {exc}", err=True)


def _sink_url(settings: Settings) -> str | None:
    """The sink to read projectors' offsets from: the one configured, else the default
    file if a projector made it; None: Kafka's offsets only."""
    if settings.sink is not None:
        return settings.sink_url
    return settings.sink_url if settings.default_sink_file.exists() else None


@contextmanager
def _sink_for_reading(url: str | None, quiet: bool) -> Iterator[Sink | None]:
    if url is None:
        yield None
        return
    opening = open_sink(url, read_only=True) if quiet else reading_sink(url)
    with opening as sink:
        yield sink


# -- people's and machines' output ------------------------------------------------------


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours < 48 else f"{hours // 24}d{hours % 24:02d}h"


def _known(value: int | None) -> int | str:
    return "?" if value is None else value


def as_table(report: StatusReport, settings: Settings) -> str:
    if not report.groups:
        return (
            f"no consumer group has committed offsets on {settings.events_topic} or "
            f"{settings.tool_requests_topic} (name one with --group)"
        )
    summary = [
        (
            g.group,
            g.kind,
            f"idle {_age(g.idle_for_s)}" if g.idle_for_s is not None else g.state,
            _known(g.members),
            "-" if g.idle else _known(g.lag),
            "-" if g.idle else _age(g.oldest_unprocessed_age_s),
            "n/a" if g.redelivery_rate is None else f"{g.redelivery_rate:.1%}",
            g.dlq_depth,
            g.parked_conversations,
            g.offsets_from,
        )
        for g in report.groups
    ]
    partitions = [
        (
            g.group,
            p.topic,
            p.partition,
            "-" if p.committed is None else p.committed,
            p.end,
            _known(p.lag),
            _age(p.oldest_unprocessed_age_s),
        )
        for g in report.groups
        for p in g.partitions
    ]
    names = ["group", "kind", "state", "members", "lag", "oldest", "redelivery", "dlq"]
    parts = [
        table([*names, "parked", "offsets from"], summary),
        "",
        table(["group", "topic", "partition", "committed", "end", "lag", "oldest"], partitions),
    ]
    notes = [f"{g.group}: {note}" for g in report.groups for note in g.notes]
    notes += [
        f"{g.group}: idle (no members, offsets unchanged for {_age(g.idle_for_s)}): no lag "
        f"metrics; `agentlog status --forget {g.group}` leaves it out"
        for g in report.groups
        if g.idle
    ]
    notes += [
        f"{g.group}: redelivery {g.redelivery_basis}"
        for g in report.groups
        if g.redelivery_rate is not None
    ]
    return "\n".join(parts + ([""] + [f"note: {n}" for n in notes] if notes else []))


def as_json(report: StatusReport) -> dict[str, object]:
    groups = []
    for g in report.groups:
        entry = asdict(g)
        entry["lag"] = g.lag
        entry["oldest_unprocessed_age_s"] = g.oldest_unprocessed_age_s
        entry["idle"] = g.idle
        groups.append(entry)
    return {
        "taken_at": datetime.fromtimestamp(report.taken_at, UTC).isoformat(),
        "redelivery_window_records": report.window,
        "groups": groups,
    }


# -- the Prometheus endpoint -------------------------------------------------------------


def _serve(collect: Callable[[bool], StatusReport], host: str, port: int, interval: float) -> None:
    """Collect once (a broker that is down fails here, as without --serve), then serve the
    latest figures and collect again every `interval` seconds until SIGINT/SIGTERM."""
    page = MetricsPage(exposition(collect(False)))
    try:
        server = metrics_server(page, host, port)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    stop = threading.Event()
    serving = threading.Thread(target=server.serve_forever, name="agentlog-metrics", daemon=True)
    # An endpoint asked to stop has done its job: exit 0 on SIGINT as on SIGTERM.
    with until_signalled(stop.set):
        serving.start()
        bound_host, bound_port = server.server_address[:2]
        click.echo(f"serving metrics at http://{bound_host!s}:{bound_port}/metrics", err=True)
        sys.stderr.flush()
        try:
            while not stop.wait(interval):
                try:
                    page.set(exposition(collect(True)))
                except AgentlogError as exc:
                    page.set(exposition(None))
                    line = f"error: {exc} (serving agentlog_status_collect_success 0)"
                    click.echo(visible(without_secrets(line)), err=True)
        finally:
            server.shutdown()
            server.server_close()
    click.echo("stopped serving metrics", err=True)
