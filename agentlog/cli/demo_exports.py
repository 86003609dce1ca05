"""The end of `agentlog demo`: the run archived, a small training file and a compliance
bundle written from the archive, their paths printed."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from agentlog.analytics.archiver import bring_up_to_date
from agentlog.analytics.compliance import ComplianceRequest
from agentlog.analytics.training import TrainingOptions, export_training
from agentlog.errors import ArchiveError
from agentlog.runtime import export_compliance
from agentlog.settings import Settings


def demo_exports(settings: Settings, mine: list[str], seed: int) -> Path:
    """Archive, export this run's conversations for training, bundle one of them for an
    auditor; returns the bundle's path. The demo keeps its own archive (under
    STATE_DIR/demo), so a restarted dev broker's new log only means a new archive."""
    folder = settings.state_dir / "demo"
    archived = settings.with_overrides(archive_dir=folder / "archive")
    click.echo("... archiving the log to Parquet", err=True)
    try:
        bring_up_to_date(archived)
    except ArchiveError as exc:
        click.echo(f"note: {exc}: the demo archives this log anew", err=True)
        shutil.rmtree(folder / "archive", ignore_errors=True)
        bring_up_to_date(archived)
    click.echo("... exporting training data and a compliance bundle", err=True)
    out = folder / f"training-{seed}.jsonl"
    report = export_training(
        archived.archive_root,
        settings.events_topic,
        TrainingOptions(out=out, only=frozenset(mine)),
    )
    click.echo(
        f"training file: {out} ({report.examples['all']} conversations, redacted; offsets in "
        f"{report.provenance['all'].name}; {len(report.invalid)} left out as invalid)"
    )
    bundle = folder / f"compliance-{seed}-{mine[0]}"
    shutil.rmtree(bundle, ignore_errors=True)
    request = ComplianceRequest((mine[0],), requested_by="agentlog demo")
    export_compliance(
        archived.archive_root,
        settings.events_topic,
        request,
        bundle,
        command=f"agentlog demo --seed {seed}",
    )
    click.echo(f"compliance bundle of {mine[0]}: {bundle}")
    return bundle
