"""Sagas: steps with timeouts, compensation in reverse order, resume from the log.

The pure decision (`next_move` over recorded saga events) is tested without a broker;
the coordinator against real brokers, with the events it recorded read back by an
independent Kafka client, and coordinators SIGKILLed mid-saga in subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from helpers import tool_fixtures, wait_for
from helpers.cli import agentlog
from helpers.kafka_python_reader import read_all
from helpers.saga_agent import STEPS, effects, refund_saga
from helpers.workers import worker_thread

from agentlog import events as ev
from agentlog.consumers.sagas import (
    COMPENSATED,
    COMPENSATION_FAILED,
    COMPLETED,
    Begin,
    Compensate,
    End,
    Finished,
    RunStep,
    Saga,
    SagaEvent,
    SagaState,
    Step,
    TimedOut,
    next_move,
    saga_states,
    tool_action,
)
from agentlog.errors import ConfigurationError
from agentlog.events import EVENT_TYPES
from agentlog.producers import Recorder, ToolClient
from agentlog.replay import replay_conversation
from agentlog.replay.transcript import transcript as replay_transcript
from agentlog.runtime import SagaCoordinator
from agentlog.serde import decode_event
from agentlog.settings import Settings

TESTS = Path(__file__).parent.parent


T0 = 1_700_000_000_000_000  # microseconds
SECOND = 1_000_000


def _nothing(context: object) -> None:
    return None


SAGA = Saga(
    "refund",
    [Step(name, _nothing, compensation=_nothing, timeout=10) for name in STEPS],
)


class Log:
    """Recorded saga events for the pure tests, one second apart."""

    def __init__(self, saga_id: str = "s-1") -> None:
        self.saga_id = saga_id
        self.events: list[SagaEvent] = []

    def add(self, payload: ev.Payload) -> Log:
        self.events.append(SagaEvent.of(payload, T0 + len(self.events) * SECOND))
        return self

    def started(self) -> Log:
        return self.add(ev.SagaStarted(saga_id=self.saga_id, saga="refund", steps=list(STEPS)))

    def step(self, step: str, attempt: int = 1, timeout_ms: float | None = 10_000) -> Log:
        return self.add(
            ev.SagaStepStarted(
                saga_id=self.saga_id, step=step, attempt=attempt, timeout_ms=timeout_ms
            )
        )

    def done(self, step: str) -> Log:
        return self.add(
            ev.SagaStepCompleted(saga_id=self.saga_id, step=step, output_json='{"ok":1}')
        )

    def failed(self, step: str, phase: str = "action", attempt: int = 1) -> Log:
        return self.add(
            ev.SagaStepFailed(
                saga_id=self.saga_id,
                step=step,
                error_type="RuntimeError",
                error_message="no",
                phase=phase,
                attempt=attempt,
            )
        )

    def compensated(self, step: str) -> Log:
        return self.add(ev.SagaStepCompensated(saga_id=self.saga_id, step=step, reason="r"))

    def move(self, saga: Saga = SAGA, after_seconds: float = 0.5) -> object:
        state = saga_states(self.events).get(self.saga_id)
        now = T0 + int((len(self.events) - 1 + after_seconds) * SECOND)
        return next_move(saga, state or SagaState(self.saga_id), now)


# -- what next, from the recorded events alone --------------------------------------------


def test_a_new_saga_begins_then_runs_its_steps_in_order() -> None:
    log = Log()
    assert log.move() == Begin()
    assert log.started().move() == RunStep("reserve", 1)
    assert log.step("reserve").done("reserve").move() == RunStep("charge", 1)
    log.step("charge").done("charge").step("notify").done("notify")
    assert log.move() == End(COMPLETED, None)


def test_a_step_started_and_not_ended_runs_again_until_its_timeout_then_counts_as_timed_out() -> (
    None
):
    log = Log().started().step("reserve").done("reserve").step("charge", timeout_ms=10_000)
    assert log.move(after_seconds=9.9) == RunStep("charge", 2)
    assert log.move(after_seconds=10.0) == TimedOut("charge", 1, 10_000)
    # The timeout recorded with the start counts, not the definition's.
    assert Log().started().step("reserve", timeout_ms=2_000).move(after_seconds=3) == TimedOut(
        "reserve", 1, 2_000
    )
    # A start recorded before schema v3 has no timeout: the definition's counts.
    assert Log().started().step("reserve", timeout_ms=None).move(after_seconds=3) == RunStep(
        "reserve", 2
    )


def test_a_failed_third_step_compensates_the_second_then_the_first() -> None:
    log = Log().started()
    for step in ("reserve", "charge"):
        log.step(step).done(step)
    log.step("notify").failed("notify")
    assert log.move() == Compensate("charge", 1)
    assert log.compensated("charge").move() == Compensate("reserve", 1)
    end = log.compensated("reserve").move()
    assert end == End(COMPENSATED, "step notify RuntimeError: no")


def test_a_failing_compensation_is_retried_to_its_bound_then_reported_and_the_rest_undone() -> None:
    log = Log().started().step("reserve").done("reserve").step("charge").done("charge")
    log.step("notify").failed("notify")
    assert log.move() == Compensate("charge", 1)
    log.failed("charge", phase="compensation", attempt=1)
    assert log.move() == Compensate("charge", 2)
    log.failed("charge", phase="compensation", attempt=2)
    log.failed("charge", phase="compensation", attempt=3)
    assert log.move() == Compensate("reserve", 1)
    end = log.compensated("reserve").move()
    assert isinstance(end, End) and end.outcome == COMPENSATION_FAILED
    assert "could not compensate charge after 3 attempts (RuntimeError: no)" in str(end.reason)


def test_a_step_without_compensation_is_skipped_when_undoing() -> None:
    saga = Saga(
        "refund",
        [
            Step("reserve", _nothing, compensation=_nothing),
            Step("charge", _nothing),
            Step("notify", _nothing),
        ],
    )
    log = Log().started().step("reserve").done("reserve").step("charge").done("charge")
    log.step("notify").failed("notify")
    assert log.move(saga) == Compensate("reserve", 1)


def test_an_ended_saga_does_nothing_more() -> None:
    log = Log().started().step("reserve").failed("reserve")
    log.add(ev.SagaEnded(saga_id="s-1", outcome=COMPENSATED, reason="step reserve failed"))
    assert log.move() == Finished(COMPENSATED, "step reserve failed")


def test_a_definition_with_other_steps_than_recorded_is_refused() -> None:
    log = Log().started()
    other = Saga("refund", [Step("reserve", _nothing), Step("notify", _nothing)])
    with pytest.raises(ConfigurationError, match="recorded with the steps"):
        log.move(other)


def test_the_fold_keeps_each_saga_of_a_conversation_apart() -> None:
    log = Log("a").started().step("reserve")
    other = Log("b").started().step("reserve").failed("reserve")
    states = saga_states([log.events[0], other.events[0], log.events[1], *other.events[1:]])
    assert list(states) == ["a", "b"]
    assert states["a"].status == "running" and states["b"].status == "compensating"
    assert states["a"].step("reserve").attempts == 1


def test_a_saga_started_again_after_it_ended_is_a_new_run() -> None:
    """An agent retried or redriven runs its saga again under the same id: the later run
    does not inherit the steps of the one that ended, and the earlier run is still named."""
    log = Log().started().step("reserve").done("reserve").step("charge").failed("charge")
    log.compensated("reserve").add(ev.SagaEnded(saga_id="s-1", outcome="compensated"))
    log.started().step("reserve").done("reserve").step("charge").done("charge")
    state = saga_states(log.events)["s-1"]
    assert state.status == "running" and state.failed_step is None
    assert not state.step("reserve").compensated
    assert [run.outcome for run in state.earlier_runs] == ["compensated"]
    assert state.summary() == (
        "saga s-1 (refund) running; steps: reserve completed, charge completed, "
        "notify not run (run 2; the earlier run ended compensated)"
    )


def test_each_step_says_where_it_is() -> None:
    log = Log().started().step("reserve").done("reserve").step("charge", attempt=2)
    assert saga_states(log.events)["s-1"].summary() == (
        "saga s-1 (refund) running; steps: reserve completed, charge running (attempt 2), "
        "notify not run"
    )
    log.add(
        ev.SagaStepFailed(
            saga_id="s-1",
            step="charge",
            error_type="TimeoutError",
            error_message="slow",
            timed_out=True,
        )
    )
    log.failed("reserve", phase="compensation")
    assert saga_states(log.events)["s-1"].summary() == (
        "saga s-1 (refund) compensating; steps: reserve compensation failed x1, "
        "charge timed out, notify not run"
    )


def test_definitions_that_cannot_work_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="twice"):
        Saga("x", [Step("a", _nothing), Step("a", _nothing)])
    with pytest.raises(ConfigurationError, match="no steps"):
        Saga("x", [])
    with pytest.raises(ConfigurationError, match="positive"):
        Step("a", _nothing, timeout=0)


def test_every_event_type_is_shown_by_tail_replay_and_the_timeline() -> None:
    from agentlog.render import _SUMMARY_FIELDS
    from agentlog.replay.html import _MARKS
    from agentlog.replay.transcript import _COLOURS

    for listed in (_SUMMARY_FIELDS, _MARKS, _COLOURS):
        assert set(listed) == set(EVENT_TYPES)


# -- the coordinator on a real broker ------------------------------------------------------


@pytest.fixture
def effects_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "effects"
    directory.mkdir()
    return directory


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Lets a hanging step's thread go at the end of the test."""
    event = threading.Event()
    yield event
    event.set()


