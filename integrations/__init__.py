"""Recording the agents people already run, one line of set-up each:

    client = agentlog.integrations.openai.record(OpenAI(), recorder, agent="billing")
    client = agentlog.integrations.anthropic.record(Anthropic(), recorder, agent="billing")

Each integration is a submodule imported on first use and needs its extra
(`pip install 'agentlog[openai]'`, `[anthropic]`, `[openai-agents]`, `[langchain]`);
without it, importing the submodule raises `MissingExtra` saying which line to run.
`pip install agentlog` pulls none of these libraries.
"""

import importlib as _importlib
import typing as _typing

__all__ = ["anthropic", "langchain", "openai", "openai_agents"]

if _typing.TYPE_CHECKING:
    from agentlog.integrations import anthropic, langchain, openai, openai_agents  # noqa: F401


def __getattr__(name: str) -> _typing.Any:
    """`agentlog.integrations.openai` works after `import agentlog.integrations` alone."""
    if name not in __all__:
        raise AttributeError(f"module 'agentlog.integrations' has no attribute {name!r}")
    return _importlib.import_module(f"agentlog.integrations.{name}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
