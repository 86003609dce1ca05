"""Event-driven triggers: handlers run per conversation in order, a handler that fails
for good parks its conversation behind a dead letter, and a redrive or skip runs what
waited, once."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from helpers import wait_for
from helpers.cli import agentlog

from agentlog.consumers.dead_letters import (
    OPEN,
    REDRIVEN,
    RESOLVED,
    TRIGGER,
    DeadLetters,
    dead_letter_states,
)
from agentlog.consumers.triggers import Agents, TriggerRuntime, load_agents, trigger_event_ids
from agentlog.errors import ConfigurationError
from agentlog.producers import Recorder
from agentlog.reader import read_partitions
from agentlog.serde import decode
from agentlog.settings import Settings

pytestmark = pytest.mark.kafka


class Seen:
    """What the handlers ran, per conversation, in the order they ran it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_conversation: dict[str, list[str]] = defaultdict(list)

    def add(self, conversation: str, text: str) -> None:
        with self.lock:
            self.by_conversation[conversation].append(text)


def support_agents(seen: Seen, broken: set[str], attempts: int = 2) -> Agents:
    agents = Agents("support", attempts=attempts, backoff=0.01, max_backoff=0.02)

    @agents.on("user_message")
    def note(event, session) -> None:  # type: ignore[no-untyped-def]
        text = event.payload["text"]
        if text in broken:
            raise RuntimeError(f"cannot handle {text}")
        seen.add(event.conversation_id, text)

    return agents


def record(settings: Settings, messages: dict[str, list[str]]) -> None:
    with Recorder(settings) as recorder:
        for conversation, texts in messages.items():
            for text in texts:
                recorder.user_message(conversation, text)


def run_once(settings: Settings, agents: Agents, **kwargs) -> object:  # type: ignore[no-untyped-def]
    runtime = TriggerRuntime(settings, agents, lambda trigger: None, concurrency=4, **kwargs)
    return runtime.run(once=True)


def cli(settings: Settings, tmp_path: Path, *args: str):  # type: ignore[no-untyped-def]
    return agentlog(
        "--bootstrap",
        settings.bootstrap_servers,
        "--topic-prefix",
        settings.topic_prefix,
        *args,
        state_dir=tmp_path,
    )


