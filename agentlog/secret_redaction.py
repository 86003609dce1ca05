"""Secrets out of text before it is shown: the one redaction of every message, summary,
status line and `repr` that may carry a connection string.

A sink or broker is named by a URL or a DSN, and drivers quote it back in their errors.
What goes:

- the password of a URL's user info: `postgresql://u:pw@db/x` -> `postgresql://u:***@db/x`
  (everything up to the last `@` before the host, so an unescaped `@` in it goes too);
- the value of any `name=value` whose name says it is secret (`password`, `sslpassword`,
  `passwd`, `pwd`, `secret`, `token`, `api_key`, `credential`, with any prefix or suffix:
  `sasl.password`, `access_token`, `client_secret`): in a URL's query (`?password=...`),
  a libpq key=value DSN (`host=db password='a b'`) or a client's configuration line;
  quoted values whole.

Every pattern is matched in linear time (no nested quantifiers; names are checked in
Python once matched), so redacting a long message costs what reading it does.
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "secret_name", "without_secrets"]

REDACTED = "***"

_USER_INFO = re.compile(r"(?<![\w+.-])([A-Za-z][\w+.-]*://[^\s/?#@:]*):[^\s/?#]*@")
_SETTING = re.compile(
    r"""(?<![\w.-])([\w.-]+)(\s*=\s*)('(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|[^\s&#,;'"]*)"""
)
_SECRET_ENDINGS = (
    *("password", "passwd", "pwd", "secret", "token", "apikey", "credential", "credentials"),
)
_SECRET_PAIRS = ("api_key", "api-key", "api.key", "private_key", "private-key")


def secret_name(name: str) -> bool:
    """Whether a setting of this name holds a secret: its last word (split at `.`, `_`
    and `-`) is or ends in password, passwd, pwd, secret, token, apikey, credential(s), or
    is `pass` (`sslpassword`, `sasl.password`, `access_token`; not `token_count`); or it
    names an API or private key."""
    lowered = name.lower()
    last = re.split(r"[._-]", lowered)[-1]
    return (
        last == "pass"
        or last.endswith(_SECRET_ENDINGS)
        or any(pair in lowered for pair in _SECRET_PAIRS)
    )


def _setting(match: re.Match[str]) -> str:
    name, equals, value = match.groups()
    if not value or not secret_name(name):
        return match.group(0)
    return f"{name}{equals}{REDACTED}"


def without_secrets(text: object) -> str:
    """`text` with every password and secret-named value it holds replaced by `***`."""
    shown = _USER_INFO.sub(rf"\1:{REDACTED}@", str(text))
    return _SETTING.sub(_setting, shown)
