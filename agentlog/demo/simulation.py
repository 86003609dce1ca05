"""A simulated customer-support agent system, recorded through the SDK (`agentlog demo`).

A triage agent greets each customer, identifies the intent and hands off to a
billing, technical-support or sales specialist, who calls an LLM and tools (with
realistic arguments and latencies, some failures and retries) and may escalate to a
human. Conversations overlap in time as they would in production. Everything is
drawn from one seeded random generator, event ids and timestamps included, so a seed
reproduces the same log byte for byte.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agentlog.producers import Recorder
from agentlog.serde import micros_of

SIMULATION_START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MODEL = {
    "triage": "gpt-4o-mini",
    "billing": "gpt-4o",
    "support": "claude-sonnet-4",
    "sales": "gpt-4o",
}
PROVIDER = {"gpt-4o-mini": "openai", "gpt-4o": "openai", "claude-sonnet-4": "anthropic"}

TOOLS = {
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

INTENTS = {
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

TRANSIENT_ERRORS = [
    ("TimeoutError", "upstream did not answer within 5000 ms"),
    ("RateLimitError", "429 Too Many Requests: retry after 2s"),
    ("ConnectionError", "connection reset by peer"),
]


# One recorded event: given the recorder and the event ids recorded so far by name.
Step = Callable[[Recorder, dict[str, str]], object]


@dataclass(order=True)
class _Step:
    at: int
    order: int
    action: Step = field(compare=False)


@dataclass
class SimulationResult:
    conversations: list[str]
    events: int
    first_micros: int
    last_micros: int


class _Conversation:
    """Builds one conversation's steps with simulated timestamps."""

    def __init__(self, rng: random.Random, conversation_id: str, start: int) -> None:
        self.rng = rng
        self.cid = conversation_id
        self.now = start
        self.steps: list[tuple[int, Step]] = []

    def at(self, delay_ms: float, action: Step) -> None:
        self.now += int(delay_ms * 1000)
        self.steps.append((self.now, action))

    def llm(self, agent: str, prompt: str, answer: str, finish: str = "stop") -> None:
        model = MODEL[agent]
        latency = self.rng.lognormvariate(6.6, 0.5)
        tokens_in = self.rng.randint(300, 2400)
        tokens_out = max(8, len(answer.split()) * 2 + self.rng.randint(0, 40))
        messages = [{"role": "user", "content": prompt}]
        self.at(
            latency,
            lambda r, m: r.llm_call(
                self.cid,
                agent=agent,
                provider=PROVIDER[model],
                request_model=model,
                response_model=f"{model}-2026-08-01",
                input=messages,
                output_text=answer,
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                latency_ms=round(latency, 1),
                finish_reason=finish,
            ),
        )

    def tool(
        self,
        agent: str,
        name: str,
        arguments: dict[str, Any],
        result: dict[str, Any],
        fail_rate: float,
    ) -> bool:
        """A tool call with retries; False if it finally failed."""
        call_id = f"call_{self.rng.getrandbits(64):016x}"
        for attempt in (1, 2, 3):
            if self._tool_attempt(agent, name, arguments, result, fail_rate, call_id, attempt):
                return True
        return False

    def _tool_attempt(
        self,
        agent: str,
        name: str,
        arguments: dict[str, Any],
        result: dict[str, Any],
        fail_rate: float,
        call_id: str,
        attempt: int,
    ) -> bool:
        """One attempt: requested, then completed (True) or failed (False)."""
        duration = self.rng.lognormvariate(4.5, 0.7)
        key = f"{call_id}/{attempt}"
        self.at(
            5,
            lambda r, m: m.__setitem__(
                key,
                r.tool_call_requested(
                    self.cid, call_id, name, arguments, agent=agent, attempt=attempt
                ),
            ),
        )
        if self.rng.random() < fail_rate:
            error_type, message = self.rng.choice(TRANSIENT_ERRORS)
            self.at(
                duration,
                lambda r, m: r.tool_call_failed(
                    self.cid,
                    call_id,
                    name,
                    error_type=error_type,
                    error_message=message,
                    duration_ms=round(duration, 1),
                    attempt=attempt,
                    retryable=attempt < 3,
                    causation_id=m[key],
                ),
            )
            return False
        self.at(
            duration,
            lambda r, m: r.tool_call_completed(
                self.cid,
                call_id,
                name,
                result,
                duration_ms=round(duration, 1),
                attempt=attempt,
                causation_id=m[key],
            ),
        )
        return True


def _invoice(rng: random.Random) -> str:
    return f"INV-{rng.randint(10000, 99999)}"


