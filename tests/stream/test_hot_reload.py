"""Hot reload of an order and a zone takes effect on the stream within 5 s.

Two workers in one group split the partitions (scale-out) and both apply a
change published to the control topics; the change takes effect on the
stream (an alert opens for a device that was unknown a moment earlier, and
for a zone that moved), and a removed order clears its open episode with a
reason.
"""

from __future__ import annotations

import json
import time

import scenario
from aiokafka import AIOKafkaProducer
from streamkit import (
    alert_records,
    caught_up,
    dead_letter_values,
    produce,
    test_settings,
    wait_for,
)

from geofence.model import Fix, parse_order
from stream.app import Worker
from stream.keying import Router
from stream.topics import ORDERS, ZONES

P9 = {"person_id": "P9", "devices": ["WB-P9"], "jurisdiction": "320104",
      "rules": [{"id": "r9", "type": "exclusion", "zone": "bar"}]}
SPOT = (118.70, 32.00)  # where P9 stands: outside every zone at first


def _fixes(t0: int, n: int = 3) -> list[Fix]:
    return [Fix(device_id="WB-P9", ts=t0 + i * 40_000, lat=SPOT[1], lon=SPOT[0], accuracy_m=5.0)
            for i in range(n)]


async def test_order_and_zone_hot_reload_on_every_worker(broker: str) -> None:
    orders = scenario.orders()
    workers = [Worker(broker, scenario.zones(), orders, test_settings()) for _ in range(2)]
    for w in workers:
        await w.start()
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        await wait_for(lambda: all(w.is_ready() for w in workers)
                       and sorted(p for w in workers for p in w.assigned()) == [0, 1, 2, 3], 40)
        assert all(w.assigned() for w in workers), "two workers split the partitions"

        # 1. a new order: every worker knows it within 5 s, its owner evaluates it
        t0 = time.monotonic()
        await producer.send_and_wait(ORDERS, json.dumps(P9).encode(), key=b"P9")
        await wait_for(lambda: all("P9" in w.orders for w in workers), 5)
        owner_p = Router.build([*orders, parse_order(P9)], 4).partition_of_person("P9")
        owner = next(w for w in workers if owner_p in w.assigned())
        await wait_for(lambda: "P9" in owner._parts[owner_p].orders, 5)
        assert time.monotonic() - t0 <= 5.0
        base = scenario.T0 + 3 * 3_600_000
        everyone = [*orders, parse_order(P9)]
        await produce(broker, everyone, _fixes(base))
        await wait_for(lambda: caught_up(*workers), 20)
        assert not [r for r in await alert_records(broker, 0.3) if r.alert.person_id == "P9"]

        # 2. the zone moves under P9: every worker has the new geometry within 5 s
        moved = {"type": "Feature", "id": "bar", "properties": {"radius_m": 300},
                 "geometry": {"type": "Point", "coordinates": list(SPOT)}}
        t1 = time.monotonic()
        await producer.send_and_wait(ZONES, json.dumps(moved).encode(), key=b"bar")
        await wait_for(lambda: all(w.zones.feature("bar")["geometry"]["coordinates"]
                                   == list(SPOT) for w in workers), 5)
        assert time.monotonic() - t1 <= 5.0
        await produce(broker, everyone, _fixes(base + 200_000))
        await wait_for(lambda: caught_up(*workers), 20)
        opened = [r for r in await alert_records(broker, 0.3)
                  if r.alert.person_id == "P9" and r.event == "opened"]
        assert [r.alert.kind for r in opened] == ["exclusion_entered"]

        # 3. the order is removed (tombstone): its open episode clears with a reason
        await producer.send_and_wait(ORDERS, None, key=b"P9")
        await wait_for(lambda: all("P9" not in w.orders for w in workers), 5)

        async def cleared() -> bool:
            recs = await alert_records(broker, 0.3)
            return any(r.alert.person_id == "P9" and r.event == "cleared"
                       and r.alert.reason == "order_removed" for r in recs)
        await wait_for(cleared, 10)

        # 4. an invalid control record is dead-lettered with its source, not applied
        await producer.send_and_wait(ORDERS, b'{"person_id": "P10", "devices": []}',
                                     key=b"P10")

        async def rejected() -> bool:
            return any(d["source"].startswith("orders:0@") and d["reason"] == "missing_field"
                       for d in await dead_letter_values(broker, 0.3))
        await wait_for(rejected, 10)
        assert all("P10" not in w.orders for w in workers)
    finally:
        await producer.stop()
        for w in workers:
            await w.stop()
