"""The projections agentlog ships, by name."""

from __future__ import annotations

from agentlog.consumers.projection import Projection
from agentlog.consumers.projections.conversation_index import ConversationIndex
from agentlog.consumers.projections.conversations import Conversations
from agentlog.consumers.projections.tool_calls import ToolCalls
from agentlog.errors import ConfigurationError
from agentlog.loading import load_class

BUILT_IN: dict[str, type[Projection]] = {
    p.name: p for p in (Conversations, ToolCalls, ConversationIndex)
}


def load_projection(name: str) -> Projection:
    """A built-in projection by name, or your own as `package.module:ClassName`."""
    if name in BUILT_IN:
        return BUILT_IN[name]()
    if ":" not in name:
        raise ConfigurationError(
            f"unknown projection {name!r}: use one of {', '.join(BUILT_IN)} or module:Class"
        )
    found = load_class(name, Projection, "projection", "myprojections:Refunds")
    return found()


__all__ = ["BUILT_IN", "ConversationIndex", "Conversations", "ToolCalls", "load_projection"]
