"""The demo's support agents live: trigger handlers on the agents runtime, their tools
run by real tool workers, the simulated world as their model and their services.

The handlers are the demo's agent code (`agentlog.demo.agents`) cut at the events it
waits for:

- `triage` on a conversation's first `user_message`: triage, hand over (`route`);
- `billing`, `support`, `sales` on `intent_identified` of their intent: work on the
  request with tools up to the answer (`work_on_request`); a hand-over ends the
  conversation, an answer waits for the customer;
- `wrap_up` on a later `user_message`: the customer answered (`after_the_reply`);
- `closed` on `conversation_ended`: nothing to do but note it (the demo waits on it).

The tools run on `ToolWorker`s (threads of this process, one consumer group) from a
`ToolRegistry` whose services are the live customers' worlds. Two of them misbehave:
the warehouse behind `check_order_status` hangs (every attempt hits the registry's
timeout, is retried, then the call fails and the agent hands over, as its policy says),
and the payment service behind `issue_refund` refuses connections until the demo
repairs it. The agents' policy cannot do without refunds (`Policy.retry_later`): the
handler raises, the runtime tries it again, then dead-letters the event and parks the
conversation, whose next message waits behind it. The demo repairs the service and
redrives the letter as `agentlog dlq redrive` does: the handler runs again, then the
parked message, in order, and the conversation ends.

The demo's runtime and tool workers start at the ends of the topics (their groups'
offsets are committed there first), so they answer only what is written from then on;
the tool workers' group is the demo's own, so another agent's tool call requested on
the same topics meanwhile reaches them too (docs/demo.md).
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from agentlog.cli.dlq import act_on_letter
from agentlog.consumers.consumer_groups import delete_if_left
from agentlog.consumers.dead_letters import (
    OPEN,
    REDRIVEN,
    RESOLVED,
    TRIGGER,
    LetterState,
    dead_letter_states,
)
from agentlog.consumers.projection import RecordedEvent
from agentlog.consumers.tools import ToolRegistry, ToolWorker
from agentlog.consumers.triggers import Agents
from agentlog.demo.agents import (
    REPLIED,
    TOOLS,
    Policy,
    after_the_reply,
    route,
    work_on_request,
)
from agentlog.demo.world import World
from agentlog.errors import ConfigurationError, DemoError
from agentlog.kafka_config import group_consumer_config
from agentlog.producers import Recorder
from agentlog.reader import partition_ends
from agentlog.runtime import LiveSession, Transcripts, agents_runtime
from agentlog.settings import Settings

AGENTS_NAME = "acme-support"
TOOL_GROUP = "agentlog-demo-tools"
SLOW_TOOL = "check_order_status"  # its warehouse hangs
FAILING_TOOL = "issue_refund"  # its payment service refuses connections until repaired
SLOW_TOOL_TIMEOUT_S = 0.25
FOLLOW_UP = "Hello? Is my refund on its way?"
# The live customers' worlds are seeded apart from the bulk simulation's.
WORLD_NUMBERS_FROM = 1_000_000
# The policy the live agents work within: a refund they cannot make is tried again later.
LIVE_POLICY = Policy(retry_later=frozenset({FAILING_TOOL}))
# Every wait of the live phase ends by then (seconds).
DEADLINE_S = 60.0


# -- the services behind the tools ------------------------------------------------------


@dataclass
class CallTally:
    """How the tool calls ended, as the services saw their attempts."""

    attempts: Counter[str] = field(default_factory=Counter)  # completed, timed out, refused
    last: dict[str, tuple[str, str]] = field(default_factory=dict)  # call id -> tool, how

    def calls(self) -> Counter[str]:
        return Counter(how for _, how in self.last.values())


class Backend:
    """The live customers' worlds as the services the tools call, and as the model."""

    def __init__(self, worlds: dict[str, World]) -> None:
        self.worlds = worlds
        self.payments_up = threading.Event()  # the payment service is down until repaired
        self.tally = CallTally()
        self._lock = threading.Lock()
        # Which customer a tool call is about, by the arguments their agent passes.
        self._customer_of: dict[tuple[str, str], World] = {}
        for world in worlds.values():
            for name, arguments in world.plan():
                self._customer_of[(name, _canonical(arguments))] = world

    def llm(self, messages: Any, *, model: str, agent: str, conversation_id: str, **_: Any) -> Any:
        world = self.worlds[conversation_id]
        with self._lock:  # a world's generator is not shared between threads
            return world.llm(messages, model, agent)

    def answer(self, name: str, arguments: dict[str, Any], call_id: str) -> Any:
        world = self._customer_of.get((name, _canonical(arguments)))
        if world is None:
            raise LookupError(f"no customer has {name}({_canonical(arguments)})")
        with self._lock:
            result = world.result(name, arguments)
        self.note(call_id, name, "completed")
        return result

    def note(self, call_id: str, name: str, how: str) -> None:
        with self._lock:
            self.tally.attempts[how] += 1
            self.tally.last[call_id] = (name, how)


