"""File modes as the private-files rule sees them."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path, follow_symlinks=False).st_mode)


def open_to_others(root: Path, *, allowed: tuple[str, ...] = ()) -> list[str]:
    """Everything under `root` (and root) that others could read or enter."""
    found = []
    for path in [root, *root.rglob("*")]:
        if path.is_symlink() or path.name.endswith(allowed):
            continue
        if (path.is_dir() and mode(path) != 0o700) or (path.is_file() and mode(path) & 0o077):
            found.append(f"{path.relative_to(root)} {oct(mode(path))}")
    return found
