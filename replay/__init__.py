"""Rebuild conversations from their offsets: read only the conversation's range (through
the `conversation_index` projection) or scan its partition, fold its state with the
projector's own fold, at any moment or offset.

    from agentlog.replay import replay_conversation
    replay = replay_conversation(settings, "conv-42", sink_url=settings.sink_url)
    replay.entries   # its events in log order (topic, partition, offset on each)
    replay.state     # the built-in projections' rows, as the live projection holds them

    report = rerun(settings, "conv-42", my_agent)   # agent code re-run on the recording
    # (recorded as a new conversation: agentlog.runtime.rerun(..., recorder=recorder))
"""

from agentlog.errors import (
    BeforeFirstEvent,
    ConversationNotFound,
    OffsetBeyondEnd,
    ReplayError,
)
from agentlog.replay._matching import (
    MODES,
    CallScript,
    Diverged,
    Divergence,
    RecordedCall,
    recorded_calls,
)
from agentlog.replay._report import RerunReport
from agentlog.replay._rerun import RerunPlan, plan_rerun, rerun, rerun_recording, rerun_start
from agentlog.replay._session import Session
from agentlog.replay.archived import ConversationArchive
from agentlog.replay.conversation import (
    At,
    Replay,
    Undecodable,
    parse_at,
    replay_conversation,
)
from agentlog.replay.state import conversation_state

__all__ = [
    "MODES",
    "At",
    "BeforeFirstEvent",
    "CallScript",
    "ConversationArchive",
    "ConversationNotFound",
    "Diverged",
    "Divergence",
    "OffsetBeyondEnd",
    "RecordedCall",
    "Replay",
    "ReplayError",
    "RerunPlan",
    "RerunReport",
    "Session",
    "Undecodable",
    "conversation_state",
    "parse_at",
    "plan_rerun",
    "recorded_calls",
    "replay_conversation",
    "rerun",
    "rerun_recording",
    "rerun_start",
]
