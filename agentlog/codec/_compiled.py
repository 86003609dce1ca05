"""Avro binary encoder/decoder compiled from a schema into straight-line Python.

fastavro's per-call overhead (about 10 µs for one small envelope) would cost the
producer more than the Kafka client itself, so the schemas agentlog writes and reads
most are compiled here into one function each. The output is byte-for-byte what
fastavro writes and it reads what fastavro reads (tests/core/test_codec_properties.py compares
them on generated values of every type); fastavro still does schema resolution between
versions, and `AGENTLOG_CODEC=fastavro` puts it in this codec's place. Types are strict
(no booleans for numbers, ints within 32 bits), and bytes no writer produces (a boolean
other than 0/1, a union branch that does not exist) are refused as corrupt where
fastavro would read them. The generated source is registered with `linecache`, so a
traceback through it shows its lines. Supported: record, union (null + one type, or named
records given as `(name, dict)` tuples), array, string, bytes, long, int, double,
float, boolean, null.
"""

from __future__ import annotations

import functools
import hashlib
import linecache
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_SMALL = 1 << 14
# Raw varints 0.._SMALL-1 (zigzagged longs), and lengths 0.._SMALL-1 as Avro longs.
_VARINT = [bytes([n]) if n < 0x80 else bytes([(n & 0x7F) | 0x80, n >> 7]) for n in range(_SMALL)]
_LEN = [_VARINT[2 * n] if 2 * n < _SMALL else None for n in range(_SMALL // 2)]
# Lengths 0..63 as their one-byte varint reads; -1 for a negative or longer varint.
_ONE_BYTE_LENGTH = [b >> 1 if b < 0x80 and not b & 1 else -1 for b in range(256)]
_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")


# 14-bit groups with the continuation bit set on both bytes: the low part of a long varint.
_CONTINUED = [bytes([(n & 0x7F) | 0x80, (n >> 7) | 0x80]) for n in range(_SMALL)]


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# Timestamps in microseconds share their bits above 2**28 for minutes at a time.
_high_varint = functools.lru_cache(maxsize=256)(_varint)


def _long_bytes(value: int) -> bytes:
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(f"{value} does not fit an Avro long")
    n = (value << 1) ^ (value >> 63)
    if n < _SMALL:
        return _VARINT[n]
    if n >> 28:
        return _CONTINUED[n & 0x3FFF] + _CONTINUED[(n >> 14) & 0x3FFF] + _high_varint(n >> 28)
    return _varint(n)


def _read_long(data: bytes, pos: int) -> tuple[int, int]:
    byte = data[pos]
    pos += 1
    n = byte & 0x7F
    shift = 7
    while byte & 0x80:
        # A corrupt run of continuation bytes would otherwise grow n without bound.
        if shift > 63:
            raise ValueError("varint longer than 64 bits")
        byte = data[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        shift += 7
    if n >> 64:
        raise ValueError("varint longer than 64 bits")
    return (n >> 1) ^ -(n & 1), pos


class _Compiler:
    """Emits the source of one encode and one decode function per named record."""

    def __init__(
        self, memoize: frozenset[str] = frozenset(), number_limit: float | None = None
    ) -> None:
        self.memoize = memoize
        self.number_limit = number_limit
        self.functions: list[str] = []
        self.records: dict[str, dict[str, Any]] = {}
        self.counter = 0

    def var(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    @staticmethod
    def fn_name(kind: str, record_name: str) -> str:
        return f"_{kind}_" + record_name.replace(".", "_")

    def record(self, schema: dict[str, Any]) -> str:
        name: str = schema["name"]
        if name in self.records:
            return name
        self.records[name] = schema
        params = ", ".join(f"f_{field['name']}" for field in schema["fields"])
        enc = [f"def {self.fn_name('enc', name)}(r, buf):"]
        # The same body taking the fields as arguments spares callers building a dict.
        encf = [f"def {self.fn_name('encf', name)}(buf, {params}):"]
        dec = [f"def {self.fn_name('dec', name)}(d, p):", "    end = len(d)", "    r = {}"]
        root = not self.functions
        for field in schema["fields"]:
            where = f"{name}.{field['name']}"
            value = self.var("v")
            enc.append(f"    {value} = r[{field['name']!r}]")
            encf.append(f"    {value} = f_{field['name']}")
            body = self.encode(field["type"], value, "    ", where)
            enc.extend(body)
            if root and field["name"] in self.memoize:
                encf.extend(self.memoized(field["name"], value, body))
            else:
                encf.extend(body)
            target = f"r[{field['name']!r}]"
            dec.extend(self.decode(field["type"], target, "    ", where))
        for lines, result in ((enc, "buf"), (encf, "buf"), (dec, "r, p")):
            lines.append(f"    return {result}")
            self.functions.append("\n".join(lines))
        return name

    def memoized(self, name: str, value: str, body: list[str]) -> list[str]:
        """Reuse the bytes of a value seen before (same object: the memo holds it, so its
        id cannot be reused), for callers that pass the same unchanging object often."""
        memo, hit, start = f"_MEMO_{name}", self.var("hit"), self.var("start")
        self.functions.append(f"{memo} = {{}}")
        return [
            f"    {hit} = {memo}.get(id({value}))",
            f"    if {hit} is not None and {hit}[0] is {value}:",
            f"        buf += {hit}[1]",
            "    else:",
            f"        if len({memo}) >= 1024:",
            f"            {memo}.clear()",
            f"        {start} = len(buf)",
            *("    " + line for line in body),
            f"        {memo}[id({value})] = ({value}, bytes(buf[{start}:]))",
        ]

    def resolve(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema in self.records:
            return self.records[schema]
        if isinstance(schema, dict) and schema.get("type") not in ("record", "array"):
            return schema["type"]
        return schema

    def encode(self, schema: Any, value: str, ind: str, where: str) -> list[str]:
        """Lines appending `value` to `buf`; `where` (record.field) names it in errors."""
        schema = self.resolve(schema)
        if schema == "string":
            b, n = self.var("b"), self.var("n")
            return [
                f"{ind}{b} = {value}.encode()",
                f"{ind}{n} = len({b})",
                f"{ind}buf += _LEN[{n}] if {n} < {_SMALL // 2} else _long_bytes({n})",
                f"{ind}buf += {b}",
            ]
        if schema == "bytes":
            return [
                f"{ind}buf += _LEN[len({value})] if len({value}) < {_SMALL // 2} "
                f"else _long_bytes(len({value}))",
                f"{ind}buf += {value}",
            ]
        if schema in ("long", "int"):
            z = self.var("z")
            # z is never negative (both operands have the sign of value), so one comparison
            # picks the table; the range checks run only on the slow path, |value| >= 2**13.
            slow = (
                f"_long_bytes({value})" if schema == "long" else f"_int_bytes({value}, {where!r})"
            )
            return [
                *self.refuse_booleans(value, ind, where),
                f"{ind}{z} = ({value} << 1) ^ ({value} >> 63)",
                f"{ind}buf += _VARINT[{z}] if {z} < {_SMALL} else {slow}",
            ]
        if schema == "double":
            return [
                *self.refuse_booleans(value, ind, where),
                *self.refuse_non_finite(value, ind, where),
                f"{ind}buf += _DOUBLE.pack({value})",
            ]
        if schema == "float":
            # struct refuses what a float cannot hold; say which field (free until raised).
            return [
                *self.refuse_booleans(value, ind, where),
                *self.refuse_non_finite(value, ind, where),
                f"{ind}try:",
                f"{ind}    buf += _FLOAT.pack({value})",
                f"{ind}except OverflowError:",
                f"{ind}    raise _too_large_for_float({value}, {where!r}) from None",
            ]
        if schema == "boolean":
            return [f"{ind}buf += b'\\x01' if {value} is True else _bool_false({value})"]
        if schema == "null":
            return [
                f"{ind}if {value} is not None:",
                f"{ind}    raise TypeError({where + ' is null; got a value'!r})",
            ]
        if isinstance(schema, list):
            return self.encode_union(schema, value, ind, where)
        if schema["type"] == "record":
            # Inline a nested record's fields: a call per record costs more than its fields.
            lines = []
            for field in schema["fields"]:
                inner = self.var("v")
                lines.append(f"{ind}{inner} = {value}[{field['name']!r}]")
                lines.extend(
                    self.encode(field["type"], inner, ind, f"{schema['name']}.{field['name']}")
                )
            return lines
        if schema["type"] == "array":
            item = self.var("item")
            return [
                f"{ind}if {value}:",
                f"{ind}    buf += _long_bytes(len({value}))",
                f"{ind}    for {item} in {value}:",
                *self.encode(schema["items"], item, ind + "        ", f"{where}[]"),
                f"{ind}buf += b'\\x00'",
            ]
        raise ValueError(f"unsupported Avro type {schema!r}")

    @staticmethod
    def refuse_booleans(value: str, ind: str, where: str) -> list[str]:
        # bool is an int subclass: without this True would be written as 1.
        return [
            f"{ind}if {value} is True or {value} is False:",
            f"{ind}    raise _boolean_for_number({value}, {where!r})",
        ]

    def refuse_non_finite(self, value: str, ind: str, where: str) -> list[str]:
        # One chained comparison: NaN fails it as the infinities and absurd values do.
        if self.number_limit is None:
            return []
        limit = repr(self.number_limit)
        return [
            f"{ind}if not -{limit} <= {value} <= {limit}:",
            f"{ind}    raise _not_a_measure({value}, {limit}, {where!r})",
        ]

    def encode_union(self, branches: list[Any], value: str, ind: str, where: str) -> list[str]:
        if len(branches) == 2 and branches[0] == "null":
            return [
                f"{ind}if {value} is None:",
                f"{ind}    buf += b'\\x00'",
                f"{ind}else:",
                f"{ind}    buf += b'\\x02'",
                *self.encode(branches[1], value, ind + "    ", where),
            ]
        names = [self.record(self.resolve(b)) for b in branches]
        table = self.var("_UNION")
        self.functions.append(
            f"{table} = {{"
            + ", ".join(
                f"{n!r}: (_VARINT[{2 * i}], {self.fn_name('enc', n)})" for i, n in enumerate(names)
            )
            + "}"
        )
        index, fn = self.var("index"), self.var("fn")
        return [
            f"{ind}{index}, {fn} = {table}[{value}[0]]",
            f"{ind}buf += {index}",
            f"{ind}{fn}({value}[1], buf)",
        ]

    @staticmethod
    def decode_long(target: str, ind: str) -> list[str]:
        # One-byte varints (|value| < 64) are the common case: no call for them.
        return [
            f"{ind}b = d[p]",
            f"{ind}if b < 0x80:",
            f"{ind}    {target} = (b >> 1) ^ -(b & 1)",
            f"{ind}    p += 1",
            f"{ind}else:",
            f"{ind}    {target}, p = _read_long(d, p)",
        ]

    def decode(self, schema: Any, target: str, ind: str, where: str) -> list[str]:
        """Lines reading one value at `p` into `target`; `where` names it in errors."""
        schema = self.resolve(schema)
        if schema in ("string", "bytes"):
            n = self.var("n")
            convert = ".decode()" if schema == "string" else ""
            # One table look-up for short lengths: cheaper than decoding the varint.
            return [
                f"{ind}{n} = _ONE_BYTE_LENGTH[d[p]]",
                f"{ind}if {n} >= 0:",
                f"{ind}    p += 1",
                f"{ind}else:",
                f"{ind}    {n}, p = _read_long(d, p)",
                f"{ind}    if {n} < 0:",
                f"{ind}        raise _bad_length({n}, end - p, {where!r})",
                f"{ind}if p + {n} > end:",
                f"{ind}    raise _bad_length({n}, end - p, {where!r})",
                f"{ind}{target} = d[p:p + {n}]{convert}",
                f"{ind}p += {n}",
            ]
        if schema in ("long", "int"):
            return self.decode_long(target, ind)
        if schema == "double":
            return [f"{ind}{target} = _DOUBLE.unpack_from(d, p)[0]", f"{ind}p += 8"]
        if schema == "float":
            return [f"{ind}{target} = _FLOAT.unpack_from(d, p)[0]", f"{ind}p += 4"]
        if schema == "boolean":
            # fastavro reads any non-zero byte as True; no writer produces one: corrupt.
            return [
                f"{ind}b = d[p]",
                f"{ind}if b > 1:",
                f"{ind}    raise _bad_boolean(b, {where!r})",
                f"{ind}{target} = b == 1",
                f"{ind}p += 1",
            ]
        if schema == "null":
            return [f"{ind}{target} = None"]
        if isinstance(schema, list):
            if len(schema) == 2 and schema[0] == "null":
                return [
                    f"{ind}b = d[p]",
                    f"{ind}p += 1",
                    f"{ind}if b == 0:",
                    f"{ind}    {target} = None",
                    f"{ind}elif b == 2:",
                    *self.decode(schema[1], target, ind + "    ", where),
                    f"{ind}else:",
                    f"{ind}    raise _bad_optional(b, {where!r})",
                ]
            names = [self.record(self.resolve(b)) for b in schema]
            table = self.var("_BRANCHES")
            self.functions.append(
                f"{table} = ["
                + ", ".join(f"({n!r}, {self.fn_name('dec', n)})" for n in names)
                + "]"
            )
            index, name, fn, body = (self.var(s) for s in ("index", "name", "fn", "body"))
            return [
                *self.decode_long(index, ind),
                # A negative index would pick a branch from the end of the table.
                f"{ind}if not 0 <= {index} < {len(names)}:",
                f"{ind}    raise _bad_branch({index}, {where!r})",
                f"{ind}{name}, {fn} = {table}[{index}]",
                f"{ind}{body}, p = {fn}(d, p)",
                f"{ind}{target} = ({name}, {body})",
            ]
        if schema["type"] == "record":
            self.record(schema)  # still defined, for references by name
            inner = self.var("rec")
            lines = [f"{ind}{inner} = {{}}"]
            for field in schema["fields"]:
                path = f"{schema['name']}.{field['name']}"
                lines.extend(self.decode(field["type"], f"{inner}[{field['name']!r}]", ind, path))
            return [*lines, f"{ind}{target} = {inner}"]
        if schema["type"] == "array":
            items, count, item = self.var("items"), self.var("count"), self.var("item")
            return [
                f"{ind}{items} = []",
                f"{ind}{count}, p = _read_long(d, p)",
                f"{ind}while {count}:",
                f"{ind}    if {count} < 0:",
                f"{ind}        {count} = -{count}",
                f"{ind}        _, p = _read_long(d, p)",
                f"{ind}    for _i in range({count}):",
                *self.decode(schema["items"], item, ind + "        ", f"{where}[]"),
                f"{ind}        {items}.append({item})",
                f"{ind}    {count}, p = _read_long(d, p)",
                f"{ind}{target} = {items}",
            ]
        raise ValueError(f"unsupported Avro type {schema!r}")


def _bool_false(value: Any) -> bytes:
    if value is False:
        return b"\x00"
    raise TypeError(f"expected a boolean, got {value!r}")


# Errors raised from the generated code, each naming the field (`record.field`).


def _boolean_for_number(value: bool, where: str) -> TypeError:
    return TypeError(f"{where} is a number; got the boolean {value!r}")


def _int_bytes(value: int, where: str) -> bytes:
    if not -(1 << 31) <= value < (1 << 31):
        raise ValueError(f"{value} does not fit the 32-bit Avro int {where}")
    return _long_bytes(value)


def _too_large_for_float(value: float, where: str) -> ValueError:
    return ValueError(f"{value!r} is too large for the 32-bit Avro float {where}")


def _not_a_measure(value: float, limit: float, where: str) -> ValueError:
    if value != value or value in (float("inf"), float("-inf")):
        return ValueError(f"{where} is {value!r}: not a finite number")
    return ValueError(f"{where} is {value!r}: beyond {limit:g}, no measure an event holds")


def _bad_length(length: int, left: int, where: str) -> ValueError:
    return ValueError(f"{where}: length {length} with {left} bytes left")


def _bad_boolean(byte: int, where: str) -> ValueError:
    return ValueError(f"{where}: boolean byte {byte:#04x} is neither 0x00 nor 0x01")


def _bad_optional(byte: int, where: str) -> ValueError:
    return ValueError(f"{where}: union byte {byte:#04x} is neither 0x00 (null) nor 0x02 (value)")


def _bad_branch(index: int, where: str) -> ValueError:
    return ValueError(f"{where}: union branch {index} does not exist")


_HELPERS: dict[str, Any] = {
    "_VARINT": _VARINT,
    "_LEN": _LEN,
    "_ONE_BYTE_LENGTH": _ONE_BYTE_LENGTH,
    "_long_bytes": _long_bytes,
    "_read_long": _read_long,
    "_DOUBLE": _DOUBLE,
    "_FLOAT": _FLOAT,
    "_bool_false": _bool_false,
    "_boolean_for_number": _boolean_for_number,
    "_int_bytes": _int_bytes,
    "_too_large_for_float": _too_large_for_float,
    "_not_a_measure": _not_a_measure,
    "_bad_length": _bad_length,
    "_bad_boolean": _bad_boolean,
    "_bad_optional": _bad_optional,
    "_bad_branch": _bad_branch,
}


@dataclass(frozen=True)
class Codec:
    """Encode and decode functions for one record schema.

    encode(record, buf) -> buf; encode_fields(buf, *field values in schema order) -> buf;
    decode(data, pos) -> (record, pos). Encoding raises TypeError, AttributeError,
    KeyError or ValueError on values of the wrong type; decoding raises IndexError,
    ValueError, UnicodeDecodeError or struct.error on corrupt bytes. Errors the codec
    detects itself name the field as `record.field`. `name` says which implementation
    it is.
    """

    encode: Callable[[dict[str, Any], bytearray], bytearray]
    encode_fields: Callable[..., bytearray]
    decode: Callable[[bytes, int], tuple[dict[str, Any], int]]
    name: str = "compiled"


def compile_codec(
    schema: dict[str, Any],
    memoize: frozenset[str] = frozenset(),
    number_limit: float | None = None,
) -> Codec:
    """`memoize`: top-level fields whose values `encode_fields` may cache by identity;
    the caller promises never to change such an object once passed. `number_limit`:
    encoding refuses a double or float that is NaN, infinite or beyond it in magnitude
    (Avro itself holds any; decoding reads whatever is there)."""
    compiler = _Compiler(memoize, number_limit)
    root = compiler.record(schema)
    # Tables reference functions defined after them: emit functions first.
    tables = [f for f in compiler.functions if not f.startswith("def ")]
    functions = [f for f in compiler.functions if f.startswith("def ")]
    source = "\n\n".join(functions + tables) + "\n"
    filename = _register_source(root, source)
    namespace = dict(_HELPERS)
    exec(compile(source, filename, "exec"), namespace)
    return Codec(
        namespace[_Compiler.fn_name("enc", root)],
        namespace[_Compiler.fn_name("encf", root)],
        namespace[_Compiler.fn_name("dec", root)],
    )


def _register_source(root: str, source: str) -> str:
    """Put the generated source where tracebacks look for it, so a failure inside it
    shows its line. The digest keeps codecs of different schemas of one name apart and
    is the same in every run."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:8]
    filename = f"<agentlog-codec {root} {digest}>"
    # No modification time: linecache.checkcache keeps such entries instead of
    # dropping them for lack of a file.
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    return filename
