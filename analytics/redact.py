"""Personal data and secrets out of training examples.

What is found and what replaces it:

- `[SECRET]`: API keys and tokens of the major providers (OpenAI, Anthropic, AWS access
  key ids and secret keys named as such, GitHub, Slack, Google, Stripe), JWTs, the
  password of a URL (`postgresql://admin:[SECRET]@db:5432`), the value after a name such
  as `password=` or `api_key:`, and the string value of a JSON key named so;
- `[EMAIL]` (any script: `jürgen@exämple.de` too), `[IBAN]` (checked mod 97), `[CARD]`
  (13-19 digits grouped by spaces, dots or dashes, Luhn-checked so order numbers and
  amounts stay), `[PHONE]` (grouped, `+`-prefixed, or a bare 10-digit number that could be
  dialled), `[IP]` (IPv4 and IPv6);
- `[REDACTED]`: configured patterns.

Dates, times (`2026-11-02 10:15:30`), version numbers, UUIDs and order numbers stay. JSON
text (tool arguments and results) is redacted inside its values (strings, and numbers
that are cards or phone numbers) and written again, so it stays JSON; other text is
redacted as it is. Tool declarations are redacted in their descriptions and parameters.

Every pattern runs in time linear in the text: each starts at a literal or behind a
boundary that a run of the same characters cannot pass (so a failed attempt is not
retried one character later), and repeats are bounded, so no input makes one quadratic.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from agentlog.errors import ConfigurationError

SECRET = "[SECRET]"

# How the patterns stay fast: a pattern that starts with a character class lets the
# regular-expression engine skip, in C, every position where that class does not match;
# the boundary ("not preceded by ...") is then checked as a lookbehind over the class
# and the character before it. A pattern that started with the lookbehind would run its
# Python-level matcher at every position of the text.

# Provider keys and tokens, by their documented prefixes. Each must stand alone: neither
# preceded nor followed by a character that could belong to it.
_TOKEN_CHAR = r"[A-Za-z0-9_-]"
PROVIDER_KEY = re.compile(
    rf"[sArgx](?<!{_TOKEN_CHAR}.)(?:"
    r"(?<=s)k-ant-[A-Za-z0-9_-]{20,}"  # Anthropic
    r"|(?<=s)k-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"  # OpenAI
    r"|(?<=A)(?:KIA|SIA|GPA|IDA|ROA|IPA|NPA|NVA)[A-Z0-9]{16}"  # AWS access key ids
    r"|(?<=g)h[pousr]_[A-Za-z0-9]{30,}"  # GitHub tokens
    r"|(?<=g)ithub_pat_[A-Za-z0-9_]{22,}"  # GitHub fine-grained tokens
    r"|(?<=x)ox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|(?<=A)Iza[0-9A-Za-z_-]{35}"  # Google API keys
    r"|(?<=[sr])k_(?:live|test)_[0-9A-Za-z]{16,}"  # Stripe secret and restricted keys
    rf")(?!{_TOKEN_CHAR})"
)
# Three base64url parts, the first two JSON objects (`{"` is `eyJ`).
JWT = re.compile(
    r"e(?<![A-Za-z0-9_-]e)yJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"
    r"(?![A-Za-z0-9_.-])"
)
# An AWS secret access key is 40 base64 characters with no prefix of its own: only where
# it is named.
AWS_SECRET = re.compile(
    r"(?i)(aws_?secret_?(?:access_?)?key|secret_?access_?key)([\"' ]{0,3}[:=][\"' ]{0,3})"
    r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"
)
# `password=...`, `api_key: ...`, `"token": "..."` in text (JSON values are handled by
# key). The name must stand alone: `tokens: 500` and `input_token=3` stay.
_SECRET_NAMES = (
    r"pass(?:word|wd)?|pwd|secret|client_?secret|api_?key|apikey|access_?token|auth_?token"
    r"|token|private_?key"
)
NAMED_SECRET = re.compile(
    rf"(?i)(?<![A-Za-z0-9_])((?:{_SECRET_NAMES})[\"']?\s{{0,3}}[:=]\s{{0,3}}[\"']?)"
    r"(?!\[SECRET\])[^\s\"'&,;]{4,256}"
)
_SECRET_WORDS = ("pass", "pwd", "secret", "key", "token")
_SECRET_KEY = re.compile(rf"(?i)^(?:[a-z0-9]+[_-])?(?:{_SECRET_NAMES}|authorization)$")
# The password between `user:` and `@host` of a URL; the user stays.
URL_PASSWORD = re.compile(r"(://[^\s/@:]{1,256}:)[^\s/@]{1,256}(?=@)")

# Unicode letters and digits (`\w`) on both sides of the @, a top-level domain of letters.
# The start must not follow a local-part character, so a long run without an @ is read
# once, not once per character.
EMAIL = re.compile(
    r"[\w.%+'-](?<![\w.%+'-].)[\w.%+'-]{0,63}@(?:[\w-]{1,63}\.){1,8}[^\W\d_]{2,63}(?![\w-])"
)
# Two letters of a country, two check digits, up to 30 letters or digits, grouped by 4.
IBAN = re.compile(
    r"[A-Z](?<![A-Za-z0-9].)[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Za-z0-9])"
)
_IBAN_COUNTRIES = frozenset(
    "AD AE AL AT AZ BA BE BG BH BI BR BY CH CR CY CZ DE DJ DK DO EE EG ES FI FK FO FR GB GE "
    "GI GL GR GT HR HU IE IL IQ IS IT JO KW KZ LB LC LI LT LU LV LY MC MD ME MK MN MR MT MU "
    "NI NL NO OM PK PL PS PT QA RO RS RU SA SC SD SE SI SK SM SO ST SV TL TN TR UA VA VG XK "
    "YE".split()
)
# Four dotted numbers; that each is an octet is checked after.
IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}(?:\.\d{1,3}){3}(?!\w|\.\w)")
_HEX = r"[0-9A-Fa-f]{1,4}"
IPV6 = re.compile(
    rf"(?<![\w:])(?:(?:{_HEX}:){{7}}{_HEX}"
    rf"|(?:{_HEX}(?::{_HEX}){{0,6}})?::(?:{_HEX}(?::{_HEX}){{0,6}})?)(?![\w:])"
)
# 13 to 19 digits grouped by one or two spaces, a dot or a dash; not part of a longer
# number, a decimal, a UUID or a dashed id.
CARD = re.compile(r"\d(?<![\w+.-]\d)(?:(?: {1,2}|[.-])?\d){12,18}(?![\w-]|\.\d)")
# An optional +country code, then groups of digits split by spaces, dots, dashes or a
# bracketed area code; 9 to 15 digits in all (checked after).
PHONE = re.compile(
    r"(?<![\w+.-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,5}(?:[ .-]\d{2,5}){1,4}"
    r"(?![\w:]|[.-]\d)"
)
_PHONE_PLUS = re.compile(r"\+(?<![\w+]\+)\d{9,15}(?!\w)")
# A bare 10-digit number that could be dialled (no leading 0 or 1, which also keeps Unix
# timestamps of this century out), not after a `#`, a dash or an id's name.
BARE_PHONE = re.compile(r"[2-9](?<![\w#+./-].)\d{9}(?![\w]|[.-]\d)")
_NAMED_ID = re.compile(
    r"(?i)(?:\b(?:order|invoice|ticket|case|ref|reference|tracking|confirmation|booking"
    r"|account|customer)(?:[\s_-]?(?:number|no\.?|id))?|\bid)[\s:#=\"'-]{0,3}$"
)
# JSON keys whose numbers are ids, never phone numbers.
_ID_KEY = re.compile(r"(?i)id$|ids$|order|invoice|ticket|booking|tracking|account|time|ts$")
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4}")
_DIGIT = re.compile(r"\d")
_FOUR_DIGITS = re.compile(r"\d\D{0,3}\d\D{0,3}\d\D{0,3}\d")
# What a provider key starts with.
_KEY_HINT = re.compile(
    r"[sr]k[-_]|A(?:KIA|SIA|GPA|IDA|ROA|IPA|NPA|NVA|Iza)|gh[pousr]_|github_pat_|xox"
)
# Text with none of these characters (most sentences) holds nothing the built-in
# detectors find: one search instead of a dozen.
_HINT = re.compile(r"[@:=]|\d\D{0,3}\d\D{0,3}\d\D{0,3}\d|" + _KEY_HINT.pattern + "|eyJ")
_NON_DIGIT = re.compile(r"\D")
_PHONE_KEY = re.compile(r"(?i)phone|mobile|tel|fax|msisdn")


def _sub(pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str], text: str) -> str:
    return pattern.sub(replace, text)


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _iban_valid(text: str) -> bool:
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34 or compact[:2] not in _IBAN_COUNTRIES:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


class Redactor:
    """Replaces what it finds with `[SECRET]`, `[EMAIL]`, `[IBAN]`, `[CARD]`, `[PHONE]`,
    `[IP]` or `[REDACTED]`, and counts what it replaced."""

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
        if _HINT.search(text):
            text = self._builtin(text)
        for pattern in self.patterns:
            text = _sub(pattern, lambda m: self._count("[REDACTED]"), text)
        return text

    def _builtin(self, text: str) -> str:
        # Secrets first: a URL's password must go before its `user:pw@host` reads as an
        # e-mail address. Each pattern runs only where a cheap test says it may match.
        if "://" in text:
            text = _sub(URL_PASSWORD, lambda m: m.group(1) + self._count(SECRET), text)
        if _KEY_HINT.search(text):
            text = _sub(PROVIDER_KEY, lambda m: self._count(SECRET), text)
        if "eyJ" in text:
            text = _sub(JWT, lambda m: self._count(SECRET), text)
        if "=" in text or ":" in text:
            lowered = text.lower()
            if "secret" in lowered:
                text = _sub(
                    AWS_SECRET, lambda m: m.group(1) + m.group(2) + self._count(SECRET), text
                )
            if any(word in lowered for word in _SECRET_WORDS):
                text = _sub(NAMED_SECRET, lambda m: m.group(1) + self._count(SECRET), text)
        if "@" in text:
            text = _sub(EMAIL, lambda m: self._count("[EMAIL]"), text)
        if _FOUR_DIGITS.search(text):  # the least any of these holds
            text = _sub(IBAN, self._iban, text)
            if "." in text:
                text = _sub(IPV4, self._ipv4, text)
            text = _sub(CARD, self._card, text)
            text = _sub(PHONE, self._phone, text)
            if "+" in text:
                text = _sub(_PHONE_PLUS, lambda m: self._count("[PHONE]"), text)
            text = _sub(BARE_PHONE, self._bare_phone, text)
        if "::" in text or text.count(":") >= 7:
            text = _sub(IPV6, self._ipv6, text)
        return text

    def _count(self, label: str) -> str:
        self.counts[label] += 1
        return label

    def _iban(self, found: re.Match[str]) -> str:
        return self._count("[IBAN]") if _iban_valid(found.group()) else found.group()

    def _card(self, found: re.Match[str]) -> str:
        if _luhn(_NON_DIGIT.sub("", found.group())):
            return self._count("[CARD]")
        return found.group()

    def _ipv4(self, found: re.Match[str]) -> str:
        try:
            ipaddress.IPv4Address(found.group())
        except ValueError:
            return found.group()
        return self._count("[IP]")

    def _phone(self, found: re.Match[str]) -> str:
        text = found.group()
        digits = sum(c.isdigit() for c in text)
        if 9 <= digits <= 15 and not _DATE.match(text):
            return self._count("[PHONE]")
        return text

    def _bare_phone(self, found: re.Match[str]) -> str:
        before = found.string[max(0, found.start() - 16) : found.start()]
        return found.group() if _NAMED_ID.search(before) else self._count("[PHONE]")

    def _ipv6(self, found: re.Match[str]) -> str:
        text = found.group()
        # `::` alone and hex words (`cafe::babe`) are not worth a false positive.
        if text.count(":") < 2 or not _DIGIT.search(text):
            return text
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            return text
        return self._count("[IP]")

    def json_text(self, text: str | None) -> str | None:
        """JSON text with its values redacted (text that is not JSON: as text)."""
        if not text:
            return text
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            return self.text(text)
        redacted = self.value(value)
        return text if redacted == value else orjson.dumps(redacted).decode()

    def value(self, value: Any, key: str = "") -> Any:
        """A JSON value with its strings redacted, a secret's value (by its key's name)
        replaced, and numbers that are cards or phone numbers replaced by the label."""
        if isinstance(value, str):
            if value and _SECRET_KEY.match(key):
                return self._count(SECRET)
            return self.text(value)
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return self._number(value, key)
        if isinstance(value, list):
            return [self.value(v, key) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v, str(k)) for k, v in value.items()}
        return value

    def _number(self, number: int, key: str) -> int | str:
        digits = str(abs(number))
        if 13 <= len(digits) <= 19 and _luhn(digits):
            return self._count("[CARD]")
        if 9 <= len(digits) <= 15 and _PHONE_KEY.search(key):
            return self._count("[PHONE]")
        if len(digits) == 10 and digits[0] in "23456789" and not _ID_KEY.search(key):
            return self._count("[PHONE]")
        return number

    def tools(self, tools: list[dict[str, Any]]) -> None:
        """Redact tool declarations in place: descriptions and parameters (schemas carry
        descriptions, examples, defaults and enums); names stay, as calls refer to them."""
        for tool in tools:
            function = tool.get("function", tool)
            if isinstance(function.get("description"), str):
                function["description"] = self.text(function["description"])
            if "parameters" in function:
                function["parameters"] = self.value(function["parameters"])

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
