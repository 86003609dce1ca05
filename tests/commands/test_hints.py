"""The commands agentlog suggests name what runs it here: `agentlog` only when PATH finds
that very program, else the path it was started by (`.venv/bin/agentlog` after the
README's install) or `python -m agentlog`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agentlog.cli._app import command_name


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / ".venv" / "bin" / "agentlog"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(script), "demo"])
    return script


def test_a_program_not_on_path_is_named_by_its_path(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert command_name() == ".venv/bin/agentlog"


def test_the_program_path_finds_is_named_agentlog(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{installed.parent}:/usr/bin")
    assert command_name() == "agentlog"


def test_python_m_is_named_with_its_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/somewhere/agentlog/__main__.py", "demo"])
    assert command_name().endswith(" -m agentlog")
    assert Path(command_name().split(" ")[0]).name.startswith("python")
