"""Test suites for what others build on agentlog: `SinkContract` checks a sink.

Part of the face, beside the CLI: it imports the consumers, and nothing in agentlog
imports it. It needs pytest.
"""

from agentlog.testing.sink_contract import CONTRACT_TABLE, SinkContract

__all__ = ["CONTRACT_TABLE", "SinkContract"]
