"""The public API is small and deliberate: changing it is a decision, made here.

Every face is pinned: each package the wheel installs (pyproject's package list), each
module a face offers as a submodule in its `__all__` (the integrations), and each module
the README or docs/ tell users to import from. A face's `__all__` is its API, and it holds
no other public name: anything else is private (an underscore) or one of its submodules.
The list of faces is derived, not written here, so a new part or a moved module shows up
as a face without a pin until someone decides its API.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

import agentlog
import agentlog.consumers
import agentlog.errors

ROOT = Path(__file__).resolve().parent.parent.parent

ERRORS = {
    "AgentlogError",
    "ArchiveBusy",
    "ArchiveError",
    "ArgumentsError",
    "BeforeFirstEvent",
    "BlobUnavailable",
    "BrokerUnavailable",
    "CommitPastUnfinished",
    "ConfigurationError",
    "ConversationNotFound",
    "DeadLettersNotTaken",
    "DecodeError",
    "DeliveryFailed",
    "DemoError",
    "DevBrokerError",
    "ExportError",
    "Fenced",
    "MissingExtra",
    "NotAssigned",
    "NotTheAppliedLog",
    "OffsetBeyondEnd",
    "OtlpRejected",
    "OtlpUnavailable",
    "PartitionsChanged",
    "RecordedToolFailure",
    "ReplayError",
    "SchemaError",
    "SinkError",
    "SpoolError",
    "ToolError",
    "ToolTimeout",
    "TopicError",
    "UndeliveredEvent",
}

PUBLIC: dict[str, set[str]] = {
    "agentlog.errors": ERRORS,
    "agentlog": {
        "AsyncRecorder",
        "Projection",
        "Recorder",
        "Settings",
        "Table",
        "__version__",
        "handles",
        *ERRORS,
    },
    "agentlog.analytics": {
        "ArchiveProgress",
        "Archiver",
        "ComplianceRequest",
        "ParquetArchive",
        "TrainingOptions",
        "TrainingReport",
        "bring_up_to_date",
        "ComplianceBundle",
        "export_training",
        "import_file",
        "open_views",
        "verify_bundle",
    },
    "agentlog.cli": {"cli", "main"},
    "agentlog.consumers": {
        "Agents",
        "BUILT_IN",
        "DEFAULT_GROUP",
        "DEFAULT_TOOL_GROUP",
        "DeadLetterStates",
        "Fenced",
        "LetterState",
        "Progress",
        "Projection",
        "ProjectionRunner",
        "RecordedEvent",
        "Sink",
        "State",
        "Table",
        "ToolRegistry",
        "ToolSpec",
        "ToolWorker",
        "Trigger",
        "TriggerProgress",
        "TriggerRuntime",
        "WorkerProgress",
        "dead_letter_states",
        "handles",
        "load_projection",
        "load_registry",
        "open_sink",
        "trigger_event_ids",
        "tune_process_for_throughput",
    },
    "agentlog.consumers.projections": {
        "BUILT_IN",
        "ConversationIndex",
        "Conversations",
        "ToolCalls",
        "load_projection",
    },
    "agentlog.consumers.sagas": {
        "ACTION",
        "Begin",
        "COMPENSATED",
        "COMPENSATION",
        "COMPENSATION_FAILED",
        "COMPLETED",
        "Compensate",
        "End",
        "Finished",
        "Move",
        "RunStep",
        "SAGA_EVENT_TYPES",
        "Saga",
        "SagaEvent",
        "SagaHistory",
        "SagaState",
        "Step",
        "StepContext",
        "StepState",
        "TimedOut",
        "ToolEnding",
        "ToolRequester",
        "next_move",
        "read_saga_events",
        "read_saga_history",
        "saga_states",
        "tool_action",
    },
    "agentlog.consumers.dead_letters": {
        "ACTION",
        "ACTIONS",
        "ATTEMPTS",
        "CONNECT_EXCEPTION_CLASS",
        "CONNECT_EXCEPTION_MESSAGE",
        "CONNECT_OFFSET",
        "CONNECT_PARTITION",
        "CONNECT_TOPIC",
        "CONSUMER_GROUP",
        "CONSUMER_KIND",
        "CONVERSATION",
        "DEAD_LETTERED_AT",
        "DEAD_LETTER_ID",
        "DeadLetter",
        "DeadLetterStates",
        "DeadLetters",
        "Delivery",
        "ERROR",
        "HANDLER",
        "Headers",
        "Held",
        "LetterState",
        "OPEN",
        "ORIGIN_OFFSET",
        "ORIGIN_PARTITION",
        "ORIGIN_TIMESTAMP",
        "ORIGIN_TOPIC",
        "PARKED_BEHIND",
        "PROJECTION",
        "PURGED",
        "REDRIVEN",
        "REOPENED",
        "RESOLVED",
        "SKIPPED",
        "TRIGGER",
        "control_note",
        "dead_letter_id",
        "dead_letter_states",
        "dead_letters_of",
        "headers_of",
        "original_headers",
    },
    "agentlog.consumers.tools": {
        "DEFAULT_TOOL_GROUP",
        "PendingRequest",
        "Restarts",
        "ToolRegistry",
        "ToolSpec",
        "ToolWorker",
        "WorkerProgress",
        "load_registry",
        "pending_requests",
        "restarts_of",
        "tool_call_restarts",
    },
    "agentlog.consumers.triggers": {
        "Agents",
        "GROUP_PREFIX",
        "HandlerFunction",
        "LlmFunction",
        "Predicate",
        "SessionFactory",
        "Trigger",
        "TriggerProgress",
        "TriggerRuntime",
        "load_agents",
        "trigger_event_ids",
    },
    "agentlog.consumers.sinks": {
        "AppliedLog",
        "Fenced",
        "LastApplied",
        "SentDeadLetter",
        "Sink",
        "SinkTransaction",
        "Where",
        "open_sink",
    },
    "agentlog.demo": set(),
    "agentlog.devbroker": {
        "DevBrokerRecord",
        "ENGINES",
        "MEMORY_ONLY_WARNING",
        "current",
        "start",
        "stop",
    },
    "agentlog.integrations": {"anthropic", "langchain", "openai", "openai_agents"},
    "agentlog.integrations.anthropic": {"record"},
    "agentlog.integrations.langchain": {"Handler"},
    "agentlog.integrations.openai": {"Serving", "record", "serve"},
    "agentlog.integrations.openai_agents": {"Processor"},
    "agentlog.integrations.otlp": {
        "Counters",
        "Ingest",
        "OtlpRejected",
        "OtlpUnavailable",
        "Receiver",
        "serve",
    },
    "agentlog.producers": {
        "AsyncRecorder",
        "DeliveryFailed",
        "PendingToolCall",
        "Recorder",
        "ToolCall",
        "ToolClient",
        "ToolError",
        "ToolTimeout",
        "UndeliveredEvent",
        "current_conversation",
    },
    "agentlog.replay": {
        "At",
        "BeforeFirstEvent",
        "CallScript",
        "ConversationArchive",
        "ConversationNotFound",
        "Diverged",
        "Divergence",
        "MODES",
        "OffsetBeyondEnd",
        "RecordedCall",
        "Replay",
        "ReplayError",
        "RerunPlan",
        "RerunReport",
        "Session",
        "Undecodable",
        "conversation_state",
        "parse_at",
        "plan_rerun",
        "recorded_calls",
        "replay_conversation",
        "rerun",
        "rerun_recording",
        "rerun_start",
    },
    "agentlog.codec": {
        "SCHEMA_FILE",
        "SCHEMA_PACKAGE",
        "Codec",
        "SchemaVersion",
        "by_fingerprint",
        "compile_codec",
        "current",
        "event_schema",
        "fastavro_codec",
        "fingerprint_of",
        "versions",
    },
    "agentlog.replay.testing": {"assert_rerun"},
    "agentlog.runtime": {
        "LiveSession",
        "RecordingSession",
        "SagaCoordinator",
        "SagaResult",
        "Transcripts",
        "agents_runtime",
        "export_compliance",
        "rerun",
        "rerun_recording",
        "run_live",
    },
    "agentlog.schemas": set(),
    "agentlog.testing": {"CONTRACT_TABLE", "IntegrationContract", "Session", "SinkContract"},
}


def derived_faces() -> set[str]:
    """The faces, from the package tree and the docs (see the module's docstring)."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    faces = set(setuptools["packages"])
    for package in list(faces):
        module = importlib.import_module(package)
        for name in getattr(module, "__all__", ()):
            if isinstance(getattr(module, name, None), ModuleType):
                faces.add(f"{package}.{name}")
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]:
        faces.update(_IMPORTED.findall(page.read_text()))
    # The errors module is read as a face too: docs/errors.md is generated from it.
    faces.add("agentlog.errors")
    return faces


