"""The recording snippet of docs/recording.md ("By hand, with the SDK") produces data
the training export accepts: the tool a `@recorder.tool` function is, is declared (name,
docstring, parameters) once per conversation before its first call."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from helpers.cli import agentlog

from agentlog.producers import AsyncRecorder, Recorder
from agentlog.reader import read_partitions
from agentlog.serde import decode
from agentlog.settings import Settings

messages = [{"role": "user", "content": "I was charged twice"}]
reply = "Let me look up your invoice."


def test_the_readme_snippet_is_accepted_by_the_training_export(
    settings: Settings, tmp_path: Path
) -> None:
    # docs/recording.md "By hand, with the SDK", as written (and the conversation ended).
    with Recorder(settings, service="support-bot", version="1.4.0") as recorder:
        recorder.start_conversation("conv-42", channel="web_chat", user_id="u-7")
        recorder.user_message("conv-42", "I was charged twice")
        recorder.llm_call(
            "conv-42",
            agent="billing",
            provider="openai",
            request_model="gpt-4o",
            input=messages,
            output_text=reply,
            input_tokens=812,
            output_tokens=40,
            latency_ms=640.0,
            finish_reason="tool_calls",
        )

        @recorder.tool
        def lookup_invoice(invoice_id: str, include_lines: bool = False) -> dict:
            """Fetch an invoice by its id.

            Longer notes are not part of the description."""
            return {"invoice_id": invoice_id, "status": "paid"}

        with recorder.conversation("conv-42"):
            lookup_invoice("INV-1")
            lookup_invoice("INV-2")  # declared once per conversation
        recorder.agent_message("conv-42", "billing", "Both invoices are paid.")
        recorder.end_conversation("conv-42", "resolved")

    declared = [
        decode(r.value())["payload"][1]["tools"]
        for r in read_partitions(settings, settings.events_topic)
        if decode(r.value())["payload"][0] == "agentlog.ToolsDeclared"
    ]
    assert len(declared) == 1
    (tool,) = declared[0]
    assert tool["name"] == "lookup_invoice"
    assert tool["description"] == "Fetch an invoice by its id."
    assert json.loads(tool["parameters_json"]) == {
        "type": "object",
        "properties": {"invoice_id": {"type": "string"}, "include_lines": {"type": "boolean"}},
        "required": ["invoice_id"],
    }

    out = tmp_path / "train.jsonl"
    done = agentlog(
        "--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix,
        "export", "training", "--out", str(out), state_dir=tmp_path,
    )  # fmt: skip
    assert done.code == 0, done.err
    assert "not declared" not in done.out + done.err
    (example,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert [t["function"]["name"] for t in example["tools"]] == ["lookup_invoice"]


def test_an_async_tool_is_declared_too(settings: Settings) -> None:
    async def agent() -> None:
        async with AsyncRecorder(settings) as recorder:

            @recorder.tool
            async def refund(amount: float) -> dict:
                return {"ok": True}

            with recorder.conversation("conv-a"):
                await refund(12.5)

    asyncio.run(agent())
    kinds = [
        decode(r.value())["payload"][0] for r in read_partitions(settings, settings.events_topic)
    ]
    assert kinds[0] == "agentlog.ToolsDeclared" and kinds.count("agentlog.ToolsDeclared") == 1
