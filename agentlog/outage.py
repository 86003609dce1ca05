"""Riding out a broker that is gone, for the long-running services (`project run`,
`archive run`, `tools work`, `agents run`): librdkafka retries for ever by itself; the
service says in one line that Kafka does not answer and in one line when it answers
again, and gives up (naming the cause) only once the outage has lasted
`broker_outage_tolerance_s`. Closing a consumer is bounded too: librdkafka's close waits
for the group coordinator, which an absent broker never answers, and a service that
cannot close must still be able to exit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException

from agentlog.connection import resolve_bootstrap
from agentlog.errors import BrokerUnavailable
from agentlog.settings import Settings

LOG = logging.getLogger("agentlog.outage")

# librdkafka's reports that no broker answers.
_LOST = (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE)
# How long a consumer's close may take before the service leaves without it.
CLOSE_TIMEOUT_S = 10.0
# During an outage, how often the broker is asked whether it answers again.
PROBE_EVERY_S = 2.0


class OutageWatch:
    """Whether Kafka answers the service `what`, from its clients' error reports (pass
    `on_error` as `error_cb`) and from what arrives (`answered`)."""

    def __init__(
        self, settings: Settings, what: str, say: Callable[[str], None] | None = None
    ) -> None:
        self._settings = settings
        self._what = what
        self._say = say or LOG.warning
        self._since: float | None = None
        self._cause = ""
        self._probed = 0.0

    @property
    def down(self) -> bool:
        """Whether no broker has answered since it was last reported gone."""
        return self._since is not None

    def on_error(self, error: KafkaError) -> None:
        if error.code() in _LOST:
            self.lost(error.str())

    def lost(self, cause: str) -> None:
        """Kafka did not answer (`cause`): the outage begins, unless it already has."""
        self._cause = cause
        if self._since is None:
            self._since = time.monotonic()
            self._say(
                f"{self._what}: Kafka at {resolve_bootstrap(self._settings)} does not answer "
                f"({cause}); waiting for it up to "
                f"{self._settings.broker_outage_tolerance_s:.0f}s "
                "(AGENTLOG_BROKER_OUTAGE_TOLERANCE_S)"
            )

    def answered(self) -> None:
        """Something came from Kafka: an outage, if there was one, is over."""
        if self._since is not None:
            gone = time.monotonic() - self._since
            self._since = None
            self._say(f"{self._what}: Kafka answers again after {gone:.0f}s; going on")

    def check(self, consumer: Consumer, topic: str) -> None:
        """During an outage, ask the broker (every PROBE_EVERY_S, over `consumer`'s
        connections) whether it answers again; raise BrokerUnavailable, naming the cause,
        once the outage has lasted longer than the tolerance."""
        if self._since is None:
            return
        now = time.monotonic()
        if now - self._probed >= PROBE_EVERY_S:
            self._probed = now
            try:
                consumer.list_topics(topic, timeout=1.0)
            except KafkaException:
                pass
            else:
                self.answered()
                return
        gone = now - self._since
        if gone > self._settings.broker_outage_tolerance_s:
            raise BrokerUnavailable(
                f"{self._what}: no answer from Kafka at {resolve_bootstrap(self._settings)} "
                f"for {gone:.0f}s ({self._cause}); giving up after "
                f"{self._settings.broker_outage_tolerance_s:.0f}s "
                "(AGENTLOG_BROKER_OUTAGE_TOLERANCE_S)"
            )


def close_within(consumer: Consumer, what: str, timeout: float = CLOSE_TIMEOUT_S) -> None:
    """Close `consumer` (leaving its group) within `timeout` seconds; past that, say so
    and leave it to the process's exit, so that the service can always stop."""
    failure: list[BaseException] = []

    def close() -> None:
        try:
            consumer.close()
        except (KafkaException, RuntimeError) as exc:
            failure.append(exc)

    closing = threading.Thread(target=close, name=f"agentlog-close-{what}", daemon=True)
    closing.start()
    closing.join(timeout)
    if closing.is_alive():
        LOG.warning(
            "%s: closing the Kafka consumer did not finish within %.0fs (no broker "
            "answers?); leaving without it: the group moves its partitions on once its "
            "session times out",
            what,
            timeout,
        )
    elif failure:
        LOG.warning("%s: closing the Kafka consumer: %s", what, failure[0])
