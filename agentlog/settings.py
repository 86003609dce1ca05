"""One settings object for every part: environment `AGENTLOG_*`, CLI flags override."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

KAFKA_LOGGER = logging.getLogger("agentlog.kafka")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTLOG_", frozen=True, extra="ignore")

    bootstrap_servers: str | None = Field(
        default=None, description="Kafka bootstrap servers; unset means the dev broker"
    )
    topic_prefix: str = "agentlog."
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    client_id: str = "agentlog"
    debug: bool = Field(
        default=False, description="the CLI shows the traceback of an error (like --traceback)"
    )

    state_dir: Path = Field(default_factory=lambda: Path.home() / ".agentlog")

    dev_engine: Literal["tansu", "kafka"] = Field(
        default="tansu", description="the dev broker: tansu (memory only) or kafka (on disk)"
    )
    kafka_home: Path | None = Field(
        default=None, description="an unpacked Apache Kafka distribution for the kafka engine"
    )
    kafka_jars_dir: Path | None = Field(
        default=None,
        description="where the kafka engine caches Apache Kafka's jars (default under state_dir)",
    )
    kafka_heap: str = Field(default="512m", pattern=r"^\d+[mMgG]$")

    partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    tool_requests_retention_ms: int = 7 * 24 * 3600 * 1000
    dlq_retention_ms: int = 28 * 24 * 3600 * 1000

    compression: str = "lz4"
    linger_ms: int = Field(default=5, ge=0)
    delivery_timeout_ms: int = Field(default=120_000, ge=1000)
    # A group forms after about half of this on Tansu; valid on Kafka too.
    session_timeout_ms: int = Field(default=6000, ge=1000)

    codec: Literal["compiled", "fastavro"] = Field(
        default="compiled",
        description="Avro encoder/decoder of events: compiled (fast) or fastavro (the "
        "reference: same bytes, decoding ~2.5x and encoding ~20x slower as every record is "
        "validated); read once per process, from the environment",
    )
    # Recording never stalls the agent: these bound every wait of a recording call.
    max_block_ms: int = Field(
        default=1000,
        ge=0,
        description="longest a recording call waits for room in the producer's local queue "
        "(spool off); then the event is reported undelivered",
    )
    exit_flush_timeout_ms: int = Field(
        default=10_000,
        ge=0,
        description="how long interpreter exit waits for recorders that were not closed",
    )
    spool_dir: Path | None = Field(
        default=None,
        description="a durable local spool: events wait here, crash-safe, until Kafka takes "
        "them; unset means no spool",
    )
    spool_max_bytes: int = Field(
        default=1 << 30,
        ge=1 << 20,
        description="disk the spool may use; beyond it new events are reported, not spooled",
    )
    spool_fsync_interval_ms: int = Field(
        default=1000,
        ge=0,
        description="fsync the spool this often (0: after every event); a process crash "
        "loses nothing either way, a machine crash at most this interval",
    )
    claim_check: bool = Field(
        default=True,
        description="keep events larger than claim_check_threshold_bytes in the claim-check "
        "store, with a reference on Kafka",
    )
    claim_check_threshold_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="encoded events larger than this go to the claim-check store",
    )
    claim_check_dir: Path | None = Field(
        default=None, description="the claim-check store (default state_dir/claim-check)"
    )

    sink: str | None = Field(
        default=None,
        description="projection sink: duckdb:PATH or postgresql://...; default a DuckDB "
        "file in state_dir",
    )

    archive_dir: Path | None = Field(
        default=None,
        description="where `archive run` keeps the Parquet archive of the log (default "
        "state_dir/archive)",
    )
    archive_flush_seconds: float = Field(
        default=5.0,
        gt=0,
        description="the archiver writes what it holds at least this often (seconds)",
    )
    archive_batch_records: int = Field(
        default=200_000, ge=1, description="the archiver writes once it holds this many records"
    )
    archive_compact_files: int = Field(
        default=8,
        ge=2,
        description="small archive files of one partition and day merged into one once "
        "there are this many",
    )
    redact_patterns: list[str] = Field(
        default_factory=list,
        description="regular expressions redacted from training exports besides e-mails, "
        "phone numbers and card numbers (JSON list in the environment)",
    )

    @property
    def events_topic(self) -> str:
        return f"{self.topic_prefix}events"

    @property
    def tool_requests_topic(self) -> str:
        return f"{self.topic_prefix}tool-requests"

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic_prefix}dlq"

    @property
    def default_sink_file(self) -> Path:
        return self.state_dir / "projections.duckdb"

    @property
    def sink_url(self) -> str:
        return self.sink or f"duckdb:{self.default_sink_file}"

    @property
    def archive_root(self) -> Path:
        return self.archive_dir or self.state_dir / "archive"

    @property
    def claim_check_store(self) -> Path:
        return self.claim_check_dir or self.state_dir / "claim-check"

    @property
    def dev_state_file(self) -> Path:
        return self.state_dir / "dev-broker.json"

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given non-None values replaced (how CLI flags win over env)."""
        changed = {k: v for k, v in overrides.items() if v is not None}
        if not changed:
            return self
        return self.model_copy(update=changed)
