"""Record OpenAI Agents SDK runs with one trace processor:

    import agents
    from agentlog.integrations.openai_agents import Processor

    agents.add_trace_processor(Processor(recorder))

Spans map to events: an agent span names the acting agent of the spans inside it;
response and generation spans are whole `llm_call`s (or `llm_call_failed`); function
spans are `tool_call_requested` then `tool_call_completed` / `tool_call_failed` (both
when the span ends: its arguments are set only then), under
the id of the model's tool call they run (matched by tool name and arguments among the
calls of the agent's latest answer, since function spans do not carry it); handoff
spans are `handoff`; a guardrail that trips is an `escalation` to `guardrail:<name>`;
MCP tool listings are `tools_declared`. Spans carry no time to first token: a streamed
run's calls are recorded whole, without it. The conversation is the trace's `group_id`,
else its trace id. Processors may be called twice for a span: event ids derive from
the trace id, span id and what the event is, so a repeat changes nothing downstream.
Needs `pip install 'agentlog[openai-agents]'`.
"""

from agentlog.integrations._openai_agents import (
    Processor,
)

__all__ = [
    "Processor",
]
