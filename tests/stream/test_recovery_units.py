"""Pure parts of recovery and keying (no broker)."""

from __future__ import annotations

import msgspec
import scenario

from geofence.engine import partition_keys
from geofence.model import Alert, AlertRecord, Fix, VideoHit
from stream.keying import Router, partition_of
from stream.recovery import encode_snapshot, record_identity


def _rec(event: str, at: str, lat: float) -> AlertRecord:
    alert = Alert("A-1", "P1", "r1", "exclusion_entered", "red", "2026-11-20T14:00:00Z",
                  lat, 118.8, "320102")
    return AlertRecord(event, alert, at=at)  # type: ignore[arg-type]


def test_opened_and_cleared_are_identified_by_alert_id_only() -> None:
    a = _rec("opened", "2026-11-20T14:00:00Z", 32.0)
    b = _rec("opened", "2026-11-20T14:00:30Z", 32.1)
    assert record_identity(a) == record_identity(b)
    assert record_identity(a) != record_identity(_rec("cleared", a.at or "", 32.0))


def test_updates_differ_by_time_and_content() -> None:
    u1 = _rec("updated", "2026-11-20T14:05:00Z", 32.0)
    assert record_identity(u1) == record_identity(_rec("updated", "2026-11-20T14:05:00Z", 32.0))
    assert record_identity(u1) != record_identity(_rec("updated", "2026-11-20T14:05:00Z", 32.2))
    assert record_identity(u1) != record_identity(_rec("updated", "2026-11-20T14:06:00Z", 32.0))


def test_router_keys_like_the_engine_and_kafkas_default_partitioner() -> None:
    orders = scenario.orders()
    r = Router.build(orders, 4)
    keys = partition_keys(orders)
    assert r.device_key == keys
    # the no_contact pair shares a key, hence a partition
    assert r.person_key["P4"] == r.person_key["P5"] == "P4"
    assert r.partition_of_person("P4") == r.partition_of_person("P5")
    fix = Fix(device_id="WB-P5", ts=1, lat=32.0, lon=118.0)
    assert r.partition_of_message(fix) == partition_of("P4", 4)
    hit = VideoHit(camera_id="CAM-9", ts=1, event="face_match", lat=32.0, lon=118.0,
                   person_id="P5")
    assert r.key_of(hit) == "P4"
    # each order is held by exactly one partition's engine
    held = [o.person_id for p in range(4) for o in r.orders_for(p)]
    assert sorted(held) == sorted(o.person_id for o in orders)
    # murmur2 as in the Java client: known vectors of Kafka's DefaultPartitioner
    from aiokafka.partitioner import murmur2
    assert murmur2(b"21") & 0xFFFFFFFF == -973932308 & 0xFFFFFFFF


def test_snapshot_encoding_is_compact_and_checksummed() -> None:
    state = b"x" * 200_000
    meta, chunks = encode_snapshot(3, 5, 42, 7, 8, {0: 1}, scenario.orders(), state)
    assert meta.partition == 3 and meta.seq == 5 and meta.next_offset == 42
    assert meta.chunks == len(chunks) == 1
    assert meta.size < 10_000  # zlib
    assert msgspec.msgpack.decode(chunks[0])["seq"] == 5
