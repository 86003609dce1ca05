"""A projection runner leaves the process's garbage collector and thread switching
alone; `agentlog project run`, a process that only projects, opts in to tuning them."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

from helpers.cli import agentlog
from helpers.process_probe import TABLE, ProcessSettingsProbe

from agentlog.consumers import ProjectionRunner, open_sink
from agentlog.consumers.throughput import GC_THRESHOLDS, SWITCH_INTERVAL_S
from agentlog.producers import Recorder
from agentlog.settings import Settings

TUNED = (GC_THRESHOLDS[0], round(SWITCH_INTERVAL_S * 1_000_000))


def _process_settings() -> tuple[tuple[int, int, int], float]:
    return gc.get_threshold(), sys.getswitchinterval()


def _observed(sink_url: str) -> list[tuple[int, int]]:
    with open_sink(sink_url, read_only=True) as sink:
        return [tuple(r) for r in sink.query(f"SELECT gc_threshold0, switch_us FROM {TABLE}")]


def test_a_runner_leaves_process_settings_alone(settings: Settings, tmp_path: Path) -> None:
    before = _process_settings()
    assert (before[0][0], round(before[1] * 1_000_000)) != TUNED  # else this proves nothing
    with Recorder(settings) as recorder:
        recorder.user_message("conv-1", "hello")
    sink_url = f"duckdb:{tmp_path / 'probe.duckdb'}"
    with open_sink(sink_url) as sink:
        runner = ProjectionRunner(settings, sink, [ProcessSettingsProbe()], group="probe")
        assert _process_settings() == before
        assert runner.run(once=True).applied == 1
    assert _process_settings() == before
    # ...and while it ran, its handlers saw the process as it was.
    assert _observed(sink_url) == [(before[0][0], round(before[1] * 1_000_000))]


def test_project_run_tunes_its_own_process(settings: Settings, tmp_path: Path) -> None:
    with Recorder(settings) as recorder:
        recorder.user_message("conv-1", "hello")
    sink_url = f"duckdb:{tmp_path / 'probe.duckdb'}"
    run = agentlog(
        "--bootstrap",
        str(settings.bootstrap_servers),
        "--topic-prefix",
        settings.topic_prefix,
        "project",
        "run",
        "--once",
        "--sink",
        sink_url,
        "--projection",
        "helpers.process_probe:ProcessSettingsProbe",
        state_dir=tmp_path,
    )
    assert run.code == 0, run.err
    assert _observed(sink_url) == [TUNED]
