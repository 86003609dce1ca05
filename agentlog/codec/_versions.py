"""Every released version of the `agentlog.Event` schema, loaded from `agentlog.schemas`.

`agentlog/schemas/v<N>/agentlog.Event.avsc` is version N (the package data glob
`v*/*.avsc` ships every version folder). Released files never change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

from agentlog.errors import SchemaError

SCHEMA_FILE = "agentlog.Event.avsc"
SCHEMA_PACKAGE = "agentlog.schemas"

__all__ = ["SchemaVersion", "current", "by_fingerprint", "versions", "fingerprint_of"]


@dataclass(frozen=True)
class SchemaVersion:
    version: int
    schema: dict[str, Any]
    parsed: Any
    fingerprint: bytes


def fingerprint_of(schema: dict[str, Any]) -> bytes:
    """CRC-64-AVRO of the parsing canonical form, little-endian as the spec's encoding uses."""
    canonical = to_parsing_canonical_form(parse_schema(schema, _write_hint=False))
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


@cache
def versions() -> tuple[SchemaVersion, ...]:
    """All packaged versions, oldest first."""
    found = []
    root = resources.files(SCHEMA_PACKAGE)
    for entry in root.iterdir():
        if entry.is_dir() and entry.name.startswith("v") and entry.name[1:].isdigit():
            avsc = entry.joinpath(SCHEMA_FILE)
            if not avsc.is_file():
                continue
            try:
                schema = json.loads(avsc.read_text(encoding="utf-8"))
                parsed = parse_schema(schema)
            except Exception as exc:  # a broken packaged file is a release bug
                raise SchemaError(
                    f"packaged schema {entry.name}/{SCHEMA_FILE} is invalid: {exc}"
                ) from None
            found.append(SchemaVersion(int(entry.name[1:]), schema, parsed, fingerprint_of(schema)))
    if not found:
        raise SchemaError("no packaged agentlog.Event schema found; reinstall agentlog")
    return tuple(sorted(found, key=lambda v: v.version))


def current() -> SchemaVersion:
    return versions()[-1]


@cache
def _by_fingerprint() -> dict[bytes, SchemaVersion]:
    return {v.fingerprint: v for v in versions()}


def by_fingerprint(fp: bytes) -> SchemaVersion | None:
    return _by_fingerprint().get(fp)
