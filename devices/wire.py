"""Canonical JSON on the wire: timestamps as RFC 3339 UTC with ``Z`` (the contract's output form)."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from geofence.model import Telemetry

_ENC = msgspec.json.Encoder()


@functools.lru_cache(maxsize=64)
def _day(days: int) -> str:
    return time.strftime("%Y-%m-%dT", time.gmtime(days * 86400))


_SECONDS: dict[int, str] = {}
"""RFC 3339 text of whole seconds seen lately (live fixes cluster around now)."""


def rfc3339(ms: int) -> str:
    """Epoch ms as RFC 3339 UTC (same output as ``geofence.model.format_ts``, faster).

    Examples
    --------
    >>> rfc3339(1795356210000), rfc3339(1795356210250)
    ('2026-11-22T14:03:30Z', '2026-11-22T14:03:30.250Z')
    """
    secs, milli = divmod(ms, 1000)
    base = _SECONDS.get(secs)
    if base is None:
        days, rem = divmod(secs, 86_400)
        h, r = divmod(rem, 3600)
        m, s = divmod(r, 60)
        base = f"{_day(days)}{h:02d}:{m:02d}:{s:02d}"
        if len(_SECONDS) >= 4096:
            _SECONDS.clear()
        _SECONDS[secs] = base
    return f"{base}Z" if milli == 0 else f"{base}.{milli:03d}Z"


def to_wire(msg: Telemetry) -> dict[str, Any]:
    """One message as a JSON-ready dict with an RFC 3339 ``ts``."""
    d: dict[str, Any] = msgspec.to_builtins(msg)
    d["ts"] = rfc3339(msg.ts)
    return d


_TS_TEXT: dict[int, str] = {}
"""RFC 3339 text of the epoch-ms times seen lately (reports of one second share one)."""


def encode_messages(messages: Sequence[Telemetry]) -> bytes:
    """A batched envelope (JSON array) of canonical messages."""
    items: list[dict[str, Any]] = msgspec.to_builtins(messages)
    texts = _TS_TEXT
    for d in items:
        ms = d["ts"]
        text = texts.get(ms)
        if text is None:
            if len(texts) >= 8192:
                texts.clear()
            text = texts[ms] = rfc3339(ms)
        d["ts"] = text
    return _ENC.encode(items)


def encode_one(msg: Telemetry) -> bytes:
    """One canonical message as JSON."""
    return _ENC.encode(to_wire(msg))
