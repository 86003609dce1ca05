"""`agentlog export training|compliance|verify`: datasets and bundles from the archive."""

from __future__ import annotations

import shlex
import sys
from datetime import datetime
from pathlib import Path

import click

from agentlog.analytics.archive_files import topic_root
from agentlog.analytics.archive_start import read_start
from agentlog.analytics.archiver import bring_up_to_date
from agentlog.analytics.compliance import (
    MANIFEST,
    NOTHING_SELECTED,
    ComplianceRequest,
    verify_bundle,
)
from agentlog.analytics.sql_guard import one_condition
from agentlog.analytics.training import TrainingOptions, export_training
from agentlog.cli._app import AppContext, checked_out, cli, pass_app
from agentlog.cli._progress import EventProgress, progress_options, wanted
from agentlog.cli.archive import archiving_progress
from agentlog.display import visible
from agentlog.errors import ExportError
from agentlog.replay.transcript import counted
from agentlog.runtime import export_compliance
from agentlog.settings import Settings

dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="the archive (default: AGENTLOG_ARCHIVE_DIR, else STATE_DIR/archive)",
)
no_update_option = click.option(
    "--no-update",
    is_flag=True,
    help="export what the archive holds without reading Kafka first (Kafka gone, or history "
    "past its retention)",
)


@cli.group()
def export() -> None:
    """Training datasets and compliance bundles from the archive (brought up to date first)."""


def archive_settings(
    app: AppContext, directory: Path | None, no_update: bool, progress: bool | None = None
) -> Settings:
    """The settings, with the archive brought up to the log's ends unless `no_update`."""
    if no_update:
        settings = app.settings.with_overrides(archive_dir=directory)
        _say_if_partial(settings)
        return settings
    settings = app.kafka_settings().with_overrides(archive_dir=directory)
    click.echo(f"... bringing the archive {settings.archive_root} up to date", err=True)
    with EventProgress("archiving", enabled=wanted(progress), unit="records") as bar:
        done = bring_up_to_date(settings, on_progress=archiving_progress(bar))
        if done is not None:
            archiving_progress(bar)(done)
    if done is None:
        click.echo("... the running archiver has reached the ends of the log", err=True)
    elif done.archived:
        click.echo(f"... archived {done.archived:,} new records", err=True)
    _say_if_partial(settings)
    return settings


def _say_if_partial(settings: Settings) -> None:
    """An archive started with `archive run --from latest|TIME` lacks what came before:
    so does every export of it."""
    start = read_start(topic_root(settings.archive_root, settings.events_topic))
    note = start.partial_note() if start else None
    if note:
        click.echo(f"{note}: this export holds nothing from before that start", err=True)


@export.command()
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "form",
    type=click.Choice(["openai", "trl"]),
    default="openai",
    show_default=True,
    help="OpenAI chat fine-tuning JSONL, or Hugging Face TRL's conversational format",
)
@click.option(
    "--where",
    metavar="SQL",
    help="a condition over conversations (its columns: outcome, agents, tool_errors, "
    "first_activity, ...), e.g. \"outcome = 'resolved' AND list_contains(agents, 'billing')\"",
)
@click.option(
    "--failed-tool-calls",
    type=click.Choice(["include", "exclude"]),
    default="include",
    show_default=True,
    help="conversations with a tool call that finally failed",
)
@click.option(
    "--escalated",
    type=click.Choice(["include", "exclude"]),
    default="include",
    show_default=True,
    help="conversations that were escalated",
)
@click.option(
    "--redact/--no-redact",
    default=True,
    show_default=True,
    help="replace e-mails, phone numbers, card numbers and AGENTLOG_REDACT_PATTERNS",
)
@click.option(
    "--redact-pattern",
    "patterns",
    multiple=True,
    metavar="REGEX",
    help="another pattern to redact (repeatable)",
)
@click.option(
    "--split",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="train share, e.g. 0.9: --out is the training file, the validation file goes "
    "beside it (train.jsonl, train.validation.jsonl), by conversation id",
)
@click.option(
    "--weight-failed",
    type=click.IntRange(0, 1),
    help="weight of assistant turns whose tool call failed (others get 1)",
)
@click.option(
    "--include-reruns",
    is_flag=True,
    help="keep conversations recorded by `agentlog replay rerun` (left out by default: they "
    "repeat recorded conversations)",
)
@dir_option
@no_update_option
@progress_options
@pass_app
def training(
    app: AppContext,
    out: Path,
    form: str,
    where: str | None,
    failed_tool_calls: str,
    escalated: str,
    redact: bool,
    patterns: tuple[str, ...],
    split: float | None,
    weight_failed: int | None,
    include_reruns: bool,
    directory: Path | None,
    no_update: bool,
    progress: bool | None,
    quiet: bool,
) -> None:
    """Fine-tuning data: one example per conversation (JSONL, or Parquet if OUT ends in
    .parquet), every example validated, its offsets in OUT.provenance.jsonl."""
    checked_out(out)  # before the archive is brought up to date
    if where is not None:
        one_condition(where)  # as is the condition: a typo costs no archiving
    progress = False if quiet else progress
    settings = archive_settings(app, directory, no_update, progress)
    options = TrainingOptions(
        out=out,
        form=form,  # type: ignore[arg-type]  # click.Choice
        where=where,
        failed_tool_calls=failed_tool_calls,  # type: ignore[arg-type]
        escalated=escalated,  # type: ignore[arg-type]
        redact=redact,
        patterns=(*settings.redact_patterns, *patterns),
        split=split,
        weight_failed=weight_failed,
        include_reruns=include_reruns,
    )
    with EventProgress("exporting", enabled=wanted(progress)) as bar:
        report = export_training(
            settings.archive_root, settings.events_topic, options, on_progress=bar.update
        )
    for conversation_id, why in report.invalid[:20]:
        click.echo(f"invalid: {visible(conversation_id)}: {visible(why)}", err=True)
    if len(report.invalid) > 20:
        click.echo(f"invalid: ... and {len(report.invalid) - 20} more", err=True)
    for name, path in report.files.items():
        click.echo(
            f"wrote {counted(report.examples[name], 'example')} to {path} "
            f"(provenance: {report.provenance[name]})"
        )
    left_out = ", ".join(f"{why} {count:,}" for why, count in report.excluded.most_common())
    redacted = ", ".join(f"{label} {count:,}" for label, count in report.redactions.items())
    click.echo(
        f"{counted(report.conversations, 'conversation')}, {counted(report.events, 'event')} in "
        f"{report.seconds:.2f}s ({report.rate:,.0f} events/s); invalid {len(report.invalid):,}"
        + (f"; left out: {left_out}" if left_out else "")
        + (f"; redacted: {redacted}" if redacted else ("" if redact else "; not redacted"))
    )


