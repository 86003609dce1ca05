"""One settings object for every part: environment `AGENTLOG_*`, CLI flags override.

Every value is validated, whether it comes from the environment, a flag
(`with_overrides`) or code: a bad one is a `ConfigurationError` naming the setting and
why, in one line. Secrets (`sasl_password`, `ssl_key_password`, `otlp_token`, `sink`) are
`SecretStr`: `repr`, `str`, logs and messages show `**********`. The Kafka client
settings they make are built in one place, `agentlog.kafka_config`.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentlog.errors import ConfigurationError
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
        description="the start of every topic's name: PREFIXevents, PREFIXtool-requests, PREFIXdlq",
    )
    security_protocol: str | None = Field(
        default=None,
        pattern=r"(?i)^(plaintext|ssl|sasl_plaintext|sasl_ssl)$",
        description="how clients reach the brokers (librdkafka's security.protocol): "
        "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; unset: PLAINTEXT",
    )
    sasl_mechanism: str | None = Field(
        default=None,
        description="the SASL mechanism (sasl.mechanism): PLAIN, SCRAM-SHA-256, "
        "SCRAM-SHA-512, OAUTHBEARER...",
    )
    sasl_username: str | None = Field(default=None, description="the SASL user name")
    # Secrets: `repr(settings)`, logs and messages show `**********`.
    sasl_password: SecretStr | None = Field(
        default=None, description="the SASL password (a secret: never printed)"
    )
    # TLS (security_protocol ssl or sasl_ssl), beside SASL: each file must exist and be
    # readable when the settings are made, so a wrong path is one line, not a broker error.
    ssl_ca_location: Path | None = Field(
        default=None,
        description="a PEM file of the CA certificates that verify the brokers "
        "(ssl.ca.location); unset: the system's",
    )
    ssl_certificate_location: Path | None = Field(
        default=None,
        description="this client's PEM certificate, for brokers that authenticate clients "
        "by TLS (ssl.certificate.location); needs ssl_key_location",
    )
    ssl_key_location: Path | None = Field(
        default=None,
        description="the PEM private key of ssl_certificate_location (ssl.key.location)",
    )
    ssl_key_password: SecretStr | None = Field(
        default=None,
        description="the password of an encrypted ssl_key_location (ssl.key.password; a "
        "secret: never printed)",
    )
    client_id: str = Field(
        default="agentlog", description="the client.id every Kafka client reports"
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
        description="agentlog's own folder on this machine (dev broker, default sink, spool, "
        "claim checks, archive), the user's alone (0700); an absolute path or ~/...",
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
        ge=1,
        description="retention.ms of the tool-requests topic `topics create` makes (7 days)",
    )
    dlq_retention_ms: int = Field(
        default=28 * 24 * 3600 * 1000,
        ge=1,
        description="retention.ms of the dead-letter topic `topics create` makes (28 days)",
    )

    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        default="lz4", description="compression.type of every producer"
    )
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
        description="session.timeout.ms of every consumer group member (a group forms "
        "after about half of it on Tansu)",
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

    @field_validator("state_dir", mode="after")
    @classmethod
    def _state_dir_is_absolute(cls, value: Path) -> Path:
        # Every command and recorder of the machine meets in this folder: one taken from
        # whichever directory a process started in would split them without a word.
        expanded = value.expanduser()
        if not expanded.is_absolute():
            raise ValueError(f"{str(value)!r} is relative: give an absolute path or ~/...")
        return expanded

    @field_validator("kafka_home", "kafka_jars_dir", "spool_dir", "claim_check_dir", "archive_dir")
    @classmethod
    def _folders_from_here(cls, value: Path | None) -> Path | None:
        # A relative folder (a flag's ./archive) is the one in the current directory now,
        # not wherever a later step of the process happens to be.
        return None if value is None else value.expanduser().absolute()

    @field_validator(
        "ssl_ca_location", "ssl_certificate_location", "ssl_key_location", mode="after"
    )
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        path = value.expanduser().absolute()
        if not path.is_file():
            raise ValueError(f"{str(path)!r} is not a file")
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise ValueError(f"{str(path)!r} cannot be read: {exc.strerror}") from None
        return path

    @model_validator(mode="after")
    def _client_certificate_has_its_key(self) -> Settings:
        if (self.ssl_certificate_location is None) != (self.ssl_key_location is None):
            raise ValueError("ssl_certificate_location and ssl_key_location go together: set both")
        return self

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
        """A copy with the given non-None values replaced (how CLI flags win over env),
        validated as the environment's values are (a flag's sink becomes a SecretStr too):
        a bad one raises ConfigurationError naming it."""
        changed = {k: v for k, v in overrides.items() if v is not None}
        if not changed:
            return self
        unknown = sorted(set(changed) - set(type(self).model_fields))
        if unknown:
            raise ConfigurationError(f"no such setting: {', '.join(unknown)}")
        values = {**{name: getattr(self, name) for name in type(self).model_fields}, **changed}
        try:
            return type(self).model_validate(values)
        except ValidationError as exc:
            raise ConfigurationError(invalid_setting(exc, prefix="")) from None


def invalid_setting(exc: ValidationError, *, prefix: str = "AGENTLOG_") -> str:
    """The first problem of a failed validation as one line: the setting (as the
    environment names it, with `prefix`), the value given (a secret's hidden), and why."""
    first = exc.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    name = (prefix + field.upper() if prefix else field) if field else "settings"
    reason = str(first["msg"]).removeprefix("Value error, ")
    if not field:
        return f"settings are not valid: {reason}"
    given = first.get("input")
    if isinstance(given, SecretStr) or field in _SECRET_FIELDS:
        shown = "**********"
    else:
        shown = repr(str(given)) if isinstance(given, Path) else repr(given)
    return f"{name}={shown} is not valid: {reason}"


_SECRET_FIELDS = frozenset({"sasl_password", "ssl_key_password", "otlp_token", "sink"})
