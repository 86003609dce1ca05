"""The tests' own helpers: the one wait gives up naming what it waited for, and every
engine the broker fixtures run has its capabilities described."""

from __future__ import annotations

import itertools

import pytest
from conftest import ENGINES
from helpers import KAFKA, TANSU, capabilities_of, wait_for


def test_wait_for_returns_the_first_truthy_value() -> None:
    answers = iter([None, 0, [], "ready", "later"])
    assert wait_for(lambda: next(answers), 5, "an answer") == "ready"


def test_wait_for_gives_up_past_its_bound_naming_what_it_waited_for() -> None:
    asked = itertools.count()
    with pytest.raises(AssertionError, match=r"after 0.2s waiting for the topic \(last seen: 0\)"):
        wait_for(lambda: next(asked) * 0, 0.2, "the topic")
    assert next(asked) > 2  # asked again and again within the bound, not once


def test_a_condition_that_fails_the_test_stops_the_wait_at_once() -> None:
    def process_alive() -> bool:
        raise AssertionError("the agent exited with 1")

    with pytest.raises(AssertionError, match="the agent exited with 1"):
        wait_for(process_alive, 3600, "the agent to record 10 events")


def test_every_engine_the_fixtures_run_has_its_capabilities() -> None:
    assert {engine: capabilities_of(engine) for engine in ENGINES} == {
        "tansu": TANSU,
        "kafka": KAFKA,
        "testcontainers": KAFKA,  # Apache Kafka in a container
    }
    with pytest.raises(KeyError):
        capabilities_of("redpanda")  # undescribed: never another engine's branches
