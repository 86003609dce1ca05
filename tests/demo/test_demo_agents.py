"""The demo's agents are agent code: every conversation they recorded re-runs on its
recording with no divergence, and a lower refund limit is reported at the recorded
refund it no longer makes."""

from __future__ import annotations

import functools
import json
import random
import re
from collections import defaultdict

import pytest
from helpers.cli import agentlog
from helpers.offline_log import events_of, simulated_log

from agentlog.consumers.projection import RecordedEvent
from agentlog.demo.agents import Policy, support_team
from agentlog.demo.simulation import SimulatedClock, seeded_event_ids, simulate
from agentlog.errors import ToolError
from agentlog.producers import Recorder
from agentlog.replay import ReplayError, recorded_calls, replay_conversation
from agentlog.replay.diff import diff_conversations
from agentlog.replay.testing import assert_rerun
from agentlog.runtime import rerun, rerun_recording
from agentlog.settings import Settings

LOWER_LIMIT = Policy(refund_limit=100.0)


# 200 conversations of this seed hold every hard case: retries, escalations, and a refund
# that failed for good (its saga compensated).
HARD_CASES_SEED = 5


def _by_conversation(events: list[RecordedEvent]) -> dict[str, list[RecordedEvent]]:
    found: dict[str, list[RecordedEvent]] = defaultdict(list)
    for event in events:
        found[event.conversation_id].append(event)
    return found


def _refund_request(events: list[RecordedEvent]) -> RecordedEvent | None:
    """The first request of the conversation's refund, if it refunded above 100 EUR."""
    for call in recorded_calls(events):
        if call.name == "issue_refund" and call.arguments["amount"] > LOWER_LIMIT.refund_limit:
            return call.request
    return None


def test_every_demo_conversation_reruns_on_its_recording_offline() -> None:
    conversations = _by_conversation(events_of(simulated_log(200, seed=HARD_CASES_SEED).records))
    kinds = {e.event_type for events in conversations.values() for e in events}
    # Retries, a refund that failed for good, escalations: the hard cases are there.
    assert {"tool_call_failed", "saga_step_compensated", "escalation"} <= kinds
    for cid, events in conversations.items():
        report = rerun_recording(events, support_team)
        assert report.matched, (cid, report.lines())
        # One served call per call id, however many attempts it took.
        call_ids = {e.payload["tool_call_id"] for e in events if e.event_type.startswith("tool_")}
        assert sum(c.kind == "tool" for c in report.served) == len(call_ids)


def test_every_recorded_demo_rerun_diffs_identical_to_its_original_offline() -> None:
    """Retries, failures for good, compensations, escalations: each re-run recorded is,
    for `replay diff`, the conversation it re-ran."""
    log = simulated_log(200, seed=7)
    conversations = _by_conversation(events_of(log.records))
    for n, (cid, events) in enumerate(sorted(conversations.items())):
        report = rerun_recording(events, support_team, recorder=log, new_conversation_id=f"r{n}")
        assert report.matched, (cid, report.lines())
    again = _by_conversation(events_of(log.records))
    for n, (cid, events) in enumerate(sorted(conversations.items())):
        result = diff_conversations(events, again[f"r{n}"])
        assert result.identical, (cid, [s.differences for s in result.steps if s.kind != "same"])


def test_a_lower_refund_limit_leaves_the_recorded_refund_unmade_offline() -> None:
    conversations = _by_conversation(events_of(simulated_log(200, seed=HARD_CASES_SEED).records))
    changed = 0
    for cid, events in conversations.items():
        refund = _refund_request(events)
        lower = functools.partial(support_team, policy=LOWER_LIMIT)
        report = rerun_recording(events, lower)
        if refund is None:
            assert report.matched, (cid, report.lines())
            continue
        changed += 1
        assert report.divergence is None
        first = report.unconsumed[0]
        assert (first.kind, first.name, first.request.offset) == (
            "tool",
            "issue_refund",
            refund.offset,
        )
    assert changed > 10


