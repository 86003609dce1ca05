"""The figures of `agentlog status` in Prometheus' text exposition format (0.0.4), and
a small HTTP server that offers the latest of them at /metrics.

Written with the standard library: six gauges need no client library's registry, and
the text format is a few lines (https://prometheus.io/docs/instrumenting/exposition_formats/).
A figure that is unknown (members on Tansu, a redelivery rate that cannot be observed)
is left out rather than exported as a made-up number.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from agentlog.consumers.group_status import StatusReport

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = dict[str, str]
# name -> help text; the order here is the order on the page
GAUGES = {
    "agentlog_group_idle": "1 if the group has had no member and the same offsets for longer "
    "than status_idle_after (its lag and age are then not reported), else 0.",
    "agentlog_consumer_lag": "Records between the group's committed offset and the "
    "partition's end (fetch high watermark).",
    "agentlog_oldest_unprocessed_age_seconds": "Age of the record at the group's committed "
    "offset (its timestamp; event time on the events topic); 0 when nothing waits.",
    "agentlog_group_members": "Members of the consumer group (absent where the broker does "
    "not report them).",
    "agentlog_redelivery_rate": "Fraction of tool calls started in the window that were "
    "started again (retry or another worker); tool worker groups only.",
    "agentlog_dlq_depth": "Open dead letters of the group on the dead-letter topic.",
    "agentlog_parked_conversations": "Conversations of the group parked behind a dead letter.",
    "agentlog_status_collect_success": "1 if the last collection of these figures "
    "succeeded, else 0 (the figures above are then absent).",
    "agentlog_status_collected_timestamp_seconds": "UNIX time of the last successful collection.",
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def _samples(report: StatusReport | None) -> Iterator[tuple[str, Labels, float]]:
    if report is None:
        return
    for g in report.groups:
        group = {"group": g.group}
        yield "agentlog_group_idle", group, 1 if g.idle else 0
        if g.idle:
            continue  # a stopped group's growing lag is no alert (see status_idle_after)
        for p in g.partitions:
            where = {"group": g.group, "topic": p.topic, "partition": str(p.partition)}
            if p.lag is not None:
                yield "agentlog_consumer_lag", where, p.lag
            if p.oldest_unprocessed_age_s is not None:
                yield "agentlog_oldest_unprocessed_age_seconds", where, p.oldest_unprocessed_age_s
        if g.members is not None:
            yield "agentlog_group_members", group, g.members
        if g.redelivery_rate is not None:
            yield "agentlog_redelivery_rate", group, g.redelivery_rate
        yield "agentlog_dlq_depth", group, g.dlq_depth
        yield "agentlog_parked_conversations", group, g.parked_conversations
    yield "agentlog_status_collected_timestamp_seconds", {}, report.taken_at


def exposition(report: StatusReport | None) -> str:
    """The page: HELP and TYPE of every gauge, then its samples (`report` None: the last
    collection failed, and only the success gauge has a sample)."""
    by_name: dict[str, list[tuple[Labels, float]]] = {name: [] for name in GAUGES}
    for name, labels, value in _samples(report):
        by_name[name].append((labels, value))
    by_name["agentlog_status_collect_success"].append(({}, 0 if report is None else 1))
    lines = []
    for name, help_text in GAUGES.items():
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        for labels, value in by_name[name]:
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            where = f"{{{inner}}}" if inner else ""
            lines.append(f"{name}{where} {_number(value)}")
    return "\n".join(lines) + "\n"


class MetricsPage:
    """The latest page, replaced whole by the collecting thread, read by the server's."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._lock = threading.Lock()

    def set(self, text: str) -> None:
        with self._lock:
            self._text = text

    def get(self) -> str:
        with self._lock:
            return self._text


def metrics_server(page: MetricsPage, host: str, port: int) -> ThreadingHTTPServer:
    """A server (not yet serving) answering GET /metrics with the page; 404 elsewhere."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404, "the figures are at /metrics")
                return
            body = page.get().encode()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a scrape every few seconds is not news

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
