"""The spool is on by default (under the state directory): leaving a recorder while the
broker is down takes about a second, loses nothing, and says what waits where; the next
recorder ships it."""

from __future__ import annotations

import socket
import time

import pytest

from agentlog.producers import Recorder
from agentlog.reader import read_partitions
from agentlog.serde import decode
from agentlog.settings import Settings


def _dead_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def test_a_recorder_left_while_the_broker_is_down_keeps_its_events_and_says_where(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    # Defaults, as a new user has them: no spool setting at all.
    down = Settings(
        bootstrap_servers=_dead_address(),
        topic_prefix=settings.topic_prefix,
        state_dir=settings.state_dir,
    )
    assert down.spool and down.spool_dir is None
    with Recorder(down, service="support-bot") as recorder:
        for n in range(100):
            recorder.user_message("conv-42", f"message {n}")
        entered_exit = time.monotonic()
    left_after = time.monotonic() - entered_exit
    assert left_after < 3, f"leaving the recorder took {left_after:.1f}s"
    said = capsys.readouterr().err
    spool = settings.state_dir / "spool" / "0"
    assert f"still wait in the spool at {spool} for Kafka at {down.bootstrap_servers}" in said
    assert "kept on disk and shipped when Kafka takes them" in said
    assert "sent again" not in said

    # The broker is back: the next recorder under this state directory ships them, in order.
    up = down.with_overrides(bootstrap_servers=settings.bootstrap_servers)
    with Recorder(up, service="support-bot"):
        pass
    texts = [
        decode(r.value())["payload"][1]["text"]
        for r in read_partitions(settings, settings.events_topic)
    ]
    assert texts == [f"message {n}" for n in range(100)]


def test_two_recorders_at_once_each_get_a_spool(settings: Settings) -> None:
    defaults = settings.with_overrides(spool=True)
    with Recorder(defaults) as first, Recorder(defaults) as second:
        first.user_message("a", "one")
        second.user_message("b", "two")
    assert sorted(p.name for p in (settings.state_dir / "spool").iterdir()) == ["0", "1"]
    texts = sorted(
        decode(r.value())["payload"][1]["text"]
        for r in read_partitions(settings, settings.events_topic)
    )
    assert texts == ["one", "two"]


def test_events_left_in_any_spool_are_shipped_by_the_next_recorder(settings: Settings) -> None:
    down = Settings(
        bootstrap_servers=_dead_address(),
        topic_prefix=settings.topic_prefix,
        state_dir=settings.state_dir,
    )
    with Recorder(down):  # holds spool 0, records nothing
        with Recorder(down) as second:  # spool 1: its events are left there
            second.user_message("conv-7", "left behind")
    assert (settings.state_dir / "spool" / "1").is_dir()
    # Spool 0 is free and empty: the next recorder still takes spool 1, and ships it.
    with Recorder(down.with_overrides(bootstrap_servers=settings.bootstrap_servers)):
        pass
    texts = [
        decode(r.value())["payload"][1]["text"]
        for r in read_partitions(settings, settings.events_topic)
    ]
    assert texts == ["left behind"]
