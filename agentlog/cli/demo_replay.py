"""The end of `agentlog demo`: one conversation replayed from its offsets (a short
transcript and an HTML timeline), then its agents re-run on its recording, as they are
and with a lower refund limit (where the policy changes what they do)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from agentlog.consumers.projection import RecordedEvent
from agentlog.demo.agents import DEFAULT_POLICY, Policy, support_team
from agentlog.demo.simulation import SimulationResult
from agentlog.private_files import private_dir, replaced_whole
from agentlog.replay import RerunReport, replay_conversation, rerun_recording
from agentlog.replay.html import timeline_page
from agentlog.replay.transcript import header, line
from agentlog.settings import Settings

# The changed policy: refunds above this go to a person instead of being issued.
LOWER_REFUND_LIMIT = 100.0
TRANSCRIPT_LINES = 8  # of the replayed conversation's events shown


def refund_above(result: SimulationResult, limit: float) -> str | None:
    """A conversation of the run that refunded more than `limit`: one where a lower
    refund limit changes what the agents do."""
    for cid in result.conversations:
        for call in result.tool_calls.get(cid, []):
            if call.tool_name == "issue_refund" and call.arguments["amount"] > limit:
                return cid
    return None


def demo_replay(settings: Settings, result: SimulationResult, phase: Callable[[str], None]) -> None:
    """Replay, write the timeline, re-run; `phase` announces each step."""
    chosen = refund_above(result, LOWER_REFUND_LIMIT)
    cid = chosen or result.conversations[0]
    phase(f"replaying {cid} from its offsets")
    replayed = replay_conversation(settings, cid, sink_url=settings.sink_url)
    for text in header(replayed):
        click.echo(text)
    start = replayed.start_micros
    for entry in replayed.entries[:TRANSCRIPT_LINES]:
        click.echo(line(entry, start))
    left = len(replayed.entries) - TRANSCRIPT_LINES
    if left > 0:
        click.echo(f"  ... {left} more events: agentlog replay {cid}")
    page = timeline_path(settings, cid)
    private_dir(page.parent)
    with replaced_whole(page) as out:
        out.write(timeline_page(replayed).encode())
    click.echo(f"timeline of {cid}: {page}")

    phase(f"re-running the agents of {cid} on its recording (strict)")
    recorded = result.outcomes.get(cid, "?")
    for policy, what in (
        (DEFAULT_POLICY, f"the same policy (refund limit {DEFAULT_POLICY.refund_limit:g} EUR)"),
        (Policy(refund_limit=LOWER_REFUND_LIMIT), f"a refund limit of {LOWER_REFUND_LIMIT:g} EUR"),
    ):
        if policy is not DEFAULT_POLICY and chosen is None:
            click.echo(f"no refund above {LOWER_REFUND_LIMIT:g} EUR in this run to re-run")
            break
        report, outcome = _rerun(replayed.events, policy)
        first, *rest = report.lines()
        ended = f", ended {outcome} (recorded: {recorded})" if outcome else ""
        click.echo(f"with {what}: {first.split(': ', 1)[1]}{ended}")
        for text in rest:
            click.echo(f"  {text}")


def _rerun(events: list[RecordedEvent], policy: Policy) -> tuple[RerunReport, str | None]:
    """The report, and the outcome the agents reached (None: stopped by a divergence)."""
    outcomes: list[str] = []
    report = rerun_recording(events, lambda session: outcomes.append(support_team(session, policy)))
    return report, outcomes[0] if outcomes else None


def timeline_path(settings: Settings, conversation_id: str) -> Path:
    """Beside the demo's other files (under STATE_DIR/demo)."""
    return settings.state_dir / "demo" / f"timeline-{conversation_id}.html"
