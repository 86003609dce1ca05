"""The compiled codec refuses what does not fit the schema and says which field."""

from __future__ import annotations

import traceback
from typing import Any

import pytest

from agentlog.codec import compile_codec

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "test.Counts",
    "fields": [
        {"name": "small", "type": "int"},
        {"name": "big", "type": "long"},
        {"name": "ratio", "type": "double"},
        {"name": "scale", "type": "float"},
        {"name": "done", "type": "boolean"},
        {"name": "note", "type": ["null", "string"]},
        {
            "name": "choice",
            "type": [
                {"type": "record", "name": "test.A", "fields": []},
                {"type": "record", "name": "test.B", "fields": []},
            ],
        },
    ],
}
CODEC = compile_codec(SCHEMA)
VALID = {
    "small": 1,
    "big": 2,
    "ratio": 0.5,
    "scale": 0.25,
    "done": True,
    "note": None,
    "choice": ("test.B", {}),
}


def _encode(**changes: Any) -> bytes:
    return bytes(CODEC.encode({**VALID, **changes}, bytearray()))


def test_valid_record_round_trips() -> None:
    assert CODEC.decode(_encode(), 0)[0] == VALID


@pytest.mark.parametrize("field", ["small", "big", "ratio", "scale"])
@pytest.mark.parametrize("flag", [True, False])
def test_a_boolean_is_not_a_number(field: str, flag: bool) -> None:
    with pytest.raises(TypeError, match=f"test.Counts.{field}"):
        _encode(**{field: flag})


@pytest.mark.parametrize("value", [2**31, -(2**31) - 1, 2**40])
def test_int_outside_32_bits_is_refused(value: int) -> None:
    with pytest.raises(ValueError, match="test.Counts.small"):
        _encode(small=value)


@pytest.mark.parametrize("value", [2**31 - 1, -(2**31)])
def test_int_at_the_32_bit_limits_is_written(value: int) -> None:
    assert CODEC.decode(_encode(small=value), 0)[0]["small"] == value


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**64, -(2**64)])
def test_long_outside_64_bits_is_refused(value: int) -> None:
    with pytest.raises(ValueError, match="Avro long"):
        _encode(big=value)


def test_float_too_large_for_32_bits_is_refused_with_its_field() -> None:
    with pytest.raises(ValueError, match="test.Counts.scale"):
        _encode(scale=1e39)


# small and big take a byte each, ratio 8, scale 4; then the boolean, then the note.
BOOLEAN_AT = 1 + 1 + 8 + 4
NOTE_AT = BOOLEAN_AT + 1


def test_boolean_byte_other_than_0_or_1_is_corrupt() -> None:
    data = bytearray(_encode())
    assert data[BOOLEAN_AT] == 1
    data[BOOLEAN_AT] = 2
    with pytest.raises(ValueError, match="test.Counts.done"):
        CODEC.decode(bytes(data), 0)


@pytest.mark.parametrize("index_byte", [0x01, 0x04, 0x80])
def test_optional_value_with_a_branch_other_than_null_or_value_is_corrupt(
    index_byte: int,
) -> None:
    data = bytearray(_encode())
    assert data[NOTE_AT] == 0
    data[NOTE_AT] = index_byte
    with pytest.raises(ValueError, match="test.Counts.note"):
        CODEC.decode(bytes(data), 0)


def test_negative_union_branch_is_corrupt() -> None:
    data = bytearray(_encode())
    assert data[-1] == 2  # branch 1, test.B
    data[-1] = 1  # branch -1: Python would index the last branch
    with pytest.raises(ValueError, match="test.Counts.choice"):
        CODEC.decode(bytes(data), 0)


@pytest.mark.parametrize(
    "varint",
    [
        b"\xff" * 9 + b"\x7f",  # ten bytes, but bits above the 64th set
        b"\xff" * 10 + b"\x01",  # eleven bytes
        b"\xff" * 1_000_000 + b"\x01",  # would take minutes if decoded bit by bit
    ],
    ids=["65-bits", "11-bytes", "1-MB"],
)
def test_varint_longer_than_64_bits_is_corrupt(varint: bytes) -> None:
    data = _encode()
    with pytest.raises(ValueError, match="64 bits"):
        CODEC.decode(data[:1] + varint + data[2:], 0)


def test_traceback_inside_generated_code_shows_its_source_line() -> None:
    try:
        _encode(note=42)  # an int has no .encode(): fails inside the generated encoder
    except AttributeError as exc:
        text = traceback.format_exc()
        innermost = traceback.extract_tb(exc.__traceback__)[-1]
    else:
        pytest.fail("an int was accepted for a string")
    assert innermost.filename.startswith("<agentlog-codec test.Counts")
    assert innermost.line and ".encode()" in innermost.line
    assert innermost.line in text
