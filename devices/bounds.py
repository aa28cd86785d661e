"""Shape limits checked on a JSON payload before any parser sees it.

A JSON parser recurses once per nesting level, so a payload nested thousands
of levels deep can exhaust the parser's stack and take down the input that
received it.  :func:`json_bounds` measures the nesting depth of raw bytes in
one linear pass (ignoring brackets inside strings) and refuses oversized or
over-deep payloads with the same ``reason``/``detail`` pair every gateway
input sends to the dead letter.  Pure: no I/O.
"""

from __future__ import annotations

import re

from devices.errors import FrameError

#: Deepest nesting a device payload legitimately needs (an array of objects
#: with a nested object or two); far below any parser's recursion limit.
MAX_JSON_DEPTH = 32

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = frozenset(b"[{")


def json_depth(raw: bytes, stop_at: int | None = None) -> int:
    """Deepest bracket nesting of ``raw`` (0 for a scalar); stops early past ``stop_at``.

    Brackets inside JSON strings do not count.  The scan does not validate
    JSON: an unbalanced payload still gets a depth and is refused later by the
    parser with its own reason (an unterminated string may overstate it).
    """
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        if byte in _OPEN:
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_at is not None and deepest > stop_at:
                    return deepest
        elif depth:
            depth -= 1
    return deepest


def json_bounds(raw: bytes, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise :class:`FrameError` (``payload_too_large`` / ``too_deep``) if ``raw`` exceeds a limit."""
    if len(raw) > max_bytes:
        raise FrameError("payload_too_large", f"{len(raw)} bytes > limit {max_bytes}")
    if b"[" not in raw and b"{" not in raw:
        return
    depth = json_depth(raw, stop_at=max_depth)
    if depth > max_depth:
        raise FrameError("too_deep", f"JSON nested more than {max_depth} levels deep")
