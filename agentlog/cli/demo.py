"""`agentlog demo`: a simulated multi-agent support system recorded to Kafka, read back."""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict

import click

from agentlog import devbroker
from agentlog.cli._app import AppContext, cli, command_name, pass_app
from agentlog.cli.demo_exports import demo_exports
from agentlog.cli.demo_live import demo_live
from agentlog.cli.demo_replay import demo_replay
from agentlog.cli.project import run_projections
from agentlog.consumers import DEFAULT_GROUP
from agentlog.consumers.projection import Row
from agentlog.consumers.queries import ConversationFilter, list_conversations
from agentlog.consumers.sinks import open_sink
from agentlog.demo.simulation import SimulatedClock, seeded_event_ids, simulate
from agentlog.errors import DevBrokerError
from agentlog.producers import Recorder
from agentlog.reader import partition_offset, read_partitions
from agentlog.render import event_type_of
from agentlog.replay.transcript import counted
from agentlog.serde import decode
from agentlog.settings import Settings
from agentlog.topics import create_topics


def _demo_settings(settings: Settings) -> Settings:
    """Configured Kafka, else the running dev broker, else a new dev broker."""
    if settings.bootstrap_servers:
        return settings
    try:
        broker = devbroker.current(settings)
    except DevBrokerError as exc:
        click.echo(f"note: {exc}; starting a new one", err=True)
        broker = None
    if broker is None:
        broker = devbroker.start(settings, say=lambda line: click.echo(f"note: {line}"))
        click.echo(
            f"started the embedded dev broker ({broker.engine}) at {broker.bootstrap} "
            f"(pid {broker.pid}); "
            "it keeps running for the next commands, `agentlog dev down` stops it"
        )
        if broker.memory_only:
            click.echo(f"note: {devbroker.MEMORY_ONLY_WARNING}")
    return settings.with_overrides(bootstrap_servers=broker.bootstrap)


@cli.command()
@click.option(
    "--conversations", "-n", type=click.IntRange(1, 1_000_000), default=200, show_default=True
)
@click.option("--seed", type=int, help="make the run reproducible (default: random, printed)")
@click.option(
    "--live/--no-live",
    default=True,
    show_default=True,
    help="also run a few conversations live through the agents runtime and tool workers",
)
@pass_app
def demo(app: AppContext, conversations: int, seed: int | None, live: bool) -> None:
    """Record a simulated customer-support agent system to Kafka and read it back."""
    settings = _demo_settings(app.settings)
    for name, outcome in create_topics(settings).items():
        if outcome == "created":
            click.echo(f"created topic {name}")
    if seed is None:
        seed = random.SystemRandom().randrange(1_000_000)
    click.echo(
        f"simulating {conversations} conversations (seed {seed}) on {settings.bootstrap_servers}"
    )

    clock = SimulatedClock()
    _phase(f"recording {conversations} conversations")
    started = time.perf_counter()
    with Recorder(
        settings,
        service="acme-support",
        version="demo-1",
        clock_micros=clock,
        new_event_id=seeded_event_ids(random.Random(f"event-ids-{seed}")),
    ) as recorder:
        result = simulate(recorder, clock, conversations, seed)
    elapsed = time.perf_counter() - started
    # A rate over a few hundred events measures the connection set-up, not recording.
    rate = f", {result.events / elapsed:,.0f} events/s" if result.events >= 10_000 else ""
    click.echo(
        f"recorded {result.events} events in {elapsed:.2f}s (flushed and acknowledged{rate})"
    )
    _read_back(settings, set(result.conversations), result.events)
    if live:
        demo_live(settings, seed, _phase)
    outcomes = _project(settings, result.conversations)
    demo_replay(settings, result, _phase)
    exported = demo_exports(settings, result.conversations, seed)
    me = command_name()  # what runs agentlog here: not always on PATH
    click.echo("next:")
    click.echo(f"  {me} tail --conversation " + result.conversations[0])
    click.echo(f"  {me} conversations list --outcome {_example_outcome(outcomes)}")
    click.echo(f"  {me} project status")
    click.echo(f"  {me} export verify {exported}")
    if live:
        click.echo(f"  {me} dlq list --all")
    click.echo(f"  {me} status")


def _example_outcome(outcomes: Counter[str]) -> str:
    """An outcome this run's conversations ended with, escalated where there is one."""
    if outcomes["escalated"] or not outcomes:
        return "escalated"
    return outcomes.most_common(1)[0][0]


