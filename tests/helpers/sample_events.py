"""One fully populated event of every payload type, built through the pydantic models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agentlog import events as ev

BASE = datetime(2026, 11, 2, 9, 30, 0, 123456, tzinfo=UTC)

PAYLOADS: list[ev.Payload] = [
    ev.ConversationStarted(
        channel="web_chat", user_id="u-1", title="Refund", metadata_json='{"locale":"de"}'
    ),
    ev.SystemPrompt(agent="triage", content="You route customers.", prompt_version="v7"),
    ev.ToolsDeclared(
        agent="billing",
        tools=[
            ev.ToolDeclaration(
                name="lookup_invoice",
                description="Fetch an invoice",
                parameters_json='{"type":"object","properties":{"invoice_id":{"type":"string"}}}',
            ),
            ev.ToolDeclaration(name="issue_refund", description="Refund", parameters_json="{}"),
        ],
    ),
    ev.UserMessage(text="Mir wurde doppelt abgebucht — bitte prüfen ✓", user_id="u-1"),
    ev.IntentIdentified(agent="triage", intent="billing", confidence=0.93),
    ev.Handoff(from_agent="triage", to_agent="billing", reason="intent billing"),
    ev.LlmCall(
        agent="billing",
        provider="openai",
        request_model="gpt-4o",
        response_model="gpt-4o-2026-08-01",
        input_json="null",
        output_text="Let me check.",
        input_tokens=1234,
        output_tokens=56,
        latency_ms=812.25,
        finish_reason="tool_call",
        operation="chat",
        input_messages_json=(
            '[{"role":"user","parts":[{"type":"text","content":"charged twice"}]}]'
        ),
        system_instructions_json='[{"type":"text","content":"You handle billing."}]',
        tool_definitions_json=(
            '[{"type":"function","name":"lookup_invoice","description":"Fetch an invoice",'
            '"parameters":{"type":"object","properties":{"invoice_id":{"type":"string"}}}}]'
        ),
        output_messages_json=(
            '[{"role":"assistant","parts":[{"type":"text","content":"Let me check."},'
            '{"type":"tool_call","id":"call_1","name":"lookup_invoice",'
            '"arguments":{"invoice_id":"INV-1"}}],"finish_reason":"tool_call"}]'
        ),
        request_parameters_json='{"temperature":0.2,"max_tokens":512,"tool_choice":"auto"}',
        response_id="chatcmpl-42",
        finish_reasons=["tool_call"],
        cache_read_input_tokens=1024,
        cache_creation_input_tokens=0,
        reasoning_tokens=12,
        time_to_first_token_ms=120.5,
        streamed=True,
        provider_response_json='{"id":"chatcmpl-42","object":"chat.completion"}',
    ),
    ev.ToolCallRequested(
        tool_call_id="call_1",
        tool_name="lookup_invoice",
        arguments_json='{"invoice_id":"INV-1"}',
        agent="billing",
        attempt=1,
    ),
    ev.ToolCallFailed(
        tool_call_id="call_1",
        tool_name="lookup_invoice",
        error_type="TimeoutError",
        error_message="no answer in 5000 ms",
        duration_ms=5000.0,
        attempt=1,
        retryable=True,
    ),
    ev.ToolCallCompleted(
        tool_call_id="call_1",
        tool_name="lookup_invoice",
        result_json='{"total":129.5}',
        duration_ms=73.5,
        attempt=2,
    ),
    ev.SagaStarted(
        saga_id="s-1", saga="refund", steps=["refund", "notify"], input_json='{"invoice":"INV-1"}'
    ),
    ev.SagaStepStarted(
        saga_id="s-1", step="refund", input_json='{"amount":129.5}', attempt=2, timeout_ms=5000.0
    ),
    ev.SagaStepCompleted(saga_id="s-1", step="refund", output_json='{"refund_id":"RF-1"}'),
    ev.SagaStepFailed(
        saga_id="s-1",
        step="notify",
        error_type="TimeoutError",
        error_message="no answer within 2 s",
        timed_out=True,
        phase="action",
        attempt=1,
    ),
    ev.SagaStepCompensated(saga_id="s-1", step="refund", reason="payment provider refused"),
    ev.SagaEnded(saga_id="s-1", outcome="compensated", reason="notify timed out"),
    ev.AgentMessage(agent="billing", text="Refunded."),
    ev.Escalation(agent="billing", reason="customer asked for a human", target="human"),
    ev.ConversationEnded(outcome="escalated", reason="handed to a human"),
    ev.LlmCallFailed(
        agent="billing",
        provider="openai",
        request_model="gpt-4o",
        error_type="RateLimitError",
        error_message="Rate limit reached for gpt-4o",
        latency_ms=35.5,
        status_code=429,
        operation="chat",
        input_messages_json=(
            '[{"role":"user","parts":[{"type":"text","content":"charged twice"}]}]'
        ),
        system_instructions_json='[{"type":"text","content":"You handle billing."}]',
        tool_definitions_json='[{"type":"function","name":"lookup_invoice"}]',
        request_parameters_json='{"temperature":0.2}',
    ),
]


def sample_events(conversation_id: str = "conv-sample") -> list[ev.Event]:
    return [
        ev.Event(
            event_id=f"00000000-0000-4000-8000-{n:012d}",
            conversation_id=conversation_id,
            occurred_at=BASE + timedelta(milliseconds=n),
            source=ev.Source(service="support", agent="billing", version="1.2.3"),
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736" if n % 2 else None,
            span_id="00f067aa0ba902b7" if n % 2 else None,
            causation_id=f"00000000-0000-4000-8000-{n - 1:012d}" if n else None,
            payload=payload,
        )
        for n, payload in enumerate(PAYLOADS)
    ]
