"""Why the worker refuses a message the engine did not take: three distinct reasons."""

from __future__ import annotations

import json

import scenario

from geofence.model import Fix, parse_orders
from stream.app import Worker
from stream.keying import Router

PARTITIONS = 4


def worker_with(orders_json: list[dict[str, object]]) -> tuple[Worker, Router]:
    orders = parse_orders(json.dumps(orders_json))
    worker = Worker("127.0.0.1:1", scenario.zones(), orders)  # never started: no I/O here
    worker.router = Router.build(orders, PARTITIONS)
    return worker, worker.router


def test_unknown_expired_and_misrouted_devices_get_their_own_reason() -> None:
    orders = scenario.orders_json()
    orders[0] = {**orders[0], "valid_until": "2026-01-01T00:00:00Z"}  # P1's order has ended
    worker, router = worker_with(orders)
    ts = scenario.T0
    expired = Fix(device_id="WB-P1", ts=ts, lat=32.0, lon=118.0)
    stranger = Fix(device_id="GHOST-1", ts=ts, lat=32.0, lon=118.0)
    home = router.partition_of_message(expired)
    elsewhere = (home + 1) % PARTITIONS

    letters = worker._unknown(home, [expired, stranger], {id(expired): 17})
    assert [d.reason for d in letters] == ["unknown_device", "unknown_device"]
    assert "not active" in letters[0].detail and letters[0].source == f"telemetry:{home}@17"
    assert "no active order" in letters[1].detail

    (misrouted,) = worker._unknown(elsewhere, [expired], {})
    assert misrouted.reason == "misrouted" and f"belongs to partition {home}" in misrouted.detail
