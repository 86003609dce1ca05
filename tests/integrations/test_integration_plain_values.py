"""What the integrations record of the arguments an agent passes: plain JSON data, the
same whichever path makes it (the quick orjson round trip, or the Python walk it falls
back to for what orjson refuses)."""

from __future__ import annotations

import datetime
import uuid

import pytest

pytest.importorskip("openai")

from openai.types.chat import ChatCompletionMessage  # noqa: E402

from agentlog.integrations._recording import plain  # noqa: E402


def test_sdk_models_inside_plain_data_become_their_json_without_nones() -> None:
    message = ChatCompletionMessage(role="assistant", content="hi")
    assert plain({"messages": [message], "n": (1, 2)}) == {
        "messages": [{"role": "assistant", "content": "hi"}],
        "n": [1, 2],
    }


def test_values_json_has_no_form_for_are_their_str() -> None:
    when = datetime.datetime(2026, 12, 7, 18, 0, tzinfo=datetime.UTC)
    value = {"when": when, "raw": b"\x00", "id": uuid.UUID(int=1), "seen": frozenset()}
    assert plain(value) == {
        "when": "2026-12-07 18:00:00+00:00",
        "raw": "b'\\x00'",
        "id": "00000000-0000-0000-0000-000000000001",
        "seen": "frozenset()",
    }


def test_what_orjson_refuses_is_kept_as_before() -> None:
    big = 2**70  # beyond 64 bits: the JSON of the event holds it whole
    assert plain({"seed": big, 3: "three", None: [True]}) == {
        "seed": big,
        "3": "three",
        "None": [True],
    }


def test_flat_and_nested_dicts_are_copies_not_the_callers_objects() -> None:
    flat = {"role": "user", "content": "hi"}
    nested = {"function": {"name": "f", "parameters": {"type": "object"}}}
    assert plain(flat) == flat and plain(flat) is not flat
    assert plain(nested) == nested and plain(nested)["function"] is not nested["function"]
