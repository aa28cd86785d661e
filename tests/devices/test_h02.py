"""H02 against real frames.

Source (used as data): Traccar, src/test/java/org/traccar/protocol/H02ProtocolDecoderTest.java,
including its stated expectations: "*HQ,4210051415,V1,164549,...,221215,..." ->
2015-12-22 16:45:49 UTC, valid, 9.93978, -84.11178; "*HQ,355488020119695,V1,050418,,..."
-> 2015-10-03 05:04:18, not valid, 28.46021, 77.06414.
"""

from __future__ import annotations

import pytest

from devices import h02
from devices.errors import FrameError
from devices.framing import StartEndFramer

WEST = b"*HQ,4210051415,V1,164549,A,0956.3869,N,08406.7068,W,000.00,000,221215,FFFFFBFF,712,01,0,0,6#"
NO_FIX = b"*HQ,355488020119695,V1,050418,,2827.61232,N,07703.84822,E,0.00,0,031015,FFFEFBFF#"
SOUTH = b"*HQ,,V1,173212,A,2225.78879,S,02829.19021,E,0.00,0,290418,FFFFFBFF#"
LINK = b"*HQ,1700086468,LINK,180902,15,0,84,0,0,240517,FFFFFBFF#"
LOW_CASE = b"*hq,356327080425330,VP1,A,2702.7245,S,15251.9311,E,0.48,0.0000,080917#"


def test_position_west(verify_fix):
    (fix,) = h02.decode(WEST).telemetry
    verify_fix(fix, device_id="4210051415", lat=9.93978, lon=-84.11178, tol=1e-5,
               ts="2015-12-22T16:45:49Z", valid=True)


def test_position_without_fix(verify_fix):
    (fix,) = h02.decode(NO_FIX).telemetry
    verify_fix(fix, device_id="355488020119695", lat=28.46021, lon=77.06414, valid=False,
               ts="2015-10-03T05:04:18Z")


def test_empty_device_id_is_rejected():
    with pytest.raises(FrameError) as err:
        h02.decode(SOUTH)
    assert err.value.reason == "malformed"


def test_link_is_a_heartbeat_and_other_types_carry_nothing():
    d = h02.decode(LINK, now_ms=1_800_000_000_000)
    assert [m.event for m in d.telemetry] == ["heartbeat"]
    assert h02.decode(LOW_CASE).telemetry == []


def test_active_low_alarm_bits(verify_fix):
    raw = h02.encode_position("12345", 1_795_356_210_000, 32.05, 118.79, status="FFFBFFFD")
    d = h02.decode(raw)
    verify_fix(d.telemetry[0], lat=32.05, lon=118.79, ts=1_795_356_210_000, tol=1e-6)
    assert [m.event for m in d.telemetry[1:]] == ["sos"]  # bit 1 and bit 18 low: one sos
    raw = h02.encode_position("12345", 1_795_356_210_000, 32.05, 118.79, status="FFF7FFFE")
    assert [m.event for m in h02.decode(raw).telemetry[1:]] == ["vibration", "power_off"]


@pytest.mark.parametrize("frame,reason", [
    (b"*HQ,1,V1,164549,A,0956.3869,N#", "truncated"),
    (b"*HQ,1,V1,1645,A,0956.3869,N,08406.7068,W,0,0,221215,FFFFFBFF#", "invalid_time"),
    (b"*HQ,1,V1,164549,A,09x6.3869,N,08406.7068,W,0,0,221215,FFFFFBFF#", "malformed"),
    (b"HQ,1,V1#", "malformed"),
])
def test_invalid(frame, reason):
    with pytest.raises(FrameError) as err:
        h02.decode(frame)
    assert err.value.reason == reason


def test_framing():
    # line breaks between frames are filler, not errors; other bytes are garbage
    frames, errors = StartEndFramer(b"*", b"#").feed(b"\r\n" + WEST + b"\r\n" + LINK[:10])
    assert frames == [WEST] and errors == []
    frames, errors = StartEndFramer(b"*", b"#").feed(b"$\x01\x02" + WEST + b"\r\n" + LINK)
    assert frames == [WEST, LINK] and [e.reason for e in errors] == ["garbage"]
