"""A small billing agent written once against the session API: run live to make a
recording, then re-run on it (and its variants, to diverge on purpose)."""

from __future__ import annotations

import re


def billing_agent(session, refund_limit: float = 500.0, refund_share: float = 1.0) -> None:
    @session.tool
    def lookup_invoice(invoice_id: str) -> dict:
        return {"invoice_id": invoice_id, "total": 120.0, "status": "paid"}

    @session.tool
    def issue_refund(invoice_id: str, amount: float) -> dict:
        return {"refund_id": "RF-1", "status": "pending", "amount": amount}

    for text in session.user_messages:
        session.user_message(text)
        route = session.llm(
            [{"role": "user", "content": text}], model="gpt-4o-mini", agent="triage"
        )
        session.handoff("triage", "billing", reason=route)
        invoice_id = re.search(r"INV-\d+", text).group(0)
        invoice = lookup_invoice(invoice_id)
        if invoice["total"] <= refund_limit:
            issue_refund(invoice_id, round(invoice["total"] * refund_share, 2))
            session.agent_message("billing", "Your refund is on its way.")
        else:
            session.escalation("billing", "refund above the limit", target="human")
    session.end_conversation("resolved")


def refund_first_agent(session) -> None:
    """The same calls, the refund before the look-up: fine in fifo, not in strict."""

    @session.tool
    def lookup_invoice(invoice_id: str) -> dict:
        return {"invoice_id": invoice_id, "total": 120.0, "status": "paid"}

    @session.tool
    def issue_refund(invoice_id: str, amount: float) -> dict:
        return {"refund_id": "RF-1", "status": "pending", "amount": amount}

    text = session.user_messages[0]
    session.llm([{"role": "user", "content": text}], model="gpt-4o-mini", agent="triage")
    issue_refund("INV-42", 120.0)
    lookup_invoice("INV-42")


def swallowing_agent(session) -> None:
    """Catches every Exception around its tool call: a divergence still stops it."""

    @session.tool
    def cancel_order(order_id: str) -> dict:
        return {"cancelled": order_id}

    try:
        cancel_order("ORD-1")
    except Exception:
        session.agent_message("billing", "something went wrong")


def fake_llm(messages, *, model: str, agent: str) -> str:
    return "billing"


def reworded_agent(session) -> None:
    """A new system prompt: the recorded answer no longer applies."""
    text = session.user_messages[0]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]
    session.llm(messages, model="gpt-4o-mini", agent="triage")


def refund_service_down(name: str, arguments: dict, *, agent: str) -> dict:
    """Live tools after a fork: every call fails."""
    raise ConnectionError(f"{name} is down")
