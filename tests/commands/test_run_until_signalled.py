"""The CLI's one way of running until signalled, and its one progress convention."""

from __future__ import annotations

import ast
import os
import signal
from pathlib import Path

import pytest

from agentlog.cli import _progress
from agentlog.cli._progress import StatusLine
from agentlog.cli._signals import STOP_SIGNALS, until_signalled

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.parametrize(("sent", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_a_stop_signal_asks_the_work_to_stop_then_says_how_to_exit(
    sent: signal.Signals, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    asked: list[str] = []
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    with until_signalled(lambda: asked.append("stop")) as signalled:
        os.kill(os.getpid(), sent)  # delivered to the main thread before kill returns
        assert asked == ["stop"]  # asked, not interrupted: the work goes on to its end
    assert signalled.exit_code() == code
    assert {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} == before
    if sent == signal.SIGINT:
        with pytest.raises(KeyboardInterrupt):
            signalled.raise_if_interrupted("the rest is done by the next run")
        assert "stopped by Ctrl-C: the rest is done by the next run" in capsys.readouterr().err
    else:
        signalled.raise_if_interrupted("never said")
        assert "never said" not in capsys.readouterr().err


def test_the_handlers_come_back_when_the_work_fails() -> None:
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(RuntimeError), until_signalled(lambda: None):
        raise RuntimeError("the work failed")
    assert signal.getsignal(signal.SIGINT) is before


def test_only_the_helper_handles_signals_in_the_cli() -> None:
    """One copy: no command installs its own SIGINT/SIGTERM handler or draws `\\r` lines."""
    handling, carriage_returns = [], []
    for path in sorted((ROOT / "agentlog" / "cli").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "signal"
                and isinstance(node.value, ast.Name)
                and node.value.id == "signal"
                and path.name != "_signals.py"
            ):
                handling.append(path.name)
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if node.value.startswith("\r"):
                    carriage_returns.append(path.name)
    assert handling == [] and carriage_returns == []


def test_a_status_line_is_drawn_by_rich_on_request_without_markup(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with StatusLine("projecting", flag=True, quiet=False) as status:
        status.show("applied 5 events [bold]lag[/bold]")
    shown = capsys.readouterr()
    assert "projecting" in shown.err and "[bold]lag[/bold]" in shown.err
    assert shown.out == ""


def test_into_a_log_a_status_line_is_written_once_a_minute(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under pytest stderr is no terminal: what a service's log file gets.
    clock = [1000.0]
    monkeypatch.setattr(_progress.time, "monotonic", lambda: clock[0])
    with StatusLine("projecting", flag=None, quiet=False) as status:
        status.show("applied 0 events")  # at the start: no figures worth a line yet
        clock[0] += 61
        status.show("applied 1 events")
        clock[0] += 30
        status.show("applied 2 events")  # within the minute: not written
        clock[0] += 31
        status.show("applied 3 events")
    assert capsys.readouterr().err == "applied 1 events\napplied 3 events\n"


@pytest.mark.parametrize(("flag", "quiet"), [(False, False), (None, True), (True, True)])
def test_no_progress_and_quiet_show_nothing(
    flag: bool | None, quiet: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    with StatusLine("projecting", flag=flag, quiet=quiet) as status:
        status.show("applied 1 events")
    assert capsys.readouterr().err == ""
