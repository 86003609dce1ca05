"""Rebuild conversations from their offsets: read only the conversation's range (through
the `conversation_index` projection) or scan its partition, fold its state with the
projector's own fold, at any moment or offset.

    from agentlog.replay import replay_conversation
    replay = replay_conversation(settings, "conv-42", sink_url=settings.sink_url)
    replay.entries   # its events in log order (topic, partition, offset on each)
    replay.state     # the built-in projections' rows, as the live projection holds them

    report = rerun(settings, "conv-42", my_agent)   # agent code re-run on the recording
"""

from agentlog.errors import (
    BeforeFirstEvent,
    ConversationNotFound,
    OffsetBeyondEnd,
    ReplayError,
)
from agentlog.replay.archived import ConversationArchive
from agentlog.replay.conversation import (
    At,
    Replay,
    Undecodable,
    parse_at,
    replay_conversation,
)
from agentlog.replay.rerun import RerunReport, Session, rerun, rerun_recording, run_live
from agentlog.replay.state import conversation_state

__all__ = [
    "At",
    "BeforeFirstEvent",
    "ConversationArchive",
    "ConversationNotFound",
    "OffsetBeyondEnd",
    "Replay",
    "ReplayError",
    "RerunReport",
    "Session",
    "Undecodable",
    "conversation_state",
    "parse_at",
    "replay_conversation",
    "rerun",
    "rerun_recording",
    "run_live",
]
