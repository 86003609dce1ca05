"""Re-running agent code on its recording: calls answered from the log (nothing real is
called), the first divergence named at the right event, unconsumed calls listed, a
fork to live functions, and the re-run recorded as a new conversation."""

from __future__ import annotations

import functools
import json

import pytest
from helpers.cli import agentlog
from helpers.rerun_agent import (
    billing_agent,
    fake_llm,
    refund_first_agent,
    reworded_agent,
    swallowing_agent,
)

from agentlog.producers import Recorder
from agentlog.replay import ReplayError, replay_conversation
from agentlog.replay.diff import diff_conversations
from agentlog.replay.testing import assert_rerun
from agentlog.runtime import rerun, rerun_recording, run_live
from agentlog.settings import Settings

ORIGINAL = "conv-rerun"


@pytest.fixture
def recorded(settings: Settings) -> Settings:
    with Recorder(settings) as recorder:
        run_live(
            billing_agent,
            ORIGINAL,
            ["Please refund INV-42, I was charged twice"],
            recorder=recorder,
            live_llm=fake_llm,
        )
    return settings


def _position(replayed, event_type: str, nth: int = 0) -> str:
    event = [e for e in replayed.events if e.event_type == event_type][nth]
    return f"{event.topic}[{event.partition}]@{event.offset}"


def _no_tools(*args, **kwargs):
    raise AssertionError("a real tool or model was called during a re-run")


def test_the_agent_reruns_on_its_recording_without_calling_anything(recorded) -> None:
    with Recorder(recorded) as recorder:
        report = rerun(recorded, ORIGINAL, billing_agent, recorder=recorder, live_llm=_no_tools)
    assert report.matched, report.lines()
    assert [c.kind for c in report.served] == ["llm", "tool", "tool"]
    assert report.live_calls == []
    assert report.lines()[-1] == "no divergence: the code made the recorded calls"
    # Recorded as a new conversation that names the original, doing what it did.
    original = replay_conversation(recorded, ORIGINAL)
    again = replay_conversation(recorded, report.new_conversation_id)
    started = again.events[0].payload
    provenance = json.loads(started["metadata_json"])["rerun"]
    assert provenance["of"] == ORIGINAL and provenance["mode"] == "strict"
    assert provenance["last_offset"] == original.events[-1].offset
    # The provenance is all that tells them apart, and `replay diff` leaves it out.
    assert diff_conversations(original.events, again.events).identical


def test_a_changed_policy_is_reported_at_the_recorded_event(recorded) -> None:
    original = replay_conversation(recorded, ORIGINAL)
    half = functools.partial(billing_agent, refund_share=0.5)
    report = rerun(recorded, ORIGINAL, half)
    assert report.divergence.kind == "different_arguments"
    assert _position(original, "tool_call_requested", 1) in report.divergence.message
    assert '"amount":60.0' in report.divergence.message
    assert '"amount":120.0' in report.divergence.message
    # A stricter limit escalates instead of refunding: the refund is left unconsumed.
    strict_limit = functools.partial(billing_agent, refund_limit=100.0)
    report = assert_rerun(recorded, ORIGINAL, strict_limit, expect="unconsumed")
    [left] = report.unconsumed
    assert left.name == "issue_refund" and left.position in report.lines()[-1]
    with pytest.raises(AssertionError, match="expected no divergence"):
        assert_rerun(recorded, ORIGINAL, strict_limit)
    assert_rerun(recorded, ORIGINAL, half, expect="different_arguments")
    report = rerun(recorded, ORIGINAL, reworded_agent)
    assert report.divergence.kind == "different_arguments"
    assert "with other input messages than LLM call to gpt-4o-mini" in report.divergence.message
    assert "Be brief." in report.divergence.message
    assert _position(original, "llm_call") in report.divergence.message


def test_strict_wants_the_recorded_order_and_fifo_does_not(recorded) -> None:
    report = rerun(recorded, ORIGINAL, refund_first_agent)
    assert report.divergence.kind == "different_tool"
    assert "issue_refund" in report.divergence.message
    assert "where the recording has tool lookup_invoice" in report.divergence.message
    assert_rerun(recorded, ORIGINAL, refund_first_agent, mode="fifo")


