"""A small OpenAI- and Anthropic-compatible model server on loopback, for tests and
benchmarks: the real client libraries (openai, anthropic, the Agents SDK, LangChain)
talk to it by `base_url`, so the code under test runs their real request, response and
streaming paths.

Its answers are canned and deterministic. The model name says which script to play:

- `MODEL_PLAIN`: a plain text answer.
- `MODEL_TOOL`: the scripted conversation: a call of `lookup_invoice` (`SCRIPT`) until
  the request carries that tool's result, then the final text answer.
- `MODEL_PARALLEL`: two tool calls in one answer (`lookup_invoice` and `issue_refund`),
  then the final text once the results are in.
- `MODEL_RATE_LIMITED`: HTTP 429 with the provider's error body (clients should be made
  with `max_retries=0`).

Any request with `"stream": true` is answered as Server-Sent Events in the provider's own
format (Chat Completions chunks, Responses events, Anthropic message events), one event
per write, so time to first token is real.

    with ModelServer() as server:
        client = OpenAI(base_url=server.openai_url, api_key="test")
        client = Anthropic(base_url=server.anthropic_url, api_key="test")

Endpoints: `POST /v1/chat/completions`, `POST /v1/responses`, `POST /v1/messages`.
Standard library only (`http.server` in a thread).
"""

from agentlog.testing._model_server import (
    MODEL_PARALLEL,
    MODEL_PLAIN,
    MODEL_RATE_LIMITED,
    MODEL_TOOL,
    SCRIPT,
    ModelServer,
    Script,
    ToolUse,
    chat_completion,
    chat_completion_chunks,
    main,
    message,
    message_events,
    response,
    response_events,
)

__all__ = [
    "MODEL_PARALLEL",
    "MODEL_PLAIN",
    "MODEL_RATE_LIMITED",
    "MODEL_TOOL",
    "ModelServer",
    "SCRIPT",
    "Script",
    "ToolUse",
    "chat_completion",
    "chat_completion_chunks",
    "main",
    "message",
    "message_events",
    "response",
    "response_events",
]

if __name__ == "__main__":
    main()
