"""What every integration shares: the extra it needs, the conversation a call belongs
to, deterministic event ids, and recording that never raises into the agent."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import uuid
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import orjson

from agentlog.errors import ConfigurationError, MissingExtra
from agentlog.event_ids import derived_event_id
from agentlog.producers import AsyncRecorder, Recorder, current_conversation

log = logging.getLogger("agentlog.integrations")

# uuid5 namespace of event ids derived from what a framework delivered (trace id, span
# id, what the event is), so the same span delivered twice is the same event.
EVENT_NAMESPACE = uuid.UUID("3f0c4d2e-8a57-5b0e-9c39-6a1f1d0b7a41")


def require(module: str, extra: str) -> ModuleType:
    """The library an integration wraps, or MissingExtra saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(
            f"this integration needs the {module!r} package: pip install 'agentlog[{extra}]'"
        ) from exc


def sync_recorder(recorder: Any, what: str) -> Recorder:
    """`what` calls back synchronously, so it records through a `Recorder` (whose calls
    never wait long); an AsyncRecorder's coroutines would never run there."""
    if isinstance(recorder, AsyncRecorder):
        raise ConfigurationError(
            f"{what} records from synchronous callbacks: give it a Recorder, not an "
            "AsyncRecorder (a Recorder's calls never wait for Kafka, in async code too)"
        )
    if not isinstance(recorder, Recorder):
        raise ConfigurationError(f"{what} needs an agentlog Recorder, not {type(recorder)!r}")
    return recorder


def event_id(*identity: object) -> str:
    """The same id for the same source event, however often it is delivered."""
    return derived_event_id(EVENT_NAMESPACE, "\x1f".join(str(part) for part in identity))


def conversation(explicit: str | None) -> str | None:
    """The explicit conversation, else the one of `recorder.conversation(...)` here."""
    return explicit or current_conversation.get()


_warned_without_conversation: set[str] = set()


def no_conversation(what: str) -> None:
    """A call outside any conversation is not recorded; say so once per integration."""
    if what not in _warned_without_conversation:
        _warned_without_conversation.add(what)
        log.warning(
            "%s: a call outside any conversation was not recorded: wrap the agent in "
            "`with recorder.conversation(conversation_id):` or pass conversation_id=",
            what,
        )


def safely(record: Callable[[], Any]) -> None:
    """Record; a failure to record is logged, never raised into the agent (the recorder
    itself never raises because of Kafka; this also covers a shape it refuses)."""
    try:
        result = record()
        if inspect.isawaitable(result):  # an AsyncRecorder's, from a sync callback
            _await_later(result)
    except Exception:
        log.exception("agentlog could not record an event; the agent goes on")


def _await_later(result: Any) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        result.close()
        log.error("agentlog could not record an event: an AsyncRecorder outside its loop")
        return
    task = loop.create_task(result)
    _pending.add(task)
    task.add_done_callback(_pending.discard)


_pending: set[asyncio.Task[Any]] = set()


async def safely_async(record: Callable[[], Any]) -> None:
    """`safely` for a Recorder or an AsyncRecorder (whose methods are awaited)."""
    try:
        result = record()
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("agentlog could not record an event; the agent goes on")


_SCALARS = frozenset({str, int, float, bool, type(None)})


# datetimes and dataclasses go to `_plain_leaf` (their str(), as `_plain_slowly` gives),
# not orjson's own forms; keys that are not str make orjson refuse, so the slow path
# turns them into str() as it always did.
_PLAIN_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def plain(value: Any) -> Any:
    """`value` as plain JSON-able data: SDK objects (pydantic models) as their JSON.
    Scalars are returned as they are, flat dicts copied; anything else makes one round
    trip through orjson
    (C code, several times quicker than walking it in Python: this runs for every
    message and tool of every recorded call), and what orjson refuses (an integer beyond
    64 bits, a key that is not a str) is walked in Python instead, with the same result."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict and all(type(v) in _SCALARS for v in value.values()):
        return _plain_slowly(value)  # flat (a message of text): a copy is quicker here
    try:
        return orjson.loads(orjson.dumps(value, default=_plain_leaf, option=_PLAIN_OPTIONS))
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _plain_slowly(value)


def _plain_leaf(value: Any) -> Any:
    """What orjson cannot write itself, as `_plain_slowly` has it."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json", exclude_none=True)
        except Exception:
            return str(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list | tuple):
        return list(value)
    return str(value)


def _plain_slowly(value: Any) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        return {k if type(k) is str else str(k): _plain_slowly(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_plain_slowly(v) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json", exclude_none=True)
        except Exception:
            return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain_slowly(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_slowly(v) for v in value]
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


def json_value(text: Any) -> Any:
    """Arguments or a result the SDK hands over as JSON text, parsed when it is JSON."""
    if not isinstance(text, str):
        return plain(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def text_parts(content: Any) -> list[dict[str, Any]]:
    """A message's content (a string, or a list of typed parts) as OTel GenAI parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}] if content else []
    parts: list[dict[str, Any]] = []
    items = content if isinstance(content, list | tuple) else [content]
    for part in (plain(item) for item in items):
        if not isinstance(part, dict):
            parts.append({"type": "text", "content": str(part)})
            continue
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text"):
            parts.append({"type": "text", "content": part.get("text", "")})
        elif kind == "refusal":
            parts.append({"type": "refusal", "content": part.get("refusal", "")})
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            parts.append({"type": "uri", "modality": "image", "uri": url})
        elif kind == "input_image" and part.get("image_url"):
            parts.append({"type": "uri", "modality": "image", "uri": part["image_url"]})
        else:
            parts.append({"type": str(kind or "unknown"), **part})
    return parts


def parameters(kwargs: Mapping[str, Any], leave_out: set[str]) -> dict[str, Any]:
    """The request's other parameters (sampling, tool choice, response format, stream...)
    as plain JSON: what a re-run needs to send the same request."""
    return {
        name: plain(value)
        for name, value in kwargs.items()
        if name not in leave_out and not name.startswith("extra_") and _given(value)
    }


def _given(value: Any) -> bool:
    """Not one of the SDKs' `NOT_GIVEN`/`Omit` markers."""
    return type(value).__name__ not in ("NotGiven", "Omit")
