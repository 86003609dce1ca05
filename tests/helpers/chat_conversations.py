"""Chat-format conversations (OpenAI fine-tuning JSONL shape) with parallel tool calls,
tool errors and follow-ups: what `agentlog import` takes and `export training` gives back.
Used by the import tests and to seed the import parser's fuzz corpus."""

from __future__ import annotations

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "book_table",
            "description": "Book a restaurant table",
            "parameters": {
                "type": "object",
                "properties": {"place": {"type": "string"}, "seats": {"type": "integer"}},
            },
        },
    },
]


def tool_call(call_id: str, name: str, arguments: str) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


CONVERSATIONS = [
    {  # parallel tool calls, then a multi-turn follow-up
        "messages": [
            {"role": "system", "content": "You are a travel assistant."},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    tool_call("call_1", "get_weather", '{"city": "Paris"}'),
                    tool_call("call_2", "get_weather", '{"city": "Rome"}'),
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 18}'},
            {"role": "tool", "tool_call_id": "call_2", "content": "sunny, 24 C"},
            {"role": "assistant", "content": "Paris 18 C, Rome sunny and 24 C."},
            {"role": "user", "content": "Thanks! And tomorrow?"},
            {"role": "assistant", "content": "I only know today's weather."},
        ],
        "tools": TOOLS,
        "parallel_tool_calls": True,
    },
    {  # a tool error, content beside the call, a later sequential call
        "messages": [
            {"role": "user", "content": "Book 4 seats at Chez Jo, mail me at jo@example.com"},
            {
                "role": "assistant",
                "content": "Booking now.",
                "tool_calls": [tool_call("b1", "book_table", '{"place":"Chez Jo","seats":4}')],
            },
            {
                "role": "tool",
                "tool_call_id": "b1",
                "content": '{"error":{"type":"Full","message":"no table free"}}',
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [tool_call("b2", "book_table", '{"place":"Chez Jo","seats":2}')],
            },
            {"role": "tool", "tool_call_id": "b2", "content": '{"booked": true}'},
            {"role": "assistant", "content": "Only 2 seats were free: booked."},
        ],
        "tools": TOOLS,
    },
    {  # no tools at all
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "assistant", "content": "How can I help?"},
        ]
    },
]
