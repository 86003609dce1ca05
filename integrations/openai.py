"""Record every call of an OpenAI client, one line of set-up:

    from openai import OpenAI
    from agentlog.integrations.openai import record

    client = record(OpenAI(), recorder, agent="billing")
    with recorder.conversation("conv-42"):
        client.chat.completions.create(model="gpt-4o", messages=[...])

`OpenAI` and `AsyncOpenAI` (and Azure's), Chat Completions and Responses (`create`,
with or without `stream=True`). Each call is one `llm_call` event, the request as sent
and the answer as received (a stream's answer assembled, with its time to first token;
the stream reaches the caller unchanged, chunk by chunk), or one `llm_call_failed` (rate
limit, timeout, bad request: the error goes on to the caller unchanged). The
conversation is the one of `recorder.conversation(...)` where the call is made (threads
and asyncio tasks alike), else `conversation_id`. Recording never changes what the
caller gets and never raises into it.

The client itself is returned, recording (its `chat.completions.create` and
`responses.create` are wrapped on this instance; `client.with_options(...)` makes a copy
that does not record). Needs `pip install 'agentlog[openai]'`.

Re-running the same code on its recording (docs/rerun.md): `serve(client, recording)`
gives a copy of the client whose requests are answered from the recorded calls (the
SDK parses the recorded bodies, and streams them again as chunks), nothing sent:

    serving = Serving(replay_conversation(settings, "conv-42"))
    client = serve(OpenAI(), serving)
    ...the agent code...
    report = serving.finish()
"""

from agentlog.integrations._openai import record, serve
from agentlog.integrations._serving import Serving

__all__ = [
    "Serving",
    "record",
    "serve",
]
