"""The projections agentlog ships, by name."""

from agentlog.consumers.projection import Projection as _Projection
from agentlog.consumers.projections.conversation_index import ConversationIndex
from agentlog.consumers.projections.conversations import Conversations
from agentlog.consumers.projections.tool_calls import ToolCalls
from agentlog.errors import ConfigurationError as _ConfigurationError
from agentlog.loading import load_class as _load_class

BUILT_IN: dict[str, type[_Projection]] = {
    p.name: p for p in (Conversations, ToolCalls, ConversationIndex)
}


def load_projection(name: str) -> _Projection:
    """A built-in projection by name, or your own as `package.module:ClassName`."""
    if name in BUILT_IN:
        return BUILT_IN[name]()
    if ":" not in name:
        raise _ConfigurationError(
            f"unknown projection {name!r}: use one of {', '.join(BUILT_IN)} or module:Class"
        )
    found = _load_class(name, _Projection, "projection", "myprojections:Refunds")
    return found()


__all__ = ["BUILT_IN", "ConversationIndex", "Conversations", "ToolCalls", "load_projection"]
