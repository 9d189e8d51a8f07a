"""Text from the outside world (file names above all) made safe to show a person.

A file name may hold bytes that are not UTF-8 (Python keeps them as lone surrogates), and control
characters: ESC starts terminal escape sequences that can recolour, retitle or rewrite a terminal,
BEL rings it, CR overwrites the line. Human-readable output shows each such character as a
visible escape (\\xff, \\x1b) instead; machine formats (JSON) escape them by their own rules.
"""

from __future__ import annotations

import re

# C0 controls except tab and newline, DEL, C1 controls; lone surrogates (undecodable bytes)
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_UNSAFE_IN_NAME = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control character but tab and newline, and every undecodable byte,
    shown as a backslash escape: safe to write to a terminal and encodable as UTF-8."""
    return _UNSAFE.sub(_escape, str(text))


def printable_name(text: str) -> str:
    """A file name (one line, always): like printable(), and tab and newline escaped too."""
    return _UNSAFE_IN_NAME.sub(_escape, str(text))


_SURROGATE = re.compile("[\ud800-\udfff]")


def json_safe(text: str) -> str:
    """JSON text (from json.dumps(..., ensure_ascii=False)) with lone surrogates written as \\uXXXX
    escapes: still valid JSON that decodes to the same string, and encodable as UTF-8."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