def recorded(settings: Settings, conversation_id: str, expect: int) -> list[ev.Event]:
    """The conversation's events on the topic, read by kafka-python, in offset order."""
    records = read_all(settings.bootstrap_servers or "", settings.events_topic, expect=expect)
    return [
        event
        for event in (decode_event(r.value) for r in records)
        if event.conversation_id == conversation_id
    ]


def moves(events: list[ev.Event]) -> list[tuple[str, ...]]:
    """Each saga event as (type, step or outcome[, phase])."""
    shown: list[tuple[str, ...]] = []
    for event in events:
        body = event.payload.model_dump()
        what = body.get("step") or body.get("outcome") or body.get("saga")
        if event.event_type == "saga_step_failed" and body["phase"] == "compensation":
            shown.append((event.event_type, what, "compensation"))
        else:
            shown.append((event.event_type, what))
    return shown


def run(settings: Settings, saga: Saga, conversation_id: str, saga_id: str = "refund-1"):  # type: ignore[no-untyped-def]
    with Recorder(settings, service="saga-test") as recorder:
        return SagaCoordinator(recorder, settings, retry_backoff=0.01).run(
            saga, conversation_id=conversation_id, saga_id=saga_id, input={"invoice": "INV-7"}
        )


def test_a_saga_whose_third_step_fails_compensates_the_second_then_the_first(
    settings: Settings, effects_dir: Path
) -> None:
    result = run(settings, refund_saga(effects_dir, fail_at="notify"), "conv-fail")

    assert result.outcome == COMPENSATED
    assert result.compensated == ["charge", "reserve"]
    assert moves(recorded(settings, "conv-fail", expect=10)) == [
        ("saga_started", "refund"),
        ("saga_step_started", "reserve"),
        ("saga_step_completed", "reserve"),
        ("saga_step_started", "charge"),
        ("saga_step_completed", "charge"),
        ("saga_step_started", "notify"),
        ("saga_step_failed", "notify"),
        ("saga_step_compensated", "charge"),
        ("saga_step_compensated", "reserve"),
        ("saga_ended", COMPENSATED),
    ]
    # The replay's transcript shows each move and, under the state, the saga's end.
    transcript = "\n".join(replay_transcript(replay_conversation(settings, "conv-fail", scan=True)))
    assert "saga refund-1 (refund): steps reserve -> charge -> notify" in transcript
    assert (
        "saga refund-1 step notify: action failed (attempt 1): RuntimeError: notify refused"
        in transcript
    )
    assert "saga_step_compensated  saga refund-1 step charge compensated: step notify" in (
        transcript
    )
    assert (
        "  saga refund-1 (refund) ended compensated: step notify RuntimeError: notify refused "
        "by the payment provider; steps: reserve compensated, charge compensated, notify failed"
    ) in transcript.splitlines()
    # Each compensation was given what its step's action returned, and its own key.
    assert effects(effects_dir)[-2:] == [
        'compensation charge refund-1/charge/compensation 1 {"done":"charge","input":'
        '{"invoice":"INV-7"}}',
        'compensation reserve refund-1/reserve/compensation 1 {"done":"reserve","input":'
        '{"invoice":"INV-7"}}',
    ]