def _project(settings: Settings, mine: list[str]) -> Counter[str]:
    """Run the built-in projections until caught up and show some of this run's results."""
    _phase("projecting into the sink (built-in projections, exactly once)")
    started = time.perf_counter()
    progress = run_projections(settings, once=True, quiet=True)
    if progress.interrupted:
        click.echo(
            f"projection stopped after {counted(progress.applied, 'event')} (the batch in hand "
            f"was stored); `agentlog project run --once` applies the rest",
            err=True,
        )
        raise KeyboardInterrupt
    elapsed = time.perf_counter() - started
    click.echo(
        f"projected {progress.applied} new events into {settings.sink_shown} in {elapsed:.1f}s "
        f"({progress.duplicates} duplicates skipped; consumer group {DEFAULT_GROUP})"
    )
    _phase("summarising this run's conversations")
    wanted = set(mine)
    with open_sink(settings.sink_url, read_only=True) as sink:
        rows = list_conversations(sink, ConversationFilter(limit=len(wanted) + 1_000_000_000))
    ours = [r for r in rows if r["conversation_id"] in wanted]
    outcomes = Counter(r["outcome"] or r["status"] for r in ours)
    click.echo("outcomes: " + ", ".join(f"{k} {v}" for k, v in outcomes.most_common()))
    ended = Counter(r["outcome"] for r in ours if r["outcome"])
    examples: dict[str, Row] = {}
    for row in ours:
        examples.setdefault(row["outcome"] or row["status"], row)
    for row in examples.values():
        click.echo(
            f"  {row['conversation_id']}: {row['outcome'] or row['status']}, agents "
            f"{' -> '.join(row['agents'])}, {_count(row['turns'], 'turn')}, "
            f"{_count(row['tool_calls'], 'tool call')} "
            f"({_count(row['tool_errors'], 'failed attempt')}), "
            f"{row['input_tokens'] + row['output_tokens']:,} tokens"
        )
    return ended


def _read_back(settings: Settings, mine: set[str], written: int) -> None:
    topic = settings.events_topic
    types: Counter[str] = Counter()
    partitions_of: dict[str, set[int]] = defaultdict(set)
    last_seen: dict[str, int] = {}
    out_of_order = 0
    event_ids: set[str] = set()
    found = 0
    _phase(f"reading {topic} back")
    started = time.perf_counter()
    scanned = 0
    from agentlog.errors import DecodeError

    corrupt: list[DecodeError] = []  # records that are no agentlog event: told, not fatal
    for message in read_partitions(settings, topic):
        scanned += 1
        partition, offset = partition_offset(message)
        try:
            record = decode(message.value(), topic=topic, partition=partition, offset=offset)
        except DecodeError as exc:
            corrupt.append(exc)
            continue
        cid = record["conversation_id"]
        if cid not in mine:
            continue
        found += 1
        event_ids.add(record["event_id"])
        types[event_type_of(record)] += 1
        partitions_of[cid].add(partition)
        if record["occurred_at"] < last_seen.get(cid, 0):
            out_of_order += 1
        last_seen[cid] = record["occurred_at"]
    elapsed = time.perf_counter() - started
    rate = f" ({scanned / max(elapsed, 1e-9):,.0f} records/s)" if scanned >= 10_000 else ""
    click.echo(f"read back {scanned} records of {topic} in {elapsed:.2f}s{rate}")
    if corrupt:
        first = corrupt[0]
        click.echo(
            f"warning: {_count(len(corrupt), 'record')} of {topic} could not be decoded and "
            f"{'was' if len(corrupt) == 1 else 'were'} skipped (the first at {first.topic}"
            f"[{first.partition}]@{first.offset}: {first.reason}; "
            f"`agentlog tail --from-beginning` lists them)",
            err=True,
        )
    click.echo(f"this run's events: {found} on the topic, {written} written")
    if found != len(event_ids):
        click.echo(
            f"  {found - len(event_ids)} repeat an earlier run with the same seed "
            "(same event ids: projections apply them once)"
        )
    for kind, count in types.most_common():
        click.echo(f"  {kind:<24} {count:>7}")
    split = sum(1 for p in partitions_of.values() if len(p) > 1)
    used = sorted({p for ps in partitions_of.values() for p in ps})
    click.echo(
        f"conversations: {len(partitions_of)}, on partitions {used}; "
        f"split across partitions: {split}; events out of order: {out_of_order}"
    )


def _phase(what: str) -> None:
    """Say what the demo is doing now, so a long phase is never silent."""
    click.echo(f"... {what}", err=True)


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}" if number == 1 else f"{number} {thing}s"