def test_a_call_the_recording_does_not_have_stops_even_agents_that_catch_everything(
    recorded,
) -> None:
    report = rerun(recorded, ORIGINAL, swallowing_agent, mode="fifo")
    assert report.divergence.kind == "unrecorded_call"
    assert "tool cancel_order" in report.divergence.message
    twice = functools.partial(_twice, billing_agent)
    report = rerun(recorded, ORIGINAL, twice)
    assert report.divergence.kind == "extra_call"


def _twice(agent, session) -> None:
    agent(session)
    agent(session)


def test_fork_serves_the_recording_up_to_an_event_then_goes_live(recorded) -> None:
    original = replay_conversation(recorded, ORIGINAL)
    lookup = [e for e in original.events if e.event_type == "tool_call_completed"][0]
    report = rerun(recorded, ORIGINAL, billing_agent, fork_at=lookup.event_id, live_llm=_no_tools)
    assert report.divergence is None
    assert [c.name for c in report.served] == ["gpt-4o-mini", "lookup_invoice"]
    assert report.live_calls == ["tool issue_refund"]
    first = str(original.events[0].offset)
    with pytest.raises(ReplayError, match="no live LLM function was given"):
        rerun(recorded, ORIGINAL, billing_agent, fork_at=first)
    report = rerun(recorded, ORIGINAL, billing_agent, fork_at=first, live_llm=fake_llm)
    assert report.live_calls == [
        "LLM call to gpt-4o-mini",
        "tool lookup_invoice",
        "tool issue_refund",
    ]


def test_rerun_command(recorded, tmp_path) -> None:
    base = ("--bootstrap", recorded.bootstrap_servers, "--topic-prefix", recorded.topic_prefix)
    run = agentlog(
        *base, "replay", "rerun", ORIGINAL, "--agent", "helpers.rerun_agent:billing_agent",
        state_dir=tmp_path,
    )  # fmt: skip
    assert run.code == 0, run.err
    assert "no divergence" in run.out and "3 calls served from the log" in run.out
    new_id = run.out.split(" as ")[1].split(":")[0]
    assert replay_conversation(recorded, new_id).events[0].event_type == "conversation_started"
    changed = agentlog(
        *base, "replay", "rerun", ORIGINAL, "--agent", "helpers.rerun_agent:refund_first_agent",
        "--no-record", state_dir=tmp_path,
    )  # fmt: skip
    assert changed.code == 1, changed.err  # diverged: a CI step fails on it
    assert "divergence (different_tool)" in changed.out
    report = agentlog(
        *base, "replay", "rerun", ORIGINAL, "--agent", "helpers.rerun_agent:refund_first_agent",
        "--no-record", "--json", state_dir=tmp_path,
    )  # fmt: skip
    assert report.code == 1, report.err
    document = json.loads(report.out)
    assert document["matched"] is False and document["rerun"] is None
    assert document["divergence"]["kind"] == "different_tool"
    assert document["divergence"]["recorded"]["kind"] == "tool"
    matched = agentlog(
        *base, "replay", "rerun", ORIGINAL, "--agent", "helpers.rerun_agent:billing_agent",
        "--no-record", "--json", state_dir=tmp_path,
    )  # fmt: skip
    assert matched.code == 0, matched.err
    assert json.loads(matched.out)["matched"] is True
    bad = agentlog(
        *base,
        "replay",
        "rerun",
        ORIGINAL,
        "--agent",
        "helpers.rerun_agent:nothing",
        state_dir=tmp_path,
    )
    assert bad.code == 1 and "helpers.rerun_agent:nothing" in bad.err
    fork = agentlog(
        *base, "replay", "rerun", ORIGINAL, "--agent", "helpers.rerun_agent:billing_agent",
        "--fork-at", "nope", state_dir=tmp_path,
    )  # fmt: skip
    assert fork.code == 1 and "--fork-at 'nope'" in fork.err


def _misspelt(session) -> None:
    session.agnet_message("billing", "hello")


def test_a_misspelt_session_method_raises_with_or_without_a_recorder(recorded) -> None:
    original = replay_conversation(recorded, ORIGINAL)
    with pytest.raises(AttributeError, match="agnet_message"):
        rerun_recording(original.events, _misspelt)
    with Recorder(recorded) as recorder, pytest.raises(AttributeError, match="agnet_message"):
        rerun_recording(original.events, _misspelt, recorder=recorder)
