"""The log for analysis: a Parquet archive written exactly once, SQL over it and the
projections, training datasets, OpenAI JSONL import, compliance bundles.

    from agentlog.analytics import Archiver, TrainingOptions, export_training
    Archiver(settings).run(once=True)              # the archive up to the log's ends
    export_training(settings.archive_root, settings.events_topic,
                    TrainingOptions(out=Path("train.jsonl"), split=0.9))
"""

from agentlog.analytics.archive_reader import ParquetArchive
from agentlog.analytics.archiver import ArchiveProgress, Archiver, bring_up_to_date
from agentlog.analytics.compliance import ComplianceBundle, ComplianceRequest, verify_bundle
from agentlog.analytics.importer import import_file
from agentlog.analytics.training import TrainingOptions, TrainingReport, export_training
from agentlog.analytics.views import open_views

__all__ = [
    "ArchiveProgress",
    "Archiver",
    "ComplianceBundle",
    "ComplianceRequest",
    "ParquetArchive",
    "TrainingOptions",
    "TrainingReport",
    "bring_up_to_date",
    "export_training",
    "import_file",
    "open_views",
    "verify_bundle",
]