def _canonical(arguments: dict[str, Any]) -> str:
    return json.dumps(arguments, sort_keys=True)


def demo_tools(backend: Backend) -> ToolRegistry:
    """The demo's tools: each asks the backend; the warehouse hangs, the payment
    service refuses connections while it is down."""
    registry = ToolRegistry(
        timeout=5.0, attempts=3, transient=(ConnectionError, TimeoutError), backoff=0.05,
        max_backoff=0.2,
    )  # fmt: skip
    for name in sorted({name for tools in TOOLS.values() for name, _, _ in tools}):
        if name not in (SLOW_TOOL, FAILING_TOOL):
            registry.add(_service(backend, name), name=name)

    async def check_order_status(order_id: str, *, tool_call_id: str) -> Any:
        try:
            await asyncio.sleep(DEADLINE_S)  # the warehouse never answers in time
        except asyncio.CancelledError:  # the registry's timeout
            backend.note(tool_call_id, SLOW_TOOL, "timed out")
            raise
        return backend.answer(SLOW_TOOL, {"order_id": order_id}, tool_call_id)

    def issue_refund(invoice_id: str, amount: float, *, tool_call_id: str) -> Any:
        if not backend.payments_up.is_set():
            backend.note(tool_call_id, FAILING_TOOL, "refused")
            raise ConnectionRefusedError("payment service: connection refused")
        arguments = {"invoice_id": invoice_id, "amount": amount}
        return backend.answer(FAILING_TOOL, arguments, tool_call_id)

    registry.add(check_order_status, timeout=SLOW_TOOL_TIMEOUT_S, attempts=2)
    registry.add(issue_refund)
    return registry


def _service(backend: Backend, name: str) -> Callable[..., Any]:
    def tool(*, tool_call_id: str, **arguments: Any) -> Any:
        return backend.answer(name, arguments, tool_call_id)

    tool.__name__ = name
    return tool


# -- the agents -------------------------------------------------------------------------


