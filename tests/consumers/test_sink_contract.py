"""The sink contract (`agentlog.testing.SinkContract`) on every sink agentlog ships."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from agentlog.testing import SinkContract


class TestMemorySink(SinkContract):
    @pytest.fixture
    def sink_url(self) -> str:
        return f"memory:contract-{uuid.uuid4().hex}"


class TestDuckDBSink(SinkContract):
    @pytest.fixture
    def sink_url(self, tmp_path: Path) -> str:
        return f"duckdb:{tmp_path / 'state.duckdb'}"


class TestPostgresSink(SinkContract):
    @pytest.fixture
    def sink_url(self, postgres_url: str) -> str:
        return postgres_url
