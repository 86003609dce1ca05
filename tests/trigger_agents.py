"""Agents for `agentlog agents run` in the tests: echo every user message."""

from agentlog.consumers.agents import Agents

agents = Agents("echo")


@agents.on("user_message")
def echo(event, session):  # type: ignore[no-untyped-def]
    session.agent_message("echo", f"you said: {event.payload['text']}")