class Conversations:
    """Where each live conversation is: waiting for the agents, answered (waiting for
    the customer), or ended with an outcome."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.replied: set[str] = set()
        self.outcomes: dict[str, str] = {}
        self.changed = threading.Condition()

    def note_reply(self, conversation_id: str) -> None:
        with self.changed:
            self.replied.add(conversation_id)
            self.changed.notify_all()

    def note_end(self, conversation_id: str, outcome: str) -> None:
        with self.changed:
            self.outcomes.setdefault(conversation_id, outcome)
            self.changed.notify_all()

    def wait(
        self,
        condition: Callable[[], bool],
        until: float,
        what: str,
        *background: _Background,
        stop_requests: Callable[[], int] = lambda: 0,
    ) -> None:
        """Until `condition()` holds (looked at on every change, at least every 50 ms);
        a background thread's failure or the deadline ends the wait with an error, a
        request to stop with KeyboardInterrupt."""
        while not condition():
            _raise_if_stop_requested(stop_requests)
            for thread in background:
                thread.check()
            if time.monotonic() > until:
                raise DemoError(f"the live agents did not {what} within {DEADLINE_S:g}s")
            with self.changed:
                self.changed.wait(0.05)


def _raise_if_stop_requested(stop_requests: Callable[[], int]) -> None:
    """The user asked the live phase to stop: end it the way Ctrl-C would."""
    if stop_requests():
        raise KeyboardInterrupt


class _Background:
    """A thread running `target`; `check()` raises what it raised."""

    def __init__(self, target: Callable[[], object], name: str) -> None:
        self._target = target
        self._failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._target()
        except BaseException as exc:  # handed to the waiting demo by check()
            self._failure = exc

    def check(self) -> None:
        if self._failure is not None:
            raise self._failure

    def join(self) -> None:
        self.thread.join(DEADLINE_S)
        self.check()


def support_agents(
    backend: Backend, conversations: Conversations, transcripts: Transcripts
) -> Agents:
    """The demo's agents as handlers of the live customers' events."""
    agents = Agents(AGENTS_NAME, attempts=2, backoff=0.05, max_backoff=0.2, llm=backend.llm)

    def ours(event: RecordedEvent) -> bool:
        return event.conversation_id in backend.worlds

    @agents.on("user_message", where=lambda e: ours(e) and transcripts.note(e) == 0)
    def triage(event: RecordedEvent, session: LiveSession) -> None:
        route(session)

    def specialist(intent: str, event: RecordedEvent, session: LiveSession) -> None:
        outcome = work_on_request(session, intent, LIVE_POLICY)
        if outcome == REPLIED:
            conversations.note_reply(session.conversation_id)
        else:
            session.end_conversation(outcome)

    def routed_to(intent: str) -> Callable[[RecordedEvent], bool]:
        return lambda e: ours(e) and e.payload["intent"] == intent

    for intent in TOOLS:
        agents.on("intent_identified", where=routed_to(intent), name=intent)(
            functools.partial(specialist, intent)
        )

    @agents.on("user_message", where=lambda e: ours(e) and transcripts.note(e) > 0)
    def wrap_up(event: RecordedEvent, session: LiveSession) -> None:
        session.end_conversation(after_the_reply(session))

    @agents.on("conversation_ended", where=ours)
    def closed(event: RecordedEvent, session: LiveSession) -> None:
        transcripts.forget(event.conversation_id)
        conversations.note_end(event.conversation_id, str(event.payload["outcome"]))

    return agents


# -- the run ----------------------------------------------------------------------------


def live_cast(seed: int, count: int) -> dict[str, World]:
    """`count` customers who stay for the answer, the same for a seed: one wants a
    refund (the payment service is down), one asks about an order (the warehouse
    hangs), the others want neither a refund nor a person."""
    if count < 2:
        raise ConfigurationError(f"the live phase needs at least 2 customers, not {count}")
    run = uuid.uuid4().hex[:6]  # a fresh conversation per customer on every run
    refund: World | None = None
    order: World | None = None
    others: list[World] = []
    number = WORLD_NUMBERS_FROM
    while refund is None or order is None or len(others) < max(0, count - 2):
        world = World.of(seed, number)
        number += 1
        customer = world.customer
        tools = {name for name, _ in world.plan()}
        if len(customer.messages) < 2 or customer.asks_for_a_person:
            continue
        if FAILING_TOOL in tools:
            refund = refund or world
        elif SLOW_TOOL in tools and order is None:
            order = world
        elif len(others) < count - 2:
            others.append(world)
    cast = [order, *others]
    cast.insert(min(2, len(cast)), refund)
    return {f"live-{seed}-{run}-{n:02d}": world for n, world in enumerate(cast[:count])}


@dataclass
class LiveResult:
    conversations: list[str]
    outcomes: dict[str, str]
    group: str
    tool_group: str
    workers: int
    tool_calls: Counter[str]  # completed, timed out, refused (each call's last attempt)
    tool_attempts: Counter[str]
    handler_retries: int
    dead_lettered: int
    parked: int
    letter_id: str
    letter_conversation: str
    letter_error: str
    redrive: str
    seconds: float
    log: list[str] = field(default_factory=list)  # what happened, in order


def run_live(
    settings: Settings,
    seed: int,
    count: int = 8,
    workers: int = 3,
    *,
    on_step: Callable[[str], None] | None = None,
    stop_requests: Callable[[], int] = lambda: 0,
) -> LiveResult:
    """Run `count` live conversations through the agents runtime and `workers` tool
    workers; one ends in the DLQ, parks, is redriven and ends. Bounded by DEADLINE_S.

    `stop_requests()` counts the times the user asked to stop (the CLI counts Ctrl-C and
    SIGTERM as flags, so that no KeyboardInterrupt lands inside a Kafka client call,
    where confluent-kafka turns it into a TypeError). The first request ends the phase at
    its next wait, after resolving the dead letter it made; a second leaves the letter.
    Either way the phase ends with KeyboardInterrupt. A KeyboardInterrupt raised into the
    phase (no CLI around it) is handled the same way."""
    started = time.monotonic()
    until = started + DEADLINE_S
    steps: list[str] = []

    def step(line: str) -> None:
        steps.append(line)
        if on_step is not None:
            on_step(line)

    worlds = live_cast(seed, count)
    ids = list(worlds)
    backend = Backend(worlds)
    conversations = Conversations(ids)
    transcripts = Transcripts()
    agents = support_agents(backend, conversations, transcripts)
    # The demo's agents and workers answer the customers who write from now on.
    group, tool_group = demo_group(settings, agents.group), demo_group(settings, TOOL_GROUP)
    _start_at_end(settings, group, settings.events_topic)
    _start_at_end(settings, tool_group, settings.tool_requests_topic)
    pool = [ToolWorker(settings, demo_tools(backend), group=tool_group) for _ in range(workers)]
    with (
        agents_runtime(
            settings,
            agents,
            service=AGENTS_NAME,
            version="demo-live",
            tool_timeout=DEADLINE_S,
            transcripts=transcripts,
            group=group,
            concurrency=max(4, count),
        ) as runtime,
        Recorder(settings, service="acme-chat", version="demo-live") as channel,
        _running(pool) as pool_threads,
    ):
        running = _Background(runtime.run, "demo-agents-runtime")
        background = (running, *pool_threads)

        def wait(condition: Callable[[], bool], what: str) -> None:
            conversations.wait(condition, until, what, *background, stop_requests=stop_requests)

        answered: set[str] = set()

        def answer_replies() -> None:
            """Each customer answers their agent's reply (once)."""
            for cid in sorted(conversations.replied - answered):
                answered.add(cid)
                customer = worlds[cid].customer
                channel.user_message(cid, customer.messages[1], user_id=customer.user_id)
            channel.flush(10)

        def dead_lettered() -> bool:
            answer_replies()
            return runtime.progress.dead_lettered >= 1

        def all_ended() -> bool:
            answer_replies()
            return len(conversations.outcomes) == count

        opened: LetterState | None = None  # the dead letter, once there is one
        try:
            for cid, world in worlds.items():
                customer = world.customer
                channel.start_conversation(
                    cid, channel=customer.channel, user_id=customer.user_id,
                    metadata={"demo": "live"},
                )  # fmt: skip
                channel.user_message(cid, customer.messages[0], user_id=customer.user_id)
            channel.flush(10)
            step(f"{count} customers wrote in; agents {group}, {workers} tool workers")
            _raise_if_stop_requested(stop_requests)

            wait(dead_lettered, "dead-letter the refund")
            letter = opened = _open_letter(settings, group, set(ids), until, stop_requests)
            conversation = letter.conversation or ""
            step(
                f"dead letter {letter.id}: {letter.handler} failed {letter.attempts} times "
                f"({letter.error}); {conversation} is parked"
            )
            customer = worlds[conversation].customer
            answered.add(conversation)  # they write again before any answer: it waits
            channel.user_message(conversation, FOLLOW_UP, user_id=customer.user_id)
            channel.flush(10)
            wait(lambda: runtime.progress.parked >= 1, "park the customer's next message")
            step(f"{conversation}'s next message ({FOLLOW_UP!r}) is parked behind it")
            _raise_if_stop_requested(stop_requests)
            backend.payments_up.set()
            step("the payment service is back; redriving the letter (as `agentlog dlq redrive`)")
            states = dead_letter_states(settings, idle_timeout=5.0)
            redrive = act_on_letter(settings, states, letter.id, group, REDRIVEN)
            step(redrive)
            wait(all_ended, "end every conversation")
            wait(lambda: runtime.progress.redriven >= 1, "resolve the redriven letter")
        except KeyboardInterrupt:
            # Ctrl-C: leave no open letter or parked conversation behind (status would
            # report them for ever), or say which and how to finish them.
            _finish_on_interrupt(settings, group, opened, backend, step, stop_requests)
            raise
        finally:
            runtime.stop()
            running.join()
        progress = runtime.progress
    tally = backend.tally
    return LiveResult(
        conversations=ids,
        outcomes=dict(conversations.outcomes),
        group=group,
        tool_group=tool_group,
        workers=workers,
        tool_calls=tally.calls(),
        tool_attempts=Counter(tally.attempts),
        handler_retries=progress.retried,
        dead_lettered=progress.dead_lettered,
        parked=progress.parked,
        letter_id=letter.id,
        letter_conversation=conversation,
        letter_error=letter.error,
        redrive=redrive,
        seconds=time.monotonic() - started,
        log=steps,
    )