# A line of code in the docs that imports from a module (prose naming one is no import).
_IMPORTED = re.compile(r"^\s*(?:from|import) (agentlog(?:\.\w+)*)", re.MULTILINE)


def test_every_face_is_pinned() -> None:
    assert derived_faces() == set(PUBLIC)


FACES = pytest.mark.parametrize("name", sorted(PUBLIC))


@FACES
def test_all_is_the_public_api(name: str) -> None:
    module = importlib.import_module(name)
    assert set(module.__all__) == PUBLIC[name]
    assert len(module.__all__) == len(set(module.__all__))


@FACES
def test_star_import_gives_every_name_in_all(name: str) -> None:
    # `from module import *` fails on a name in __all__ the module cannot provide.
    namespace: dict[str, object] = {}
    exec(f"from {name} import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(importlib.import_module(name).__all__)


@FACES
def test_no_public_name_outside_all(name: str) -> None:
    """Anything else the face holds is private (underscore) or one of its submodules."""
    module = importlib.import_module(name)
    leaked = {
        attribute
        for attribute, value in vars(module).items()
        if not attribute.startswith("_")
        and attribute not in module.__all__
        and not (isinstance(value, ModuleType) and value.__name__ == f"{name}.{attribute}")
    }
    assert leaked == set()


def test_a_leaked_name_is_caught() -> None:
    """The check above sees an import left public, which is how a face grows by mistake."""
    module = importlib.import_module("agentlog.analytics")
    module.Path = Path  # type: ignore[attr-defined]
    try:
        with pytest.raises(AssertionError):
            test_no_public_name_outside_all("agentlog.analytics")
    finally:
        del module.Path  # type: ignore[attr-defined]


def test_the_face_offers_the_parts_own_objects() -> None:
    assert agentlog.Recorder is agentlog.producers.Recorder
    assert agentlog.AsyncRecorder is agentlog.producers.AsyncRecorder
    assert agentlog.Projection is agentlog.consumers.Projection
    assert agentlog.Table is agentlog.consumers.Table
    assert agentlog.handles is agentlog.consumers.handles
    assert agentlog.Fenced is agentlog.consumers.Fenced
    # Where Fenced was defined before it joined the error tree, it is still found.
    from agentlog.consumers.sinks.base import Fenced

    assert Fenced is agentlog.errors.Fenced
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        _ = agentlog.Nothing  # type: ignore[attr-defined]


def test_every_error_is_offered_by_the_package_face() -> None:
    """`import agentlog` catches whatever agentlog raises: the errors module's list is the
    face's, and each name is the class itself."""
    assert set(agentlog.errors.__all__) == ERRORS
    for name in ERRORS:
        assert getattr(agentlog, name) is getattr(agentlog.errors, name)


def test_one_version_number_pyprojects() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert agentlog.__version__ == declared
    shown = subprocess.run(
        [sys.executable, "-m", "agentlog", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert declared in shown.stdout


def test_importing_the_core_does_not_load_producers_or_consumers() -> None:
    """The core is the lowest layer: `import agentlog.settings` (or `agentlog`) loads
    neither part, though `agentlog.Recorder` still works on first use."""
    script = (
        "import sys, agentlog, agentlog.settings, agentlog.serde, agentlog.events\n"
        "print(sorted(m for m in sys.modules if m.startswith(('agentlog.producers',"
        " 'agentlog.consumers'))))\n"
        "agentlog.Recorder\n"
        "print('agentlog.producers' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split("\n")[:2] == ["[]", "True"]