def _conversation(rng: random.Random, cid: str, start: int) -> _Conversation:
    c = _Conversation(rng, cid, start)
    user = f"user_{rng.randint(1000, 9999)}"
    email = f"{user}@example.com"
    intent = rng.choices(list(INTENTS), weights=[5, 4, 2])[0]
    text = rng.choice(INTENTS[intent]).format(
        invoice=_invoice(rng), order=f"ORD-{rng.randint(10000, 99999)}", seats=rng.randint(5, 200)
    )
    channel = rng.choice(["web_chat", "web_chat", "mobile_app", "email"])
    c.at(
        0,
        lambda r, m: r.start_conversation(
            cid, channel=channel, user_id=user, metadata={"locale": "en-GB", "plan": "team"}
        ),
    )
    c.at(
        1,
        lambda r, m: r.system_prompt(
            cid,
            "triage",
            "You are the triage agent of Acme support. Identify the intent and route.",
            prompt_version="triage-v7",
        ),
    )
    c.at(rng.uniform(2000, 20000), lambda r, m: r.user_message(cid, text, user_id=user))
    c.llm("triage", text, f"Routing to {intent}.", finish="stop")
    confidence = round(rng.uniform(0.62, 0.99), 2)
    c.at(2, lambda r, m: r.intent_identified(cid, "triage", intent, confidence))
    c.at(3, lambda r, m: r.handoff(cid, "triage", intent, reason=f"intent {intent}"))
    tools = [
        {
            "name": n,
            "description": d,
            "parameters": {
                "type": "object",
                "properties": {k: {"type": t} for k, t in p.items()},
                "required": list(p),
            },
        }
        for n, d, p in TOOLS[intent]
    ]
    c.at(2, lambda r, m: r.tools_declared(cid, intent, tools))
    c.llm(intent, text, "Let me check that for you.", finish="tool_calls")

    fail_rate = 0.12
    ok = True
    if intent == "billing":
        invoice = _invoice(rng)
        amount = round(rng.uniform(9, 480), 2)
        ok = c.tool(
            intent,
            "lookup_invoice",
            {"invoice_id": invoice},
            {"invoice_id": invoice, "total": amount, "currency": "EUR", "status": "paid"},
            fail_rate,
        )
        if ok and ("refund" in text or "twice" in text):
            saga = f"refund-{rng.getrandbits(32):08x}"
            c.at(
                3,
                lambda r, m: r.saga_step_started(
                    cid, saga, "reserve_refund", input={"invoice_id": invoice}
                ),
            )
            ok = c.tool(
                intent,
                "issue_refund",
                {"invoice_id": invoice, "amount": amount},
                {"refund_id": f"RF-{rng.randint(1000, 9999)}", "status": "pending"},
                fail_rate,
            )
            if ok:
                c.at(
                    2,
                    lambda r, m: r.saga_step_completed(
                        cid, saga, "reserve_refund", output={"amount": amount}
                    ),
                )
            else:
                c.at(
                    2,
                    lambda r, m: r.saga_step_compensated(
                        cid, saga, "reserve_refund", "refund tool failed 3 times"
                    ),
                )
    elif intent == "support":
        ok = c.tool(
            intent,
            "search_kb",
            {"query": text[:40], "top_k": 5},
            {"hits": [{"id": f"KB-{rng.randint(100, 999)}", "score": 0.81}]},
            fail_rate,
        )
        if ok and "order" in text:
            ok = c.tool(
                intent,
                "check_order_status",
                {"order_id": f"ORD-{rng.randint(1, 9)}"},
                {"status": rng.choice(["packed", "in_transit", "delayed"])},
                fail_rate,
            )
        elif ok and "password" in text:
            ok = c.tool(intent, "reset_password", {"email": email}, {"sent": True}, fail_rate)
    else:
        ok = c.tool(
            intent,
            "get_pricing",
            {"plan": "team", "seats": rng.randint(5, 200)},
            {"per_seat": 12.0, "currency": "EUR"},
            fail_rate,
        )
        if ok and "demo" in text:
            ok = c.tool(
                intent,
                "schedule_demo",
                {"email": email, "slot": "2026-11-10T10:00Z"},
                {"booked": True},
                fail_rate,
            )

    escalate = not ok or rng.random() < 0.06
    if escalate:
        reason = "tool failures" if not ok else "customer asked for a human"
        c.at(4, lambda r, m: r.escalation(cid, intent, reason, target="human"))
        c.at(
            rng.uniform(500, 3000),
            lambda r, m: r.agent_message(
                cid, intent, "I've passed this to a colleague who will reply by email."
            ),
        )
        outcome = "escalated"
    else:
        c.llm(intent, "tool results", "All sorted: anything else I can help with?")
        c.at(5, lambda r, m: r.agent_message(cid, intent, "All sorted: anything else?"))
        abandoned = rng.random() < 0.1
        outcome = "abandoned" if abandoned else "resolved"
        if not abandoned:
            c.at(
                rng.uniform(3000, 30000),
                lambda r, m: r.user_message(cid, "No, thanks!", user_id=user),
            )
    c.at(rng.uniform(1000, 60000), lambda r, m: r.end_conversation(cid, outcome))
    return c


def seeded_event_ids(rng: random.Random) -> Callable[[], str]:
    return lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))


def simulate(
    recorder: Recorder, clock: SimulatedClock, conversations: int, seed: int
) -> SimulationResult:
    """Record `conversations` overlapping conversations in simulated-time order."""
    rng = random.Random(seed)
    start = micros_of(SIMULATION_START)
    heap: list[_Step] = []
    ids = []
    arrival = start
    order = 0
    for n in range(conversations):
        arrival += int(rng.expovariate(1 / 4.0) * 1_000_000)  # one every 4 s on average
        cid = f"conv-{seed}-{n:05d}"
        ids.append(cid)
        for at, action in _conversation(rng, cid, arrival).steps:
            heapq.heappush(heap, _Step(at, order, action))
            order += 1
    memory: dict[str, str] = {}
    count = 0
    first = heap[0].at if heap else start
    last = first
    for step in _drain(heap):
        clock.now = step.at
        step.action(recorder, memory)
        count += 1
        last = step.at
    return SimulationResult(ids, count, first, last)


def _drain(heap: list[_Step]) -> Iterator[_Step]:
    while heap:
        yield heapq.heappop(heap)


class SimulatedClock:
    """The recorder's clock during a simulation: microseconds the simulation sets."""

    def __init__(self) -> None:
        self.now = micros_of(SIMULATION_START)

    def __call__(self) -> int:
        return self.now
