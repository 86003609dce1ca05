"""The OTLP/HTTP endpoint: `POST /v1/traces`, `POST /v1/logs` (protobuf or JSON, gzip).

Standard library `ThreadingHTTPServer`: no extra dependency, one thread per connection;
the ingest itself takes one request at a time (see `_ingest`). Answers per the OTLP/HTTP
spec: 200 with an Export*ServiceResponse (its `partial_success` naming what was rejected
and why) in the request's encoding; 400 malformed, 401 wrong token, 413 too large,
415 unknown content type, 503 + Retry-After when Kafka does not take the events.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from agentlog.errors import OtlpRejected, OtlpUnavailable
from agentlog.integrations.otlp import _decode
from agentlog.integrations.otlp._ingest import Ingest

log = logging.getLogger("agentlog.integrations.otlp")

DEFAULT_MAX_BODY = 16 * 1024 * 1024
RETRY_AFTER_S = 5
_STATUS_EVERY_S = 1.0


def _response(kind: str, rejected: int, why: str, as_json: bool) -> bytes:
    if kind == "traces":
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceResponse as Response,
        )

        field = "rejected_spans"
    else:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsServiceResponse as Response,
        )

        field = "rejected_log_records"
    if as_json:
        if not rejected and not why:
            return b"{}"
        camel = "rejectedSpans" if kind == "traces" else "rejectedLogRecords"
        return json.dumps({"partialSuccess": {camel: str(rejected), "errorMessage": why}}).encode()
    message = Response()
    if rejected or why:
        setattr(message.partial_success, field, rejected)
        message.partial_success.error_message = why
    encoded: bytes = message.SerializeToString()
    return encoded


def _status_body(message: str, as_json: bool) -> bytes:
    """A google.rpc.Status with the message (the spec's body of a failed request)."""
    if as_json:
        return json.dumps({"code": 3, "message": message}).encode()
    # google.rpc.Status by hand (code = 1, message = 2): no googleapis dependency.
    text = message.encode("utf-8", "replace")[:4096]
    size, length = bytearray(), len(text)
    while True:
        byte, length = length & 0x7F, length >> 7
        size.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes([0x08, 3, 0x12]) + bytes(size) + text


class Receiver:
    """`with Receiver(ingest, ...) as receiver: receiver.url`"""

    def __init__(
        self,
        ingest: Ingest,
        *,
        host: str = "127.0.0.1",
        port: int = 4318,
        token: str | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        status_file: Path | None = None,
    ) -> None:
        self.ingest = ingest
        self.token = token
        self.max_body = max_body
        self.status_file = status_file
        self._stop = threading.Event()
        handler = _handler(self)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{name}:{port}"

    def start(self) -> Receiver:
        serve = threading.Thread(target=self.server.serve_forever, name="otlp-http", daemon=True)
        sweep = threading.Thread(target=self._sweep, name="otlp-sweep", daemon=True)
        self._threads = [serve, sweep]
        for thread in self._threads:
            thread.start()
        return self

    def _sweep(self) -> None:
        while not self._stop.wait(min(0.5, self.ingest.hold_s / 2 or 0.5)):
            try:
                self.ingest.sweep()
                self.write_status()
            except Exception:
                log.exception("the OTLP receiver's sweep failed; it goes on")

    def write_status(self) -> None:
        """The counters, for `agentlog status` (written whole, then renamed)."""
        if self.status_file is None:
            return
        self.status_file.parent.mkdir(parents=True, exist_ok=True)
        data = {"url": self.url, "pid": os.getpid(), **self.ingest.counters.as_dict()}
        fd, tmp = tempfile.mkstemp(dir=self.status_file.parent, prefix=".otlp-status")
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
        os.replace(tmp, self.status_file)

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        try:
            self.ingest.close()
        except OtlpUnavailable as exc:
            log.error("spans held at shutdown could not be recorded: %s", exc)
        self.write_status()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "agentlog-otlp"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def _answer(
            self, status: int, body: bytes, as_json: bool, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            kind = "application/json" if as_json else "application/x-protobuf"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            kinds: dict[str, tuple[str, Callable[[bytes, str], Any]]] = {
                "/v1/traces": ("traces", _decode.decode_traces),
                "/v1/logs": ("logs", _decode.decode_logs),
            }
            path = self.path.split("?", 1)[0]
            content_type = self.headers.get("Content-Type", "")
            as_json = content_type.split(";", 1)[0].strip().lower() == "application/json"
            if path not in kinds:
                self.close_connection = True
                self._answer(
                    404, _status_body(f"no OTLP endpoint at {path[:100]!r}", as_json), as_json
                )
                return
            if receiver.token is not None:
                given = self.headers.get("Authorization", "")
                expected = f"Bearer {receiver.token}"
                if not hmac.compare_digest(given.encode(), expected.encode()):
                    self.close_connection = True
                    self._answer(
                        401, _status_body("a valid bearer token is required", as_json), as_json
                    )
                    return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self.close_connection = True
                self._answer(411, _status_body("Content-Length is required", as_json), as_json)
                return
            if length < 0 or length > receiver.max_body:
                self.close_connection = True
                self._answer(
                    413,
                    _status_body(f"the body is larger than {receiver.max_body} bytes", as_json),
                    as_json,
                )
                return
            body = self.rfile.read(length)
            kind, decode = kinds[path]
            try:
                raw = _decode.inflate(
                    body, self.headers.get("Content-Encoding", ""), receiver.max_body
                )
                items = decode(raw, content_type)
                if kind == "traces":
                    rejected, why = receiver.ingest.accept_spans(items)
                else:
                    rejected, why = receiver.ingest.accept_logs(items)
            except OtlpRejected as exc:
                status = exc.status
                if "Content-Type" in str(exc):
                    status = 415
                self._answer(status, _status_body(str(exc), as_json), as_json)
                return
            except OtlpUnavailable as exc:
                self._answer(
                    503,
                    _status_body(f"Kafka did not take the events: {exc}", as_json),
                    as_json,
                    {"Retry-After": str(RETRY_AFTER_S)},
                )
                return
            except Exception as exc:  # noqa: BLE001 - nothing an exporter sends stops us
                log.exception("the OTLP receiver failed on a request")
                self._answer(
                    500, _status_body(f"internal error: {type(exc).__name__}", as_json), as_json
                )
                return
            self._answer(200, _response(kind, rejected, why, as_json), as_json)

    return Handler
