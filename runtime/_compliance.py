"""Compliance bundles with their transcripts: the archive's events bundled by analytics,
each conversation's transcript and HTML timeline rendered by replay."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agentlog.analytics.compliance import BundleReport, ComplianceBundle, ComplianceRequest
from agentlog.replay.documents import transcript_documents


def export_compliance(
    archive: Path,
    topic: str,
    request: ComplianceRequest,
    out: Path,
    *,
    command: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> BundleReport:
    """Write the bundle to `out` (a directory, or a zip if it ends in .zip): the events,
    a transcript and an HTML timeline per conversation, the manifest.
    `on_progress(events done, events in all)` hears how far it is, conversation by
    conversation (rendering transcripts is the long part)."""
    with ComplianceBundle(archive, topic, request, out, command=command) as bundle:
        done = 0
        for conversation_id, events in bundle.conversations.items():
            try:
                documents = transcript_documents(conversation_id, events)
            except Exception as exc:
                # Records of any producer, any version: one conversation that the
                # renderer did not foresee is named in the manifest, and the bundle goes
                # on without its transcript.
                bundle.untranscribed(conversation_id, f"{type(exc).__name__}: {exc}")
            else:
                for suffix, text in documents.items():
                    bundle.add_transcript(conversation_id, suffix, text)
            done += len(events)
            if on_progress is not None:
                on_progress(done, bundle.events)
    assert bundle.report is not None  # the block ended without an exception
    return bundle.report
