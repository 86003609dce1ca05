"""`agentlog replay CONVERSATION`: a conversation from its offsets, as it happened or as
it stood at a moment; `replay diff A B`: two conversations aligned event by event;
`replay projections --into SINK`: projections rebuilt from the log, compared with the
live ones; `replay rerun CONVERSATION --agent M:F`: agent code re-run on its recording."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agentlog.analytics.archive_files import topic_root
from agentlog.analytics.archive_reader import ParquetArchive
from agentlog.cli._app import AppContext, checked_out, cli, pass_app, sink_option
from agentlog.cli._progress import EventProgress, progress_options, wanted
from agentlog.consumers import BUILT_IN, load_projection
from agentlog.consumers.projection import Key
from agentlog.display import visible
from agentlog.errors import ArchiveError, ConfigurationError
from agentlog.loading import load_callable
from agentlog.private_files import replaced_whole
from agentlog.producers import Recorder
from agentlog.replay import At, RecordedCall, RerunReport, parse_at, replay_conversation
from agentlog.replay.conversation import Source
from agentlog.replay.diff import diff_conversations, diff_document, diff_lines
from agentlog.replay.export import as_json, as_jsonl
from agentlog.replay.projections import rebuild_projections
from agentlog.replay.transcript import counted, plain, transcript
from agentlog.runtime import rerun
from agentlog.settings import Settings

archive_dir_option = click.option(
    "--archive-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="the Parquet archive (default: AGENTLOG_ARCHIVE_DIR, else STATE_DIR/archive)",
)


class _ConversationByDefault(click.Group):
    """`agentlog replay ID ...` means `agentlog replay show ID ...`: the conversation is
    what a reviewer types; the subcommands are named."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands:
            # No name of its own: usage and errors then say `agentlog replay`, as typed.
            return "", self.commands["show"], args
        return super().resolve_command(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(
            ctx.command_path, "CONVERSATION [--at TIME] [--until-offset N] [OPTIONS]"
        )
        formatter.write_usage(ctx.command_path, "COMMAND [ARGS]...", prefix="   or: ")


class _AsTypedContext(click.Context):
    """`show` run as `agentlog replay CONVERSATION` has an empty name: its command path is
    the group's, without the space before that name."""

    @property
    def command_path(self) -> str:
        return super().command_path.rstrip()


class _ShowCommand(click.Command):
    context_class = _AsTypedContext


@cli.group(cls=_ConversationByDefault, context_settings={"ignore_unknown_options": True})
def replay() -> None:
    """Rebuild a conversation from its offsets: every event in order with its position in
    the log, and its state at any moment (`agentlog replay CONVERSATION --help`)."""


if TYPE_CHECKING:  # click 8.4 made ParamType generic; the clicks before cannot subscript it
    _MomentType = click.ParamType[At]
else:
    _MomentType = click.ParamType


class _Moment(_MomentType):
    name = "TIME"

    def convert(
        self, value: str | At, param: click.Parameter | None, ctx: click.Context | None
    ) -> At:
        if isinstance(value, At):
            return value
        try:
            return parse_at(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@replay.command(cls=_ShowCommand)
@click.argument("conversation_id", metavar="CONVERSATION")
@click.option(
    "--at",
    type=_Moment(),
    help="stop the clock: events that occurred then or before (ISO 8601 time, UTC unless "
    "zoned, or +1m30s after the first event)",
)
@click.option(
    "--until-offset",
    type=click.IntRange(min=0),
    metavar="N",
    help="stop at this offset of the conversation's partition (included)",
)
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json", "jsonl", "html"]),
    default="text",
    show_default=True,
    help="text: a transcript; json: one document with the state; jsonl: one event per "
    "line; html: a self-contained timeline page (needs --out)",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="write to FILE")
@click.option("--verbose", "-v", is_flag=True, help="text: every event's full payload")
@click.option(
    "--color/--no-color", default=None, help="colours (default: when writing to a terminal)"
)
@click.option("--scan", is_flag=True, help="ignore the index: scan the conversation's partition")
@click.option(
    "--source",
    type=click.Choice(["auto", "kafka", "archive"]),
    default="auto",
    show_default=True,
    help="auto: Kafka, and the Parquet archive for what Kafka no longer holds; kafka or "
    "archive: only that",
)
@archive_dir_option
@sink_option
@pass_app
def show(
    app: AppContext,
    conversation_id: str,
    at: At | None,
    until_offset: int | None,
    output: str,
    out: Path | None,
    verbose: bool,
    color: bool | None,
    scan: bool,
    source: Source,
    archive_dir: Path | None,
    sink: str | None,
) -> None:
    """Every event of CONVERSATION in log order, and its state at the end (or at --at /
    --until-offset). Reads only the conversation's range when the sink has the
    conversation_index, else scans its partition and says so. What Kafka no longer holds
    (retention passed, a dev broker restarted) comes from the Parquet archive."""
    if output == "html" and out is None:
        raise click.UsageError("--format html writes a file: add --out FILE")
    if out is not None:
        checked_out(out)
    kafka_unusable, unconfigured = None, None
    if source == "archive":
        settings = app.settings
    else:
        try:
            settings = app.kafka_settings()
        except ConfigurationError as exc:
            if source == "kafka":
                raise
            settings, unconfigured = app.settings, exc
            kafka_unusable = (
                "no Kafka is configured (no --bootstrap, no AGENTLOG_BOOTSTRAP_SERVERS, no "
                "dev broker running)"
                if settings.bootstrap_servers is None
                else str(exc)
            )
    settings = settings.with_overrides(sink=sink, archive_dir=archive_dir)
    archive = _archive(settings, source)
    if unconfigured is not None and archive is None:
        raise ConfigurationError(
            f"{unconfigured}; an archived conversation replays with --source archive "
            f"(there is no archive in {settings.archive_root})"
        )
    replayed = replay_conversation(
        settings,
        conversation_id,
        sink_url=settings.sink_url,
        scan=scan,
        at=at,
        until_offset=until_offset,
        on_note=lambda text: click.echo(f"note: {text}", err=True),
        source=source,
        archive=archive,
        kafka_unusable=kafka_unusable,
    )
    if output == "html":
        from agentlog.replay.html import timeline_page

        _write(out, [timeline_page(replayed)], colour=False)
        click.echo(f"wrote the timeline of {conversation_id} to {out}", err=True)
        return
    coloured = False
    if output == "json":
        lines: Iterable[str] = [as_json(replayed)]
    elif output == "jsonl":
        lines = as_jsonl(replayed)
    else:
        coloured = color if color is not None else (out is None and sys.stdout.isatty())
        lines = transcript(replayed, style=click.style if coloured else plain, verbose=verbose)
    _write(out, lines, colour=coloured)


def _archive(settings: Settings, source: Source) -> ParquetArchive | None:
    """The archive to read what Kafka no longer holds, if one was written."""
    root = settings.archive_root
    if topic_root(root, settings.events_topic).is_dir():
        return ParquetArchive(root)
    if source == "archive":
        raise ArchiveError(
            f"there is no archive of {settings.events_topic} in {root} "
            "(`agentlog archive run` writes it; --archive-dir names another)"
        )
    return None


def _write(out: Path | None, lines: Iterable[str], *, colour: bool) -> None:
    if out is None:
        for text in lines:
            click.echo(text, color=colour)
        return
    # A file is written whole (0600, through a temporary file); a device or a pipe
    # (`--out /dev/stdout`) is written to as it is.
    target = replaced_whole(out) if not out.exists() or out.is_file() else open(out, "wb")
    try:
        with target as file:
            for text in lines:
                file.write((text + "\n").encode())
    except OSError as exc:
        raise ConfigurationError(f"--out {out}: cannot write it ({exc.strerror})") from None


@replay.command("diff")
@click.argument("first", metavar="A")
@click.argument("second", metavar="B")
@click.option(
    "--ignore",
    multiple=True,
    metavar="FIELD",
    help="also leave this payload field out of the comparison (repeatable)",
)
@click.option("--brief", is_flag=True, help="only the events that differ")
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
)
@click.option(
    "--color/--no-color", default=None, help="colours (default: when writing to a terminal)"
)
@sink_option
@pass_app
def diff_command(
    app: AppContext,
    first: str,
    second: str,
    ignore: tuple[str, ...],
    brief: bool,
    output: str,
    color: bool | None,
    sink: str | None,
) -> None:
    """Align conversations A and B event by event and show what differs (ids and
    timings left out: they differ between any two runs)."""
    settings = app.kafka_settings().with_overrides(sink=sink)
    replays = [
        replay_conversation(
            settings,
            conversation_id,
            sink_url=settings.sink_url,
            on_note=lambda text: click.echo(f"note: {text}", err=True),
            archive=_archive(settings, "auto"),
        )
        for conversation_id in (first, second)
    ]
    a, b = replays
    result = diff_conversations(a.events, b.events, ignore=ignore)
    if output == "json":
        click.echo(json.dumps(diff_document(a, b, result), indent=2, ensure_ascii=False))
    else:
        coloured = color if color is not None else sys.stdout.isatty()
        style = click.style if coloured else plain
        for text in diff_lines(a, b, result, style=style, brief=brief):
            click.echo(text, color=coloured)
    if not result.identical:
        raise SystemExit(1)  # as diff(1) does: a script or CI step can gate on it


