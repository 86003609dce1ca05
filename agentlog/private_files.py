"""Files that are the user's alone: folders 0700, files 0600, whatever the umask says.

agentlog's state (`~/.agentlog`: projections, snapshots, the archive, the dev broker's
log and state) and its exports hold whole conversations, so on a shared host nobody but
the user may read them. Modes are set when a file or folder is made, not left to the
umask. A file is written under a temporary name made by `tempfile.mkstemp` in the target's
folder (created with `O_EXCL`, mode 0600, a name nobody can guess, so a link planted there
is never followed) and renamed over the target only when it is whole.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path, *, tighten: bool = False) -> Path:
    """Make `path` and any missing parents as 0700 folders. `tighten` also sets an
    existing `path` of the user's to 0700 (for folders agentlog made, which earlier
    versions left open to others; never for a folder the user named, like `--out`'s)."""
    missing: list[Path] = []
    folder = path
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        try:
            os.mkdir(made, DIRECTORY_MODE)
        except FileExistsError:
            continue  # another process made it meanwhile: theirs, as they made it
        os.chmod(made, DIRECTORY_MODE)  # mkdir's mode is filtered by the umask
    if tighten and not missing:
        tighten_dir(path)
    return path


def tighten_dir(path: Path) -> None:
    """Set an existing folder of the user's to 0700 (nothing if it is not there, not a
    folder, or someone else's)."""
    try:
        found = os.stat(path, follow_symlinks=False)
    except OSError:
        return
    if (
        stat.S_ISDIR(found.st_mode)
        and found.st_uid == os.getuid()
        and stat.S_IMODE(found.st_mode) != DIRECTORY_MODE
        and not _shared(path, found)
    ):
        _chmod(path, DIRECTORY_MODE)


# What agentlog makes directly in its state folder: only these are tightened, in case
# the folder was pointed at one that holds other things too.
STATE_ENTRIES = (
    "projections.duckdb",
    "dev-broker.",
    "archive",
    "claim-check",
    "spool",
    "kafka",
    "demo",
)


def _shared(path: Path, found: os.stat_result) -> bool:
    """A folder never to close: one with the sticky bit (`/tmp`) or the home folder."""
    if found.st_mode & stat.S_ISVTX:
        return True
    try:
        return Path(path).resolve() == Path.home().resolve()
    except (OSError, RuntimeError):
        return True


def tighten_state_dir(state_dir: Path) -> None:
    """Close a state folder that an earlier version left open to others: the folder
    0700, and what lies directly in it (all agentlog's) 0700 or 0600. Below that, the
    folder's own mode already keeps others out."""
    try:
        if _shared(state_dir, os.stat(state_dir)):
            return
        tighten_dir(state_dir)
        entries = [e for e in os.scandir(state_dir) if e.name.startswith(STATE_ENTRIES)]
    except OSError:
        return
    for entry in entries:
        try:
            found = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if found.st_uid != os.getuid():
            continue
        if stat.S_ISDIR(found.st_mode) and stat.S_IMODE(found.st_mode) != DIRECTORY_MODE:
            _chmod(entry.path, DIRECTORY_MODE)
        elif stat.S_ISREG(found.st_mode) and stat.S_IMODE(found.st_mode) & 0o077:
            _chmod(entry.path, stat.S_IMODE(found.st_mode) & 0o700)


def _chmod(path: str | Path, mode: int) -> None:
    # Best effort on what exists already (a read-only mount, a file being replaced):
    # a command does not fail for it.
    with contextlib.suppress(OSError):
        os.chmod(path, mode)


def temporary_beside(target: Path, prefix: str | None = None) -> Path:
    """A new, empty 0600 file with an unguessable name in `target`'s folder (starting
    with `prefix`, by default `.NAME.`), for a library that writes by path (Parquet,
    DuckDB, zip); rename it over `target` with `os.replace` when it is whole, or unlink
    it."""
    fd, name = tempfile.mkstemp(
        dir=target.parent, prefix=prefix or f".{target.name}.", suffix=".partial"
    )
    os.close(fd)
    return Path(name)


def scratch_beside(target: Path) -> Path:
    """A new 0700 folder with an unguessable name in `target`'s folder, for a library
    that will not write into an existing empty file (DuckDB): make the file inside it,
    `os.replace` it over `target`, remove the folder."""
    return Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial"))


@contextlib.contextmanager
def replaced_whole(target: Path) -> Iterator[IO[bytes]]:
    """Write `target` (0600) through a temporary file beside it, renamed over it when the
    block ends without an error; on an error the temporary file is removed and `target`
    is left as it was."""
    temporary = temporary_beside(target)
    try:
        with open(temporary, "wb") as out:
            yield out
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def private_tree(root: Path) -> None:
    """Folders 0700 and files 0600 throughout `root`, a tree agentlog wrote itself in a
    private scratch folder (through libraries that create files by the umask)."""
    os.chmod(root, DIRECTORY_MODE)
    for folder, folders, files in os.walk(root):
        for name in folders:
            os.chmod(os.path.join(folder, name), DIRECTORY_MODE, follow_symlinks=False)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, FILE_MODE)


def open_private_append(path: Path) -> IO[bytes]:
    """`path` opened for appending, made 0600 if new; a symbolic link there is refused
    (`O_NOFOLLOW`) rather than followed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, FILE_MODE)
    return os.fdopen(fd, "ab")
