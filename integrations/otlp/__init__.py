"""An OTLP/HTTP receiver that puts any OpenTelemetry-instrumented agent on the log:
`agentlog ingest otlp` (docs/otlp.md).

    from agentlog.integrations.otlp import serve
    with serve(recorder, port=4318) as receiver: ...

Needs `pip install 'agentlog[otlp]'` (opentelemetry-proto).
"""

from pathlib import Path as _Path
from typing import Any as _Any

from agentlog.integrations._recording import require as _require

_require("opentelemetry.proto.collector.trace.v1.trace_service_pb2", "otlp")

from agentlog.errors import OtlpRejected, OtlpUnavailable  # noqa: E402
from agentlog.integrations.otlp._ingest import Counters, Ingest  # noqa: E402
from agentlog.integrations.otlp._server import DEFAULT_MAX_BODY as _DEFAULT_MAX_BODY  # noqa: E402
from agentlog.integrations.otlp._server import Receiver  # noqa: E402

__all__ = ["Counters", "Ingest", "OtlpRejected", "OtlpUnavailable", "Receiver", "serve"]


def serve(
    recorder: _Any,
    *,
    spooled: bool = False,
    host: str = "127.0.0.1",
    port: int = 4318,
    token: str | None = None,
    max_body: int = _DEFAULT_MAX_BODY,
    hold_s: float = 5.0,
    flush_timeout_s: float = 10.0,
    status_file: _Path | None = None,
) -> Receiver:
    """A receiver recording through `recorder` (not started: `with` it, or `.start()`)."""
    ingest = Ingest(recorder, spooled=spooled, hold_s=hold_s, flush_timeout_s=flush_timeout_s)
    return Receiver(
        ingest, host=host, port=port, token=token, max_body=max_body, status_file=status_file
    )
