"""OTLP/HTTP bodies (protobuf or JSON) into plain spans and log records.

Protobuf goes through `opentelemetry-proto`'s generated messages. JSON is walked by hand,
as the OTLP spec defines it (not protobuf's JSON mapping): trace and span ids are hex,
enums are integers, 64-bit integers may be strings. Anything that does not fit is a
`MalformedBody` with the reason, answered 400.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from agentlog.errors import OtlpRejected


def MalformedBody(reason: str) -> OtlpRejected:  # noqa: N802 - reads as the error it makes
    return OtlpRejected(reason, 400)


def BodyTooLarge(reason: str) -> OtlpRejected:  # noqa: N802
    return OtlpRejected(reason, 413)


@dataclass(slots=True)
class Span:
    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16 lowercase hex digits
    parent_span_id: str  # "" for a root span
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[tuple[str, int, dict[str, Any]]]  # (name, time in ns, attributes)
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str
    resource: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class LogRecord:
    trace_id: str
    span_id: str
    time_ns: int
    event_name: str
    body: Any
    attributes: dict[str, Any]


# --- bodies -------------------------------------------------------------------------


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """The body without its Content-Encoding, never more than `limit` bytes of it."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise MalformedBody(f"unsupported Content-Encoding {encoding!r} (gzip or none)")
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        # At most limit + 1 bytes out: one more than allowed proves it is too large,
        # without ever holding a zip bomb's output.
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise MalformedBody(f"the {encoding} body does not decompress: {exc}") from None
    if len(out) > limit:
        raise BodyTooLarge(f"the body decompresses to more than {limit} bytes")
    if not inflater.eof:
        raise MalformedBody(f"the {encoding} body is truncated")
    return out


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json":
        return True
    if media in ("application/x-protobuf", "application/protobuf", ""):
        return False
    raise MalformedBody(
        f"unsupported Content-Type {media!r} (application/x-protobuf or application/json)"
    )


def decode_traces(body: bytes, content_type: str) -> list[Span]:
    if _is_json(content_type):
        return _json_spans(_json_document(body))
    return _proto_spans(body)


def decode_logs(body: bytes, content_type: str) -> list[LogRecord]:
    if _is_json(content_type):
        return _json_logs(_json_document(body))
    return _proto_logs(body)


# --- protobuf ------------------------------------------------------------------------


def _proto_value(value: Any, depth: int = 0) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        _deep(depth)
        return [_proto_value(v, depth + 1) for v in value.array_value.values]
    if kind == "kvlist_value":
        _deep(depth)
        return {kv.key: _proto_value(kv.value, depth + 1) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return getattr(value, kind)


def _proto_attributes(attributes: Any) -> dict[str, Any]:
    return {kv.key: _proto_value(kv.value) for kv in attributes}


def _proto_spans(body: bytes) -> list[Span]:
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    try:
        request = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, ValueError, RecursionError) as exc:
        raise MalformedBody(
            f"the protobuf body is not an ExportTraceServiceRequest: {exc}"
        ) from None
    spans: list[Span] = []
    for resource_spans in request.resource_spans:
        resource = _proto_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                spans.append(
                    Span(
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(),
                        name=s.name,
                        start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano,
                        attributes=_proto_attributes(s.attributes),
                        events=[
                            (e.name, e.time_unix_nano, _proto_attributes(e.attributes))
                            for e in s.events
                        ],
                        status_code=int(s.status.code),
                        status_message=s.status.message,
                        resource=resource,
                    )
                )
    return spans


def _proto_logs(body: bytes) -> list[LogRecord]:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    try:
        request = ExportLogsServiceRequest.FromString(body)
    except (DecodeError, ValueError, RecursionError) as exc:
        raise MalformedBody(
            f"the protobuf body is not an ExportLogsServiceRequest: {exc}"
        ) from None
    records: list[LogRecord] = []
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for r in scope_logs.log_records:
                records.append(
                    LogRecord(
                        trace_id=r.trace_id.hex(),
                        span_id=r.span_id.hex(),
                        time_ns=r.time_unix_nano or r.observed_time_unix_nano,
                        event_name=getattr(r, "event_name", ""),
                        body=_proto_value(r.body),
                        attributes=_proto_attributes(r.attributes),
                    )
                )
    return records


# --- JSON (OTLP's own JSON encoding) --------------------------------------------------

_MAX_DEPTH = 32


def _deep(depth: int) -> None:
    if depth >= _MAX_DEPTH:
        raise MalformedBody(f"an attribute value nests deeper than {_MAX_DEPTH} levels")


