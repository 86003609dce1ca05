"""What the default paths hold belongs to one log: the default projections, the default
archive, the demo's outputs and `status`'s observations are built from the dev broker's
log last started here. When `dev up` starts another log (every Tansu start, a new or
the other engine's Kafka log), they are moved aside under `state_dir/previous-logs/<log>`
and those of the log now started, if they were set aside before (Kafka's log is back),
come back: no command mixes two logs or refuses the new one for the old one's files.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from agentlog.private_files import private_dir, replaced_whole
from agentlog.settings import Settings

# Which log the default paths were built from (its id: engine and cluster or start id).
_MARKER = "derived-from-log"


def derived_paths(settings: Settings) -> list[Path]:
    """The default paths that hold what was derived from the dev broker's log."""
    sink = settings.default_sink_file
    return [
        sink,
        sink.with_suffix(".duckdb.wal"),
        sink.with_suffix(".duckdb.snapshot"),
        settings.state_dir / "archive",
        settings.state_dir / "demo",
        settings.state_dir / "status-groups.json",
    ]


def switch_log(settings: Settings, log_id: str, say: Callable[[str], None]) -> None:
    """Make the default paths those of `log_id`: set the previous log's aside, bring this
    one's back if it was set aside. Says what moved where."""
    marker = settings.state_dir / _MARKER
    try:
        previous = marker.read_text().strip() or None
    except OSError:
        previous = None
    if previous == log_id:
        return
    aside = settings.state_dir / "previous-logs"
    present = [p for p in derived_paths(settings) if p.exists()]
    if present:
        folder = private_dir(aside / _safe(previous or "unknown-log"))
        for path in present:
            target = folder / path.name
            if target.exists():  # an older copy of the same log's: the newer one wins
                _remove(target)
            shutil.move(str(path), target)
        say(
            f"moved what was built from the previous log ({previous or 'unknown'}: "
            f"{', '.join(p.name for p in present)}) to {folder}"
        )
    back = aside / _safe(log_id)
    if back.is_dir():
        restored = []
        for path in derived_paths(settings):
            kept = back / path.name
            if kept.exists():
                shutil.move(str(kept), path)
                restored.append(path.name)
        shutil.rmtree(back, ignore_errors=True)
        if restored:
            say(f"brought back what was built from this log: {', '.join(restored)}")
    with replaced_whole(marker) as out:
        out.write(log_id.encode())


def forget_log(settings: Settings, say: Callable[[str], None]) -> None:
    """The log was deleted (`dev down --wipe`): what was built from it goes aside too."""
    switch_log(settings, "wiped", say)
    (settings.state_dir / _MARKER).unlink(missing_ok=True)


def _safe(log_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in log_id)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
