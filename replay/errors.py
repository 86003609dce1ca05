"""What replay refuses, each with a message naming the bad value and what to do.

AgentlogError
└── ReplayError
    ├── ConversationNotFound   no record of the conversation where it must be
    ├── OffsetBeyondEnd        --until-offset past the partition's end
    └── BeforeFirstEvent       a stop (--at, --until-offset) before the first event
"""

from __future__ import annotations

from agentlog.errors import AgentlogError


class ReplayError(AgentlogError):
    pass


class ConversationNotFound(ReplayError):
    pass


class OffsetBeyondEnd(ReplayError):
    pass


class BeforeFirstEvent(ReplayError):
    pass
