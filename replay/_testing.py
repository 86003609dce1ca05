"""The implementation behind `agentlog.replay.testing`: its face says how to use it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentlog.replay import RerunReport, Session, rerun
from agentlog.settings import Settings


def assert_rerun(
    settings: Settings,
    conversation_id: str,
    agent: Callable[[Session], Any],
    *,
    mode: str = "strict",
    expect: str | None = None,
    **options: Any,
) -> RerunReport:
    """Re-run `agent` on the recording (see `rerun` for `options`). Passes when it makes
    exactly the recorded calls, or, with `expect`, when it diverges that way: a kind
    (`different_tool`, `different_arguments`, `extra_call`, `unrecorded_call`,
    `unconsumed` for recorded calls it never made) or words of the divergence message.
    Fails with the report otherwise."""
    report = rerun(settings, conversation_id, agent, mode=mode, **options)
    found = report.divergence
    if expect is None:
        ok = report.matched
    elif expect == "unconsumed":
        ok = found is None and bool(report.unconsumed)
    else:
        ok = found is not None and (expect == found.kind or expect in found.message)
    if not ok:
        wanted = "no divergence" if expect is None else f"divergence {expect!r}"
        raise AssertionError(f"expected {wanted}; got:\n" + "\n".join(report.lines()))
    return report
