"""Test suites for what others build on agentlog: `SinkContract` checks a sink,
`IntegrationContract` a way of recording an agent (against `model_server.ModelServer`,
a canned OpenAI- and Anthropic-compatible server).

Part of the face, beside the CLI: it imports the consumers, and nothing in agentlog
imports it. It needs pytest.
"""

from agentlog.testing.integration_contract import IntegrationContract, Session
from agentlog.testing.sink_contract import CONTRACT_TABLE, SinkContract

__all__ = ["CONTRACT_TABLE", "IntegrationContract", "Session", "SinkContract"]