def test_a_failing_handler_parks_its_conversation_until_redriven(
    settings: Settings, tmp_path: Path
) -> None:
    others = {f"conv-{n}": [f"c{n}-m{i}" for i in range(5)] for n in range(6)}
    record(settings, {"bad": ["m1", "boom", "m3", "m4"], **others})
    seen, broken = Seen(), {"boom"}
    agents = support_agents(seen, broken, attempts=3)

    progress = run_once(settings, agents)

    # Other conversations went on, in order; the bad one stopped at its failure.
    assert {c: seen.by_conversation[c] for c in others} == others
    assert seen.by_conversation["bad"] == ["m1"]
    assert progress.dead_lettered == 1 and progress.parked == 2 and progress.retried == 2
    assert progress.parked_conversations == 1  # still parked when the run ends
    states = dead_letter_states(settings)
    (letter,) = states.visible()
    assert (letter.kind, letter.state, letter.group) == (TRIGGER, OPEN, "agentlog-agents-support")
    assert letter.conversation == "bad" and letter.attempts == 3
    assert letter.exception_class == "builtins.RuntimeError"
    assert "cannot handle boom" in letter.error
    assert [decode(p.value)["payload"][1]["text"] for p in letter.parked] == ["m3", "m4"]
    assert states.parked_conversations() == {"agentlog-agents-support": {"bad"}}
    assert states.open_by_group() == {"agentlog-agents-support": 1}

    # A restart keeps the conversation parked: a later event of it waits too.
    record(settings, {"bad": ["m5"], "conv-0": ["c0-m5"]})
    run_once(settings, agents)
    assert seen.by_conversation["bad"] == ["m1"]
    assert seen.by_conversation["conv-0"][-1] == "c0-m5"
    assert len(dead_letter_states(settings).find(letter.id).parked) == 3

    status = group_status(settings, tmp_path, letter.group)
    assert (status["dlq_depth"], status["parked_conversations"], status["lag"]) == (1, 1, 0)
    assert status["kind"] == "trigger runtime"

    listed = cli(settings, tmp_path, "dlq", "list")
    assert listed.code == 0, listed.err
    assert letter.id in listed.out and "bad (3 parked)" in listed.out and "open" in listed.out

    # Fixed, redriven: the failed event, then the parked ones, in order, once.
    broken.clear()
    redriven = cli(settings, tmp_path, "dlq", "redrive", letter.id, "--wait", "0")
    assert redriven.code == 0, redriven.err
    again = cli(settings, tmp_path, "dlq", "redrive", letter.id, "--wait", "0")
    assert again.code == 0 and "nothing done" in again.out
    run_once(settings, agents)
    assert seen.by_conversation["bad"] == ["m1", "boom", "m3", "m4", "m5"]
    resolved = dead_letter_states(settings).find(letter.id)
    assert resolved.state == RESOLVED and resolved.history == [REDRIVEN, RESOLVED]
    assert dead_letter_states(settings).parked_conversations() == {}
    status = group_status(settings, tmp_path, letter.group)
    assert (status["dlq_depth"], status["parked_conversations"]) == (0, 0)
    tail = cli(settings, tmp_path, "tail", "--topic", "dlq", "-n", "50")
    assert f"dead letter {letter.id} of group {letter.group}: resolved" in tail.out
    # Resolved: nothing waits behind it any more.
    listed = cli(settings, tmp_path, "dlq", "list", "--all")
    (line,) = [row for row in listed.out.splitlines() if row.startswith(letter.id)]
    assert "resolved" in line and "parked" not in line, line

    # Unparked: its next event runs at once; a second redrive record applies nothing.
    DeadLetters(settings, letter.group).control(resolved, REDRIVEN, 10)
    record(settings, {"bad": ["m6"]})
    run_once(settings, agents)
    assert seen.by_conversation["bad"] == ["m1", "boom", "m3", "m4", "m5", "m6"]


def group_status(settings: Settings, tmp_path: Path, group: str) -> dict:  # type: ignore[type-arg]
    run = cli(settings, tmp_path, "status", "--group", group, "--format", "json")
    assert run.code == 0, run.err
    (found,) = [g for g in json.loads(run.out)["groups"] if g["group"] == group]
    return found  # type: ignore[no-any-return]


def test_a_redrive_reaches_a_running_runtime(settings: Settings) -> None:
    record(settings, {"bad": ["boom", "after"], "good": ["g1"]})
    seen, broken = Seen(), {"boom"}
    runtime = TriggerRuntime(settings, support_agents(seen, broken), lambda t: None)
    thread = threading.Thread(target=runtime.run)
    thread.start()
    try:
        letter = wait_for(
            lambda: next(iter(dead_letter_states(settings).visible()), None), 60, "a dead letter"
        )
        broken.clear()
        DeadLetters(settings, letter.group).control(letter, REDRIVEN, 10)
        wait_for(
            lambda: seen.by_conversation["bad"] == ["boom", "after"],
            60,
            "the redriven conversation handled in order",
        )
        wait_for(
            lambda: dead_letter_states(settings).find(letter.id).state == RESOLVED,
            60,
            "the letter resolved",
        )
    finally:
        runtime.stop()
        thread.join(30)
    assert seen.by_conversation["good"] == ["g1"]


def test_skip_drops_the_failed_event_and_runs_the_parked_ones(
    settings: Settings, tmp_path: Path
) -> None:
    record(settings, {"bad": ["m1", "boom", "m3"]})
    seen = Seen()
    agents = support_agents(seen, {"boom"})
    run_once(settings, agents)
    (letter,) = dead_letter_states(settings).visible()
    skipped = cli(settings, tmp_path, "dlq", "skip", letter.id)
    assert skipped.code == 0, skipped.err
    progress = run_once(settings, agents)
    assert (progress.skipped, progress.redriven) == (1, 0)
    assert seen.by_conversation["bad"] == ["m1", "m3"]
    assert dead_letter_states(settings).find(letter.id).state == RESOLVED