@replay.command("projections")
@click.option("--into", "into", required=True, metavar="URL", help="a fresh sink to rebuild into")
@click.option(
    "--from",
    "since",
    type=_Moment(),
    help="only the conversations active at or after this time (ISO 8601, UTC unless zoned)",
)
@click.option(
    "--projection",
    "projections",
    multiple=True,
    metavar="NAME",
    help=f"built-in ({', '.join(BUILT_IN)}) or module:Class; repeatable (default: all built-in)",
)
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=10_000, show_default=True)
@sink_option
@progress_options
@pass_app
def projections_command(
    app: AppContext,
    into: str,
    since: At | None,
    projections: tuple[str, ...],
    batch_size: int,
    sink: str | None,
    progress: bool | None,
    quiet: bool,
) -> None:
    """Replay the offsets the live sink (--sink) has applied into a fresh sink (--into)
    with the projector's fold, and report the rows that differ (none, when all is well)."""
    if since is not None and since.relative:
        raise click.BadParameter("a time, not a duration", param_hint="--from")
    settings = app.kafka_settings().with_overrides(sink=sink)
    chosen = [load_projection(name) for name in projections] if projections else None
    with EventProgress("replaying", enabled=wanted(progress, quiet), unit="offsets") as bar:
        result = rebuild_projections(
            settings,
            live_url=settings.sink_url,
            into_url=into,
            since_micros=since.micros if since is not None else None,
            projections=chosen,
            batch_size=batch_size,
            on_progress=lambda done: bar.update(done.done, done.total),
        )
    spans = ", ".join(f"p{p} {a}..{b}" for p, (a, b) in result.ranges.items())
    click.echo(
        f"rebuilt {counted(result.events, 'event')} of {settings.events_topic} "
        f"(offsets {spans}) into "
        f"{into} in {result.seconds:.1f}s ({result.repeats:,} repeated events, "
        f"{result.undecodable:,} undecodable, {result.failed:,} failed in a handler)"
    )
    for table in result.tables:
        if not table.differences:
            click.echo(f"{table.table}: {counted(table.compared, 'row')}, no differences")
            continue
        click.echo(
            f"{table.table}: {counted(table.compared, 'row')}, "
            f"{counted(table.differences, 'difference')}"
        )
        shown = [
            *(f"  only live:    {_key(k)}" for k in table.only_live),
            *(f"  only rebuilt: {_key(k)}" for k in table.only_rebuilt),
            *(f"  differs:      {_key(k)} ({', '.join(c)})" for k, c in table.differing),
        ]
        for text in shown[:20]:
            click.echo(visible(text))
        if len(shown) > 20:
            click.echo(f"  ... and {len(shown) - 20} more")
    if result.moved:
        click.echo(f"note: {result.moved}", err=True)
    if result.differences:
        click.echo(f"{counted(result.differences, 'row')} differ from {settings.sink_shown}")
    else:
        click.echo(f"no differences: the rebuilt projections equal those in {settings.sink_shown}")