def test_a_saga_that_succeeds_records_each_step_and_its_output(
    settings: Settings, effects_dir: Path
) -> None:
    result = run(settings, refund_saga(effects_dir), "conv-ok")

    assert result.completed and result.compensated == []
    assert result.outputs["notify"] == {"done": "notify", "input": {"invoice": "INV-7"}}
    events = recorded(settings, "conv-ok", expect=8)
    assert [m[0] for m in moves(events)][-1] == "saga_ended"
    # Each event answers the one before it.
    assert all(b.causation_id == a.event_id for a, b in zip(events, events[1:], strict=False))
    # Run again: the log says it ended, so nothing runs.
    again = run(settings, refund_saga(effects_dir), "conv-ok")
    assert again.completed and again.resumed
    assert len(effects(effects_dir)) == 3


def test_a_step_that_runs_past_its_timeout_is_compensated(
    settings: Settings, effects_dir: Path, release: threading.Event
) -> None:
    saga = refund_saga(effects_dir, hang_at="charge", release=release, timeout=0.5)
    result = run(settings, saga, "conv-slow")

    assert result.outcome == COMPENSATED
    assert result.reason == (
        "step charge timed out: TimeoutError: the action of step charge took longer than 0.5 s"
    )
    events = recorded(settings, "conv-slow", expect=7)
    assert moves(events)[3:] == [
        ("saga_step_started", "charge"),
        ("saga_step_failed", "charge"),
        ("saga_step_compensated", "reserve"),
        ("saga_ended", COMPENSATED),
    ]
    failed = next(e for e in events if e.event_type == "saga_step_failed")
    assert failed.payload.timed_out is True  # type: ignore[union-attr]


