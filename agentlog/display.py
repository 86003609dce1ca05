"""Text from outside (the log, headers, files, drivers' errors) as it may be shown to
people: the one rule of the terminal, transcripts, HTML and the console.

A control character is shown, never emitted: a record holding `ESC ] 0 ; ... BEL` must
not retitle the reviewer's terminal, `ESC [ 2K` must not erase a line of the audit
trail, OSC 52 must not write the clipboard, and a `CR LF` inside an agent's name must
not print a line that looks like the transcript's own. So:

- C0 controls and DEL become their Unicode control pictures (`ESC` -> `␛`, `LF` -> `␊`,
  `BEL` -> `␇`): the text stays readable and the attempt stays visible;
- C1 controls (some terminals take U+009B as `ESC [`), the line and paragraph
  separators and the bidirectional overrides and isolates (which reorder what is shown:
  "Trojan Source") become escapes such as `\\x9b` and `\\u202e`.

`visible` makes one line (every line break shown); `visible_block` keeps a body's
lines as lines, each continuation indented so that none can pass for a line of the
output around it. Both run in linear time (`str.translate`) and are idempotent.
"""

from __future__ import annotations

import re

__all__ = ["visible", "visible_block"]

_PICTURES: dict[int, str] = {code: chr(0x2400 + code) for code in range(0x20)}
_PICTURES[0x7F] = "\u2421"  # ␡
_ESCAPED: dict[int, str] = {code: f"\\x{code:02x}" for code in range(0x80, 0xA0)}
_ESCAPED.update(
    {
        code: f"\\u{code:04x}"
        for code in (
            0x061C,  # arabic letter mark
            0x200E,  # left-to-right mark
            0x200F,  # right-to-left mark
            *range(0x202A, 0x202F),  # embeddings and overrides
            *range(0x2066, 0x206A),  # isolates
            0x2028,  # line separator
            0x2029,  # paragraph separator
        )
    }
)
_ONE_LINE = str.maketrans({**_PICTURES, **_ESCAPED})
_IN_A_LINE = str.maketrans({**{k: v for k, v in _PICTURES.items() if k != 0x09}, **_ESCAPED})
# Most text holds none of them: one scan in C finds that out, and it is returned as is.
_ANY = re.compile("[" + "".join(re.escape(chr(code)) for code in _ONE_LINE) + "]")


def visible(text: object) -> str:
    """`text` as one line with every control character shown (see the module)."""
    shown = str(text)
    return shown.translate(_ONE_LINE) if _ANY.search(shown) else shown


def visible_block(text: object, indent: str = "    ") -> str:
    """`text` with its lines kept (LF, CRLF or a lone CR each end one), every other
    control character shown, and every line after the first starting with `indent`."""
    lines = str(text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return ("\n" + indent).join(line.translate(_IN_A_LINE) for line in lines)
