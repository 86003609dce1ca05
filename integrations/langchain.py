"""Record a LangChain or LangGraph run with one callback handler:

    from agentlog.integrations.langchain import Handler

    graph.invoke(inputs, config={"callbacks": [Handler(recorder, agent="billing")],
                                 "configurable": {"thread_id": "conv-42"}})

Chat model calls become whole `llm_call` events (the messages sent with their typed
parts, the tools offered, the answer with the tool calls the model chose, usage, time
to first token when the model streams) or `llm_call_failed`; tool runs become
`tool_call_requested` and `tool_call_completed` / `tool_call_failed` under the model's
tool call id; an agent's final answer (`AgentFinish`) an `agent_message`. An agent's
action (`AgentAction`) is recorded through the tool run it starts. The conversation is
LangGraph's `thread_id` (`configurable.thread_id`), else the run's root run id. The
acting agent is `agent`, else the LangGraph node, else "agent". Event ids derive from
the run ids, so a callback delivered twice records nothing new. Needs
`pip install 'agentlog[langchain]'`.
"""

from agentlog.integrations._langchain import (
    Handler,
)

__all__ = [
    "Handler",
]
