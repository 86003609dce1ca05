"""What records *and* consumes, or needs two parts that do not import each other,
composed from the parts below: the session a trigger handler runs with and the trigger
runtime wired with it (`agents_runtime`), the saga coordinator, re-run of agent code
with the re-run recorded, and compliance bundles (analytics) with their transcripts
(replay).

    from agentlog.runtime import rerun
    with Recorder(settings, service="agentlog-rerun") as recorder:
        report = rerun(settings, "conv-42", my_agent, recorder=recorder)  # a new conversation

No part below (producers, consumers, replay, analytics, integrations) imports this one.
"""

from agentlog.runtime._agents_runtime import agents_runtime
from agentlog.runtime._compliance import export_compliance
from agentlog.runtime._live_session import LiveSession, Transcripts
from agentlog.runtime._rerun import RecordingSession, rerun, rerun_recording, run_live
from agentlog.runtime._saga_coordinator import SagaCoordinator, SagaResult

__all__ = [
    "LiveSession",
    "RecordingSession",
    "SagaCoordinator",
    "SagaResult",
    "Transcripts",
    "agents_runtime",
    "export_compliance",
    "rerun",
    "rerun_recording",
    "run_live",
]
