"""Tool workers (seed pattern 1): members of a consumer group on the tool-requests topic
that run the registry's tools for the calls agents request, each call ending once.

`ToolRegistry` declares the tools (`load_registry("module:name")` finds one),
`ToolWorker` runs them; `pending_requests` and `tool_call_restarts` are what `agentlog
status` shows of a group's calls."""

from agentlog.consumers.tools._ledger import PendingRequest, pending_requests
from agentlog.consumers.tools._registry import ToolRegistry, ToolSpec, load_registry
from agentlog.consumers.tools._restarts import Restarts, restarts_of, tool_call_restarts
from agentlog.consumers.tools._workers import DEFAULT_TOOL_GROUP, ToolWorker, WorkerProgress

__all__ = [
    "DEFAULT_TOOL_GROUP",
    "PendingRequest",
    "Restarts",
    "ToolRegistry",
    "ToolSpec",
    "ToolWorker",
    "WorkerProgress",
    "load_registry",
    "pending_requests",
    "restarts_of",
    "tool_call_restarts",
]
