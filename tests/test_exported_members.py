"""The public API is small and deliberate: changing it is a decision, made here."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

import agentlog
import agentlog.consumers
import agentlog.producers

ROOT = Path(__file__).resolve().parent.parent

ERRORS = {
    "AgentlogError",
    "BrokerUnavailable",
    "ConfigurationError",
    "DecodeError",
    "DeliveryFailed",
    "DevBrokerError",
    "Fenced",
    "SchemaError",
    "SinkError",
    "ToolError",
    "ToolTimeout",
    "TopicError",
}

PUBLIC = {
    agentlog: {
        "AsyncRecorder",
        "Projection",
        "Recorder",
        "Settings",
        "Table",
        "__version__",
        "handles",
        *ERRORS,
    },
    agentlog.producers: {
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
    agentlog.consumers: {
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
}

MODULES = pytest.mark.parametrize("module", PUBLIC, ids=lambda m: m.__name__)


@MODULES
def test_all_is_the_public_api(module: ModuleType) -> None:
    assert set(module.__all__) == PUBLIC[module]
    assert len(module.__all__) == len(set(module.__all__))


@MODULES
def test_star_import_gives_every_name_in_all(module: ModuleType) -> None:
    # `from module import *` fails on a name in __all__ the module cannot provide.
    namespace: dict[str, object] = {}
    exec(f"from {module.__name__} import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(module.__all__)


@MODULES
def test_no_public_name_outside_all(module: ModuleType) -> None:
    """Anything else the module holds is private (underscore) or a submodule."""
    leaked = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, ModuleType)
        and name not in module.__all__
    }
    assert leaked == set()


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


def test_every_error_is_an_agentlog_error() -> None:
    for name in ERRORS:
        assert issubclass(getattr(agentlog, name), agentlog.AgentlogError)


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
