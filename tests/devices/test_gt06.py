"""GT06 against real frames.

Source (used as data): Traccar, src/test/java/org/traccar/protocol/Gt06ProtocolDecoderTest.java.
The login frame's CRC (0x3F04) is checked against CRC-ITU as the GT06 sheet defines it.
"""

from __future__ import annotations

import pytest

from devices import gt06
from devices.errors import FrameError
from devices.framing import Gt06Framer

H = bytes.fromhex
LOGIN = H("78780D01086471700328358100093F040D0A")
GPS_22 = H("787822220F0C1D023305C9027AC8180C46586000140001CC00287D001F71000001000820860D0A")
GPS_12 = H("787821121303120b2524c70138e363085b549003d43301940057d200cd52c000006aa1ca0d0a")
GPS_NO_FIX = H("787822221106160a1016c60278019407c7783800040001940504700046fc01030100065f570d0a")
ALARM_REMOVED = H("7878251613020C12141AC5027951430C2A16F60014000900000000001A00007C550300020002F1E70D0A")


def test_login_and_ack():
    d = gt06.decode(LOGIN)
    assert d.login_id == "864717003283581"
    assert d.reply == gt06.encode_ack(gt06.MSG_LOGIN, 0x0009)
    assert gt06.parse_frame(d.reply).protocol == 0x01


def test_gps_location(verify_fix):
    d = gt06.decode(GPS_22)
    (fix,) = d.telemetry("864717003283581")
    # 0x027AC818 / 1800000 = 23.1116933, 0x0C465860 / 1800000 = 114.4092978; 2015-12-29 02:51:05 UTC
    verify_fix(fix, device_id="864717003283581", lat=23.1116933, lon=114.4092978,
               ts="2015-12-29T02:51:05Z", valid=True)
    fix12 = gt06.decode(GPS_12).telemetry("x")[0]
    verify_fix(fix12, lat=11.3919128, lon=77.89064, ts="2019-03-18T11:37:36Z", valid=True)
    assert fix12.heading_deg == 51.0 and fix12.speed_mps == pytest.approx(3 / 3.6, abs=1e-3)
    verify_fix(gt06.decode(GPS_NO_FIX).telemetry("x")[0], valid=False)


def test_alarm_packet_removed_and_ack(verify_fix):
    # Traccar expects ALARM_REMOVING for this capture (terminal information bits 3-5 = 111)
    d = gt06.decode(ALARM_REMOVED)
    fix, event = d.telemetry("dev")
    verify_fix(fix, ts="2019-02-12T18:20:26Z", lat=23.0583839, lon=113.3805456)
    assert event.event == "removed"
    assert d.reply == gt06.encode_ack(0x16, 0x0002)


def test_crc_and_length_errors():
    bad = bytearray(LOGIN)
    bad[-3] ^= 0xFF
    with pytest.raises(FrameError) as err:
        gt06.parse_frame(bytes(bad))
    assert err.value.reason == "bad_checksum"
    with pytest.raises(FrameError) as err:
        gt06.parse_frame(LOGIN[:-3] + b"\r\n")
    assert err.value.reason == "truncated"


def test_encoders_round_trip(verify_fix):
    assert gt06.decode(gt06.encode_login("864717003283581", 9)).login_id == "864717003283581"
    raw = gt06.encode_location(1_795_356_210_000, -23.5, -46.6, 7, speed_kmh=36, course=90)
    verify_fix(gt06.decode(raw).telemetry("d")[0], lat=-23.5, lon=-46.6, ts=1_795_356_210_000,
               tol=1e-6)


def test_framer_split_garbage_and_bad_terminator():
    f = Gt06Framer()
    stream = b"\x00\x01" + LOGIN + GPS_22 + ALARM_REMOVED
    got, errors = [], []
    for i in range(0, len(stream), 3):
        frames, errs = f.feed(stream[i:i + 3])
        got += frames
        errors += errs
    assert got == [LOGIN, GPS_22, ALARM_REMOVED]
    assert {e.reason for e in errors} == {"garbage"}
    frames, errs = Gt06Framer().feed(LOGIN[:-2] + b"XX" + LOGIN)
    assert frames == [LOGIN] and errs[0].reason == "bad_terminator"
