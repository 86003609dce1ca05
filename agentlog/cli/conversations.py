"""`agentlog conversations list|show`: projected conversation state."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from agentlog.cli._app import AppContext, cli, pass_app, reading_sink, sink_option
from agentlog.consumers.projections.conversations import STATUSES
from agentlog.consumers.projections.tool_calls import finally_failed
from agentlog.consumers.queries import ConversationFilter, conversation, list_conversations
from agentlog.display import visible
from agentlog.replay.transcript import counted
from agentlog.serde import datetime_of, micros_of


def _time(micros: int | None) -> str:
    return "-" if micros is None else datetime_of(micros).strftime("%Y-%m-%d %H:%M:%S")


def _latency(latency_ms: float | None) -> str:
    # Whole milliseconds, as `replay` shows them (the column keeps the float's noise).
    return "-" if latency_ms is None else f"{latency_ms:,.0f} ms"


def _micros(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    return micros_of(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


@cli.group()
def conversations() -> None:
    """Browse projected conversations (run `agentlog project run` first)."""


@conversations.command("list")
@sink_option
@click.option("--status", type=click.Choice(STATUSES), help="still going, or over")
@click.option("--outcome", help="how it ended: resolved, escalated, abandoned, failed, ...")
@click.option("--agent", help="only conversations this agent took part in")
@click.option("--since", type=click.DateTime(), help="active at or after (UTC)")
@click.option("--until", type=click.DateTime(), help="started before (UTC)")
@click.option("--limit", type=click.IntRange(1, 100_000), default=20, show_default=True)
@pass_app
def list_command(
    app: AppContext,
    sink: str | None,
    status: str | None,
    outcome: str | None,
    agent: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> None:
    """The most recently active conversations, newest first."""
    settings = app.settings.with_overrides(sink=sink)
    where = ConversationFilter(
        status=status,
        outcome=outcome,
        agent=agent,
        since_micros=_micros(since),
        until_micros=_micros(until),
        limit=limit + 1,  # one more: to know whether the list stops at the limit
    )
    with reading_sink(settings.sink_url, settings.events_topic) as opened:
        rows = list_conversations(opened, where)
    more = len(rows) > limit
    rows = rows[:limit]
    if not rows:
        click.echo("no conversations match")
        return
    click.echo(
        f"{'conversation':<22} {'status':<10} {'outcome':<10} {'agents':<24} "
        f"{'turns':>5} {'tools':>5} {'errors':>6} {'tokens':>7}  last activity"
    )
    for row in rows:
        tokens = row["input_tokens"] + row["output_tokens"]
        click.echo(
            visible(
                f"{row['conversation_id']:<22} {row['status']:<10} {row['outcome'] or '-':<10} "
                f"{','.join(row['agents']):<24} {row['turns']:>5} {row['tool_calls']:>5} "
                f"{row['tool_errors']:>6} {tokens:>7}  {_time(row['last_activity'])}"
            )
        )
    if more:
        click.echo(
            f"(the {limit} most recently active; more match: --limit {min(limit * 10, 100_000)} "
            "shows more, --since/--until/--outcome/--agent narrow it)",
            err=True,
        )


@conversations.command()
@click.argument("conversation_id")
@sink_option
@pass_app
def show(app: AppContext, conversation_id: str, sink: str | None) -> None:
    """One conversation: state, tool calls, and where it sits in the log."""
    settings = app.settings.with_overrides(sink=sink)
    with reading_sink(settings.sink_url, settings.events_topic) as opened:
        row, calls, index = conversation(opened, conversation_id)
    if row is None:
        raise click.ClickException(f"no conversation {conversation_id!r} in {settings.sink_shown}")
    for field in ("status", "outcome", "channel", "user_id", "intent", "current_agent"):
        click.echo(visible(f"{field:<16} {row[field] or '-'}"))
    click.echo(visible(f"{'agents':<16} {', '.join(row['agents'])}"))
    click.echo(f"{'turns':<16} {row['turns']}")
    click.echo(
        f"{'llm calls':<16} {row['llm_calls']} ({row['input_tokens']:,} in / "
        f"{row['output_tokens']:,} out tokens)"
    )
    click.echo(
        f"{'tool calls':<16} {row['tool_calls']} ({row['tool_errors']} failed attempts, "
        f"{row['open_tool_calls']} open)"
    )
    click.echo(f"{'escalations':<16} {row['escalations']}")
    click.echo(f"{'active':<16} {_time(row['first_activity'])} .. {_time(row['last_activity'])}")
    if index is not None:
        click.echo(
            f"{'in the log':<16} {index['topic']}[{index['partition']}] offsets "
            f"{index['first_offset']}..{index['last_offset']} "
            f"({counted(index['event_count'], 'event')})"
        )
    for call in calls:
        detail = call["error_type"] if finally_failed(call) else _latency(call["latency_ms"])
        click.echo(
            visible(
                f"  tool {call['tool_name']:<20} {call['status']:<10} attempts "
                f"{call['attempts']} {detail}  {call['arguments_json']}"
            )
        )
