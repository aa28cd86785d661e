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


def rfc3339(ms: int) -> str:
    """Epoch ms as RFC 3339 UTC (same output as ``geofence.model.format_ts``, faster).

    Examples
    --------
    >>> rfc3339(1795356210000), rfc3339(1795356210250)
    ('2026-11-22T14:03:30Z', '2026-11-22T14:03:30.250Z')
    """
    days, rem = divmod(ms, 86_400_000)
    secs, milli = divmod(rem, 1000)
    h, r = divmod(secs, 3600)
    m, s = divmod(r, 60)
    base = f"{_day(days)}{h:02d}:{m:02d}:{s:02d}"
    return f"{base}Z" if milli == 0 else f"{base}.{milli:03d}Z"


def to_wire(msg: Telemetry) -> dict[str, Any]:
    """One message as a JSON-ready dict with an RFC 3339 ``ts``."""
    d: dict[str, Any] = msgspec.to_builtins(msg)
    d["ts"] = rfc3339(msg.ts)
    return d


def encode_messages(messages: Sequence[Telemetry]) -> bytes:
    """A batched envelope (JSON array) of canonical messages."""
    items: list[dict[str, Any]] = msgspec.to_builtins(messages)
    for d, msg in zip(items, messages, strict=True):
        d["ts"] = rfc3339(msg.ts)
    return _ENC.encode(items)


def encode_one(msg: Telemetry) -> bytes:
    """One canonical message as JSON."""
    return _ENC.encode(to_wire(msg))
