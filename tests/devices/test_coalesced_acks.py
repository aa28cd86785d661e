"""Acknowledgements of the frames of one read: one write, in frame order, only after Kafka.

These drive :class:`devices.servers.DeviceConnection` directly with a
recording transport and a publisher stand-in whose completions the test
triggers by hand, so "nothing before Kafka accepted it" and "one write per
read" are checked exactly. The same contract against the real broker is in
``test_gateway_integration.py`` (``test_coalesced_acks_wait_for_kafka``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import json
import time

from fakes import RecordingPublisher, RecordingTransport
from prometheus_client import CollectorRegistry

from devices import jt808
from devices.metrics import GatewayMetrics
from devices.registry import Registry
from devices.servers import DeviceConnection, Hub, ServerConfig
from geofence.model import parse_orders

PHONE = "013912344329"
ORDERS = parse_orders(json.dumps([
    {"person_id": "P-1", "devices": [PHONE], "jurisdiction": "320102", "rules": []}]))


def connect() -> tuple[DeviceConnection, RecordingPublisher, RecordingTransport]:
    registry = Registry(ORDERS, b"unit")
    pub = RecordingPublisher()
    hub = Hub(registry, pub, GatewayMetrics(CollectorRegistry()),  # type: ignore[arg-type]
              ServerConfig())
    conn = DeviceConnection(hub, "jt808")
    transport = RecordingTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(jt808.encode_auth(PHONE, 1, registry.auth_code(PHONE)))
    assert len(transport.writes) == 1  # auth reply: no telemetry, sent at once
    transport.writes.clear()
    return conn, pub, transport


def replies(transport: RecordingTransport) -> list[tuple[int, int, int]]:
    out = []
    for data in transport.writes:
        for part in data.split(b"\x7e\x7e"):
            frame = part if part.startswith(b"\x7e") else b"\x7e" + part
            frame = frame if frame.endswith(b"\x7e") else frame + b"\x7e"
            out.append(jt808.decode_general_response(jt808.parse_frame(frame).body))
    return out


def test_frames_of_one_read_share_one_submission_and_one_write():
    conn, pub, transport = connect()
    ts = int(time.time()) * 1000 - 10_000
    read = b"".join([
        jt808.encode_location(PHONE, 2, ts, 32.0, 118.0),
        jt808.encode_heartbeat(PHONE, 3),
        jt808.frame(0x0900, PHONE, 4, b"\x01"),  # unsupported: its reply waits behind the fixes
        jt808.encode_location(PHONE, 5, ts + 1000, 32.0, 118.0),
    ])
    conn.data_received(read)
    assert transport.writes == []  # nothing acknowledged before Kafka accepted
    assert len(pub.submitted) == 1
    key, msgs, done = pub.submitted[0]
    assert key == "P-1"
    assert [(m.ts, type(m).__name__) for m in msgs][0::2] == [(ts, "Fix"), (ts + 1000, "Fix")]
    assert len(msgs) == 3  # fix, heartbeat event, fix
    done(None)
    assert len(transport.writes) == 1  # one write for the whole read
    got = replies(transport)
    assert [r[0] for r in got] == [2, 3, 4, 5]  # acknowledged serials, in frame order
    assert [r[2] for r in got] == [0, 0, jt808.RESULT_UNSUPPORTED, 0]


def test_later_read_waits_for_earlier_and_refused_send_is_not_acknowledged():
    conn, pub, transport = connect()
    ts = int(time.time()) * 1000 - 10_000
    conn.data_received(jt808.encode_location(PHONE, 2, ts, 32.0, 118.0))
    conn.data_received(jt808.encode_location(PHONE, 3, ts + 1000, 32.0, 118.0)
                       + jt808.encode_location(PHONE, 4, ts + 2000, 32.0, 118.0))
    assert len(pub.submitted) == 2
    pub.submitted[1][2](None)  # the later read is accepted first: still nothing sent
    assert transport.writes == []
    pub.submitted[0][2](RuntimeError("broker refused"))  # the earlier one failed
    assert [r[0] for r in replies(transport)] == [3, 4]  # serial 2 is not acknowledged
    assert len(transport.writes) == 1


def test_single_outstanding_read_acked_or_refused():
    """The common case (one read outstanding): accepted -> one write; refused -> no write."""
    conn, pub, transport = connect()
    ts = int(time.time()) * 1000 - 10_000
    conn.data_received(jt808.encode_location(PHONE, 2, ts, 32.0, 118.0))
    pub.submitted[0][2](RuntimeError("broker refused"))
    assert transport.writes == []
    conn.data_received(jt808.encode_location(PHONE, 3, ts + 1000, 32.0, 118.0))
    assert transport.writes == []
    pub.submitted[1][2](None)
    assert [r[0] for r in replies(transport)] == [3] and len(transport.writes) == 1
    assert not conn._replies  # nothing left waiting: the next read starts clean
