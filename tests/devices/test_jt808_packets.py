"""JT/T 808 sub-packaged messages (header property bit 13): joined, then acknowledged.

Public frames: packets 1 and 2 (of 10) of a 0x0801 multimedia upload (a
JPEG picture) from the SmallChi/JT808 project's tests
(``src/JT808.Protocol.Test/MessageBody/JT808_0x0801Test.cs``, ``Package1``
and ``Package2``). That test suite runs with its check-code verification
switched off and the two frames' check codes are not valid, so
:func:`public_packet` recomputes the check code over the unchanged header
and body.
"""

from __future__ import annotations

import json
import time

import pytest

from devices import jt808
from devices.codec import xor8
from devices.errors import FrameError
from devices.registry import Registry
from devices.sessions import Jt808Session
from geofence.model import Fix, parse_orders
from tests.devices.test_coalesced_acks import connect, replies

SMALLCHI_0801_PACKAGE1 = (
    "7e080123240138123456782031000a00010000271d0000010100000000000c200301d2400a063296a501e100"
    "000000190104092952ffd8ffc4001f0000010501010101010100000000000000000102030405060708090a0b"
    "ffc400b5100002010303020403050504040000017d0101020300041105122131410613516107227114328191"
    "a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a53"
    "5455565758595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5"
    "a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2"
    "f3f4f5f6f7f8f9faffc4001f0100030101010101010101010000000000000102030405060708090a0bffc400"
    "b51100020102040403040705040400010277000102031104052131061241510761711322328108144291a1b1"
    "c109233352f0156272d10a162434e125f11718191a262728292a35363738393a434445464748494a53545556"
    "5758595a636465666768696a737475767778797a82838485868788898a92939495969798999aa2a3a4a5a6a7"
    "a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6"
    "f7f8f9faffdb004300080606070605080707070909080a0c140d0c0b0b0c1912130f141d1a1f1e1d1a1c1c20"
    "242e2720222c231c1c2837292c30313434341f27393d38323c2e333432ffdb0043010909090c0b0c180d0d18"
    "32211c2132323232323232323232323232323232323232323232323232323232323232323232323232323232"
    "32323232323232323232fffe000b4750456e636f646572ffdb0043000d090a0b0a080d0b0a0b0e0e0d0f1320"
    "1513121213271c1e17202e2931302e292d2c333a4a3e333646372c2d405741464c4e525352323e5a615a5060"
    "4a51524fffdb0043010e0e0e131113261515264f352d354f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f"
    "4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4fffc000110800f00140030121000211"
    "01031101ffc4001f000001050101010101010000000000000000010203041c7e"
)
SMALLCHI_0801_PACKAGE2 = (
    "7e080123000138123456782032000a000205060708090a0bffc400b510000201030302040305050404000001"
    "7d0101020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718"
    "191a25262728292a3435363738393a434445464748494a535455565758595a636465666768696a7374757677"
    "78797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7"
    "c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffc4001f0100030101010101"
    "010101010000000000000102030405060708090a0bffc400b511000201020404030407050404000102770001"
    "02031104052131061241510761711322328108144291a1b1c109233352f0156272d10a162434e125f1171819"
    "1a262728292a35363738393a434445464748494a535455565758595a636465666768696a737475767778797a"
    "82838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9"
    "cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9faffdd00040000ffda000c030100021103"
    "11003f006c6a2a755ce299a5c942e0f35281c5004aa72314a54e38a07b8841ef4840a0673de21b4ff498ee40"
    "2038dade991fe7f4acc110f4a0cd8ef2f1405cd01d45f2e9360a062edc5745616a6dad511861cfccff005349"
    "9512e056cf1460e3348a0ed4b8e338fc2819cb5edbfd9ee648b18556f97fdd3d3f4aafb4d332ea433a6573e9"
    "550d3131d18c9c558031c0a4083a503039a60c42c2984e4f4a06260d370690098ef4751400c615132d021868"
    "a621431a33480ef235e05595403eb54cbb0b8e7069dc0e3a9a41b12a024f4a9d40f4a18c5651e951c8817926"
    "8194ee614b989a2719461ffea35cfdcda4b6b2ed71c1e55874345c96ba91819a704c50217613db349b39031c"
    "9e945c66a69ba794713cebf30fb8be9ee6b540c1e948a48760e3a526d2dc77a0a144471d297cb623a7148464"
    "6bb685234b81d01d8e7d018f43f9ff003ac16386c552225b8300c2a84c8c8c4ed247b502616cc0517e"
)
PHONE = "013912344329"
ORDERS = parse_orders(json.dumps([
    {"person_id": "P-1", "devices": [PHONE], "jurisdiction": "320102", "rules": []}]))


