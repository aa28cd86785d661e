"""The per-device rate of HTTP requests (OsmAnd, check-ins): one request, several devices."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fakes import RecordingPublisher
from prometheus_client import CollectorRegistry

from devices.metrics import GatewayMetrics
from devices.registry import Registry
from devices.servers import Hub, ServerConfig
from geofence.model import parse_orders


def test_a_request_refused_for_one_device_spends_no_other_devices_allowance() -> None:
    """A request with two devices' messages, one of them over its rate: it is
    refused whole (counted for all its messages), and the other device's
    allowance is untouched."""
    orders = parse_orders(json.dumps([
        {"person_id": p, "devices": [d], "jurisdiction": "320102", "rules": []}
        for p, d in (("P-1", "PH-A"), ("P-2", "PH-B"))]))
    hub = Hub(Registry(orders, b"unit"), RecordingPublisher(),  # type: ignore[arg-type]
              GatewayMetrics(CollectorRegistry()), ServerConfig(rate_per_s=0.001, rate_burst=2))
    now = time.monotonic()
    assert hub.over_rate("osmand", {"PH-B": 2}, now, "raw", "test") is None  # B spends all
    assert hub.over_rate("osmand", {"PH-A": 2, "PH-B": 1}, now, "raw", "test") == "PH-B"
    assert hub.over_rate("osmand", {"PH-A": 2}, now, "raw", "test") is None  # A's two are left
    assert hub.over_rate("osmand", {"PH-A": 1}, now, "raw", "test") == "PH-A"
    assert hub.metrics.rate_limited.labels("osmand")._value.get() == 4
