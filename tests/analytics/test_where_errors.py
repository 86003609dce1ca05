"""`export training --where`: an error quotes what the user wrote, never the parentheses
agentlog wraps the condition in."""

from __future__ import annotations

import re

import pytest

from agentlog.analytics.sql_guard import one_condition
from agentlog.errors import ExportError


@pytest.mark.parametrize("condition", ["outcome = ", "outcome = 'resolved' AND", "outcome IN ("])
def test_an_unfinished_condition_is_named_without_a_parenthesis_never_typed(
    condition: str,
) -> None:
    with pytest.raises(ExportError) as raised:
        one_condition(condition)
    message = str(raised.value)
    assert message.startswith(f"--where {condition!r}: "), message
    assert 'near ")"' not in message, message
    near = re.search(r'near "([^"]*)"|at the end of the condition', message)
    assert near is not None, message
    assert near.group(1) is None or near.group(1) in condition, message


def test_a_parenthesis_the_user_typed_is_named() -> None:
    with pytest.raises(ExportError) as raised:
        one_condition("status = 'ended' )")
    assert 'near ")"' in str(raised.value)


@pytest.mark.parametrize("condition", ["1=1; drop table x", "true; COPY x TO 'f'"])
def test_a_second_statement_is_named_as_such(condition: str) -> None:
    with pytest.raises(ExportError) as raised:
        one_condition(condition)
    assert "(it holds more than one statement)" in str(raised.value)