def public_packet(hexstr: str) -> bytes:
    """The published frame with a valid check code (header and body unchanged)."""
    raw = bytes.fromhex(hexstr)
    content = jt808.unescape(raw[1:-1])[:-1]
    return b"\x7e" + jt808.escape(content + bytes((xor8(content),))) + b"\x7e"


def test_public_packets_parse_with_their_packet_fields() -> None:
    with pytest.raises(FrameError, match="bad_checksum"):  # as published
        jt808.parse_frame(bytes.fromhex(SMALLCHI_0801_PACKAGE1))
    a = jt808.parse_frame(public_packet(SMALLCHI_0801_PACKAGE1))
    b = jt808.parse_frame(public_packet(SMALLCHI_0801_PACKAGE2))
    assert (a.header.msg_id, a.header.phone, a.header.serial) == (0x0801, "013812345678", 0x2031)
    assert (a.header.packet_total, a.header.packet_index, len(a.body)) == (10, 1, 804)
    assert (b.header.serial, b.header.packet_total, b.header.packet_index, len(b.body)) == (
        0x2032, 10, 2, 768)
    # 0x0801 body: multimedia id 0x271D, then a 28-byte location, then the JPEG (FFD8 = SOI)
    assert a.body[:4] == bytes.fromhex("0000271d") and a.body[36:38] == b"\xff\xd8"
    with pytest.raises(FrameError, match="unsupported"):  # one packet alone is not a message
        jt808.decode(public_packet(SMALLCHI_0801_PACKAGE1))


def test_public_packets_are_held_until_given_up() -> None:
    r = jt808.Reassembler(timeout_ms=60_000)
    a = jt808.parse_frame(public_packet(SMALLCHI_0801_PACKAGE1))
    b = jt808.parse_frame(public_packet(SMALLCHI_0801_PACKAGE2))
    assert r.add(b, 0) == (None, [])  # out of order is fine
    assert r.add(a, 1_000) == (None, [])
    assert r.pending == 1
    other = jt808.parse_frame(jt808.encode_heartbeat(PHONE, 5))
    joined, errors = r.add(other, 61_001)  # a whole message; the picture timed out
    assert joined is not None and joined.message is other and joined.serials == [5]
    assert [e.reason for e in errors] == ["truncated"] and "2 of 10 packets" in errors[0].detail
    assert r.pending == 0


def test_public_bodies_joined_in_index_order() -> None:
    """The two public bodies as a message of two packets: any order, resends replace."""
    a = jt808.parse_frame(public_packet(SMALLCHI_0801_PACKAGE1))
    b = jt808.parse_frame(public_packet(SMALLCHI_0801_PACKAGE2))
    frames = [jt808.frame(0x0801, "013812345678", 0x2031 + k, body, packet=(2, k + 1))
              for k, body in enumerate((a.body, b.body))]
    r = jt808.Reassembler()
    assert r.add(jt808.parse_frame(frames[1]), 0)[0] is None
    assert r.add(jt808.parse_frame(frames[1]), 0)[0] is None  # resent: still one copy
    joined, errors = r.add(jt808.parse_frame(frames[0]), 0)
    assert joined is not None and errors == []
    assert joined.message.body == a.body + b.body
    h = joined.message.header
    assert (h.msg_id, h.serial, h.packet_total, h.packet_index) == (0x0801, 0x2031, None, None)
    assert joined.serials == [0x2032, 0x2031]