def test_one_conversations_handlers_run_in_order_under_concurrency(settings: Settings) -> None:
    messages = {f"conv-{n}": [f"{n}-{i}" for i in range(20)] for n in range(40)}
    record(settings, messages)
    seen = Seen()
    agents = Agents("order")

    @agents.on("user_message")
    def note(event, session) -> None:  # type: ignore[no-untyped-def]
        seen.add(event.conversation_id, event.payload["text"])

    runtime = TriggerRuntime(settings, agents, lambda t: None, concurrency=8)
    progress = runtime.run(once=True)
    assert dict(seen.by_conversation) == messages
    assert progress.handled == 800


def test_two_members_share_the_conversations_and_keep_each_ones_order(
    settings: Settings,
) -> None:
    messages = {f"conv-{n}": [f"{n}-{i}" for i in range(30)] for n in range(30)}
    total = sum(len(texts) for texts in messages.values())
    record(settings, messages)
    seen = Seen()
    by_member = [Seen(), Seen()]
    working = [threading.Event(), threading.Event()]

    def member_agents(me: int) -> Agents:
        """The same group ("pair") for both members; each notes what it handled."""
        agents = Agents("pair")

        @agents.on("user_message")
        def note(event, session) -> None:  # type: ignore[no-untyped-def]
            working[me].set()
            if not working[1 - me].is_set():
                # The scenario: a member alone goes slowly (a bounded pause per event,
                # which a rebalance waits out), so that the other joins before the end.
                time.sleep(0.1)
            seen.add(event.conversation_id, event.payload["text"])
            by_member[me].add(event.conversation_id, event.payload["text"])

        return agents

    members = [TriggerRuntime(settings, member_agents(me), lambda t: None) for me in (0, 1)]
    threads = [threading.Thread(target=m.run, kwargs={"once": True}) for m in members]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    # Every event handled (at least once), each conversation's in order.
    assert {c: list(dict.fromkeys(texts)) for c, texts in seen.by_conversation.items()} == (
        messages
    )
    # Between them the members handled every event (a member that handled nothing is not
    # asserted against: on a loaded Kafka one member once took all 900, cause not found).
    handled = [sum(len(texts) for texts in mine.by_conversation.values()) for mine in by_member]
    assert sum(handled) >= total, handled


def test_handlers_are_chosen_by_event_type_and_condition(settings: Settings) -> None:
    with Recorder(settings) as recorder:
        recorder.start_conversation("c1")
        recorder.intent_identified("c1", "triage", "billing", 0.9)
        recorder.intent_identified("c1", "triage", "sales", 0.8)
    ran: list[tuple[str, str]] = []
    agents = Agents("team")

    @agents.on("conversation_started")
    def triage(event, session) -> None:  # type: ignore[no-untyped-def]
        ran.append(("triage", session))

    @agents.on("intent_identified", where=lambda e: e.payload["intent"] == "billing")
    def billing(event, session) -> None:  # type: ignore[no-untyped-def]
        ran.append(("billing", session))

    TriggerRuntime(settings, agents, lambda t: t.handler).run(once=True)
    assert ran == [("triage", "triage"), ("billing", "billing")]


def test_events_a_handler_records_repeat_their_ids_when_it_runs_again(
    settings: Settings,
) -> None:
    record(settings, {"c1": ["hello"]})
    agents = Agents("echo")

    with Recorder(settings, new_event_id=trigger_event_ids) as recorder:

        @agents.on("user_message")
        def echo(event, session) -> None:  # type: ignore[no-untyped-def]
            recorder.agent_message(event.conversation_id, "echo", "hi")

        TriggerRuntime(settings, agents, lambda t: None, group="first").run(once=True)
        TriggerRuntime(settings, agents, lambda t: None, group="second").run(once=True)
    replies = [
        decode(r.value())
        for r in read_partitions(settings, settings.events_topic)
        if decode(r.value())["payload"][0] == "agentlog.AgentMessage"
    ]
    assert len(replies) == 2 and replies[0]["event_id"] == replies[1]["event_id"]