def test_a_tool_that_failed_for_good_is_raised_again_in_the_rerun() -> None:
    conversations = _by_conversation(events_of(simulated_log(200, seed=HARD_CASES_SEED).records))
    [events] = [
        events
        for events in conversations.values()
        if any(e.event_type == "saga_step_compensated" for e in events)
    ]
    raised: list[ToolError] = []

    def refund_only(session) -> None:
        for call in recorded_calls(events):
            if call.kind == "llm":
                session.llm(call.arguments, model=call.name, agent="billing")
                continue
            try:
                session.call_tool(call.name, call.arguments, agent="billing")
            except ToolError as failed:
                raised.append(failed)

    report = rerun_recording(events, refund_only)
    assert report.matched, report.lines()
    [failed] = raised
    assert failed.tool_name == "issue_refund" and failed.attempt == 3


def _record_demo(settings: Settings, conversations: int, seed: int) -> list[str]:
    clock = SimulatedClock()
    with Recorder(
        settings, clock_micros=clock, new_event_id=seeded_event_ids(random.Random(seed))
    ) as recorder:
        return simulate(recorder, clock, conversations, seed).conversations


def test_every_demo_conversation_reruns_with_no_divergence(settings: Settings) -> None:
    conversations = _record_demo(settings, 50, seed=7)
    changed = 0
    for cid in conversations:
        assert_rerun(settings, cid, support_team)  # strict
        events = replay_conversation(settings, cid).events
        refund = _refund_request(events)
        if refund is None:
            continue
        changed += 1
        report = rerun(settings, cid, functools.partial(support_team, policy=LOWER_LIMIT))
        [refund_call, *_] = report.unconsumed
        assert refund_call.name == "issue_refund"
        assert refund_call.request.event_id == refund.event_id
        assert f"{settings.events_topic}[{refund.partition}]@{refund.offset}" in report.lines()[1]
    assert changed > 0


def test_the_rerun_is_recorded_attempt_by_attempt(settings: Settings) -> None:
    conversations = _record_demo(settings, 50, seed=7)
    retried = next(
        cid
        for cid in conversations
        if any(
            e.event_type == "tool_call_failed" for e in replay_conversation(settings, cid).events
        )
    )
    with Recorder(settings) as recorder:
        report = rerun(settings, retried, support_team, recorder=recorder)
    assert report.matched, report.lines()
    original = replay_conversation(settings, retried).events
    again = replay_conversation(settings, report.new_conversation_id).events
    kinds = [e.event_type for e in original]
    assert [e.event_type for e in again] == kinds
    attempts = [e.payload["attempt"] for e in original if e.event_type == "tool_call_requested"]
    assert [e.payload["attempt"] for e in again if e.event_type == "tool_call_requested"] == (
        attempts
    )
    assert max(attempts) > 1


def test_a_recorded_rerun_of_unchanged_code_diffs_identical_to_the_original(
    settings: Settings,
) -> None:
    """What `replay diff` compares (agents on tool endings, the start's metadata) is the
    same; the re-run's provenance sits under one key `replay diff` leaves out."""
    conversations = _record_demo(settings, 20, seed=7)
    retried = next(
        cid
        for cid in conversations
        if any(
            e.event_type == "tool_call_failed" for e in replay_conversation(settings, cid).events
        )
    )
    with Recorder(settings, service="agentlog-rerun") as recorder:
        report = rerun(settings, retried, support_team, recorder=recorder)
    assert report.matched, report.lines()
    original = replay_conversation(settings, retried).events
    again = replay_conversation(settings, report.new_conversation_id).events
    result = diff_conversations(original, again)
    assert result.identical, [s.differences for s in result.steps if s.kind != "same"]
    [started] = [e for e in again if e.event_type == "conversation_started"]
    metadata = json.loads(started.payload["metadata_json"])
    assert metadata["locale"] == "en-GB"  # the original's, kept
    assert metadata["rerun"]["of"] == retried
    assert metadata["rerun"]["first_offset"] == original[0].offset
    assert metadata["rerun"]["mode"] == "strict"


