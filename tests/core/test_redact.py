"""Redaction of training examples: a table of what must go (keys and tokens of the major
providers, JWTs, IBANs, IP addresses, phone numbers, cards however grouped, e-mail
addresses in any script, numbers inside JSON, tool declarations) and of what must stay
(timestamps, dates, URLs with ports, versions, UUIDs, order numbers), and a megabyte of
hostile text redacted in linear time."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agentlog.analytics.redact import Redactor

# (text, what it must become)
FOUND = [
    # provider keys and tokens (made-up values of the documented shapes)
    ("key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", "key [SECRET]"),
    ("key sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe", "key [SECRET]"),
    ("old key sk-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3dEf6h.", "old key [SECRET]."),
    ("AKIAIOSFODNN7EXAMPLE is the id", "[SECRET] is the id"),
    ("session ASIAY34FZKBOKMUTVV7A", "session [SECRET]"),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key = [SECRET]",
    ),
    ("token ghp_1234567890abcdefghijABCDEFGHIJ123456", "token [SECRET]"),
    ("pat github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuv", "pat [SECRET]"),
    ("oauth gho_16C7e42F292c6912E7710c838347Ae178B4a", "oauth [SECRET]"),
    ("slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp", "slack [SECRET]"),
    ("maps AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "maps [SECRET]"),
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe [SECRET]"),
    (
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "Bearer [SECRET]",
    ),
    ("password=hunter22 and more", "password=[SECRET] and more"),
    ('"api_key": "abcd1234efgh"', '"api_key": "[SECRET]"'),
    # URLs: the password goes, the user, host and port stay
    ("postgresql://admin:S3cr3t@db:5432/app", "postgresql://admin:[SECRET]@db:5432/app"),
    ("amqp://u:p4ss@mq.example.com:5671", "amqp://u:[SECRET]@mq.example.com:5671"),
    # e-mail, any script
    ("mail jo.doe@example.com now", "mail [EMAIL] now"),
    ("schreib jürgen.müller@exämple.de", "schreib [EMAIL]"),
    ("почта иван@пример.рф", "почта [EMAIL]"),
    # IBANs (mod-97 valid)
    ("IBAN GB82 WEST 1234 5698 7654 32 please", "IBAN [IBAN] please"),
    ("to DE89370400440532013000.", "to [IBAN]."),
    # IP addresses
    ("from 192.168.10.254 at", "from [IP] at"),
    ("host 2001:db8:85a3::8a2e:370:7334 up", "host [IP] up"),
    ("link fe80::1 down", "link [IP] down"),
    ("full 2001:0db8:0000:0000:0000:ff00:0042:8329", "full [IP]"),
    # phone numbers
    ("call +44 20 7946 0958", "call [PHONE]"),
    ("call (555) 123-4567", "call [PHONE]"),
    ("call 5551234567 today", "call [PHONE] today"),
    ("or +15551234567", "or [PHONE]"),
    # cards, however grouped (Luhn-valid)
    ("card 4111 1111 1111 1111", "card [CARD]"),
    ("card 4111  1111  1111  1111", "card [CARD]"),
    ("card 4111.1111.1111.1111", "card [CARD]"),
    ("card 4111-1111-1111-1111", "card [CARD]"),
    ("card 5500000000000004", "card [CARD]"),
]

KEPT = [
    "at 2026-11-02 10:15:30 UTC",
    "2026-11-02T10:15:30.123456+00:00",
    "due 02/11/2026 or 2026.11.02",
    "https://api.example.com:8443/v1/items?page=2",
    "postgresql://db:5432/app",
    "version 1.2.3, python 3.11.4, build 10.0.19041.1, v2.3.4.5",
    "id 123e4567-e89b-12d3-a456-426614174000",
    "nil 00000000-0000-0000-0000-000000000000",
    "order #1234567890 and ORD-2026-000123",
    "order 2345678901 shipped; invoice no. 3456789012",
    "card 4111 1111 1111 1112 fails Luhn",
    "amount 1234.56 EUR, 12,345,678 users",
    "timestamp 1764000000",
    "std::vector and Foo::bar",
    "max tokens: 4096, input_tokens=3",
    "sk-learn and sk-8",
    "GB00WEST12345698765432 is not valid",
    "10:15:30 and 00:1a:2b:3c:4d:5e",
    "a@b",
]


@pytest.mark.parametrize(("text", "expected"), FOUND)
def test_what_must_go_is_replaced(text: str, expected: str) -> None:
    assert Redactor().text(text) == expected


@pytest.mark.parametrize("text", KEPT)
def test_what_must_stay_is_kept(text: str) -> None:
    assert Redactor().text(text) == text


def test_json_numbers_and_secret_keys_are_redacted_and_the_json_stays_json() -> None:
    redactor = Redactor()
    arguments = json.dumps(
        {
            "card": 4111111111111111,
            "phone": 442079460958,
            "callback": 5551234567,
            "order_id": 2345678901,
            "amount": 12.5,
            "count": 3,
            "password": "hunter2",
            "note": "ip 10.1.2.3",
            "ok": True,
        }
    )
    out = json.loads(redactor.json_text(arguments) or "")
    assert out == {
        "card": "[CARD]",
        "phone": "[PHONE]",
        "callback": "[PHONE]",
        "order_id": 2345678901,
        "amount": 12.5,
        "count": 3,
        "password": "[SECRET]",
        "note": "ip [IP]",
        "ok": True,
    }
    assert redactor.counts == {"[CARD]": 1, "[PHONE]": 2, "[SECRET]": 1, "[IP]": 1}


def test_tool_declarations_are_redacted_but_keep_their_names() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "refund",
                "description": "Refund; escalate to ops@example.com",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "card": {"type": "string", "examples": ["4111 1111 1111 1111"]},
                        "key": {"type": "string", "default": "sk_live_4eC39HqLyjWDarjtT1zdp7dc"},
                    },
                },
            },
        }
    ]
    Redactor().tools(tools)
    function = tools[0]["function"]
    assert function["name"] == "refund"
    assert function["description"] == "Refund; escalate to [EMAIL]"
    properties = function["parameters"]["properties"]
    assert properties["card"]["examples"] == ["[CARD]"]
    assert properties["key"]["default"] == "[SECRET]"


# Each input is a megabyte built against one pattern's weak spot: long runs a pattern
# could rescan from every start (the e-mail pattern used to), separators that invite
# backtracking, many near-matches.
HOSTILE = {
    "letters": "a" * 1_000_000,
    "at signs": "@" * 1_000_000,
    "one long local part": "a" * 1_000_000 + "@x",
    "local parts": "a@" * 500_000,
    "dotted domain": "x@" + "a." * 500_000,
    "no tld": ("a" * 60 + "@" + "b" * 60 + ".") * 8_000,
    "digits": "1" * 1_000_000,
    "spaced digits": "1 " * 500_000,
    "dotted digits": "1." * 500_000,
    "colons": ":" * 1_000_000,
    "hex groups": "a1:" * 333_333,
    "key prefixes": "sk-" * 333_333,
    "jwt prefixes": "eyJ." * 250_000,
    "url": "://" + "a" * 1_000_000,
    "names": "password=" * 111_111,
    "iban-ish": "GB82 " * 200_000,
}

# A child process redacts them one by one and prints its times. The bound: linear-time
# redaction of 1 MB takes well under a second here (see the figures printed), the old
# quadratic e-mail pattern needed 20 s for 160 KB, so about 15 minutes for 1 MB. 20 s
# per input leaves a margin of 20x or more for a 2-core box shared with seven other test
# runs, while anything quadratic stays far beyond it; an alarm kills the child at the
# bound, so a regression fails the test instead of hanging the suite.
_BOUND_SECONDS = 20.0


def test_a_megabyte_of_hostile_text_is_redacted_in_linear_time() -> None:
    script = (
        "import json, signal, sys, time\n"
        "from agentlog.analytics.redact import Redactor\n"
        "inputs = json.loads(sys.stdin.read())\n"
        "for name, text in inputs.items():\n"
        f"    signal.alarm({int(_BOUND_SECONDS)})\n"
        "    started = time.perf_counter()\n"
        "    Redactor().json_text(text)\n"
        "    print(name, time.perf_counter() - started, flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(HOSTILE),
        capture_output=True,
        text=True,
        timeout=_BOUND_SECONDS * len(HOSTILE),
        check=False,
    )
    print(done.stdout)
    seconds = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in done.stdout.splitlines()
    }
    unfinished = [name for name in HOSTILE if name not in seconds]
    assert not unfinished and done.returncode == 0, (
        f"killed after {_BOUND_SECONDS} s on {unfinished[:1]} ({done.returncode}): {done.stderr}"
    )
    slow = {name: s for name, s in seconds.items() if s > _BOUND_SECONDS}
    assert not slow, f"redaction not linear on {slow}"