def _key(key: Key) -> str:
    return "/".join(str(part) for part in key)


def _load_function(spec: str, what: str) -> Callable[..., Any]:
    """`package.module:function`, or a one-line error naming it."""
    return load_callable(spec, what)


@replay.command("rerun")
@click.argument("conversation_id", metavar="CONVERSATION")
@click.option(
    "--agent",
    "agent_spec",
    required=True,
    metavar="MODULE:FUNCTION",
    help="the agent: a function taking the re-run session",
)
@click.option(
    "--mode",
    type=click.Choice(["strict", "fifo"]),
    default="strict",
    show_default=True,
    help="strict: recorded order, same tools and arguments; fifo: per tool, any order",
)
@click.option(
    "--fork-at",
    metavar="EVENT",
    help="serve the recording up to this event (id or offset), then call live functions",
)
@click.option(
    "--llm",
    "llm_spec",
    metavar="MODULE:FUNCTION",
    help="answers LLM calls after the fork: f(messages, model=..., agent=...) -> text",
)
@click.option(
    "--tools",
    "tools_spec",
    metavar="MODULE:FUNCTION",
    help="answers session.call_tool after the fork: f(name, arguments, agent=...) -> result",
)
@click.option("--no-record", is_flag=True, help="do not write the re-run to the log")
@click.option("--json", "as_json", is_flag=True, help="the report as one JSON document")
@sink_option
@pass_app
def rerun_command(
    app: AppContext,
    conversation_id: str,
    agent_spec: str,
    mode: str,
    fork_at: str | None,
    llm_spec: str | None,
    tools_spec: str | None,
    no_record: bool,
    as_json: bool,
    sink: str | None,
) -> None:
    """Re-run agent code on the recording of CONVERSATION: its tool and LLM calls are
    answered from the log, and the report names where it diverges. The re-run is
    recorded as a new conversation that names the original (unless --no-record).
    Exits 1 when it diverged or left recorded calls unmade."""
    agent = _load_function(agent_spec, "agent")
    live_llm = _load_function(llm_spec, "LLM function") if llm_spec else None
    live_tool = _load_function(tools_spec, "tool function") if tools_spec else None
    settings = app.kafka_settings().with_overrides(sink=sink)
    run = functools.partial(
        rerun,
        settings,
        conversation_id,
        agent,
        mode=mode,
        fork_at=fork_at,
        live_llm=live_llm,
        live_tool=live_tool,
        sink_url=settings.sink_url,
    )
    if no_record:
        report = run()
    else:
        with Recorder(settings, service="agentlog-rerun") as recorder:
            report = run(recorder=recorder)
    if as_json:
        click.echo(json.dumps(report_document(report), indent=2, ensure_ascii=False))
    else:
        for text in report.lines():  # the recorded and the re-run agents' words
            click.echo(visible(text))
        if report.recorded:
            click.echo(
                f"recorded as {report.new_conversation_id}: "
                f"agentlog replay diff {conversation_id} {report.new_conversation_id}"
            )
    if not report.matched:
        raise SystemExit(1)  # a divergence, or recorded calls not made: CI can gate on it


def report_document(report: RerunReport) -> dict[str, Any]:
    """`replay rerun --json`: what a script needs to judge a re-run."""

    def call(recorded: RecordedCall | None) -> dict[str, Any] | None:
        if recorded is None:
            return None
        return {
            "kind": recorded.kind,
            "name": recorded.name,
            "partition": recorded.request.partition,
            "offset": recorded.request.offset,
        }

    divergence = report.divergence
    return {
        "original": report.original,
        "rerun": report.new_conversation_id if report.recorded else None,
        "mode": report.mode,
        "matched": report.matched,
        "served": len(report.served),
        "live_calls": len(report.live_calls),
        "divergence": None
        if divergence is None
        else {
            "kind": divergence.kind,
            "message": divergence.message,
            "recorded": call(divergence.recorded),
        },
        "not_called": [call(c) for c in report.unconsumed],
    }
