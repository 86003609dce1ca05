"""Event ids come from one place: random ids are distinct version 4 UUIDs, derived ids
repeat for a repeated source (so a redelivery changes no projection), and an id a caller
chose is kept in its one canonical form or refused."""

from __future__ import annotations

import uuid

import pytest

from agentlog.errors import SchemaError
from agentlog.event_ids import (
    RandomEventIds,
    canonical_event_id,
    derived_event_id,
    new_event_id,
)
from agentlog.tool_protocol import bound_arguments

NAMESPACE = uuid.UUID("5f0c6a52-2a4e-4d0c-9a53-6a1f0b7d2c11")


@pytest.mark.parametrize("make", [new_event_id, RandomEventIds(block=64)], ids=["one", "blocks"])
def test_random_ids_are_distinct_canonical_version_4_uuids(make) -> None:
    ids = [make() for _ in range(1000)]
    assert len(set(ids)) == 1000
    for made in ids:
        parsed = uuid.UUID(made)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == made


def test_a_derived_id_is_the_same_for_the_same_source_and_differs_otherwise() -> None:
    first = derived_event_id(NAMESPACE, "event-1/handler/1")
    assert derived_event_id(NAMESPACE, "event-1/handler/1") == first
    assert derived_event_id(NAMESPACE, "event-1/handler/2") != first
    assert derived_event_id(uuid.uuid4(), "event-1/handler/1") != first
    assert uuid.UUID(first).version == 5


def test_a_chosen_id_is_kept_in_its_canonical_form_or_refused() -> None:
    chosen = "5F0C6A52-2A4E-4D0C-9A53-6A1F0B7D2C11"
    assert canonical_event_id(chosen) == chosen.lower()
    assert canonical_event_id("{" + chosen + "}") == chosen.lower()
    with pytest.raises(SchemaError, match="event_id must be a UUID string, got 'not-an-id'"):
        canonical_event_id("not-an-id")
    with pytest.raises(SchemaError, match="got int"):
        canonical_event_id(42)


def test_bound_arguments_name_each_argument_with_defaults_in() -> None:
    def lookup(invoice_id: str, *, fresh: bool = False) -> None: ...

    assert bound_arguments(lookup, ("INV-1",), {}) == {"invoice_id": "INV-1", "fresh": False}
    # Arguments that do not bind are kept as given, not lost.
    assert bound_arguments(lookup, ("INV-1", 2), {"x": 1}) == {
        "args": ["INV-1", 2],
        "kwargs": {"x": 1},
    }
