"""Timestamps: RFC 3339 or epoch milliseconds in, epoch ms held, RFC 3339 UTC out."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from geofence.errors import ValidationError

_MAX_EPOCH_MS = 253402300799999  # 9999-12-31T23:59:59.999Z


def parse_ts(value: object, field: str = "ts") -> int:
    """Turn an RFC 3339 string or integer epoch milliseconds into epoch ms.

    Parameters
    ----------
    value : int or str
        ``1763820210000`` or ``"2026-11-22T22:03:30+08:00"``.
    field : str
        Field name used in the error message.

    Returns
    -------
    int
        Milliseconds since 1970-01-01T00:00:00Z.

    Raises
    ------
    ValidationError
        ``invalid_timestamp`` for anything else (no zone, not a date,
        a bool, out of range).

    Examples
    --------
    >>> parse_ts("2026-11-22T22:03:30+08:00") == parse_ts(1795356210000)
    True
    """
    if isinstance(value, bool):
        raise ValidationError("invalid_timestamp", f"`{field}` is a boolean")
    if isinstance(value, int):
        if not 0 <= value <= _MAX_EPOCH_MS:
            raise ValidationError("invalid_timestamp", f"`{field}` epoch ms {value} out of range")
        return value
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(
                "invalid_timestamp", f"`{field}` {value[:40]!r} is not RFC 3339"
            ) from None
        if dt.tzinfo is None:
            raise ValidationError(
                "invalid_timestamp", f"`{field}` {value[:40]!r} has no `Z` or UTC offset"
            )
        ms = int(dt.timestamp() * 1000 + (0.5 if dt.timestamp() >= 0 else -0.5))
        if not 0 <= ms <= _MAX_EPOCH_MS:
            raise ValidationError("invalid_timestamp", f"`{field}` {value[:40]!r} out of range")
        return ms
    raise ValidationError("invalid_timestamp", f"`{field}` must be RFC 3339 text or epoch ms")


def format_ts(ms: int) -> str:
    """Format epoch milliseconds as RFC 3339 UTC with ``Z``.

    Whole seconds print without a fraction; otherwise milliseconds are kept.

    Examples
    --------
    >>> format_ts(1795356210000)
    '2026-11-22T14:03:30Z'
    >>> format_ts(1795356210250)
    '2026-11-22T14:03:30.250Z'
    """
    secs, rem = divmod(ms, 1000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return f"{base}Z" if rem == 0 else f"{base}.{rem:03d}Z"


def utc_now_ms() -> int:
    """Wall-clock now in epoch ms (the one place the pure core reads the clock)."""
    return int(datetime.now(UTC).timestamp() * 1000)
