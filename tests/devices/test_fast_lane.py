"""The gateway's JT/T 808 fast lane keeps every guarantee of the full path.

``DeviceConnection`` handles a read that is one plain 0x0200 report of the
authenticated terminal without the framer, ``Outcome`` and grouping (the
fast lane). These tests drive connections with a
recording transport and a publisher stand-in whose Kafka acknowledgements
the test gives by hand, and check that

- the lane submits, replies and dead-letters exactly what the full path does
  for the same reads (differential, over reads the lane takes and reads it
  must leave to the full path);
- nothing is acknowledged before Kafka accepted it and replies keep frame
  order when lane reads and full-path reads are outstanding together, and a
  read Kafka refused is not acknowledged;
- the lane follows a reload of the orders that moves a device to another key.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import json
import time
from typing import Any

import msgspec
from fakes import RecordingPublisher, RecordingTransport
from prometheus_client import CollectorRegistry

from devices import jt808
from devices.metrics import GatewayMetrics
from devices.registry import Registry
from devices.servers import DeviceConnection, Hub, ServerConfig
from geofence.model import Telemetry, parse_orders

PHONE = "013912344329"
OTHER = "013900000007"  # named by an order too
STRANGER = "013955555555"  # named by no order
ORDERS = parse_orders(json.dumps([
    {"person_id": "P-1", "devices": [PHONE], "jurisdiction": "320102", "rules": []},
    {"person_id": "P-2", "devices": [OTHER], "jurisdiction": "320102", "rules": []}]))


def connect(*, lane: bool = True
            ) -> tuple[DeviceConnection, RecordingPublisher, RecordingTransport]:
    """An authenticated JT/T 808 connection (its auth reply already taken off)."""
    registry = Registry(ORDERS, b"unit")
    pub = RecordingPublisher()
    hub = Hub(registry, pub, GatewayMetrics(CollectorRegistry()),  # type: ignore[arg-type]
              ServerConfig())
    conn = DeviceConnection(hub, "jt808")
    if not lane:
        conn._lane = None
    transport = RecordingTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(jt808.encode_auth(PHONE, 1, registry.auth_code(PHONE)))
    assert len(transport.writes) == 1
    transport.writes.clear()
    return conn, pub, transport


def replies(writes: list[bytes]) -> list[tuple[int, int, int]]:
    """(answered serial, answered id, result) of every 0x8001 written, in order."""
    out = []
    for data in writes:
        for part in data.split(b"\x7e"):
            if part:
                msg = jt808.parse_frame(b"\x7e" + part + b"\x7e")
                out.append(jt808.decode_general_response(msg.body))
    return out


def receipt_free(msg: Telemetry) -> dict[str, Any]:
    """A message as a dict, without ``ts`` where it is the receive time (a heartbeat's)."""
    d: dict[str, Any] = msgspec.to_builtins(msg)
    if d.get("event") == "heartbeat":
        del d["ts"]
    return d


def run(reads: list[bytes], *, lane: bool) -> dict[str, Any]:
    """Feed ``reads`` (no running loop: each read is handled at once), ack, collect."""
    conn, pub, transport = connect(lane=lane)
    for data in reads:
        conn.data_received(data)
    before_ack = list(transport.writes)
    pub.ack_all()
    return {"keys": [k for k, _, _ in pub.submitted],
            "messages": [[receipt_free(msg) for msg in m] for _, m, _ in pub.submitted],
            "before_ack": before_ack, "writes": transport.writes, "dead": pub.dead,
            "closed": conn.closed, "bad": conn.bad_in_a_row, "tally": conn._tally[:2]}


def now_ms() -> int:
    return int(time.time()) * 1000


def test_lane_takes_a_plain_report_and_gives_what_the_full_path_gives() -> None:
    ts = now_ms() - 10_000
    reads = [jt808.encode_location(PHONE, 2 + k, ts + k * 1000, 32.0 + k / 1e4, 118.7,
                                   speed_kmh=4.5, battery_pct=80) for k in range(5)]
    conn, pub, _ = connect()

    def no_framing(data: bytes) -> None:
        raise AssertionError("the lane does not frame")

    conn.framer.feed = no_framing  # type: ignore[method-assign,assignment]
    conn.data_received(reads[0])
    assert len(pub.submitted) == 1
    fast, full = run(reads, lane=True), run(reads, lane=False)
    assert fast == full
    assert fast["before_ack"] == []  # nothing acknowledged before Kafka accepted it
    assert [r[0] for r in replies(fast["writes"])] == [2, 3, 4, 5, 6]
    assert fast["keys"] == ["P-1"] * 5


def test_reads_the_lane_must_leave_to_the_full_path_give_the_same_results() -> None:
    ts = now_ms() - 10_000
    report = jt808.encode_location(PHONE, 7, ts, 32.0, 118.7, battery_pct=80)
    cases: dict[str, bytes | list[bytes]] = {
        "two frames in one read": report + jt808.encode_location(PHONE, 8, ts + 1000, 32.0, 118.7),
        "a frame split over two reads": [report[:20], report[20:]],
        "garbage before the frame": b"\x01\x02" + report,
        "a flag inside": report[:20] + b"\x7e" + report[20:],
        "bad check code": report[:-2] + bytes([report[-2] ^ 1]) + b"\x7e",
        "another known device": jt808.encode_location(OTHER, 9, ts, 32.0, 118.7),
        "an unknown device": jt808.encode_location(STRANGER, 9, ts, 32.0, 118.7),
        "a time two days ahead": jt808.encode_location(PHONE, 9, now_ms() + 2 * 86_400_000,
                                                       32.0, 118.7),
        "a heartbeat": jt808.encode_heartbeat(PHONE, 10),
        "an alarm": jt808.encode_location(PHONE, 11, ts, 32.0, 118.7, alarm=1),
        "escaped bytes": jt808.encode_location(PHONE, 0x7E, ts, 32.0, 118.7),
        "2019 header": jt808.encode_location(PHONE, 12, ts, 32.0, 118.7, version=2019),
    }
    published = {"two frames in one read", "a frame split over two reads",
                 "garbage before the frame", "a heartbeat", "an alarm", "escaped bytes",
                 "2019 header"}
    for name, case in cases.items():
        reads = case if isinstance(case, list) else [case]
        fast, full = run(reads, lane=True), run(reads, lane=False)
        assert fast == full, name
        # and what both do is right: published (one submission per read, acknowledged only
        # after Kafka accepted it) when the device may send it, else dead-lettered
        if name in published:
            assert fast["keys"] == ["P-1"] and fast["before_ack"] == [], name
            assert replies(fast["writes"]), name
        else:
            assert fast["keys"] == [] and fast["dead"], name


def test_lane_and_full_path_reads_outstanding_together_keep_frame_order() -> None:
    conn, pub, transport = connect()
    ts = now_ms() - 10_000
    conn.data_received(jt808.encode_location(PHONE, 2, ts, 32.0, 118.0))  # the lane
    conn.data_received(jt808.encode_location(PHONE, 3, ts + 1000, 32.0, 118.0)
                       + jt808.encode_heartbeat(PHONE, 4))  # two frames: the full path
    conn.data_received(jt808.encode_location(PHONE, 5, ts + 2000, 32.0, 118.0))  # the lane
    assert len(pub.submitted) == 3
    pub.submitted[2][2](None)
    pub.submitted[1][2](None)
    assert transport.writes == []  # the first read still waits for Kafka
    pub.submitted[0][2](None)
    assert [r[0] for r in replies(transport.writes)] == [2, 3, 4, 5]
    assert len(transport.writes) == 1  # one write for everything that became sendable


def test_a_lane_read_kafka_refused_is_not_acknowledged_and_later_ones_are() -> None:
    conn, pub, transport = connect()
    ts = now_ms() - 10_000
    conn.data_received(jt808.encode_location(PHONE, 2, ts, 32.0, 118.0))
    conn.data_received(jt808.encode_location(PHONE, 3, ts + 1000, 32.0, 118.0))
    pub.submitted[1][2](None)
    pub.submitted[0][2](RuntimeError("broker refused"))
    assert [r[0] for r in replies(transport.writes)] == [3]
    assert not conn._replies


def test_the_lane_follows_a_reload_that_moves_the_device_to_another_key() -> None:
    conn, pub, _ = connect()
    ts = now_ms() - 10_000
    conn.data_received(jt808.encode_location(PHONE, 2, ts, 32.0, 118.0))
    conn.hub.registry.set_orders(parse_orders(json.dumps([
        {"person_id": "P-9", "devices": [PHONE], "jurisdiction": "320102", "rules": []}])))
    conn.data_received(jt808.encode_location(PHONE, 3, ts + 1000, 32.0, 118.0))
    assert [k for k, _, _ in pub.submitted] == ["P-1", "P-9"]
