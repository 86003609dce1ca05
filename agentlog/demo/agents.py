"""The demo's agents: a triage agent routes each customer to a billing, support or
sales specialist, who works through tool calls its model asks for, within a `Policy`.

Plain agent code against `AgentSession`: the same functions record the demo in its
simulated world and re-run on their recordings (`agentlog replay rerun CONVERSATION
--agent agentlog.demo.agents:support_team`). They decide only on what the session
returns (the customer's messages, the models' answers, the tools' results), never on
chance or the clock, so a re-run with the same policy makes the recorded calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agentlog.agent_session import AgentSession
from agentlog.errors import ToolError

MODEL = {
    "triage": "gpt-4o-mini",
    "billing": "gpt-4o",
    "support": "claude-sonnet-4",
    "sales": "gpt-4o",
}

TRIAGE_PROMPT = "You are the triage agent of Acme support. Identify the intent and route."
SPECIALIST_PROMPT = {
    "billing": "You are Acme's billing specialist. Look invoices up before refunding.",
    "support": "You are Acme's technical support. Search the knowledge base first.",
    "sales": "You are Acme's sales assistant. Quote list prices only.",
}

# name, description, parameters (name: JSON type)
TOOLS: dict[str, list[tuple[str, str, dict[str, str]]]] = {
    "billing": [
        ("lookup_invoice", "Fetch an invoice by id", {"invoice_id": "string"}),
        (
            "issue_refund",
            "Refund part or all of a payment",
            {"invoice_id": "string", "amount": "number"},
        ),
    ],
    "support": [
        ("search_kb", "Search the knowledge base", {"query": "string", "top_k": "integer"}),
        ("check_order_status", "Status of an order", {"order_id": "string"}),
        ("reset_password", "Send a password reset link", {"email": "string"}),
    ],
    "sales": [
        ("get_pricing", "Price list for a plan", {"plan": "string", "seats": "integer"}),
        ("schedule_demo", "Book a product demo", {"email": "string", "slot": "string"}),
    ],
}

HANDED_TO_A_PERSON = "I've passed this to a colleague who will reply by email."
REPLIED = "replied"  # what `work_on_request` returns when the customer has the answer
MAX_MODEL_TURNS = 6  # a specialist whose model keeps calling tools hands over
HOLD_STEP, REFUND_STEP = "hold_amount", "issue_refund"  # the refund saga's steps


@dataclass(frozen=True)
class Policy:
    """The business rules the agents work within."""

    refund_limit: float = 500.0  # EUR; a larger refund goes to a person instead
    escalate_failed_tools: bool = True  # a tool that failed for good: a person takes over
    # Tools the agent cannot do without: when a call of one fails for good, its ToolError
    # propagates instead, so whoever runs the agent tries again later (the trigger
    # runtime: its attempts, then a dead letter parking the conversation until redriven).
    retry_later: frozenset[str] = frozenset()


DEFAULT_POLICY = Policy()


def support_team(session: AgentSession, policy: Policy = DEFAULT_POLICY) -> str:
    """One customer conversation, from their request to its outcome."""
    intent = route(session)
    outcome = specialist(session, intent, policy)
    session.end_conversation(outcome)
    return outcome


def route(session: AgentSession) -> str:
    """Triage, then hand the customer over to the specialist of their intent."""
    intent = triage(session)
    session.handoff("triage", intent, reason=f"intent {intent}")
    return intent


def triage(session: AgentSession) -> str:
    """The customer's intent (billing, support or sales), as the triage model sees it."""
    request = session.user_messages[0]
    session.system_prompt("triage", TRIAGE_PROMPT, prompt_version="triage-v7")
    session.user_message(request)
    messages = [
        {"role": "system", "content": TRIAGE_PROMPT},
        {"role": "user", "content": request},
    ]
    answer = json.loads(session.llm(messages, model=MODEL["triage"], agent="triage"))
    intent = str(answer["intent"])
    if intent not in TOOLS:
        intent = "support"  # a model's unknown label goes to the generalists
    session.intent_identified("triage", intent, float(answer["confidence"]))
    return intent


