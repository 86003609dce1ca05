"""A fresh broker can be recorded to: the recorder creates agentlog's topics on the dev
broker (`create_topics`, on by default there), and elsewhere says in one line what to
run instead of a delivery failure after the producer's metadata wait."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from helpers.cli import agentlog, clean_environment

from agentlog.errors import TopicError
from agentlog.producers import Recorder, ToolClient
from agentlog.settings import Settings

README = Path(__file__).resolve().parent.parent.parent / "README.md"


def readme_snippet() -> str:
    """The README's recording snippet, as written, as a new user runs it after
    `agentlog demo` (or `agentlog dev up`)."""
    blocks = README.read_text(encoding="utf-8").split("```python\n")[1:]
    (snippet,) = [b.split("```", 1)[0] for b in blocks if "from agentlog import Recorder" in b]
    return snippet + 'print("recorded")\n'


def test_the_readme_snippet_records_to_a_fresh_dev_broker(dev_broker_engine, tmp_path) -> None:
    env = dev_broker_engine.env
    up = agentlog("dev", "up", state_dir=tmp_path, env=env)
    assert up.code == 0, up.err
    try:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", readme_snippet()],
            capture_output=True,
            text=True,
            env=clean_environment({"AGENTLOG_STATE_DIR": str(tmp_path), **env}),
            timeout=120,
        )
        took = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr and done.stdout.strip() == "recorded"
        assert took < 25, f"recording took {took:.0f}s"  # not a 30 s metadata wait
        tail = agentlog("tail", "-c", "conv-42", "--from-beginning", state_dir=tmp_path)
        assert tail.code == 0, tail.err
        assert "tool_call_completed" in tail.out and "user_message" in tail.out
        assert "conversation_ended" in tail.out
    finally:
        agentlog("dev", "down", "--wipe", state_dir=tmp_path, env=env)


def test_missing_topics_elsewhere_are_one_line_at_once(bootstrap: str, tmp_path: Path) -> None:
    settings = Settings(
        bootstrap_servers=bootstrap,
        topic_prefix=f"missing{uuid.uuid4().hex[:8]}.",
        state_dir=tmp_path,
    )
    started = time.monotonic()
    for make in (lambda: Recorder(settings), lambda: ToolClient(settings)):
        with pytest.raises(TopicError) as raised:
            make()
        assert str(raised.value).startswith(
            f"topic {settings.topic_prefix}events does not exist: run `agentlog topics create`"
        )
    assert time.monotonic() - started < 10
    # Allowed, they are created as `agentlog topics create` would.
    with Recorder(settings.with_overrides(create_topics=True)) as recorder:
        recorder.user_message("c1", "hello")
    described = agentlog(
        "--bootstrap", bootstrap, "--topic-prefix", settings.topic_prefix, "topics", "describe",
        state_dir=tmp_path,
    )  # fmt: skip
    assert f"{settings.topic_prefix}events:" in described.out
    assert "retention.ms=-1" in described.out