def _finish_on_interrupt(
    settings: Settings,
    group: str,
    letter: LetterState | None,
    backend: Backend,
    step: Callable[[str], None],
    stop_requests: Callable[[], int],
) -> None:
    """The live phase was interrupted: redrive the dead letter it made (the service is
    back) and let the runtime, still running, resolve it, for up to FINISH_S seconds or
    until the user asks to stop again."""
    asked_before = stop_requests()
    states = dead_letter_states(settings, idle_timeout=5.0)
    found = letter or next(
        (lt for lt in states.visible() if lt.group == group and lt.parks_conversation), None
    )
    if found is None:
        step("interrupted: no dead letter was left open")
        return
    step(f"interrupted: resolving dead letter {found.id} first (Ctrl-C again to leave it)")
    try:
        backend.payments_up.set()
        if states.find(found.id, group).state == OPEN:
            act_on_letter(settings, states, found.id, group, REDRIVEN)
        deadline = time.monotonic() + FINISH_S
        while time.monotonic() < deadline and stop_requests() <= asked_before:
            if (
                dead_letter_states(settings, idle_timeout=5.0).find(found.id, group).state
                == RESOLVED
            ):
                step(f"dead letter {found.id} resolved: {found.conversation} is no longer parked")
                return
            time.sleep(0.2)  # the runtime's answer is a record on the dead-letter topic
    except KeyboardInterrupt:
        pass
    step(
        f"dead letter {found.id} of group {group} is left unresolved with "
        f"{found.conversation} parked behind it (the demo's agents no longer run to finish "
        f"it): `agentlog dlq list --all` shows it, `agentlog status --forget {group}` "
        "leaves the group out of status"
    )


