"""The simulated world the demo's agents live in: a customer, the models' answers, the
tools' results, transient failures and every latency, drawn from one random generator
seeded per conversation.

All the randomness of a demo conversation is here, none in the agent code
(`agentlog.demo.agents`): the agents decide only on what their session returns, so a
re-run on the recording, which returns the same, makes the same decisions.

The simulated models answer as JSON text: the triage model `{"intent", "confidence"}`;
a specialist's model either a tool call `{"tool", "arguments"}` (finish reason
`tool_calls`), a reply `{"reply"}`, or `{"escalate": reason}` when the customer wants a
person. Which tools a specialist's model calls follows the customer's request.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from agentlog.agent_session import LlmAnswer

PROVIDER = {"gpt-4o-mini": "openai", "gpt-4o": "openai", "claude-sonnet-4": "anthropic"}

REQUESTS = {
    "billing": [
        "I was charged twice for my subscription this month.",
        "Can you explain the extra fee on invoice {invoice}?",
        "I'd like a refund for the annual plan I bought by mistake.",
    ],
    "support": [
        "My order {order} still hasn't shipped, what's going on?",
        "I can't log in, the password reset email never arrives.",
        "The export to CSV keeps failing with a timeout.",
    ],
    "sales": [
        "How much would the Team plan cost for {seats} seats?",
        "Could someone show us a demo next week?",
    ],
}
THANKS = "No, thanks!"

TRANSIENT_ERRORS = [
    ("TimeoutError", "upstream did not answer within 5000 ms"),
    ("RateLimitError", "429 Too Many Requests: retry after 2s"),
    ("ConnectionError", "connection reset by peer"),
]
FAIL_RATE = 0.12  # of each tool attempt
SAGA_BOOKKEEPING_MS = 1.0  # between a saga's recorded moves: no rng draw, so they shift nothing


@dataclass(frozen=True)
class Customer:
    user_id: str
    channel: str
    intent: str  # what they really want; the triage model finds it
    messages: list[str]  # what they will say: their request, and "thanks" if they stay
    asks_for_a_person: bool
    invoice: str
    amount: float  # the invoice's total
    order: str
    seats: int

    @property
    def email(self) -> str:
        return f"{self.user_id}@example.com"


@dataclass(frozen=True)
class ToolAttempt:
    duration_ms: float
    result: Any = None
    error: tuple[str, str] | None = None  # (type, message) of a transient failure


@dataclass
class World:
    """One conversation's world, seeded by the demo's seed and the conversation."""

    rng: random.Random
    customer: Customer = field(init=False)

    def __post_init__(self) -> None:
        self.customer = _customer(self.rng)

    @classmethod
    def of(cls, seed: int, number: int) -> World:
        return cls(random.Random(f"world-{seed}-{number}"))

    # -- time ---------------------------------------------------------------------------

    def pause_ms(self, what: str, nth_user_message: int = 0) -> float:
        """How long before the agent (or the customer) records `what`."""
        if what == "user_message":
            # The customer types their request, later their thanks.
            return (
                self.rng.uniform(2000, 20000)
                if nth_user_message == 0
                else self.rng.uniform(3000, 30000)
            )
        if what == "end_conversation":
            return self.rng.uniform(1000, 60000)
        if what == "agent_message":
            return self.rng.uniform(5, 3000)
        if what.startswith("saga_"):
            return SAGA_BOOKKEEPING_MS  # a coordinator's note, no one deliberating
        return self.rng.uniform(1, 5)

    # -- models -------------------------------------------------------------------------

    def llm(self, messages: list[dict[str, Any]], model: str, agent: str) -> LlmAnswer:
        if agent == "triage":
            confidence = round(self.rng.uniform(0.62, 0.99), 2)
            text, finish = _json({"intent": self.customer.intent, "confidence": confidence}), "stop"
        else:
            text, finish = self._specialist_answer(messages)
        return LlmAnswer(
            text,
            finish_reason=finish,
            provider=PROVIDER[model],
            response_model=f"{model}-2026-08-01",
            input_tokens=self.rng.randint(300, 2400),
            output_tokens=max(8, len(text.split()) * 2 + self.rng.randint(0, 40)),
            latency_ms=round(self.rng.lognormvariate(6.6, 0.5), 1),
        )

    def _specialist_answer(self, messages: list[dict[str, Any]]) -> tuple[str, str]:
        done = sum(1 for m in messages if m.get("role") == "tool")
        plan = self.plan()
        if done < len(plan):
            name, arguments = plan[done]
            return _json({"tool": name, "arguments": arguments}), "tool_calls"
        if self.customer.asks_for_a_person:
            return _json({"escalate": "customer asked for a human"}), "stop"
        return _json({"reply": "All sorted: anything else I can help with?"}), "stop"

    def plan(self) -> list[tuple[str, dict[str, Any]]]:
        """The tool calls a specialist's model makes for this customer, in order."""
        c = self.customer
        request = c.messages[0]
        if c.intent == "billing":
            plan: list[tuple[str, dict[str, Any]]] = [("lookup_invoice", {"invoice_id": c.invoice})]
            if "refund" in request or "twice" in request:
                plan.append(("issue_refund", {"invoice_id": c.invoice, "amount": c.amount}))
            return plan
        if c.intent == "support":
            plan = [("search_kb", {"query": request[:40], "top_k": 5})]
            if "order" in request:
                plan.append(("check_order_status", {"order_id": c.order}))
            elif "password" in request:
                plan.append(("reset_password", {"email": c.email}))
            return plan
        plan = [("get_pricing", {"plan": "team", "seats": c.seats})]
        if "demo" in request:
            plan.append(("schedule_demo", {"email": c.email, "slot": "2026-11-10T10:00Z"}))
        return plan

    # -- tools --------------------------------------------------------------------------

    def new_call_id(self) -> str:
        return f"call_{self.rng.getrandbits(64):016x}"

    def tool(self, name: str, arguments: dict[str, Any]) -> ToolAttempt:
        """One attempt of a tool call: its result, or a transient failure."""
        duration = round(self.rng.lognormvariate(4.5, 0.7), 1)
        if self.rng.random() < FAIL_RATE:
            return ToolAttempt(duration, error=self.rng.choice(TRANSIENT_ERRORS))
        return ToolAttempt(duration, result=self.result(name, arguments))

    def result(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        c = self.customer
        if name == "lookup_invoice":
            return {"invoice_id": c.invoice, "total": c.amount, "currency": "EUR", "status": "paid"}
        if name == "issue_refund":
            return {"refund_id": f"RF-{self.rng.randint(1000, 9999)}", "status": "pending"}
        if name == "search_kb":
            return {"hits": [{"id": f"KB-{self.rng.randint(100, 999)}", "score": 0.81}]}
        if name == "check_order_status":
            return {"status": self.rng.choice(["packed", "in_transit", "delayed"])}
        if name == "reset_password":
            return {"sent": True}
        if name == "get_pricing":
            return {"per_seat": 12.0, "currency": "EUR"}
        if name == "schedule_demo":
            return {"booked": True}
        raise ValueError(f"the simulated world has no tool {name!r}")


def _customer(rng: random.Random) -> Customer:
    user = f"user_{rng.randint(1000, 9999)}"
    intent = rng.choices(list(REQUESTS), weights=[5, 4, 2])[0]
    invoice = f"INV-{rng.randint(10000, 99999)}"
    order = f"ORD-{rng.randint(10000, 99999)}"
    seats = rng.randint(5, 200)
    request = rng.choice(REQUESTS[intent]).format(invoice=invoice, order=order, seats=seats)
    stays = rng.random() >= 0.1  # one in ten leaves without a word after the answer
    return Customer(
        user_id=user,
        channel=rng.choice(["web_chat", "web_chat", "mobile_app", "email"]),
        intent=intent,
        messages=[request, THANKS] if stays else [request],
        asks_for_a_person=rng.random() < 0.06,
        invoice=invoice,
        amount=round(rng.uniform(9, 480), 2),
        order=order,
        seats=seats,
    )


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