def test_a_retry_and_a_redrive_record_new_ids_not_those_of_the_failed_run(
    settings: Settings, tmp_path: Path
) -> None:
    # A handler that records, then fails, leaves its events on the log; what it records
    # when it runs again (a retry, a redrive) may differ, and must not take their ids,
    # or projections would drop it as a duplicate of what the failed run recorded.
    record(settings, {"c1": ["hello"]})
    agents = Agents("flaky", attempts=2, backoff=0.01, max_backoff=0.02)
    runs = 0
    fixed = threading.Event()

    with Recorder(settings, new_event_id=trigger_event_ids) as recorder:

        @agents.on("user_message")
        def answer(event, session) -> None:  # type: ignore[no-untyped-def]
            nonlocal runs
            runs += 1
            recorder.agent_message(event.conversation_id, "flaky", f"run {runs}")
            if not fixed.is_set():
                raise RuntimeError("the service is down")

        run_once(settings, agents)
        (letter,) = dead_letter_states(settings).visible()
        fixed.set()
        assert cli(settings, tmp_path, "dlq", "redrive", letter.id, "--wait", "0").code == 0
        run_once(settings, agents)
    replies = [
        decode(r.value())
        for r in read_partitions(settings, settings.events_topic)
        if decode(r.value())["payload"][0] == "agentlog.AgentMessage"
    ]
    assert [r["payload"][1]["text"] for r in replies] == ["run 1", "run 2", "run 3"]
    assert len({r["event_id"] for r in replies}) == 3


def test_dlq_commands_name_a_bad_id_in_one_line(settings: Settings, tmp_path: Path) -> None:
    for command in ("show", "redrive", "skip", "purge"):
        run = cli(settings, tmp_path, "dlq", command, "no/such/letter")
        assert run.code != 0
        assert run.err.strip().splitlines() == [
            "error: no dead letter 'no/such/letter' (ids are topic/partition/offset; "
            "`agentlog dlq list` shows them)"
        ]


def test_agents_run_needs_a_module_with_agents(settings: Settings, tmp_path: Path) -> None:
    missing = cli(settings, tmp_path, "agents", "run", "no_such_module_here")
    assert missing.code != 0 and len(missing.err.strip().splitlines()) == 1
    assert "cannot import 'no_such_module_here'" in missing.err
    none = cli(settings, tmp_path, "agents", "run", "helpers.cli")
    assert none.code != 0 and "has no Agents object" in none.err


def test_agents_run_once_runs_the_handlers(settings: Settings, tmp_path: Path) -> None:
    record(settings, {"c1": ["hello"]})
    done = cli(
        settings,
        tmp_path,
        "agents",
        "run",
        "helpers.trigger_agents",
        "--once",
        "--from",
        "earliest",
    )
    assert done.code == 0, done.err
    assert "handled 1" in done.out
    replies = [
        decode(r.value())["payload"]
        for r in read_partitions(settings, settings.events_topic)
        if decode(r.value())["payload"][0] == "agentlog.AgentMessage"
    ]
    assert replies[0][1]["text"] == "you said: hello"


def test_a_runtime_killed_before_committing_runs_handlers_again_with_the_same_event_ids(
    settings: Settings, tmp_path: Path
) -> None:
    texts = [f"m{i}" for i in range(30)]
    record(settings, {"c0": texts[:10], "c1": texts[10:20], "c9": texts})
    killed = agentlog(
        "--bootstrap",
        settings.bootstrap_servers,
        "--topic-prefix",
        settings.topic_prefix,
        "agents",
        "run",
        "helpers.trigger_agents",
        "--from",
        "earliest",
        state_dir=tmp_path,
        env={"AGENTLOG_TEST_KILL_AT": "20"},
    )
    assert killed.code == -9
    done = cli(settings, tmp_path, "agents", "run", "helpers.trigger_agents", "--once")
    assert done.code == 0, done.err
    events = [decode(r.value()) for r in read_partitions(settings, settings.events_topic)]
    asked = [e for e in events if e["payload"][0] == "agentlog.UserMessage"]
    echoes = [e for e in events if e["payload"][0] == "agentlog.AgentMessage"]
    # Every message answered at least once; an answer given twice has the same id.
    prefix = len("you said: ")
    answered = {(e["conversation_id"], e["payload"][1]["text"][prefix:]) for e in echoes}
    assert answered == {(e["conversation_id"], e["payload"][1]["text"]) for e in asked}
    assert len(echoes) > len(asked)
    assert len({e["event_id"] for e in echoes}) == len(asked)
    # ...and in each conversation, in order.
    for conversation in {e["conversation_id"] for e in asked}:
        said = [e["payload"][1]["text"] for e in asked if e["conversation_id"] == conversation]
        heard = [
            e["payload"][1]["text"][prefix:] for e in echoes if e["conversation_id"] == conversation
        ]
        assert list(dict.fromkeys(heard)) == said


