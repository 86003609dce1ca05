"""What records *and* consumes, composed from the parts below it: the session a trigger
handler runs with, re-run of agent code with the re-run recorded, and compliance bundles
with their transcripts.

    from agentlog.runtime import LiveSession, Transcripts

No part below (producers, consumers, replay, analytics, integrations) imports this one.
"""

from agentlog.runtime._live_session import LiveSession, Transcripts

__all__ = [
    "LiveSession",
    "Transcripts",
]
