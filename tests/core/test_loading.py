"""One loader for every MODULE:NAME option: a module in the current directory loads
whichever command names it (as `python -m` finds it), and a mistake is one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import clean_environment

MODULE = """
from agentlog import Projection


def my_agent(session):
    pass


class Refunds(Projection):
    name = "refunds"
"""


def agentlog_here(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`agentlog ARGS` run from `directory`, as a user in their project folder would."""
    environment = clean_environment({"AGENTLOG_STATE_DIR": str(directory / "state")})
    environment.pop("PYTHONPATH", None)
    return subprocess.run(
        [sys.executable, "-m", "agentlog", "--bootstrap", "127.0.0.1:9", *args],
        cwd=directory,
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    "args",
    [
        ("replay", "rerun", "conv-1", "--agent", "user_module:missing_agent"),
        ("project", "run", "--once", "--projection", "user_module:MissingProjection"),
        ("tools", "work", "user_module:missing_registry"),
        ("agents", "run", "user_module:missing_agents"),
    ],
)
def test_a_module_in_the_current_directory_loads_for_every_option(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    (tmp_path / "user_module.py").write_text(MODULE)
    done = agentlog_here(tmp_path, *args)
    assert done.returncode == 1
    # The module was found and imported: what is missing is the name in it.
    assert "No module named" not in done.stderr, done.stderr
    name = args[-1].partition(":")[2]
    assert f"module 'user_module' has no attribute '{name}'" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_wrong_kind_of_object_is_named(tmp_path: Path) -> None:
    (tmp_path / "user_module.py").write_text(MODULE)
    done = agentlog_here(
        tmp_path, "project", "run", "--once", "--projection", "user_module:my_agent"
    )
    assert done.returncode == 1
    assert "'user_module:my_agent' is not a Projection subclass" in done.stderr
