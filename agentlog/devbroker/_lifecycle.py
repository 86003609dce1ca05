"""Starting, finding and stopping the dev broker (the face, `agentlog.devbroker`, says
what it is)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from agentlog.dev_state import DevBrokerRecord, running_record, write_record
from agentlog.devbroker import kafka, tansu
from agentlog.devbroker._process import terminate
from agentlog.devbroker.derived import forget_log, switch_log
from agentlog.errors import DevBrokerError
from agentlog.private_files import private_dir
from agentlog.settings import Settings

ENGINES = ("tansu", "kafka")
MEMORY_ONLY_WARNING = tansu.MEMORY_ONLY_WARNING


def current(settings: Settings) -> DevBrokerRecord | None:
    """The running dev broker, None if none was started; raises if it died."""
    return running_record(settings)


def start(
    settings: Settings,
    *,
    engine: str | None = None,
    port: int | None = None,
    brokers: int | None = None,
    wait_seconds: float = 60,
    say: Callable[[str], None] | None = None,
) -> DevBrokerRecord:
    """Start the dev broker unless one is already running; returns the running one. A
    Kafka cluster with brokers down gets them started again, on their ports. `say` hears
    where what was built from the previous log was moved."""
    engine = engine or settings.dev_engine
    brokers = brokers or settings.dev_brokers
    if engine not in ENGINES:
        raise DevBrokerError(f"unknown dev broker engine {engine!r}; choose one of {ENGINES}")
    if engine == "tansu" and brokers != 1:
        raise DevBrokerError(
            "the tansu engine runs one broker; a replicated cluster needs `--engine kafka`"
        )
    try:
        existing = current(settings)
    except DevBrokerError:
        settings.dev_state_file.unlink(missing_ok=True)
        existing = None
    if existing is not None:
        if existing.engine != engine or existing.brokers != brokers:
            raise DevBrokerError(
                f"a {_named(existing.engine, existing.brokers)} dev broker already runs at "
                f"{existing.bootstrap}; stop it with `agentlog dev down` before starting "
                f"a {_named(engine, brokers)} one"
            )
        if engine == "kafka":
            existing = kafka.restart_stopped(settings, existing, wait_seconds)
            write_record(settings, existing)
        return existing
    private_dir(settings.state_dir, tighten=True)
    if engine == "tansu":
        record = tansu.start(settings, port, wait_seconds)
        log_id = f"tansu-{uuid.uuid4().hex[:12]}"  # memory only: a new log every start
    else:
        private_dir(settings.state_dir / "kafka", tighten=True)
        record = kafka.start(settings, port, wait_seconds, brokers)
        log_id = f"kafka-{kafka.cluster_id_of(settings, brokers)}"
    # The default projections, archive and demo outputs are this log's from now on.
    switch_log(settings, log_id, say or (lambda _: None))
    write_record(settings, record)
    return record


def _named(engine: str, brokers: int) -> str:
    """The engine, and for a cluster its size: each is a log of its own."""
    return engine if brokers == 1 else f"{engine} {brokers}-broker"


def stop(
    settings: Settings,
    *,
    wipe: bool = False,
    wait_seconds: float = 30,
    say: Callable[[str], None] | None = None,
) -> DevBrokerRecord | None:
    """Stop the dev broker if one is recorded (and delete Kafka's on-disk log with
    `wipe`); returns what was stopped."""
    try:
        record = running_record(settings)
    except DevBrokerError:
        record = None  # already dead: only the state file is left to remove
    if record is not None:
        terminate(record, wait_seconds)
    settings.dev_state_file.unlink(missing_ok=True)
    if wipe:
        kafka.wipe(settings)
        forget_log(settings, say or (lambda _: None))  # built from the log just deleted
    return record
