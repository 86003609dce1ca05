"""Personal data out of training examples: e-mail addresses, phone numbers, payment card
numbers (Luhn-checked, so order numbers and amounts stay) and configured patterns.

JSON text (tool arguments and results) is redacted inside its string values only and
written again, so it stays JSON; other text is redacted as it is.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson

from agentlog.errors import ConfigurationError

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# 13 to 19 digits, optionally grouped by single spaces or dashes.
CARD = re.compile(r"(?<![\w+-])\d(?:[ -]?\d){12,18}(?![\w-])")
# An optional +country code, then groups of digits split by spaces, dots, dashes or a
# bracketed area code; 9 to 15 digits in all, with a + or a separator somewhere (a bare
# run of digits is an id more often than a phone number).
PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,5}(?:[ .-]\d{2,5}){1,4}(?!\w)"
)
_DIGIT = re.compile(r"\d")
_PHONE_PLUS = re.compile(r"(?<![\w+])\+\d{9,15}(?!\w)")


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


class Redactor:
    """Replaces what it finds with `[EMAIL]`, `[PHONE]`, `[CARD]` or `[REDACTED]`, and
    counts what it replaced."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns = []
        for pattern in patterns:
            try:
                self.patterns.append(re.compile(pattern))
            except re.error as exc:
                raise ConfigurationError(
                    f"redaction pattern {pattern!r} is not a regular expression: {exc}"
                ) from None
        self.counts: Counter[str] = Counter()

    def text(self, text: str) -> str:
        if not text:
            return text
        if "@" in text:
            text = self._sub(EMAIL, "[EMAIL]", text)
        if _DIGIT.search(text):
            text = CARD.sub(self._card, text)
            text = PHONE.sub(self._phone, text)
            text = self._sub(_PHONE_PLUS, "[PHONE]", text)
        for pattern in self.patterns:
            text = self._sub(pattern, "[REDACTED]", text)
        return text

    def _sub(self, pattern: re.Pattern[str], label: str, text: str) -> str:
        new, count = pattern.subn(label, text)
        if count:
            self.counts[label] += count
        return new

    def _card(self, found: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", found.group())
        if _luhn(digits):
            self.counts["[CARD]"] += 1
            return "[CARD]"
        return found.group()

    def _phone(self, found: re.Match[str]) -> str:
        text = found.group()
        digits = sum(c.isdigit() for c in text)
        if 9 <= digits <= 15:
            self.counts["[PHONE]"] += 1
            return "[PHONE]"
        return text

    def json_text(self, text: str | None) -> str | None:
        """JSON text with its string values redacted (text that is not JSON: as text)."""
        if not text:
            return text
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            return self.text(text)
        redacted = self._value(value)
        return text if redacted == value else orjson.dumps(redacted).decode()

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self._value(v) for v in value]
        if isinstance(value, dict):
            return {k: self._value(v) for k, v in value.items()}
        return value

    def messages(self, messages: list[dict[str, Any]]) -> None:
        """Redact the messages in place: contents, and tool calls' arguments."""
        for message in messages:
            content = message.get("content")
            if isinstance(content, str):
                if message["role"] == "tool":
                    message["content"] = self.json_text(content)
                else:
                    message["content"] = self.text(content)
            for call in message.get("tool_calls") or ():
                function = call["function"]
                function["arguments"] = self.json_text(function["arguments"])
