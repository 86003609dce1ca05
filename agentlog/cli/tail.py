"""`agentlog tail`: decode and print events."""

from __future__ import annotations

import click

from agentlog.cli._app import AppContext, cli, pass_app
from agentlog.errors import DecodeError
from agentlog.events import EVENT_TYPES
from agentlog.partitioner import partition_for
from agentlog.reader import partition_offset, read_partitions
from agentlog.render import as_json, event_type_of, one_line
from agentlog.serde import decode
from agentlog.topics import partition_count


@cli.command()
@click.option("--follow", "-f", is_flag=True, help="keep waiting for new events")
@click.option("--conversation", "-c", metavar="ID", help="only this conversation")
@click.option(
    "--type",
    "-t",
    "types",
    multiple=True,
    type=click.Choice(EVENT_TYPES),
    help="only these event types (repeatable)",
)
@click.option("--json", "as_json_lines", is_flag=True, help="one JSON object per line")
@click.option("--limit", "-n", type=click.IntRange(min=1), help="stop after N events")
@pass_app
def tail(
    app: AppContext,
    follow: bool,
    conversation: str | None,
    types: tuple[str, ...],
    as_json_lines: bool,
    limit: int | None,
) -> None:
    """Print the events on the events topic, from the beginning to the end (or on)."""
    settings = app.kafka_settings()
    topic = settings.events_topic
    partitions = None
    if conversation is not None:
        # A conversation lives in one partition: read only that one.
        partitions = [partition_for(conversation, partition_count(settings, topic))]
    shown = undecodable = 0
    for message in read_partitions(settings, topic, partitions=partitions, follow=follow):
        partition, offset = partition_offset(message)
        try:
            record = decode(message.value(), topic=topic, partition=partition, offset=offset)
        except DecodeError as exc:
            undecodable += 1
            click.echo(f"warning: {exc}", err=True)
            continue
        if conversation is not None and record["conversation_id"] != conversation:
            continue
        if types and event_type_of(record) not in types:
            continue
        if as_json_lines:
            click.echo(as_json(record, topic, partition, offset))
        else:
            click.echo(one_line(record, partition, offset))
        shown += 1
        if limit is not None and shown >= limit:
            break
    if undecodable:
        click.echo(f"{undecodable} record(s) could not be decoded (see warnings)", err=True)
