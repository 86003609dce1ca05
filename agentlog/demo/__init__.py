"""The demo: a simulated multi-agent customer-support system that records through the
SDK, as a real agent system would (used by `agentlog demo`, tests and benchmarks)."""

__all__: list[str] = []
