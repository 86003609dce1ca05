"""AsyncRecorder's tool recording for asyncio agents, against a real broker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from helpers.kafka_python_reader import read_all

from agentlog.errors import ConfigurationError
from agentlog.events import Event
from agentlog.producers import AsyncRecorder
from agentlog.serde import decode_event
from agentlog.settings import Settings


def _events(settings: Settings, expect: int) -> list[Event]:
    assert settings.bootstrap_servers is not None
    records = read_all(settings.bootstrap_servers, settings.events_topic, expect=expect)
    return [decode_event(r.value) for r in records]


def test_tool_decorator_records_results_and_failures(settings: Settings) -> None:
    async def agent() -> None:
        async with AsyncRecorder(settings, service="async-tools") as recorder:

            @recorder.tool
            async def lookup_invoice(invoice_id: str, include_lines: bool = False) -> dict:
                await asyncio.sleep(0)
                return {"invoice_id": invoice_id, "total": 99.0}

            @recorder.tool(name="issue_refund")
            async def refund(invoice_id: str) -> None:
                raise PermissionError("refunds above 50 EUR need approval")

            with recorder.conversation("conv-async-tools"):
                assert await lookup_invoice("INV-1") == {"invoice_id": "INV-1", "total": 99.0}
                with pytest.raises(PermissionError):
                    await refund("INV-1")

    asyncio.run(agent())

    recorded = _events(settings, expect=6)
    # Each tool is declared once in the conversation, before its first call.
    declared = [e for e in recorded if e.event_type == "tools_declared"]
    assert [[t.name for t in e.payload.tools] for e in declared] == [
        ["lookup_invoice"],
        ["issue_refund"],
    ]
    events = [e for e in recorded if e.event_type != "tools_declared"]
    assert [(e.event_type, e.payload.tool_name) for e in events] == [
        ("tool_call_requested", "lookup_invoice"),
        ("tool_call_completed", "lookup_invoice"),
        ("tool_call_requested", "issue_refund"),
        ("tool_call_failed", "issue_refund"),
    ]
    assert {e.conversation_id for e in events} == {"conv-async-tools"}
    requested, completed, _, failed = (e.payload for e in events)
    assert requested.arguments_json == '{"invoice_id":"INV-1","include_lines":false}'
    assert completed.result_json == '{"invoice_id":"INV-1","total":99.0}'
    assert completed.tool_call_id == requested.tool_call_id
    assert events[1].causation_id == events[0].event_id
    assert failed.error_type == "PermissionError"
    assert "approval" in failed.error_message


def test_the_conversation_reaches_tasks_started_inside_it(settings: Settings) -> None:
    async def agent() -> None:
        async with AsyncRecorder(settings) as recorder:

            @recorder.tool
            async def search(query: str) -> list[str]:
                await asyncio.sleep(0.01)
                return [query]

            with recorder.conversation("conv-a"):
                first = asyncio.create_task(search("a"))
            with recorder.conversation("conv-b"):
                # Run concurrently with the task of conv-a, which keeps its own.
                assert await asyncio.gather(search("b1"), search("b2")) == [["b1"], ["b2"]]
            assert await first == ["a"]
            with pytest.raises(ConfigurationError, match="recorder.conversation"):
                await search("outside")

    asyncio.run(agent())

    events = _events(settings, expect=6)
    by_query = {
        e.payload.arguments_json: e.conversation_id
        for e in events
        if e.event_type == "tool_call_requested"
    }
    assert by_query == {
        '{"query":"a"}': "conv-a",
        '{"query":"b1"}': "conv-b",
        '{"query":"b2"}': "conv-b",
    }
    assert sorted(e.event_type for e in events).count("tool_call_completed") == 3


def test_tool_call_block_and_a_cancelled_call(settings: Settings) -> None:
    async def agent() -> None:
        async with AsyncRecorder(settings) as recorder:
            async with recorder.tool_call(
                "fetch_order", {"id": 7}, conversation_id="conv-block", agent="billing"
            ) as call:
                call.complete({"status": "shipped"})

            async def hangs() -> None:
                async with recorder.tool_call("slow_api", {}, conversation_id="conv-block"):
                    await asyncio.sleep(3600)

            with pytest.raises(TimeoutError):
                await asyncio.wait_for(hangs(), timeout=0.05)

    asyncio.run(agent())

    events = _events(settings, expect=4)
    assert [e.event_type for e in events] == [
        "tool_call_requested",
        "tool_call_completed",
        "tool_call_requested",
        "tool_call_failed",
    ]
    assert events[0].payload.agent == "billing"
    # The ending names the agent that called, as a tool worker's does.
    assert (events[1].source.agent, events[3].source.agent) == ("billing", None)
    assert events[1].payload.result_json == '{"status":"shipped"}'
    # The call that was cancelled is on the record as failed, not left hanging.
    assert events[3].payload.error_type == "CancelledError"
    assert events[3].causation_id == events[2].event_id


def test_a_sync_function_is_refused_with_what_to_do_instead() -> None:
    async def agent() -> None:
        # No broker needed: nothing is recorded, and the producer never has to connect.
        async with AsyncRecorder(
            Settings(bootstrap_servers="127.0.0.1:1", spool=False)
        ) as recorder:

            def lookup(invoice_id: str) -> dict[str, Any]:
                return {}

            with pytest.raises(ConfigurationError, match="'lookup' is not one.*tool_call"):
                recorder.tool(lookup)

    asyncio.run(agent())
