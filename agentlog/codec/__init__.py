"""The Avro codec of the envelope: the schema derived from the event models, every
released schema version (by fingerprint), and the compiled encoder/decoder that writes
and reads them (with fastavro behind the same interface for `AGENTLOG_CODEC=fastavro`).

`agentlog.serde` frames records with it; nothing else encodes or decodes Avro.
"""

from agentlog.codec._compiled import Codec, compile_codec
from agentlog.codec._fastavro import fastavro_codec
from agentlog.codec._schema import event_schema
from agentlog.codec._versions import (
    SCHEMA_FILE,
    SCHEMA_PACKAGE,
    SchemaVersion,
    by_fingerprint,
    current,
    fingerprint_of,
    versions,
)

__all__ = [
    "SCHEMA_FILE",
    "SCHEMA_PACKAGE",
    "Codec",
    "SchemaVersion",
    "by_fingerprint",
    "compile_codec",
    "current",
    "event_schema",
    "fastavro_codec",
    "fingerprint_of",
    "versions",
]
