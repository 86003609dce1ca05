"""The public API is small and deliberate: changing it is a decision, made here."""

import agentlog
import agentlog.consumers
import agentlog.producers


def test_agentlog_exports() -> None:
    assert set(agentlog.__all__) == {
        "EVENT_TYPES",
        "AgentlogError",
        "BrokerUnavailable",
        "ConfigurationError",
        "DecodeError",
        "DeliveryFailed",
        "DevBrokerError",
        "Event",
        "SchemaError",
        "Settings",
        "SinkError",
        "Source",
        "TopicError",
    }


def test_producer_exports() -> None:
    assert set(agentlog.producers.__all__) == {
        "AsyncRecorder",
        "DeliveryFailed",
        "Recorder",
        "ToolCall",
        "UndeliveredEvent",
        "current_conversation",
        "producer_config",
    }


def test_consumer_exports() -> None:
    assert set(agentlog.consumers.__all__) == {
        "BUILT_IN",
        "DEFAULT_GROUP",
        "Fenced",
        "Progress",
        "Projection",
        "ProjectionRunner",
        "RecordedEvent",
        "Sink",
        "State",
        "Table",
        "handles",
        "load_projection",
        "open_sink",
    }
    for name in agentlog.consumers.__all__:
        assert getattr(agentlog.consumers, name) is not None