@export.command()
@click.option("--out", required=True, type=click.Path(path_type=Path), help="a directory, or .zip")
@click.option("--conversation", "conversations", multiple=True, metavar="ID", help="repeatable")
@click.option("--user", metavar="ID", help="every conversation of this user")
@click.option("--since", type=click.DateTime(), help="events at or after (UTC)")
@click.option("--until", type=click.DateTime(), help="events before (UTC)")
@click.option("--requested-by", metavar="WHO", help="who asked for the bundle (in the manifest)")
@dir_option
@no_update_option
@progress_options
@pass_app
def compliance(
    app: AppContext,
    out: Path,
    conversations: tuple[str, ...],
    user: str | None,
    since: datetime | None,
    until: datetime | None,
    requested_by: str | None,
    directory: Path | None,
    no_update: bool,
    progress: bool | None,
    quiet: bool,
) -> None:
    """Everything about conversations, a user or a time range, for an auditor: the events
    (JSONL and Parquet), a transcript and an HTML timeline per conversation, and
    manifest.json with the request, counts, offset ranges and SHA-256 of every file."""
    request = ComplianceRequest(conversations, user, since, until, requested_by)
    if not request.selects:  # refused before the archive is brought up to date
        raise click.UsageError(NOTHING_SELECTED)
    checked_out(out)  # the bundle (a directory it makes, or a zip) goes in an existing one
    progress = False if quiet else progress
    settings = archive_settings(app, directory, no_update, progress)
    command = shlex.join(["agentlog", *sys.argv[1:]])
    with EventProgress("bundling", enabled=wanted(progress)) as bar:
        report = export_compliance(
            settings.archive_root,
            settings.events_topic,
            request,
            out,
            command=command,
            on_progress=bar.update,
        )
    click.echo(
        f"wrote {report.path}: {counted(report.events, 'event')} of "
        f"{counted(len(report.conversations), 'conversation')}, "
        f"{counted(report.files, 'file')} and {MANIFEST} "
        f"(check it with `agentlog export verify {out}`)"
    )
    for conversation_id, reason in report.untranscribed.items():
        click.echo(
            f"warning: no transcript of conversation {visible(repr(conversation_id))} "
            f"({visible(reason)}); its "
            f"events are in the bundle, and {MANIFEST} names it under untranscribed",
            err=True,
        )


def _count(value: object, noun: str) -> str:
    """A count from a manifest, which may lack it."""
    return counted(value, noun) if isinstance(value, int) else f"? {noun}s"


@export.command()
@click.argument("bundle", type=click.Path(path_type=Path))
def verify(bundle: Path) -> None:
    """Check a compliance bundle offline: every file as the manifest says, nothing added."""
    checked = verify_bundle(bundle)
    for problem in checked.problems:
        click.echo(f"  {visible(problem)}", err=True)
    if checked.problems:
        raise ExportError(
            f"{bundle} does not match its manifest: {counted(len(checked.problems), 'problem')} "
            "above"
        )
    counts = checked.manifest.get("counts", {})
    requested_by = visible(checked.manifest.get("request", {}).get("requested_by") or "-")
    click.echo(
        f"{bundle}: all {counted(checked.checked, 'file')} match {MANIFEST} "
        f"({_count(counts.get('events'), 'event')} of "
        f"{_count(counts.get('conversations'), 'conversation')}, requested by {requested_by})"
    )
