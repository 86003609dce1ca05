"""One settings object for every part: environment `AGENTLOG_*`, CLI flags override."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentlog.secret_redaction import without_secrets

KAFKA_LOGGER = logging.getLogger("agentlog.kafka")
# librdkafka retries loudly while a broker is away; its lines reach whoever configures
# logging, and otherwise go nowhere (a library does not print through logging's last resort).
KAFKA_LOGGER.addHandler(logging.NullHandler())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTLOG_", frozen=True, extra="ignore")

    bootstrap_servers: str | None = Field(
        default=None, description="Kafka bootstrap servers; unset means the dev broker"
    )
    topic_prefix: str = Field(
        default="agentlog.",
        description="prefix of agentlog's topic names: PREFIXevents, PREFIXtool-requests, "
        "PREFIXdlq",
    )
    security_protocol: str | None = Field(
        default=None,
        description="Kafka's security.protocol for every client (PLAINTEXT, SSL, "
        "SASL_PLAINTEXT, SASL_SSL); unset: librdkafka's default, PLAINTEXT",
    )
    sasl_mechanism: str | None = Field(
        default=None, description="Kafka's sasl.mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
    )
    sasl_username: str | None = Field(default=None, description="Kafka's sasl.username")
    # Secrets: `repr(settings)`, logs and messages show `**********`.
    sasl_password: SecretStr | None = Field(default=None, description="Kafka's sasl.password")
    client_id: str = Field(
        default="agentlog",
        description="Kafka's client.id of every client (what brokers log and apply quotas by)",
    )
    debug: bool = Field(
        default=False, description="the CLI shows the traceback of an error (like --traceback)"
    )
    otlp_token: SecretStr | None = Field(
        default=None,
        description="the bearer token `agentlog ingest otlp` demands (Authorization: Bearer)",
    )

    state_dir: Path = Field(
        default_factory=lambda: Path.home() / ".agentlog",
        description="agentlog's local state, the user's alone (0700): the dev broker's, the "
        "default projections file, archive, spool and claim-check store",
    )

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
    kafka_heap: str | None = Field(
        default=None,
        pattern=r"^\d+[mMgG]$",
        description="JVM heap of each kafka engine broker (default 512m for one broker, "
        "384m each in a cluster)",
    )
    dev_brokers: int = Field(
        default=1,
        ge=1,
        le=5,
        description="brokers of the kafka dev engine on loopback: 3 is a replicated cluster",
    )

    partitions: int = Field(
        default=6,
        ge=1,
        description="partitions of each topic agentlog creates (events and tool-requests "
        "must have the same count)",
    )
    replication_factor: int | None = Field(
        default=None,
        ge=1,
        description="replicas of each topic `topics create` makes (default: as many as the "
        "cluster has brokers, at most 3)",
    )
    tool_requests_retention_ms: int = Field(
        default=7 * 24 * 3600 * 1000,
        description="retention.ms of the tool-requests topic when agentlog creates it (the "
        "events topic keeps everything: -1)",
    )
    dlq_retention_ms: int = Field(
        default=28 * 24 * 3600 * 1000,
        description="retention.ms of the dead-letter topic when agentlog creates it",
    )

    compression: str = Field(default="lz4", description="compression.type of agentlog's producers")
    linger_ms: int = Field(
        default=5,
        ge=0,
        description="linger.ms of the recorder's producer (the tool-call path uses 0)",
    )
    delivery_timeout_ms: int = Field(
        default=120_000,
        ge=1000,
        description="delivery.timeout.ms: how long the producer retries an event before "
        "it is reported undelivered (with a spool: it stays in the spool)",
    )
    # A group forms after about half of this on Tansu; valid on Kafka too.
    session_timeout_ms: int = Field(
        default=6000,
        ge=1000,
        description="session.timeout.ms of agentlog's consumer groups: a member silent this "
        "long loses its partitions",
    )

    # The request/response path of tool calls (agentlog.kafka_config.low_latency_*).
    low_latency_fetch_wait_ms: int = Field(
        default=5,
        ge=0,
        description="how long a tool worker or an awaiting agent lets the broker hold an "
        "empty fetch: Tansu answers only when it runs out (Kafka answers as soon as a "
        "record arrives), so this bounds each hop of a tool call on Tansu",
    )
    tool_commit_interval_ms: int = Field(
        default=200,
        ge=0,
        description="how often a tool worker commits the requests whose result Kafka "
        "acknowledged (a request is never committed before that)",
    )

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
    create_topics: bool | None = Field(
        default=None,
        description="recorders and other producers create agentlog's topics when they are "
        "missing; unset: only on the running dev broker (`agentlog dev up`)",
    )
    spool: bool = Field(
        default=True,
        description="recorders keep events in a durable local spool (crash-safe) until Kafka "
        "takes them: under state_dir/spool (a directory per open recorder) unless spool_dir "
        "names one; false: events wait in memory only",
    )
    spool_dir: Path | None = Field(
        default=None,
        description="the spool directory of this recorder (one recorder at a time); unset: "
        "a free one under state_dir/spool",
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
    claim_check_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="the largest claim-checked event a reader fetches (and a recorder keeps): "
        "a reference on the log claiming more is a dead letter, never read",
    )

    sink: SecretStr | None = Field(
        default=None,
        description="projection sink: duckdb:PATH or postgresql://...; default a DuckDB "
        "file in state_dir (a secret: its URL may hold a password; `sink_shown` is what "
        "messages print)",
    )
    status_idle_after: timedelta = Field(
        default=timedelta(days=1),
        description="`agentlog status` shows a group without members whose offsets have not "
        "moved for this long as idle (not lagging) and leaves it out of the lag and age "
        "metrics: ISO 8601 (P1D, PT1H) or seconds",
    )
    dedup_window: timedelta = Field(
        default=timedelta(days=7),
        description="how far behind the newest event applied (in event time) a projector "
        "still recognises a duplicate event id: ISO 8601 (P7D, PT1H) or seconds",
    )
    dead_letter_timeout_s: float = Field(
        default=30.0, gt=0, description="how long a batch waits for Kafka to take its dead letters"
    )
    broker_lost_s: float = Field(
        default=10.0,
        gt=0,
        description="how long a reader (tail --follow, replay, exports) keeps trying once no "
        "broker answers before it gives up; a shorter hiccup goes unnoticed",
    )
    broker_outage_tolerance_s: float = Field(
        default=300.0,
        gt=0,
        description="how long a service (project run, archive run, tools work, agents run) "
        "rides out a broker that does not answer before it exits",
    )
    assignment_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="how long a projector waits for its consumer group to assign partitions",
    )

    @field_validator("dedup_window", "status_idle_after", mode="before")
    @classmethod
    def _seconds_are_a_duration(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().isdigit():
            return timedelta(seconds=int(value))
        return value

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
        """The sink's URL, password and all: for opening it, never for printing."""
        if self.sink is not None:
            return self.sink.get_secret_value()
        return f"duckdb:{self.default_sink_file}"

    @property
    def sink_shown(self) -> str:
        """The sink's URL as messages print it: without its password or secret parameters."""
        return without_secrets(self.sink_url)

    @property
    def archive_root(self) -> Path:
        return self.archive_dir or self.state_dir / "archive"

    @property
    def claim_check_store(self) -> Path:
        return self.claim_check_dir or self.state_dir / "claim-check"

    @property
    def otlp_status_file(self) -> Path:
        return self.state_dir / "otlp-receiver.json"

    @property
    def dev_state_file(self) -> Path:
        return self.state_dir / "dev-broker.json"

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given non-None values replaced (how CLI flags win over env)."""
        changed = {k: v for k, v in overrides.items() if v is not None}
        if not changed:
            return self
        # Validated as the environment's values are (a flag's sink becomes a SecretStr too).
        values = {**{name: getattr(self, name) for name in type(self).model_fields}, **changed}
        return type(self).model_validate(values)