def test_a_redrive_that_fails_again_reopens_and_a_parked_failure_takes_over(
    settings: Settings,
) -> None:
    record(settings, {"bad": ["boom", "m2", "bang", "m4"]})
    seen, broken = Seen(), {"boom", "bang"}
    agents = support_agents(seen, broken)
    run_once(settings, agents)
    (letter,) = dead_letter_states(settings).visible()
    DeadLetters(settings, letter.group).control(letter, REDRIVEN, 10)
    progress = run_once(settings, agents)
    assert (progress.redrives_failed, progress.redriven) == (1, 0)
    reopened = dead_letter_states(settings).find(letter.id)
    assert (reopened.state, reopened.history) == (OPEN, [REDRIVEN, "reopened"])
    assert seen.by_conversation["bad"] == []

    broken.discard("boom")  # fixed for one, still broken for the later "bang"
    DeadLetters(settings, letter.group).control(reopened, REDRIVEN, 10)
    run_once(settings, agents)
    assert seen.by_conversation["bad"] == ["boom", "m2"]
    states = dead_letter_states(settings)
    assert states.find(letter.id).state == RESOLVED
    (successor,) = states.visible()[1:]
    assert successor.state == OPEN and successor.conversation == "bad"
    assert [decode(p.value)["payload"][1]["text"] for p in successor.parked] == ["m4"]
    assert states.parked_conversations() == {"agentlog-agents-support": {"bad"}}


def test_load_agents_says_what_is_wrong() -> None:
    with pytest.raises(ConfigurationError, match="not an Agents object"):
        load_agents("helpers.cli:agentlog")
    with pytest.raises(ConfigurationError, match="module 'helpers.cli' has no attribute 'nope'"):
        load_agents("helpers.cli:nope")


def echoes_on_the_log(settings: Settings) -> list[tuple[str, str]]:
    return [
        (event["conversation_id"], event["payload"][1]["text"])
        for event in (decode(r.value()) for r in read_partitions(settings, settings.events_topic))
        if event["payload"][0] == "agentlog.AgentMessage"
    ]


def test_a_new_trigger_group_starts_at_the_end_of_the_log_and_says_so(
    settings: Settings, tmp_path: Path
) -> None:
    # The history (say, the demo's conversations) is on the log before the agents start.
    record(settings, {"old-1": ["hello"], "old-2": ["hi", "anyone?"]})
    first = cli(settings, tmp_path, "agents", "run", "helpers.trigger_agents", "--once")
    assert first.code == 0, first.err
    assert "handled 0" in first.out
    assert "new group agentlog-agents-echo: starting at the end of the log" in first.err
    assert echoes_on_the_log(settings) == []
    # What happens from then on is handled, by the same group, however it is started.
    record(settings, {"new-1": ["now"]})
    second = cli(settings, tmp_path, "agents", "run", "helpers.trigger_agents", "--once")
    assert second.code == 0, second.err
    assert echoes_on_the_log(settings) == [("new-1", "you said: now")]
    assert "new group" not in second.err


def test_from_is_for_a_new_group_only_and_says_so(settings: Settings, tmp_path: Path) -> None:
    record(settings, {"c1": ["before"]})
    assert cli(settings, tmp_path, "agents", "run", "helpers.trigger_agents", "--once").code == 0
    again = cli(
        settings,
        tmp_path,
        "agents",
        "run",
        "helpers.trigger_agents",
        "--once",
        "--from",
        "earliest",
    )
    assert again.code == 0, again.err
    assert "resumes from its committed offsets: --from earliest applies only to a new group" in (
        again.err
    )
    assert echoes_on_the_log(settings) == []