def test_a_compensation_that_keeps_failing_is_retried_then_reported(
    settings: Settings, effects_dir: Path
) -> None:
    saga = refund_saga(effects_dir, fail_at="notify", failing_compensation="charge")
    result = run(settings, saga, "conv-stuck")

    assert result.outcome == COMPENSATION_FAILED
    assert "could not compensate charge after 3 attempts (ConnectionError" in str(result.reason)
    assert moves(recorded(settings, "conv-stuck", expect=12)) == [
        ("saga_started", "refund"),
        ("saga_step_started", "reserve"),
        ("saga_step_completed", "reserve"),
        ("saga_step_started", "charge"),
        ("saga_step_completed", "charge"),
        ("saga_step_started", "notify"),
        ("saga_step_failed", "notify"),
        ("saga_step_failed", "charge", "compensation"),
        ("saga_step_failed", "charge", "compensation"),
        ("saga_step_failed", "charge", "compensation"),
        ("saga_step_compensated", "reserve"),
        ("saga_ended", COMPENSATION_FAILED),
    ]


def test_tool_calls_run_as_steps_with_the_step_key_as_their_call_id(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTLOG_TEST_TOOL_DIR", str(tmp_path))
    with worker_thread(settings), ToolClient(settings, service="billing") as tools:
        saga = Saga(
            "refund",
            [
                Step("total", tool_action(tools, "add", {"a": 2, "b": 3}), timeout=30),
                Step(
                    "refund",
                    tool_action(tools, "record_effect", lambda c: {"n": c.outputs["total"]}),
                    compensation=tool_action(tools, "record_effect", {"n": -1}),
                    timeout=30,
                ),
                Step("notify", tool_action(tools, "refuse"), timeout=30),
            ],
        )
        result = run(settings, saga, "conv-tools")

    assert result.outcome == COMPENSATED
    assert result.outputs["refund"]["n"] == 5
    assert "ToolError" in str(result.reason) and "INV-9 does not exist" in str(result.reason)
    # Each tool call's id is its step's idempotency key, which the tool used.
    assert tool_fixtures.lines("effects") == ["refund-1/refund", "refund-1/refund/compensation"]
    events = recorded(settings, "conv-tools", expect=17)
    assert [(e.event_type, getattr(e.payload, "tool_call_id", "")) for e in events] == [
        ("saga_started", ""),
        ("saga_step_started", ""),
        ("tool_call_requested", "refund-1/total"),
        ("tool_call_completed", "refund-1/total"),
        ("saga_step_completed", ""),
        ("saga_step_started", ""),
        ("tool_call_requested", "refund-1/refund"),
        ("tool_call_completed", "refund-1/refund"),
        ("saga_step_completed", ""),
        ("saga_step_started", ""),
        ("tool_call_requested", "refund-1/notify"),
        ("tool_call_failed", "refund-1/notify"),
        ("saga_step_failed", ""),
        ("tool_call_requested", "refund-1/refund/compensation"),
        ("tool_call_completed", "refund-1/refund/compensation"),
        ("saga_step_compensated", ""),
        ("saga_ended", ""),
    ]


class Requests:
    """Stands in for a ToolClient (the `ToolRequester` protocol): answers at once and
    notes each call id asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def request(
        self,
        conversation_id: str,
        tool_name: str,
        arguments: object = None,
        *,
        tool_call_id: str | None = None,
    ) -> Requests:
        self.asked.append(str(tool_call_id))
        return self

    def result(self, timeout: float | None = None) -> str:
        return "sent"


def test_a_tool_step_re_run_after_a_restart_takes_the_ending_its_call_already_has(
    settings: Settings,
) -> None:
    # A coordinator died after the tool call of step "total" ended, before recording the
    # step completed.
    with Recorder(settings, service="saga-test") as recorder:
        recorder.saga_started("conv-ended-call", "refund-1", "refund", ["total", "notify"])
        recorder.saga_step_started("conv-ended-call", "refund-1", "total", timeout_ms=30_000)
        recorder.tool_call_requested("conv-ended-call", "refund-1/total", "add", {"a": 2})
        recorder.tool_call_completed("conv-ended-call", "refund-1/total", "add", 5, duration_ms=1.0)
    tools = Requests()
    saga = Saga(
        "refund",
        [Step("total", tool_action(tools, "add")), Step("notify", tool_action(tools, "notify"))],
    )
    result = run(settings, saga, "conv-ended-call")

    assert result.completed and result.outputs == {"total": 5, "notify": "sent"}
    assert tools.asked == ["refund-1/notify"]  # not the call that had ended
    assert moves(recorded(settings, "conv-ended-call", expect=9))[4:] == [
        ("saga_step_started", "total"),
        ("saga_step_completed", "total"),
        ("saga_step_started", "notify"),
        ("saga_step_completed", "notify"),
        ("saga_ended", COMPLETED),
    ]


def coordinator(
    settings: Settings, effects_dir: Path, conversation_id: str, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AGENTLOG_")},
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "AGENTLOG_BOOTSTRAP_SERVERS": settings.bootstrap_servers or "",
        "AGENTLOG_TOPIC_PREFIX": settings.topic_prefix,
        "AGENTLOG_STATE_DIR": str(settings.state_dir),
        "SAGA_EFFECTS_DIR": str(effects_dir),
        **env,
    }
    return subprocess.run(
        [sys.executable, str(TESTS / "helpers" / "saga_agent.py"), conversation_id, "refund-1"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def show_sagas(settings: Settings, conversation_id: str) -> str:
    """What `agentlog sagas show` prints."""
    shown = agentlog(
        "--bootstrap",
        settings.bootstrap_servers or "",
        "--topic-prefix",
        settings.topic_prefix,
        "sagas",
        "show",
        conversation_id,
        state_dir=settings.state_dir,
    )
    assert shown.code == 0, shown.err
    return shown.out.strip()


def test_a_killed_coordinator_resumes_from_the_log_and_finishes(
    settings: Settings, effects_dir: Path
) -> None:
    killed = coordinator(settings, effects_dir, "conv-killed", SAGA_KILL_AT="charge")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert effects(effects_dir) == [
        "action reserve refund-1/reserve 1",
        "action charge refund-1/charge 1",
    ]

    assert show_sagas(settings, "conv-killed") == (
        "saga refund-1 (refund) running; steps: reserve completed, charge running, notify not run"
    )

    resumed = coordinator(settings, effects_dir, "conv-killed")
    assert resumed.returncode == 0, resumed.stderr
    assert orjson.loads(resumed.stdout) == {"outcome": COMPLETED, "resumed": True}
    # The completed step did not run again; the interrupted one ran again, with its key.
    assert effects(effects_dir) == [
        "action reserve refund-1/reserve 1",
        "action charge refund-1/charge 1",
        "action charge refund-1/charge 2",
        "action notify refund-1/notify 1",
    ]
    assert show_sagas(settings, "conv-killed") == (
        "saga refund-1 (refund) ended completed; steps: reserve completed, charge completed, "
        "notify completed"
    )
    events = recorded(settings, "conv-killed", expect=9)
    assert moves(events) == [
        ("saga_started", "refund"),
        ("saga_step_started", "reserve"),
        ("saga_step_completed", "reserve"),
        ("saga_step_started", "charge"),
        ("saga_step_started", "charge"),
        ("saga_step_completed", "charge"),
        ("saga_step_started", "notify"),
        ("saga_step_completed", "notify"),
        ("saga_ended", COMPLETED),
    ]
    assert [e.payload.attempt for e in events if e.event_type == "saga_step_started"] == [  # type: ignore[union-attr]
        1,
        1,
        2,
        1,
    ]


def test_a_coordinator_back_after_the_step_timeout_compensates_instead_of_rerunning(
    settings: Settings, effects_dir: Path
) -> None:
    killed = coordinator(
        settings, effects_dir, "conv-late", SAGA_KILL_AT="charge", SAGA_TIMEOUT="1"
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    started = recorded(settings, "conv-late", expect=4)[-1]
    assert started.event_type == "saga_step_started"
    deadline = started.occurred_at.timestamp() + 1
    wait_for(lambda: time.time() > deadline, 10, "the step's timeout to pass")

    resumed = coordinator(settings, effects_dir, "conv-late", SAGA_TIMEOUT="1")
    assert resumed.returncode == 0, resumed.stderr
    assert orjson.loads(resumed.stdout) == {"outcome": COMPENSATED, "resumed": True}
    assert [line.split()[:2] for line in effects(effects_dir)] == [
        ["action", "reserve"],
        ["action", "charge"],
        ["compensation", "reserve"],
    ]
    events = recorded(settings, "conv-late", expect=7)
    assert moves(events)[3:] == [
        ("saga_step_started", "charge"),
        ("saga_step_failed", "charge"),
        ("saga_step_compensated", "reserve"),
        ("saga_ended", COMPENSATED),
    ]
    assert events[4].payload.timed_out is True  # type: ignore[union-attr]


def test_a_coordinator_killed_while_compensating_resumes_the_compensation(
    settings: Settings, effects_dir: Path
) -> None:
    killed = coordinator(
        settings,
        effects_dir,
        "conv-undo",
        SAGA_FAIL_AT="notify",
        SAGA_KILL_IN_COMPENSATION="charge",
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    resumed = coordinator(settings, effects_dir, "conv-undo", SAGA_FAIL_AT="notify")
    assert resumed.returncode == 0, resumed.stderr
    assert orjson.loads(resumed.stdout) == {"outcome": COMPENSATED, "resumed": True}
    ran = [line.split()[:2] for line in effects(effects_dir)]
    assert ran == [
        ["action", "reserve"],
        ["action", "charge"],
        ["action", "notify"],
        ["compensation", "charge"],  # killed here
        ["compensation", "charge"],
        ["compensation", "reserve"],
    ]
    assert moves(recorded(settings, "conv-undo", expect=10)) == [
        ("saga_started", "refund"),
        ("saga_step_started", "reserve"),
        ("saga_step_completed", "reserve"),
        ("saga_step_started", "charge"),
        ("saga_step_completed", "charge"),
        ("saga_step_started", "notify"),
        ("saga_step_failed", "notify"),
        ("saga_step_compensated", "charge"),
        ("saga_step_compensated", "reserve"),
        ("saga_ended", COMPENSATED),
    ]