def test_reassembler_limits() -> None:
    r = jt808.Reassembler(max_packets=4, max_pending=2)
    with pytest.raises(FrameError, match="frame_too_large"):
        r.add(jt808.parse_frame(jt808.frame(0x0704, PHONE, 1, b"x", packet=(5, 1))), 0)
    with pytest.raises(FrameError, match="malformed"):
        r.add(jt808.parse_frame(jt808.frame(0x0704, PHONE, 1, b"x", packet=(3, 4))), 0)
    for serial in (10, 20):
        r.add(jt808.parse_frame(jt808.frame(0x0704, PHONE, serial, b"x", packet=(2, 1))), 0)
    _, errors = r.add(jt808.parse_frame(jt808.frame(0x0704, PHONE, 30, b"x", packet=(2, 1))), 0)
    assert [e.reason for e in errors] == ["truncated"] and "serial 10" in errors[0].detail
    assert r.pending == 2
    # a packet whose total disagrees with its message's earlier packets restarts that message
    _, errors = r.add(jt808.parse_frame(jt808.frame(0x0704, PHONE, 31, b"x", packet=(3, 2))), 0)
    assert [e.reason for e in errors] == ["truncated"] and "serial 30" in errors[0].detail


def backfill_packets(n: int, serial: int) -> tuple[list[bytes], list[int]]:
    t0 = int(time.time()) * 1000 - 7_200_000  # the whole backfill lies in the past
    items = [jt808.location_body(t0 + i * 60_000, 32.0 + i / 1e4, 118.7, battery_pct=70)
             for i in range(n)]
    body = b"".join(len(x).to_bytes(2, "big") + x for x in items)
    body = n.to_bytes(2, "big") + b"\x01" + body
    return jt808.encode_packets(jt808.MSG_BATCH, PHONE, serial, body), [t0 + i * 60_000
                                                                        for i in range(n)]


def test_session_joins_a_split_backfill_and_answers_every_packet_at_the_end() -> None:
    registry = Registry(ORDERS, b"k")
    s = Jt808Session(registry)
    now = int(time.time() * 1000)
    s.on_frame(jt808.encode_auth(PHONE, 1, registry.auth_code(PHONE)), now)
    frames, times = backfill_packets(70, 100)
    assert len(frames) == 3
    first = [s.on_frame(f, now) for f in frames[:2]]
    assert all(o.result == "ok" and not o.replies and not o.telemetry and not o.dead
               for o in first)
    last = s.on_frame(frames[2], now)
    assert last.result == "ok" and [m.ts for m in last.telemetry] == times
    assert all(isinstance(m, Fix) and m.device_id == PHONE for m in last.telemetry)
    acks = [jt808.decode_general_response(jt808.parse_frame(r).body) for r in last.replies]
    assert acks == [(100, jt808.MSG_BATCH, 0), (101, jt808.MSG_BATCH, 0), (102, jt808.MSG_BATCH, 0)]


def test_session_refuses_packets_before_authentication_and_from_strangers() -> None:
    registry = Registry(ORDERS, b"k")
    s = Jt808Session(registry)
    frames, _ = backfill_packets(70, 100)
    out = s.on_frame(frames[0], int(time.time() * 1000))
    assert out.result == "not_authenticated" and [d.reason for d in out.dead] == [
        "not_authenticated"]
    assert jt808.decode_general_response(jt808.parse_frame(out.replies[0]).body)[2] == 1
    stranger = jt808.encode_packets(jt808.MSG_BATCH, "099999999999", 1, bytes(1500))[0]
    assert s.on_frame(stranger, int(time.time() * 1000)).result == "unknown_device"


def test_packets_acknowledged_only_after_kafka_accepted_the_whole_message() -> None:
    conn, pub, transport = connect()
    frames, times = backfill_packets(70, 100)
    for f in frames:  # one read each
        conn.data_received(f)
    assert transport.writes == [] and len(pub.submitted) == 1
    key, msgs, done = pub.submitted[0]
    assert key == "P-1" and [m.ts for m in msgs] == times
    done(None)
    assert replies(transport) == [(100, jt808.MSG_BATCH, 0), (101, jt808.MSG_BATCH, 0),
                                  (102, jt808.MSG_BATCH, 0)]


def test_refused_whole_message_acknowledges_no_packet() -> None:
    conn, pub, transport = connect()
    frames, _ = backfill_packets(70, 100)
    conn.data_received(b"".join(frames))  # all packets in one read
    pub.submitted[0][2](RuntimeError("broker refused"))
    assert transport.writes == []
