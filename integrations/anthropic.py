"""Record every call of an Anthropic client, one line of set-up:

    from anthropic import Anthropic
    from agentlog.integrations.anthropic import record

    client = record(Anthropic(), recorder, agent="billing")
    with recorder.conversation("conv-42"):
        client.messages.create(model="claude-sonnet-4-5", max_tokens=1024, messages=[...])

`Anthropic` and `AsyncAnthropic`, Messages: `messages.create` (with or without
`stream=True`) and `messages.stream()`. As `agentlog.integrations.openai`: each call is
one whole `llm_call` (a stream's answer assembled, with its time to first token; the
stream reaches the caller unchanged) or one `llm_call_failed` (the error goes on to the
caller unchanged); the conversation of `recorder.conversation(...)`, else
`conversation_id`. The client itself is returned, recording. Needs
`pip install 'agentlog[anthropic]'`.
"""

from agentlog.integrations._anthropic import (
    record,
)

__all__ = [
    "record",
]
