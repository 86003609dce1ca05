"""Rebuild conversations from their offsets: read only the conversation's range (through
the `conversation_index` projection) or scan its partition, fold its state with the
projector's own fold, at any moment or offset.

    from agentlog.replay import replay_conversation
    replay = replay_conversation(settings, "conv-42", sink_url=settings.sink_url)
    replay.entries   # its events in log order (topic, partition, offset on each)
    replay.state     # the built-in projections' rows, as the live projection holds them
"""

from agentlog.replay.conversation import (
    At,
    Replay,
    Undecodable,
    parse_at,
    replay_conversation,
)
from agentlog.replay.errors import (
    BeforeFirstEvent,
    ConversationNotFound,
    OffsetBeyondEnd,
    ReplayError,
)
from agentlog.replay.state import conversation_state

__all__ = [
    "At",
    "BeforeFirstEvent",
    "ConversationNotFound",
    "OffsetBeyondEnd",
    "Replay",
    "ReplayError",
    "Undecodable",
    "conversation_state",
    "parse_at",
    "replay_conversation",
]