def _json_document(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MalformedBody(f"the JSON body does not parse: {exc}") from None
    if not isinstance(document, dict):
        raise MalformedBody("the JSON body is not an object")
    return document


def _list(node: dict[str, Any], key: str, where: str) -> list[Any]:
    value = node.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedBody(f"{where}.{key} is not a list")
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedBody(f"{where} is not an object")
    return value


def _hex_id(value: Any, size: int, where: str, *, optional: bool = False) -> str:
    if value in (None, "") and optional:
        return ""
    if not isinstance(value, str) or len(value) != 2 * size:
        raise MalformedBody(f"{where} is not {2 * size} hex digits")
    try:
        bytes.fromhex(value)
    except ValueError:
        raise MalformedBody(f"{where} is not {2 * size} hex digits") from None
    return value.lower()


def _int(value: Any, where: str) -> int:
    # OTLP JSON: 64-bit integers are decimal strings (numbers accepted too).
    if isinstance(value, bool):
        raise MalformedBody(f"{where} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit() and len(value) <= 20:
        return int(value)
    if value is None:
        return 0
    raise MalformedBody(f"{where} is not an integer")


def _json_value(value: Any, where: str, depth: int = 0) -> Any:
    value = _object(value, where) if value is not None else {}
    if not value:
        return None
    if "stringValue" in value:
        text = value["stringValue"]
        if not isinstance(text, str):
            raise MalformedBody(f"{where}.stringValue is not a string")
        return text
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        return _int(value["intValue"], f"{where}.intValue")
    if "doubleValue" in value:
        number = value["doubleValue"]
        if isinstance(number, bool) or not isinstance(number, int | float | str):
            raise MalformedBody(f"{where}.doubleValue is not a number")
        try:
            return float(number)
        except ValueError:
            raise MalformedBody(f"{where}.doubleValue is not a number") from None
    if "arrayValue" in value:
        _deep(depth)
        items = _list(_object(value["arrayValue"], where), "values", where)
        return [_json_value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(items)]
    if "kvlistValue" in value:
        _deep(depth)
        return _json_attributes(
            _list(_object(value["kvlistValue"], where), "values", where), where, depth + 1
        )
    if "bytesValue" in value:
        data = value["bytesValue"]
        if not isinstance(data, str):
            raise MalformedBody(f"{where}.bytesValue is not base64")
        return data
    raise MalformedBody(f"{where} has no known value field")


def _json_attributes(items: list[Any], where: str, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, item in enumerate(items):
        item = _object(item, f"{where}[{i}]")
        key = item.get("key")
        if not isinstance(key, str):
            raise MalformedBody(f"{where}[{i}].key is not a string")
        out[key] = _json_value(item.get("value"), f"{where}[{i}].value", depth)
    return out


def _json_spans(document: dict[str, Any]) -> list[Span]:
    spans: list[Span] = []
    for r, resource_spans in enumerate(_list(document, "resourceSpans", "body")):
        where = f"resourceSpans[{r}]"
        resource_spans = _object(resource_spans, where)
        resource_node = _object(resource_spans.get("resource") or {}, f"{where}.resource")
        resource = _json_attributes(
            _list(resource_node, "attributes", where), f"{where}.resource.attributes"
        )
        for s_i, scope_spans in enumerate(_list(resource_spans, "scopeSpans", where)):
            scope_where = f"{where}.scopeSpans[{s_i}]"
            scope_spans = _object(scope_spans, scope_where)
            for i, s in enumerate(_list(scope_spans, "spans", scope_where)):
                at = f"{scope_where}.spans[{i}]"
                s = _object(s, at)
                status = _object(s.get("status") or {}, f"{at}.status")
                events = []
                for e_i, e in enumerate(_list(s, "events", at)):
                    e = _object(e, f"{at}.events[{e_i}]")
                    events.append(
                        (
                            str(e.get("name", "")),
                            _int(e.get("timeUnixNano"), f"{at}.events[{e_i}].timeUnixNano"),
                            _json_attributes(
                                _list(e, "attributes", at), f"{at}.events[{e_i}].attributes"
                            ),
                        )
                    )
                spans.append(
                    Span(
                        trace_id=_hex_id(s.get("traceId"), 16, f"{at}.traceId"),
                        span_id=_hex_id(s.get("spanId"), 8, f"{at}.spanId"),
                        parent_span_id=_hex_id(
                            s.get("parentSpanId"), 8, f"{at}.parentSpanId", optional=True
                        ),
                        name=str(s.get("name", "")),
                        start_ns=_int(s.get("startTimeUnixNano"), f"{at}.startTimeUnixNano"),
                        end_ns=_int(s.get("endTimeUnixNano"), f"{at}.endTimeUnixNano"),
                        attributes=_json_attributes(_list(s, "attributes", at), f"{at}.attributes"),
                        events=events,
                        status_code=_int(status.get("code"), f"{at}.status.code"),
                        status_message=str(status.get("message", "")),
                        resource=resource,
                    )
                )
    return spans


def _json_logs(document: dict[str, Any]) -> list[LogRecord]:
    records: list[LogRecord] = []
    for r, resource_logs in enumerate(_list(document, "resourceLogs", "body")):
        where = f"resourceLogs[{r}]"
        resource_logs = _object(resource_logs, where)
        for s_i, scope_logs in enumerate(_list(resource_logs, "scopeLogs", where)):
            scope_where = f"{where}.scopeLogs[{s_i}]"
            scope_logs = _object(scope_logs, scope_where)
            for i, rec in enumerate(_list(scope_logs, "logRecords", scope_where)):
                at = f"{scope_where}.logRecords[{i}]"
                rec = _object(rec, at)
                records.append(
                    LogRecord(
                        trace_id=_hex_id(rec.get("traceId"), 16, f"{at}.traceId", optional=True),
                        span_id=_hex_id(rec.get("spanId"), 8, f"{at}.spanId", optional=True),
                        time_ns=_int(
                            rec.get("timeUnixNano") or rec.get("observedTimeUnixNano"),
                            f"{at}.timeUnixNano",
                        ),
                        event_name=str(rec.get("eventName", "")),
                        body=_json_value(rec.get("body"), f"{at}.body"),
                        attributes=_json_attributes(
                            _list(rec, "attributes", at), f"{at}.attributes"
                        ),
                    )
                )
    return records


__all__ = [
    "LogRecord",
    "Span",
    "decode_logs",
    "decode_traces",
    "inflate",
]
