"""The implementation behind `agentlog.testing.model_server`: its face says how to use it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL_PLAIN = "canned-plain"
MODEL_TOOL = "canned-tool"
MODEL_PARALLEL = "canned-parallel"
MODEL_RATE_LIMITED = "canned-429"

# The largest request body the server reads (it is a test server, not a target).
_MAX_BODY = 4 * 1024 * 1024
_CREATED = 1_780_000_000


@dataclass(frozen=True)
class ToolUse:
    call_id: str
    name: str
    arguments: dict[str, Any]
    result: dict[str, Any]


@dataclass(frozen=True)
class Script:
    """The scripted conversation: the user asks, the model calls a tool, the tool
    answers, the model replies."""

    system: str = "You are the billing agent."
    question: str = "Where is my invoice INV-1?"
    lookup: ToolUse = ToolUse(
        "call_lookup_1", "lookup_invoice", {"invoice_id": "INV-1"}, {"status": "paid"}
    )
    refund: ToolUse = ToolUse("call_refund_1", "issue_refund", {"amount": 12.5}, {"ok": True})
    answer: str = "Invoice INV-1 is paid."
    plain_answer: str = "Hello! How can I help?"
    # Usage reported for every answer.
    input_tokens: int = 21
    output_tokens: int = 7
    cached_tokens: int = 3

    def tools(self) -> list[dict[str, Any]]:
        """The tools offered, as JSON-schema function definitions."""
        return [
            {
                "name": self.lookup.name,
                "description": "Fetch an invoice",
                "parameters": {
                    "type": "object",
                    "properties": {"invoice_id": {"type": "string"}},
                    "required": ["invoice_id"],
                },
            },
            {
                "name": self.refund.name,
                "description": "Refund a payment",
                "parameters": {
                    "type": "object",
                    "properties": {"amount": {"type": "number"}},
                    "required": ["amount"],
                },
            },
        ]


SCRIPT = Script()


def _has_tool_result(body: dict[str, Any]) -> bool:
    """Whether the request carries a tool's result (any provider's shape)."""
    for message in body.get("messages") or body.get("input") or []:
        if not isinstance(message, dict):
            continue
        if message.get("role") == "tool" or message.get("type") == "function_call_output":
            return True
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(part, dict) and part.get("type") == "tool_result" for part in content
        ):
            return True
    return False


def _calls_for(body: dict[str, Any]) -> list[ToolUse]:
    """The tool calls the model answers with, or none (text)."""
    model = body.get("model")
    if _has_tool_result(body):
        return []
    if model == MODEL_TOOL:
        return [SCRIPT.lookup]
    if model == MODEL_PARALLEL:
        return [SCRIPT.lookup, SCRIPT.refund]
    return []


def _text_for(body: dict[str, Any]) -> str:
    return SCRIPT.plain_answer if body.get("model") == MODEL_PLAIN else SCRIPT.answer


def _pieces(text: str) -> list[str]:
    """The text cut into a few deltas, as a model streams it."""
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def _arguments(call: ToolUse) -> str:
    return json.dumps(call.arguments, separators=(",", ":"))


# --- OpenAI Chat Completions -------------------------------------------------------


def chat_completion(body: dict[str, Any]) -> dict[str, Any]:
    calls = _calls_for(body)
    message: dict[str, Any] = {"role": "assistant", "content": None if calls else _text_for(body)}
    if calls:
        message["tool_calls"] = [
            {
                "id": c.call_id,
                "type": "function",
                "function": {"name": c.name, "arguments": _arguments(c)},
            }
            for c in calls
        ]
    return {
        "id": "chatcmpl-canned",
        "object": "chat.completion",
        "created": _CREATED,
        "model": body.get("model"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": _openai_usage(),
    }


def _openai_usage() -> dict[str, Any]:
    return {
        "prompt_tokens": SCRIPT.input_tokens,
        "completion_tokens": SCRIPT.output_tokens,
        "total_tokens": SCRIPT.input_tokens + SCRIPT.output_tokens,
        "prompt_tokens_details": {"cached_tokens": SCRIPT.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def chat_completion_chunks(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    calls = _calls_for(body)

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-canned",
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": body.get("model"),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    yield chunk({"role": "assistant", "content": ""})
    if calls:
        for index, c in enumerate(calls):
            head = {"index": index, "id": c.call_id, "type": "function"}
            yield chunk({"tool_calls": [{**head, "function": {"name": c.name, "arguments": ""}}]})
            arguments = _arguments(c)
            middle = len(arguments) // 2
            for piece in (arguments[:middle], arguments[middle:]):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield chunk({}, "tool_calls")
    else:
        for piece in _pieces(_text_for(body)):
            yield chunk({"content": piece})
        yield chunk({}, "stop")
    if (body.get("stream_options") or {}).get("include_usage"):
        yield {**chunk({}), "choices": [], "usage": _openai_usage()}


# --- OpenAI Responses --------------------------------------------------------------


def _response_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    calls = _calls_for(body)
    if calls:
        return [
            {
                "type": "function_call",
                "id": f"fc_{c.call_id}",
                "call_id": c.call_id,
                "name": c.name,
                "arguments": _arguments(c),
                "status": "completed",
            }
            for c in calls
        ]
    return [
        {
            "type": "message",
            "id": "msg_canned",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": _text_for(body), "annotations": []}],
        }
    ]


def response(body: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    done = status == "completed"
    return {
        "id": "resp_canned",
        "object": "response",
        "created_at": _CREATED,
        "status": status,
        "model": body.get("model"),
        "output": _response_items(body) if done else [],
        "instructions": body.get("instructions"),
        "parallel_tool_calls": True,
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],  # OpenAI echoes the request's tools
        "usage": {
            "input_tokens": SCRIPT.input_tokens,
            "output_tokens": SCRIPT.output_tokens,
            "total_tokens": SCRIPT.input_tokens + SCRIPT.output_tokens,
            "input_tokens_details": {"cached_tokens": SCRIPT.cached_tokens},
            "output_tokens_details": {"reasoning_tokens": 0},
        }
        if done
        else None,
    }


def response_events(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    sequence = iter(range(1_000_000))
    yield {
        "type": "response.created",
        "sequence_number": next(sequence),
        "response": response(body, "in_progress"),
    }
    for index, item in enumerate(_response_items(body)):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            empty = {**item, "status": "in_progress", "content": []}
            yield {
                "type": "response.output_item.added",
                "sequence_number": next(sequence),
                "output_index": index,
                "item": empty,
            }
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            yield {
                "type": "response.content_part.added",
                "sequence_number": next(sequence),
                **where,
                "part": {"type": "output_text", "text": "", "annotations": []},
            }
            for piece in _pieces(text):
                yield {
                    "type": "response.output_text.delta",
                    "sequence_number": next(sequence),
                    **where,
                    "delta": piece,
                    "logprobs": [],
                }
            yield {
                "type": "response.output_text.done",
                "sequence_number": next(sequence),
                **where,
                "text": text,
                "logprobs": [],
            }
            yield {
                "type": "response.content_part.done",
                "sequence_number": next(sequence),
                **where,
                "part": item["content"][0],
            }
        else:
            yield {
                "type": "response.output_item.added",
                "sequence_number": next(sequence),
                "output_index": index,
                "item": {**item, "arguments": "", "status": "in_progress"},
            }
            yield {
                "type": "response.function_call_arguments.delta",
                "sequence_number": next(sequence),
                "item_id": item["id"],
                "output_index": index,
                "delta": item["arguments"],
            }
            yield {
                "type": "response.function_call_arguments.done",
                "sequence_number": next(sequence),
                "item_id": item["id"],
                "output_index": index,
                "arguments": item["arguments"],
            }
        yield {
            "type": "response.output_item.done",
            "sequence_number": next(sequence),
            "output_index": index,
            "item": item,
        }
    yield {
        "type": "response.completed",
        "sequence_number": next(sequence),
        "response": response(body),
    }


# --- Anthropic Messages ------------------------------------------------------------


def _anthropic_usage(output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": SCRIPT.input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": SCRIPT.cached_tokens,
        "cache_creation_input_tokens": 0,
    }


def message(body: dict[str, Any]) -> dict[str, Any]:
    calls = _calls_for(body)
    content: list[dict[str, Any]]
    if calls:
        content = [
            {"type": "tool_use", "id": c.call_id, "name": c.name, "input": c.arguments}
            for c in calls
        ]
    else:
        content = [{"type": "text", "text": _text_for(body)}]
    return {
        "id": "msg_canned",
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": content,
        "stop_reason": "tool_use" if calls else "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(SCRIPT.output_tokens),
    }


def message_events(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    whole = message(body)
    start = {**whole, "content": [], "stop_reason": None, "usage": _anthropic_usage(1)}
    yield {"type": "message_start", "message": start}
    for index, block in enumerate(whole["content"]):
        if block["type"] == "text":
            yield {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            }
            for piece in _pieces(block["text"]):
                yield {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": piece},
                }
        else:
            yield {
                "type": "content_block_start",
                "index": index,
                "content_block": {**block, "input": {}},
            }
            arguments = json.dumps(block["input"], separators=(",", ":"))
            middle = len(arguments) // 2
            for piece in (arguments[:middle], arguments[middle:]):
                yield {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": piece},
                }
        yield {"type": "content_block_stop", "index": index}
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": whole["stop_reason"], "stop_sequence": None},
        "usage": {"output_tokens": SCRIPT.output_tokens},
    }
    yield {"type": "message_stop"}


# --- The server --------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a round trip is one request, not a connect

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """Quiet: tests read what they need from the answers."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > _MAX_BODY:
            self._json(413, {"error": {"message": "request too large"}})
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._json(400, {"error": {"message": "request body is not JSON"}})
            return
        if not isinstance(body, dict):
            self._json(400, {"error": {"message": "request body is not a JSON object"}})
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        anthropic = path.endswith("/messages") and not path.endswith("/chat/completions")
        if body.get("model") == MODEL_RATE_LIMITED:
            self._rate_limited(anthropic)
            return
        stream = bool(body.get("stream"))
        if path.endswith("/chat/completions"):
            if stream:
                self._sse((None, chunk) for chunk in chat_completion_chunks(body))
            else:
                self._json(200, chat_completion(body))
        elif path.endswith("/responses"):
            if stream:
                self._sse((event["type"], event) for event in response_events(body))
            else:
                self._json(200, response(body))
        elif anthropic:
            if stream:
                self._sse((event["type"], event) for event in message_events(body))
            else:
                self._json(200, message(body))
        else:
            self._json(404, {"error": {"message": f"no such endpoint: {path}"}})

    def _rate_limited(self, anthropic: bool) -> None:
        if anthropic:
            error = {
                "type": "error",
                "error": {"type": "rate_limit_error", "message": "Rate limit reached (canned)"},
            }
        else:
            error = {
                "error": {
                    "message": "Rate limit reached (canned)",
                    "type": "requests",
                    "code": "rate_limit_exceeded",
                }
            }
        self._json(429, error, {"retry-after": "0"})

    def _json(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", "req_canned")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: Iterator[tuple[str | None, dict[str, Any]]]) -> None:
        """Each event as its own chunk of a chunked body, flushed as it is written."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(text: str) -> None:
            data = text.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        for name, event in events:
            head = f"event: {name}\n" if name else ""
            send(f"{head}data: {json.dumps(event)}\n\n")
        if self.path.split("?", 1)[0].rstrip("/").endswith("/chat/completions"):
            send("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class ModelServer:
    """The server on 127.0.0.1 and a free port, in a daemon thread; a context manager."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="agentlog-model-server", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_url(self) -> str:
        """`base_url` for OpenAI clients."""
        return f"{self.url}/v1"

    @property
    def anthropic_url(self) -> str:
        """`base_url` for Anthropic clients (they add `/v1/messages`)."""
        return self.url

    def start(self) -> ModelServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main() -> None:
    """`python -m agentlog.testing.model_server`: serve in this process (apart from the
    clients being measured) until standard input closes; the first line printed is the
    server's URL."""
    import sys

    with ModelServer() as server:
        print(server.url, flush=True)
        sys.stdin.read()
