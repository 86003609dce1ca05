"""When each consumer group's committed offsets last moved, as `agentlog status` saw them,
kept in a small file of the state directory, so that a group without members whose
offsets have not moved for `status_idle_after` is shown as idle (a demo's or a retired
projector's leftovers), not as lag that grows for ever, and one can be forgotten.

Kafka does not say when a group last committed (Tansu drops commit metadata), so the
time is the first collection that saw the offsets as they are now: a group becomes idle
`status_idle_after` after the first `status` that saw it stopped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Offsets = dict[str, int]  # "topic/partition" -> committed offset


@dataclass
class _Seen:
    offsets: Offsets
    since: float  # when these offsets were first seen
    forgotten: bool = False  # hidden until its offsets move again


class GroupActivity:
    """The file of observations (`state_dir/status-groups.json`, 0600). A damaged or
    unreadable file is started afresh: it holds observations only, nothing to lose."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._groups: dict[str, _Seen] = {}
        try:
            raw = json.loads(path.read_text())
            for group, seen in raw.items():
                self._groups[str(group)] = _Seen(
                    {str(k): int(v) for k, v in seen["offsets"].items()},
                    float(seen["since"]),
                    bool(seen.get("forgotten", False)),
                )
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            self._groups = {}

    def observe(self, group: str, offsets: Offsets, now: float) -> float:
        """Record the group's offsets now; returns since when they are as they are."""
        seen = self._groups.get(group)
        if seen is None or seen.offsets != offsets:
            self._groups[group] = _Seen(dict(offsets), now)
            return now
        return seen.since

    def forgotten(self, group: str, offsets: Offsets) -> bool:
        seen = self._groups.get(group)
        return seen is not None and seen.forgotten and seen.offsets == offsets

    def forget(self, group: str, offsets: Offsets, now: float) -> None:
        """Hide the group from status until its offsets move (it consumes again)."""
        seen = self._groups.get(group)
        since = seen.since if seen is not None and seen.offsets == offsets else now
        self._groups[group] = _Seen(dict(offsets), since, forgotten=True)

    def save(self) -> None:
        document: dict[str, Any] = {
            group: {"offsets": seen.offsets, "since": seen.since, "forgotten": seen.forgotten}
            for group, seen in self._groups.items()
        }
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump(document, out)
        os.replace(temporary, self.path)


def offsets_key(committed: dict[str, dict[int, int]]) -> Offsets:
    """A group's committed offsets as the file keeps them."""
    return {
        f"{topic}/{partition}": offset
        for topic, partitions in committed.items()
        for partition, offset in partitions.items()
    }
