"""Fixtures of the device-gateway tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from geofence.model import Fix, parse_ts


def _verify_fix(msg: Any, *, device_id: str | None = None, lat: float | None = None,
                lon: float | None = None, ts: str | int | None = None,
                valid: bool | None = None, tol: float = 1e-5) -> Fix:
    """Assert a decoded fix is sane (Traccar's ProtocolTest.verifyPosition, plus exact values)."""
    assert isinstance(msg, Fix), f"expected a Fix, got {type(msg).__name__}"
    assert -90.0 <= msg.lat <= 90.0 and -180.0 <= msg.lon <= 180.0
    assert 946_684_800_000 <= msg.ts <= int(time.time() * 1000) + 86_400_000, msg.ts
    assert msg.accuracy_m > 0
    if msg.speed_mps is not None:
        assert 0.0 <= msg.speed_mps <= 1000.0
    if msg.heading_deg is not None:
        assert 0.0 <= msg.heading_deg <= 360.0
    if msg.battery_pct is not None:
        assert 0.0 <= msg.battery_pct <= 100.0
    if device_id is not None:
        assert msg.device_id == device_id
    if lat is not None:
        assert abs(msg.lat - lat) <= tol, (msg.lat, lat)
    if lon is not None:
        assert abs(msg.lon - lon) <= tol, (msg.lon, lon)
    if ts is not None:
        assert msg.ts == parse_ts(ts), (msg.ts, ts)
    if valid is not None:
        assert msg.valid is valid
    return msg


@pytest.fixture
def verify_fix() -> Callable[..., Fix]:
    """The ``verify_fix(msg, device_id=, lat=, lon=, ts=, valid=)`` helper."""
    return _verify_fix
