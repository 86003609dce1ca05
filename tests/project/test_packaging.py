"""The wheel users install carries every schema version and the dev broker's files.

The package data is declared by glob (`v*/*.avsc`), so a new schema version ships
without anyone listing it; this builds the wheel (offline, with the venv's setuptools)
to prove that it really does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "*.duckdb*"
)


def _built_wheel(tmp_path: Path) -> set[str]:
    # A clean copy: an in-place build would reuse whatever an earlier one left in build/.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--wheel-dir",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (tmp_path / "dist").glob("agentlog-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_wheel_ships_every_schema_version_and_the_dev_broker_files(tmp_path: Path) -> None:
    shipped = _built_wheel(tmp_path)

    versions = sorted((ROOT / "schemas").glob("v*/"))
    assert versions, "no schema version folders found"
    for version in versions:
        schemas = sorted(version.glob("*.avsc"))
        assert schemas, f"{version} holds no .avsc file"
        for schema in schemas:
            assert f"agentlog/schemas/{version.name}/{schema.name}" in shipped
    assert "agentlog/devbroker/pom.xml" in shipped
    assert "agentlog/devbroker/log4j2.properties" in shipped
    assert "agentlog/py.typed" in shipped

    # The mapped folders install under agentlog only: no top-level `producers` module.
    top_level = {name.split("/")[0] for name in shipped if ".dist-info/" not in name}
    assert top_level == {"agentlog"}
    assert "agentlog/producers/__init__.py" in shipped
    assert "agentlog/consumers/sinks/__init__.py" in shipped
    assert "agentlog/runtime/__init__.py" in shipped


def test_wheel_ships_every_module_of_the_mapped_folders(tmp_path: Path) -> None:
    """A subpackage left out of pyproject's `packages` (consumers/tools/, ...) would be
    missing from the wheel while every test from the source tree still passed."""
    shipped = _built_wheel(tmp_path)
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    missing = []
    for package, folder in setuptools["package-dir"].items():
        for module in sorted((ROOT / folder).rglob("*.py")):
            relative = module.relative_to(ROOT / folder)
            if "__pycache__" in relative.parts:
                continue
            if f"{package.replace('.', '/')}/{relative.as_posix()}" not in shipped:
                missing.append(f"{folder}/{relative.as_posix()}")
    assert missing == []
    assert "agentlog/consumers/triggers/_runtime.py" in shipped
