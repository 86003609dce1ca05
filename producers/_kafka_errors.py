"""How the recorders read librdkafka's errors."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

# Errors that are about the record itself: sending it again cannot help.
EVENT_REFUSED = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
    }
)


def kafka_error_in(exc: BaseException) -> KafkaError | None:
    """The KafkaError an exception carries. confluent-kafka raises a producer's fatal
    error from poll() or flush(); when it does so while serving delivery reports, the
    KafkaException arrives as the cause of a SystemError."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, KafkaException):
        cause = cause.__cause__ or cause.__context__
    return cause.args[0] if isinstance(cause, KafkaException) else None
