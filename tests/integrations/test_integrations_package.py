"""agentlog.integrations: imported lazily, each integration behind its extra (a missing
one is one clear line), and a recording wrapper never changes what the caller gets nor
raises into it, even with no broker to take the events."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from openai import OpenAI, Stream

import agentlog.integrations
from agentlog.errors import MissingExtra
from agentlog.integrations.openai import record
from agentlog.producers import Recorder
from agentlog.settings import Settings
from agentlog.testing.model_server import MODEL_PARALLEL, MODEL_TOOL, SCRIPT, ModelServer

LIBRARIES = ("openai", "anthropic", "agents", "langchain_core", "langgraph")


def test_the_integrations_face() -> None:
    assert agentlog.integrations.__all__ == ["anthropic", "langchain", "openai", "openai_agents"]
    assert agentlog.integrations.openai.record is record
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = agentlog.integrations.nothing


def test_importing_agentlog_and_its_integrations_package_loads_no_client_library() -> None:
    script = (
        "import sys, agentlog, agentlog.integrations, agentlog.producers\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {LIBRARIES!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


BLOCK = """
import sys
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == {library!r}:
            raise ImportError(f"No module named {{name!r}}")
sys.meta_path.insert(0, Absent())
import agentlog.integrations.{integration}
"""


@pytest.mark.parametrize(
    ("integration", "library", "extra"),
    [
        ("openai", "openai", "openai"),
        ("anthropic", "anthropic", "anthropic"),
        ("openai_agents", "agents", "openai-agents"),
        ("langchain", "langchain_core", "langchain"),
    ],
)
def test_a_missing_extra_says_in_one_line_what_to_install(
    integration: str, library: str, extra: str
) -> None:
    script = BLOCK.format(library=library, integration=integration)
    wrapped = (
        "from agentlog.errors import MissingExtra\n"
        f"try:\n{''.join('    ' + line + chr(10) for line in script.strip().splitlines())}"
        "except MissingExtra as e:\n    print(e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapped], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == [
        f"this integration needs the {library!r} package: pip install 'agentlog[{extra}]'"
    ]
    assert issubclass(MissingExtra, ImportError)


def test_with_no_broker_the_caller_gets_exactly_what_the_bare_client_gets(tmp_path: Path) -> None:
    """Nothing listens on the broker's port: recording reports its events to on_error,
    and the calls, streamed or not, return what they return without the wrapper."""
    undelivered: list[object] = []
    # No spool: the events are reported, not kept to ship later (the spool's own tests
    # show what waits there).
    settings = Settings(
        bootstrap_servers="127.0.0.1:9", state_dir=tmp_path, delivery_timeout_ms=1000, spool=False
    )
    recorder = Recorder(settings, on_error=undelivered.append)
    messages = [{"role": "user", "content": SCRIPT.question}]
    tools = [{"type": "function", "function": t} for t in SCRIPT.tools()]
    with ModelServer() as server:
        bare = OpenAI(base_url=server.openai_url, api_key="test", max_retries=0)
        wrapped = record(
            OpenAI(base_url=server.openai_url, api_key="test", max_retries=0),
            recorder,
            agent="billing",
            conversation_id="conv-no-broker",
        )
        for model in (MODEL_TOOL, MODEL_PARALLEL):
            expected = bare.chat.completions.create(model=model, messages=messages, tools=tools)
            got = wrapped.chat.completions.create(model=model, messages=messages, tools=tools)
            assert got.model_dump() == expected.model_dump()
            stream = wrapped.chat.completions.create(
                model=model, messages=messages, tools=tools, stream=True
            )
            assert isinstance(stream, Stream)
            bare_chunks = bare.chat.completions.create(
                model=model, messages=messages, tools=tools, stream=True
            )
            assert [c.model_dump() for c in stream] == [c.model_dump() for c in bare_chunks]
    recorder.close(timeout=10)
    assert len(undelivered) == 4  # every call's event was reported, none raised