# How long an interrupted live phase waits for its dead letter to be resolved.
FINISH_S = 15.0


def demo_group(settings: Settings, name: str) -> str:
    """The demo's consumer group `name` on these topics. Demos on other topic prefixes of
    one broker (tests do that) get groups of their own, so their members never share a
    group: a group subscribed to other topics would rebalance, or wedge on Tansu."""
    if settings.topic_prefix == Settings.model_fields["topic_prefix"].default:
        return name
    return f"{name}.{settings.topic_prefix.rstrip('.')}"


def _open_letter(
    settings: Settings,
    group: str,
    ids: set[str],
    until: float,
    stop_requests: Callable[[], int],
) -> LetterState:
    """The open trigger letter of one of the live conversations."""
    while True:
        _raise_if_stop_requested(stop_requests)
        states = dead_letter_states(settings, idle_timeout=5.0)
        for letter in states.letters.values():
            if (
                letter.group == group
                and letter.kind == TRIGGER
                and letter.state == OPEN
                and letter.conversation in ids
            ):
                return letter
        if time.monotonic() > until:
            raise DemoError(f"no dead letter of {group} arrived within {DEADLINE_S:g}s")
        time.sleep(0.05)


def _start_at_end(settings: Settings, group: str, topic: str) -> None:
    """Start `group` afresh at the ends of `topic`, so its members take only what is
    written from now on (the ends from a fetch's high watermark, never ListOffsets).

    A group all of whose members left (an earlier demo's) is deleted first: Tansu can keep
    a reused group's rebalance from finishing when new members join (three tool workers
    started again and again in one group, measured: of 22 restarts, 2 were never assigned
    within 60 s and 5 waited 12-44 s; in a new or a deleted group, 31 of 31 within 4.1 s).
    A group with members is used as it is."""
    delete_if_left(settings, group)
    ends = partition_ends(settings, topic, timeout=settings.assignment_timeout_s)
    consumer = Consumer(group_consumer_config(settings, group))
    deadline = time.monotonic() + settings.assignment_timeout_s
    try:
        while True:
            try:
                consumer.commit(
                    offsets=[TopicPartition(topic, p, end) for p, end in sorted(ends.items())],
                    asynchronous=False,
                )
                return
            except KafkaException as exc:
                # Kafka's coordinator loads a group again after a delete ("load in
                # progress"): a moment's wait, bounded.
                error = exc.args[0]
                again = error.retriable() or error.code() in _COORDINATOR_MOVING
                if not again or time.monotonic() > deadline:
                    raise DemoError(
                        f"cannot start group {group} at the end of {topic}: {error.str()} "
                        f"(waited up to {settings.assignment_timeout_s:.0f}s for its "
                        "coordinator)"
                    ) from None
                time.sleep(0.1)
    finally:
        consumer.close()


# A group's coordinator that is loading or moving it answers so for a moment.
_COORDINATOR_MOVING = {
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
}


@contextmanager
def _running(pool: list[ToolWorker]) -> Iterator[list[_Background]]:
    threads = [_Background(w.run, f"demo-tool-worker-{n}") for n, w in enumerate(pool)]
    try:
        yield threads
    finally:
        for worker in pool:
            worker.stop()
        for thread in threads:
            thread.join()
