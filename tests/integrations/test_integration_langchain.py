"""The LangChain callback handler (`agentlog.integrations.langchain.Handler`) passes the
integration contract with a real LangGraph agent (a model node and LangGraph's
ToolNode) and langchain-openai's ChatOpenAI talking to the canned model server; the
conversation is LangGraph's `thread_id`."""

from __future__ import annotations

from typing import Any

import openai
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from agentlog.integrations.langchain import Handler
from agentlog.testing import IntegrationContract, Session
from agentlog.testing.integration_contract import run_tool
from agentlog.testing.model_server import MODEL_RATE_LIMITED, SCRIPT


@tool
def lookup_invoice(invoice_id: str) -> dict:
    """Fetch an invoice"""
    return run_tool("lookup_invoice", {"invoice_id": invoice_id})


@tool
def issue_refund(amount: float) -> dict:
    """Refund a payment"""
    return run_tool("issue_refund", {"amount": amount})


def agent_graph(model: ChatOpenAI) -> Any:
    bound = model.bind_tools([lookup_invoice, issue_refund])

    def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("billing", call_model)
    graph.add_node("tools", ToolNode([lookup_invoice, issue_refund]))
    graph.add_edge(START, "billing")
    graph.add_conditional_edges("billing", tools_condition, ["tools", END])
    graph.add_edge("tools", "billing")
    return graph.compile()


class TestLangGraph(IntegrationContract):
    provider = "openai"
    finish_reasons = ("tool_calls", "stop")

    def run(self, session: Session, model: str, stream: bool = False) -> Any:
        chat = ChatOpenAI(
            model=model,
            base_url=session.server.openai_url,
            api_key="test",
            max_retries=0,
            streaming=stream,
        )
        config = {
            "callbacks": [Handler(session.recorder, agent=session.agent)],
            "configurable": {"thread_id": session.conversation_id},
        }
        return agent_graph(chat).invoke(
            {"messages": [("user", SCRIPT.question)]},
            config=config,  # type: ignore[arg-type]
        )

    def converse(self, session: Session, model: str, *, stream: bool = False) -> None:
        state = self.run(session, model, stream)
        assert state["messages"][-1].content == SCRIPT.answer

    def rate_limited(self, session: Session) -> BaseException:
        try:
            self.run(session, MODEL_RATE_LIMITED)
        except openai.RateLimitError as error:
            return error
        raise AssertionError("the 429 did not reach the caller")