def test_after_the_fork_live_functions_answer_the_demo_agents() -> None:
    conversations = _by_conversation(events_of(simulated_log(200, seed=HARD_CASES_SEED).records))
    events = next(e for e in conversations.values() if _refund_request(e) is not None)
    # The model's answer that asks for the refund: served; the refund itself: live.
    asks_refund = next(
        e
        for e in events
        if e.event_type == "llm_call" and "issue_refund" in e.payload["output_text"]
    )
    asked: list[tuple[str, dict]] = []

    def live_tool(name: str, arguments: dict, *, agent: str) -> dict:
        asked.append((name, arguments))
        raise TimeoutError("the refund service is down")

    def live_llm(messages, *, model: str, agent: str) -> str:
        return '{"reply": "never asked"}'

    report = rerun_recording(
        events,
        support_team,
        fork_offset=asks_refund.offset,
        live_tool=live_tool,
        live_llm=live_llm,
    )
    # The refund went live, failed, and the agents escalated (no further model call).
    assert [c.name for c in report.served][-2:] == ["lookup_invoice", "gpt-4o"]
    assert [name for name, _ in asked] == ["issue_refund"]
    assert report.live_calls == ["tool issue_refund"]
    assert report.divergence is None
    with pytest.raises(ReplayError, match="no live tool function was given"):
        rerun_recording(events, support_team, fork_offset=asks_refund.offset, live_llm=live_llm)


def test_the_rerun_command_runs_the_demo_agents(settings: Settings, tmp_path) -> None:
    conversations = _record_demo(settings, 20, seed=7)
    cid, events = next(
        (cid, events)
        for cid in conversations
        if _refund_request(events := replay_conversation(settings, cid).events) is not None
    )
    refund = _refund_request(events)
    before = events[events.index(refund) - 1]  # its saga step: the refund is after the fork
    base = ("--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix)
    agent = ("--agent", "agentlog.demo.agents:support_team", "--no-record")
    run = agentlog(*base, "replay", "rerun", cid, *agent, state_dir=tmp_path)
    assert run.code == 0, run.err
    assert "no divergence" in run.out
    forked = agentlog(
        *base, "replay", "rerun", cid, *agent, "--fork-at", before.event_id,
        "--tools", "helpers.rerun_agent:refund_service_down", state_dir=tmp_path,
    )  # fmt: skip
    assert forked.code == 0, forked.err
    assert "1 answered live after the fork" in forked.out


def test_recorded_reruns_stay_out_of_the_training_export(settings: Settings, tmp_path) -> None:
    """Three `replay rerun`s recorded (each identical to its original for `replay diff`),
    then `export training`: as many examples as before (the re-runs are left out), and
    the re-runs too with `--include-reruns`."""
    conversations = _record_demo(settings, 10, seed=7)
    base = ("--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix)

    def export(name: str, *options: str) -> list[str]:
        out = tmp_path / name
        run = agentlog(*base, "export", "training", "--out", str(out), *options, state_dir=tmp_path)
        assert run.code == 0, run.err
        return [json.loads(line)["conversation_id"] for line in provenance_lines(out)]

    before = export("before.jsonl")
    agent = ("--agent", "agentlog.demo.agents:support_team")
    for cid in conversations[:3]:
        run = agentlog(*base, "replay", "rerun", cid, *agent, state_dir=tmp_path)
        assert run.code == 0 and "no divergence" in run.out, run.err
        [again] = re.findall(rf"re-ran {cid} \(strict\) as (\S+):", run.out)
        diff = agentlog(*base, "replay", "diff", cid, again, "--format", "json", state_dir=tmp_path)
        assert diff.code == 0 and json.loads(diff.out)["identical"], diff.out
    assert export("after.jsonl") == before
    kept = export("kept.jsonl", "--include-reruns")
    assert len(kept) == len(before) + 3
    assert sum("-rerun-" in cid for cid in kept) == 3


def provenance_lines(data) -> list[str]:
    return data.with_name(f"{data.stem}.provenance.jsonl").read_text().splitlines()