def test_a_new_trigger_group_can_start_at_a_time(settings: Settings, tmp_path: Path) -> None:
    record(settings, {"c1": ["early"]})
    cut = time.time()
    # Record times have millisecond resolution: the late records come 10 ms after the cut.
    wait_for(lambda: time.time() >= cut + 0.01, 5, "the clock to pass the cut by 10 ms")
    record(settings, {"c1": ["late"], "c2": ["later"]})
    from datetime import UTC, datetime

    moment = datetime.fromtimestamp(cut + 0.005, UTC).isoformat()
    done = cli(
        settings, tmp_path, "agents", "run", "helpers.trigger_agents", "--once", "--from", moment
    )
    assert done.code == 0, done.err
    assert "starting at the first event at or after" in done.err
    assert sorted(echoes_on_the_log(settings)) == [
        ("c1", "you said: late"),
        ("c2", "you said: later"),
    ]


def test_from_names_what_it_accepts(settings: Settings, tmp_path: Path) -> None:
    bad = cli(
        settings, tmp_path, "agents", "run", "helpers.trigger_agents", "--once", "--from", "soon"
    )
    assert bad.code != 0
    assert (
        bad.err.strip()
        .splitlines()[-1]
        .endswith(
            "--from 'soon': expected earliest, latest or an ISO 8601 time (2026-11-02T09:00:00Z)"
        )
    )


def test_dlq_redrive_says_when_the_handler_failed_again_and_exits_1(
    settings: Settings, tmp_path: Path
) -> None:
    record(settings, {"bad": ["boom", "after"]})
    seen, broken = Seen(), {"boom"}
    runtime = TriggerRuntime(settings, support_agents(seen, broken), lambda t: None)
    thread = threading.Thread(target=runtime.run)
    thread.start()
    try:
        letter = wait_for(
            lambda: next(iter(dead_letter_states(settings).visible()), None), 60, "a dead letter"
        )
        # Not fixed yet: the runtime runs the handler again, it raises, the letter reopens.
        failed = cli(settings, tmp_path, "dlq", "redrive", letter.id, "--wait", "60")
        assert failed.code == 1, failed.out + failed.err
        assert f"{letter.id}: the handler failed again, the letter is open" in failed.err
        assert "bad stays parked: " in failed.err and "cannot handle boom" in failed.err
        # Fixed: the same command says it is resolved.
        broken.clear()
        fixed = cli(settings, tmp_path, "dlq", "redrive", letter.id, "--wait", "60")
        assert fixed.code == 0, fixed.out + fixed.err
        assert f"{letter.id}: resolved" in fixed.out
    finally:
        runtime.stop()
        thread.join(30)
    assert seen.by_conversation["bad"] == ["boom", "after"]


def test_events_a_fetch_left_out_are_read_again_and_handled(settings: Settings) -> None:
    """What Tansu 0.6 did to tool workers under load, made on purpose for the trigger
    runtime: it is handed the records of a partition with some left out (a fetch answered
    with a later batch). It reads the gap again and runs their handlers, in order;
    without that, those events were never handled, and their offsets committed past."""
    texts = [f"m{n}" for n in range(10)]
    record(settings, {"conv-gap": texts})
    handed = list(read_partitions(settings, settings.events_topic))
    assert len(handed) == 10
    (partition,) = {r.partition() for r in handed}
    seen = Seen()
    runtime = TriggerRuntime(settings, support_agents(seen, set()), lambda t: None)
    runtime.member.track(partition, 0)
    try:
        runtime._take(handed[:3] + handed[7:])  # offsets 3..6 left out of the fetch
        wait_for(
            lambda: runtime.member.unfinished() == 0 and not runtime._running,
            30,
            "the runtime to finish every handed event",
        )
    finally:
        runtime._pool.shutdown()
        runtime.member.consumer.close()
    assert seen.by_conversation["conv-gap"] == texts
