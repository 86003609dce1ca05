"""A small offline support log every trajectory rule shows in: parallel tool calls, a
retried call that finally fails, an escalation, a conversation that ends well and one
whose tool call is still open."""

from __future__ import annotations

from helpers.offline_log import OfflineLog

TOOLS = [
    {
        "name": "lookup_invoice",
        "description": "Fetch an invoice",
        "parameters": {"type": "object", "properties": {"invoice_id": {"type": "string"}}},
    },
    {
        "name": "issue_refund",
        "description": "Refund a payment; questions to billing@example.com",
        "parameters": {"type": "object", "properties": {"amount": {"type": "number"}}},
    },
]


def support_log() -> OfflineLog:
    """One conversation with parallel calls, a retried call that finally fails and an
    escalation; one that ends well; one whose tool call is still open."""
    log = OfflineLog()
    c = "conv-parallel"
    log.start_conversation(c, channel="web_chat", user_id="u-1")
    log.system_prompt(c, "billing", "You are the billing agent.")
    log.tools_declared(c, "billing", TOOLS)
    log.user_message(c, "Charged twice! Mail jo.doe@example.com or call +44 20 7946 0958")
    log.llm_call(
        c, agent="billing", provider="openai", request_model="gpt-4o", input=[],
        output_text="Checking both.", input_tokens=10, output_tokens=3, latency_ms=5.0,
        finish_reason="tool_calls",
    )  # fmt: skip
    log.tool_call_requested(c, "call-a", "lookup_invoice", {"invoice_id": "INV-1"}, agent="billing")
    log.tool_call_requested(c, "call-b", "issue_refund", {"amount": 12.5}, agent="billing")
    log.tool_call_completed(c, "call-a", "lookup_invoice", {"total": 12.5}, duration_ms=3.0)
    log.tool_call_failed(
        c, "call-b", "issue_refund", error_type="Timeout", error_message="slow",
        duration_ms=9.0, retryable=True,
    )  # fmt: skip
    log.tool_call_requested(c, "call-b", "issue_refund", {"amount": 12.5}, attempt=2)
    log.tool_call_failed(
        c, "call-b", "issue_refund", error_type="Timeout", error_message="slow again",
        duration_ms=9.0, attempt=2,
    )  # fmt: skip
    log.agent_message(c, "billing", "Sorry, the refund failed; a colleague will help.")
    log.escalation(c, "billing", "tool failures")
    log.end_conversation(c, "escalated")

    d = "conv-resolved"
    log.start_conversation(d, channel="web_chat", user_id="u-2")
    log.tools_declared(d, "billing", TOOLS[:1])
    log.user_message(d, "Invoice INV-2 please")
    log.tool_call_requested(d, "call-c", "lookup_invoice", {"invoice_id": "INV-2"})
    log.tool_call_completed(d, "call-c", "lookup_invoice", {"total": 3}, duration_ms=1.0)
    log.agent_message(d, "billing", "It is 3 EUR.")
    log.user_message(d, "Thanks")
    log.agent_message(d, "billing", "Bye")
    log.end_conversation(d, "resolved")

    e = "conv-open"
    log.start_conversation(e, channel="web_chat")
    log.tools_declared(e, "billing", TOOLS[:1])
    log.user_message(e, "Where is INV-3?")
    log.tool_call_requested(e, "call-d", "lookup_invoice", {"invoice_id": "INV-3"})
    return log
