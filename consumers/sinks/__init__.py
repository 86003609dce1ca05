"""Projection sinks: DuckDB (a file, one writer), PostgreSQL (shared by many) and memory
(this process only)."""

from agentlog.consumers.sinks.base import (
    AppliedLog,
    Fenced,
    LastApplied,
    SentDeadLetter,
    Sink,
    SinkTransaction,
    Where,
)
from agentlog.errors import ConfigurationError as _ConfigurationError
from agentlog.secret_redaction import without_secrets as _without_secrets


def open_sink(url: str, *, read_only: bool = False) -> Sink:
    """`duckdb:PATH`, `postgresql://user@host:port/db`, or `memory:[NAME]`."""
    if url.startswith("memory:"):
        from agentlog.consumers.sinks.memory_sink import MemorySink

        return MemorySink(url.removeprefix("memory:"), read_only=read_only)
    if url.startswith("duckdb:"):
        from agentlog.consumers.sinks.duckdb_sink import DuckDBSink

        path = url.removeprefix("duckdb:").removeprefix("//")
        if not path:
            raise _ConfigurationError("a DuckDB sink needs a file: duckdb:PATH")
        return DuckDBSink(path, read_only=read_only)
    if url.startswith(("postgresql://", "postgres://")):
        from agentlog.consumers.sinks.postgres_sink import PostgresSink

        return PostgresSink(url)
    raise _ConfigurationError(
        f"unknown sink {_without_secrets(url)!r}: use duckdb:PATH, "
        "postgresql://user@host:port/database or memory:[NAME]"
    )


__all__ = [
    "AppliedLog",
    "Fenced",
    "LastApplied",
    "SentDeadLetter",
    "Sink",
    "SinkTransaction",
    "Where",
    "open_sink",
]
