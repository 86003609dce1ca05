"""OpenAI chat fine-tuning checks written apart from the exporter's own validation, so a
training file is checked by code that did not produce it."""

from __future__ import annotations

import json
from pathlib import Path

ROLE_KEYS = {
    "system": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "tool_calls", "weight", "name"},
    "tool": {"role", "content", "tool_call_id"},
}


def check_example(example: dict) -> None:
    """AssertionError naming what is wrong with one line of an OpenAI training file."""
    assert set(example) <= {"messages", "tools", "parallel_tool_calls"}, set(example)
    declared = [t["function"]["name"] for t in example.get("tools", [])]
    assert all(t["type"] == "function" for t in example.get("tools", []))
    assert len(declared) == len(set(declared)), "a tool declared twice"
    for tool in example.get("tools", []):
        assert isinstance(tool["function"].get("parameters", {}), dict)
    messages = example["messages"]
    assert messages, "no messages"
    calls_made: dict[str, int] = {}
    answered: dict[str, int] = {}
    for i, m in enumerate(messages):
        assert m["role"] in ROLE_KEYS, m
        assert set(m) <= ROLE_KEYS[m["role"]], (i, m)
        if m["role"] in ("system", "user"):
            assert isinstance(m["content"], str) and m["content"].strip(), (i, m)
        if m["role"] == "assistant":
            assert m.get("content") or m.get("tool_calls"), (i, m)
            if "weight" in m:
                assert m["weight"] in (0, 1)
            for call in m.get("tool_calls") or []:
                assert set(call) == {"id", "type", "function"} and call["type"] == "function"
                assert call["id"] not in calls_made, "a call id used twice"
                calls_made[call["id"]] = i
                assert call["function"]["name"] in declared, call
                assert isinstance(call["function"]["arguments"], str)
                assert isinstance(json.loads(call["function"]["arguments"]), dict)
        if m["role"] == "tool":
            assert isinstance(m["content"], str)
            call_id = m["tool_call_id"]
            assert call_id in calls_made and calls_made[call_id] < i, f"orphan tool message {i}"
            assert call_id not in answered, "a call answered twice"
            answered[call_id] = i
    assert set(answered) == set(calls_made), "unanswered calls"
    # A call's answer comes before the next assistant message.
    for call_id, at in calls_made.items():
        later = [i for i, m in enumerate(messages) if m["role"] == "assistant" and i > at]
        assert not later or answered[call_id] < later[0], f"{call_id} answered too late"
    assert any(m["role"] == "assistant" for m in messages), "no assistant message"
    if example.get("parallel_tool_calls"):
        assert any(len(m.get("tool_calls") or []) > 1 for m in messages)


def check_training_file(path: Path) -> list[dict]:
    """Every line valid; returns the examples."""
    examples = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        example = json.loads(line)
        try:
            check_example(example)
        except AssertionError as exc:
            raise AssertionError(f"{path} line {number}: {exc}") from None
        examples.append(example)
    return examples