def specialist(session: AgentSession, intent: str, policy: Policy = DEFAULT_POLICY) -> str:
    """Work on the request with the tools the model asks for; the outcome."""
    outcome = work_on_request(session, intent, policy)
    return after_the_reply(session) if outcome == REPLIED else outcome


def work_on_request(session: AgentSession, intent: str, policy: Policy = DEFAULT_POLICY) -> str:
    """The specialist up to its answer: REPLIED when the customer has it, else the
    outcome (escalated, failed). Event-driven agents stop here and take the customer's
    next message as a new event (`agentlog.demo.live`)."""
    session.tools_declared(intent, _declarations(intent))
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SPECIALIST_PROMPT[intent]},
        {"role": "user", "content": session.user_messages[0]},
    ]
    for _ in range(MAX_MODEL_TURNS):
        text = session.llm(messages, model=MODEL[intent], agent=intent)
        answer = json.loads(text)
        if "reply" in answer:
            session.agent_message(intent, str(answer["reply"]))
            return REPLIED
        if "escalate" in answer:
            return _hand_over(session, intent, str(answer["escalate"]))
        name, arguments = str(answer["tool"]), dict(answer["arguments"])
        if name == "issue_refund" and float(arguments["amount"]) > policy.refund_limit:
            return _hand_over(
                session,
                intent,
                f"refund of {arguments['amount']} EUR is above the limit of "
                f"{policy.refund_limit:g} EUR",
            )
        try:
            result = _call(session, intent, name, arguments)
        except ToolError as failed:
            if failed.tool_name in policy.retry_later:
                raise
            if not policy.escalate_failed_tools:
                session.agent_message(intent, "Sorry, I cannot do that right now.")
                return "failed"
            return _hand_over(session, intent, f"tool failures ({failed.tool_name})")
        messages = [
            *messages,
            {"role": "assistant", "content": text},
            {"role": "tool", "name": name, "content": json.dumps(result, sort_keys=True)},
        ]
    return _hand_over(session, intent, f"no answer after {MAX_MODEL_TURNS} model turns")


def _call(session: AgentSession, agent: str, name: str, arguments: dict[str, Any]) -> Any:
    """A tool call; a refund is a saga: hold the amount, then issue the refund; a refund
    that fails for good releases the hold (the completed step compensated)."""
    if name != "issue_refund":
        return session.call_tool(name, arguments, agent=agent)
    saga = f"refund-{arguments['invoice_id']}"
    session.saga_started(saga, "refund", [HOLD_STEP, REFUND_STEP], input=arguments)
    session.saga_step_started(saga, HOLD_STEP, input=arguments)
    session.saga_step_completed(saga, HOLD_STEP, output={"held": arguments["amount"]})
    session.saga_step_started(saga, REFUND_STEP, input=arguments)
    try:
        result = session.call_tool(name, arguments, agent=agent)
    except ToolError as failed:
        session.saga_step_failed(
            saga, REFUND_STEP, error_type=failed.error_type, error_message=failed.error_message
        )
        session.saga_step_compensated(saga, HOLD_STEP, "the refund failed: hold released")
        session.saga_ended(saga, "compensated", reason=f"{name} failed for good")
        raise
    session.saga_step_completed(saga, REFUND_STEP, output=result)
    session.saga_ended(saga, "completed")
    return result


def _hand_over(session: AgentSession, agent: str, reason: str) -> str:
    session.escalation(agent, reason, target="human")
    session.agent_message(agent, HANDED_TO_A_PERSON)
    return "escalated"


def after_the_reply(session: AgentSession) -> str:
    """Resolved when the customer answers the reply, abandoned when they left."""
    later = session.user_messages[1:]
    if not later:
        return "abandoned"
    session.user_message(later[0])
    return "resolved"


def _declarations(intent: str) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {k: {"type": t} for k, t in parameters.items()},
                "required": list(parameters),
            },
        }
        for name, description, parameters in TOOLS[intent]
    ]
