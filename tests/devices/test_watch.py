"""Watch protocol against real frames.

Source (used as data): Traccar, src/test/java/org/traccar/protocol/
WatchProtocolDecoderTest.java (frames and, where it states them, the
expected time/position, e.g. UD 220414 134652 -> 2014-04-22 13:46:52 UTC,
22.57171, 113.86140; UD2 with negative values -> -33.48037, -70.76307).
"""

from __future__ import annotations

import pytest

from devices import watch
from devices.errors import FrameError
from devices.framing import StartEndFramer
from geofence.model import DeviceEvent, Fix

UD = b"[SG*8800000015*0087*UD,220414,134652,A,22.571707,N,113.8613968,E,0.1,0.0,100,7,60,90,1000,50,0000,4,1,460,0,9360,4082,131,9360,4092,148,9360,4091,143,9360,4153,141]"
UD2_NEG = b"[3G*6105117105*008D*UD2,210716,231601,V,-33.480366,N,-70.7630692,E,0.00,0.0,0.0,0,100,34,0,0,00000000,3,255,730,2,29731,54315,167,29731,54316,162,29731,54317,145]"
UD_WEST = b"[SG*9059056143*0053*UD,251021,223408,A,41.46500,N,081.53128,W,0.926,000,0,00,70,70,0,50,00000000,0,1,,,,00]"
AL_SOS = b"[3G*8809008845*00C0*AL,271219,094744,V,00.000000,N, 0.0000000,E,0.00,0.0,0.0,0,100,81,0,0,00010000,7,0,460,0,9336,3981,141,9336,3912,141,9336,3982,140,9765,4233,134,9765,4071,134,9765,4321,134,9336,4353,132,0,0.0]"
AL_INDEXED = b"[ZJ*014111001332708*0075*0064*AL,040418,052156,A,22.536207,N,113.938673,E,0,0,0,5,100,82,1000,50,00100000,1,255,460,0,9340,3663,35]"
AL_LOW_BATTERY = b"[SG*8800000015*0087*AL,220414,134652,A,22.571707,N,113.8613968,E,0.1,0.0,100,7,60,90,1000,50,0001,4,1,460,0,9360,4082,131,9360,4092,148,9360,4091,143,9360,4153,141]"
LK = b"[SG*9081000548*0009*LK,0,100]"
LK_BARE = b"[SG*8800000015*0002*LK]"
TKQ = b"[3G*8800000015*0003*TKQ]"


def test_ud_position(verify_fix):
    d = watch.decode(UD)
    assert d.reply is None
    (fix,) = d.telemetry
    verify_fix(fix, device_id="8800000015", lat=22.571707, lon=113.8613968,
               ts="2014-04-22T13:46:52Z", valid=True)
    assert fix.battery_pct == 90.0 and fix.altitude_m == 100.0


def test_negative_values_and_west(verify_fix):
    verify_fix(watch.decode(UD2_NEG).telemetry[0], lat=-33.480366, lon=-70.7630692, valid=False,
               ts="2016-07-21T23:16:01Z")
    verify_fix(watch.decode(UD_WEST).telemetry[0], lat=41.465, lon=-81.53128,
               ts="2021-10-25T22:34:08Z")


def test_alarm_sos_and_reply():
    d = watch.decode(AL_SOS)
    fix, event = d.telemetry
    assert isinstance(fix, Fix) and not fix.valid
    assert isinstance(event, DeviceEvent) and event.event == "sos" and event.ts == fix.ts
    assert d.reply == b"[3G*8809008845*0002*AL]"


def test_index_field_removed_alarm_and_reply_keeps_index(verify_fix):
    d = watch.decode(AL_INDEXED)
    assert d.frame.index == "0075" and d.frame.device_id == "014111001332708"
    verify_fix(d.telemetry[0], lat=22.536207, lon=113.938673, ts="2018-04-04T05:21:56Z")
    assert [m.event for m in d.telemetry[1:]] == ["removed"]  # status 0x00100000, bit 20
    assert d.reply == b"[ZJ*014111001332708*0075*0002*AL]"


def test_low_battery_bit():
    assert [m.event for m in watch.decode(AL_LOW_BATTERY).telemetry[1:]] == ["battery_low"]


def test_link_keepalive_replies_and_counts_as_heartbeat():
    d = watch.decode(LK, now_ms=1_800_000_000_000)
    assert d.reply == b"[SG*9081000548*0002*LK]"
    assert d.telemetry == [DeviceEvent(device_id="9081000548", ts=1_800_000_000_000,
                                       event="heartbeat")]
    assert watch.decode(LK_BARE).reply == LK_BARE
    assert watch.decode(TKQ).reply == TKQ


def test_upload_command_and_init_reply():
    assert watch.encode_upload_interval("3G", "1234567890", 15) == b"[3G*1234567890*0009*UPLOAD,15]"
    d = watch.decode(b"[3G*1234567890*0011*INIT,13800138000,1,1.0,1]")
    assert d.reply == b"[3G*1234567890*0006*INIT,1]"


def test_escaping():
    raw = bytes([0x5B, 0x5D, 0x2C, 0x2A, 0x7D, 0x41])
    esc = watch.escape(raw)
    assert all(b not in esc for b in b"[],*") and watch.unescape(esc) == raw
    with pytest.raises(FrameError) as err:
        watch.unescape(b"\x7d\x09")
    assert err.value.reason == "bad_escape"


@pytest.mark.parametrize("frame,reason", [
    (b"[SG*8800000015*00Z7*UD]", "malformed"),
    (b"SG*8800000015*0002*LK", "malformed"),
    (b"[SG*8800000015*0020*UD,220414,134652,A]", "truncated"),
    (b"[SG*8800000015*0087*UD,221314,134652,A,22.5,N,113.8,E,0,0,0,7,60,90,0,0,0000]", "invalid_time"),
])
def test_invalid_frames(frame, reason):
    with pytest.raises(FrameError) as err:
        watch.decode(frame)
    assert err.value.reason == reason


def test_split_truncated_and_garbage_framing():
    f = StartEndFramer(b"[", b"]")
    got = []
    for i in range(0, len(UD + LK), 5):
        got += f.feed((UD + LK)[i:i + 5])[0]
    assert got == [UD, LK]
    frames, errors = StartEndFramer(b"[", b"]").feed(b"junk" + UD[:30] + LK)
    assert frames == [LK] and [e.reason for e in errors] == ["garbage", "truncated"]


def test_encode_position_round_trip(verify_fix):
    raw = watch.encode_position("3G", "1234567890", 1_795_356_210_000, -12.5, -45.25, status=1 << 16)
    d = watch.decode(raw)
    verify_fix(d.telemetry[0], device_id="1234567890", lat=-12.5, lon=-45.25, ts=1_795_356_210_000)
    assert d.telemetry[1].event == "sos"
