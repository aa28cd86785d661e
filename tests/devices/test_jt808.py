"""JT/T 808 decoder and encoder against real frames.

Sources (used as data):
- Traccar, src/test/java/org/traccar/protocol/HuabaoProtocolDecoderTest.java
  (JT/T 808 is "huabao" in Traccar): 2013-header captures.
- makeclan/xtream-codec, debug/jt/jt-808-server-spring-boot-starter-debug-ui/
  src/utils/codec-utils.ts: 2019-header frames with their decoded field values
  (latitude/longitude as raw 1e-6 degrees, BCD time as printed local time).
"""

from __future__ import annotations

import pytest

from devices import jt808
from devices.codec import xor8
from devices.errors import FrameError
from devices.framing import FlagFramer
from geofence.model import DeviceEvent, Fix

H = bytes.fromhex

# Traccar: alarm dword 0x00000080 (main power under-voltage) -> Traccar ALARM_LOW_BATTERY
TRACCAR_LOW_BATTERY = H(
    "7E020000480123456789010013000000800000000301597BC506CBFF6600EB00000155210726203531010400000000"
    "EB24000C00B28986047701207027150200060089FFFFEFFF0004002D0E10000600C5FFFFFFEF697E")
# Traccar: alarm 0x00020000 -> ALARM_TAMPERING
TRACCAR_TAMPER = H(
    "7e02000033421030000018004c000200000004000201556dcb06c4d41d000c00f100fc210118095853010400000000"
    "fe0140ff0c01cc000000002694000055d87a7e")
# Traccar: vendor item 0xFE = battery level 69
TRACCAR_BATTERY = H(
    "7e02000033202011200010001300020000000400020158b30006c93ee5002000000000201127162937010400000000"
    "fe0145ff0c01cc00000000263300000f3e627e")
# Traccar: alarm bit 0 (SOS), status west + positioned
TRACCAR_WEST = H("7e0200002e094027587492000a000000010000000a03083db7001329f3000000140000130412164952"
                 "010400000012360a0002341502cb0c20085c107e")
# Traccar: 0x0704 batch of 8 positions (verifyPositions)
TRACCAR_BATCH = H(
    "7E0704014301356777777707F5000801002600000000000000030159741206CBFD5001720000000116052709062401"
    "040000001D03020000002600000000000000030159746606CBFD50016B0000000116052709065301040000001D0302"
    "000000260000000000000003015975E406CBFE58013F0000000116052709072701040000001D030200000026000000"
    "0000000003015976DE06CBFF10012E0000000116052709075601040000001D03020000002600000000000000030159"
    "76BC06CBFED0012D0000000116052709083001040000001D0302000000260000000000000003015976FE06CBFEC001"
    "080000000116052709090001040000001D0302000000260000000000000003015976FE06CBFE7800FC000000011605"
    "2709093301040000001D0302000000260000000000000003015977A606CBFF3001080000000116052709100201040000"
    "001D030200001F7E")
TRACCAR_REGISTER = H("7E0100002D013511221122000500000000373031303748422D52303347424400000000000000000000"
                     "003233363631303402CBD5424136383630387E")
TRACCAR_AUTH = H("7E0102000E013511221122000661757468656E7469636174696F6E3F7E")
TRACCAR_HEARTBEAT = H("7e0002000004304832546500b7ca7e")

# xtream-codec BuiltinMessage0200 (2019 header): alarmFlag 111, status 22, latitude 31234567,
# longitude 121987654, altitude 123, speed 66, direction 3, time 2025-01-29 22:33:44,
# extra items {1: 12, 2: 100}
XTREAM_0200 = H("7e02004026010000000001391234432900000000006f0000001601dc9a0707456246007b00420003250129"
                "2233440202006401040000000c417e")
# xtream-codec BuiltinMessage0704 (2019): 2 items, alarmFlag 1, status 1, 31000562/121451372,
# altitude 666, speed 33, direction 89; 31000563/121451373, 777, 67, 90; time 2024-10-29 21:39:03
XTREAM_0704 = H("7e0704403f01000000000139123443290000000200001c000000010000000101d907f2073d336c029a0021"
                "0059241029213903001c000000010000000101d907f3073d336d03090043005a241029213903f87e")
# xtream-codec BuiltinMessage8001 / 8100 (2019): replies the platform sends
XTREAM_8001 = H("7e8001400501000000000139123443290000006f020000dc7e")
XTREAM_8100 = H("7e8100400d01000000000139123443290000006f006f6b2e2e6f6b2e2e6f6bd27e")


def test_location_low_battery_2013(verify_fix):
    d = jt808.decode(TRACCAR_LOW_BATTERY)
    assert d.message.header.version == 2013
    # the frame also carries the 0xEB/0x0089 strap flag clear: Traccar reads "lowBattery,removing"
    fix, event, removed = d.telemetry
    verify_fix(fix, device_id="012345678901", lat=22.641605, lon=114.032486,
               ts="2021-07-26T20:35:31+08:00", valid=True)
    assert fix.altitude_m == 235.0 and fix.speed_mps == 0.0 and fix.heading_deg == 341.0
    assert isinstance(event, DeviceEvent) and event.event == "battery_low" and event.ts == fix.ts
    assert isinstance(removed, DeviceEvent) and removed.event == "removed"


def test_location_tamper_alarm_bit_17(verify_fix):
    fix, event = jt808.decode(TRACCAR_TAMPER).telemetry
    verify_fix(fix, device_id="421030000018", lat=22.375883, lon=113.562653,
               ts="2021-01-18T09:58:53+08:00")
    assert event.event == "tamper"


def test_vendor_battery_item(verify_fix):
    fix, _ = jt808.decode(TRACCAR_BATTERY).telemetry
    verify_fix(fix, device_id="202011200010", ts="2020-11-27T16:29:37+08:00")
    assert fix.battery_pct == 69.0


def test_west_longitude_and_sos(verify_fix):
    fix, event = jt808.decode(TRACCAR_WEST).telemetry
    verify_fix(fix, device_id="094027587492", lat=50.871735, lon=-1.255923, valid=True,
               ts="2013-04-12T16:49:52+08:00")
    assert event.event == "sos"


def test_batch_upload_2013(verify_fix):
    d = jt808.decode(TRACCAR_BATCH)
    assert d.message.header.msg_id == jt808.MSG_BATCH and d.backfill
    fixes = [m for m in d.telemetry if isinstance(m, Fix)]
    assert len(fixes) == 8 and not d.errors
    for f in fixes:
        verify_fix(f, device_id="013567777777", valid=True)
        assert 22.63 < f.lat < 22.65 and 114.03 < f.lon < 114.04
    assert [f.ts for f in fixes] == sorted(f.ts for f in fixes)
    verify_fix(fixes[0], lat=22.639634, lon=114.031952, ts="2016-05-27T09:06:24+08:00")
    verify_fix(fixes[-1], ts="2016-05-27T09:10:02+08:00")


def test_location_2019_header(verify_fix):
    d = jt808.decode(XTREAM_0200)
    h = d.message.header
    assert (h.version, h.phone, h.device_id) == (2019, "00000000013912344329", "013912344329")
    loc = jt808.decode_location(d.message.body)
    assert (loc.alarm, loc.status, loc.altitude_m, loc.speed_kmh, loc.course) == (111, 22, 123, 6.6, 3)
    assert loc.mileage_km == 1.2 and loc.extras == {2: b"\x00\x64"}
    fix = d.telemetry[0]
    # status 22 = positioned + south latitude
    verify_fix(fix, lat=-31.234567, lon=121.987654, ts="2025-01-29T22:33:44+08:00", valid=True)
    assert fix.speed_mps == pytest.approx(6.6 / 3.6, abs=1e-3) and fix.heading_deg == 3.0
    assert [m.event for m in d.telemetry[1:]] == ["sos"]  # bits 0,1,2,3,5,6: only 0 maps


def test_batch_2019(verify_fix):
    d = jt808.decode(XTREAM_0704)
    fixes = [m for m in d.telemetry if isinstance(m, Fix)]
    assert len(fixes) == 2
    verify_fix(fixes[0], device_id="013912344329", lat=31.000562, lon=121.451372,
               ts="2024-10-29T21:39:03+08:00", valid=False)  # status 1 = ACC only, no fix bit
    verify_fix(fixes[1], lat=31.000563, lon=121.451373, valid=False)
    assert fixes[0].altitude_m == 666 and fixes[1].altitude_m == 777
    assert fixes[1].heading_deg == 90.0
    assert sum(isinstance(m, DeviceEvent) and m.event == "sos" for m in d.telemetry) == 2


def test_time_zone_is_configurable():
    utc8 = jt808.decode(TRACCAR_LOW_BATTERY).telemetry[0].ts
    utc0 = jt808.decode(TRACCAR_LOW_BATTERY, tz_offset_h=0).telemetry[0].ts
    assert utc0 - utc8 == 8 * 3600 * 1000


def test_platform_replies_match_reference_bytes():
    assert jt808.encode_general_response("013912344329", 0, 0x6F, 0x0200, 0,
                                         version=2019) == XTREAM_8001
    assert jt808.encode_register_response("013912344329", 0, 0x6F, 0, "ok..ok..ok",
                                          version=2019) == XTREAM_8100
    msg = jt808.parse_frame(XTREAM_8100)
    assert jt808.decode_register_response(msg.body) == (0x6F, 0, "ok..ok..ok")
    assert jt808.decode_general_response(jt808.parse_frame(XTREAM_8001).body) == (0x6F, 0x200, 0)


def test_register_auth_heartbeat():
    msg = jt808.parse_frame(TRACCAR_REGISTER)
    reg = jt808.decode_register(msg.body, msg.header.version)
    assert reg.plate.startswith("苏") and reg.plate_color == 2
    msg = jt808.parse_frame(TRACCAR_AUTH)
    assert jt808.decode_auth(msg.body, 2013) == "authentication"
    d = jt808.decode(TRACCAR_HEARTBEAT, now_ms=1_800_000_000_000)
    assert d.telemetry == [DeviceEvent(device_id="043048325465", ts=1_800_000_000_000,
                                       event="heartbeat")]


def test_checksum_failure():
    bad = TRACCAR_LOW_BATTERY[:-2] + bytes([TRACCAR_LOW_BATTERY[-2] ^ 0x01]) + b"\x7e"
    with pytest.raises(FrameError) as err:
        jt808.decode(bad)
    assert err.value.reason == "bad_checksum"


def test_truncated_and_bad_escape():
    content = jt808.unescape(TRACCAR_LOW_BATTERY[1:-1])
    cut = content[:40]
    with pytest.raises(FrameError) as err:
        jt808.parse_content(cut + bytes([xor8(cut)]))
    assert err.value.reason == "truncated"
    with pytest.raises(FrameError) as err:
        jt808.parse_frame(b"\x7e\x00\x02\x7d\x03\x7e")
    assert err.value.reason == "bad_escape"
    with pytest.raises(FrameError) as err:
        jt808.parse_frame(b"\x7e\x00\x02\x7e")
    assert err.value.reason == "truncated"


def test_escaping_round_trip(verify_fix):
    # latitude 0x0179_7E7D-ish values force both escapes inside the frame
    lat = 0x017E7D7E / 1e6
    raw = jt808.encode_location("013912344329", 0x7E7D, 1_700_000_000_000, lat, 116.4,
                                alarm=0x7E, battery_pct=55)
    inner = raw[1:-1]
    assert 0x7E not in inner and b"\x7d\x02" in inner and b"\x7d\x01" in inner
    d = jt808.decode(raw)
    assert d.message.header.serial == 0x7E7D
    verify_fix(d.telemetry[0], device_id="013912344329", lat=lat, lon=116.4, ts=1_700_000_000_000)
    assert d.telemetry[0].battery_pct == 55.0


@pytest.mark.parametrize("version", [2013, 2019])
def test_encoders_round_trip(version, verify_fix):
    ts = 1_795_356_210_000
    raw = jt808.encode_location("13912344329", 5, ts, -33.5, -70.25, version=version,
                                speed_kmh=36.0, course=270, altitude_m=-12, satellites=9)
    d = jt808.decode(raw)
    assert d.message.header.version == version
    verify_fix(d.telemetry[0], device_id="013912344329", lat=-33.5, lon=-70.25, ts=ts, valid=True)
    assert d.telemetry[0].speed_mps == 10.0 and d.telemetry[0].altitude_m == -12
    items = [{"ts_ms": ts + i * 1000, "lat": 32.0 + i / 1000, "lon": 118.8} for i in range(3)]
    batch = jt808.decode(jt808.encode_batch("13912344329", 6, items, version=version))
    assert batch.backfill and [m.ts for m in batch.telemetry] == [ts, ts + 1000, ts + 2000]
    reg = jt808.parse_frame(jt808.encode_register("13912344329", 1, version=version, plate="苏A1"))
    assert jt808.decode_register(reg.body, version).plate == "苏A1"
    auth = jt808.parse_frame(jt808.encode_auth("13912344329", 2, "c0de", version=version))
    assert jt808.decode_auth(auth.body, version) == "c0de"
    cmd = jt808.parse_frame(jt808.encode_report_interval("13912344329", 3, 15, version=version))
    assert cmd.header.msg_id == 0x8103
    assert jt808.decode_set_params(cmd.body) == {0x0029: (15).to_bytes(4, "big")}


def test_alarm_mapping_is_documented():
    for bit, event in jt808.ALARM_EVENTS.items():
        raw = jt808.encode_location("13912344329", 1, 1_700_000_000_000, 32.0, 118.0,
                                    alarm=1 << bit)
        events = [m.event for m in jt808.decode(raw).telemetry if isinstance(m, DeviceEvent)]
        assert events == [event], bit
        assert f"{bit:<4}" in jt808.__doc__ and f"``{event}``" in jt808.__doc__
    raw = jt808.encode_location("13912344329", 1, 1_700_000_000_000, 32.0, 118.0, alarm=1 << 1)
    assert len(jt808.decode(raw).telemetry) == 1  # overspeed maps to no device event


def test_split_and_concatenated_frames_through_the_framer():
    framer = FlagFramer()
    stream = TRACCAR_LOW_BATTERY + b"\x00garbage\x00" + TRACCAR_HEARTBEAT + TRACCAR_BATCH
    got: list[bytes] = []
    errors = []
    for i in range(0, len(stream), 7):
        frames, errs = framer.feed(stream[i:i + 7])
        got += frames
        errors += errs
    assert got == [TRACCAR_LOW_BATTERY, TRACCAR_HEARTBEAT, TRACCAR_BATCH]
    assert errors and {e.reason for e in errors} == {"garbage"}  # one run, maybe cut by reads
    frames, errs = FlagFramer().feed(TRACCAR_HEARTBEAT * 3)
    assert frames == [TRACCAR_HEARTBEAT] * 3 and not errs


def test_oversized_frame_is_dropped_and_framer_resyncs():
    framer = FlagFramer(max_frame=64)
    frames, errors = framer.feed(b"\x7e" + b"\x01" * 100)
    assert frames == [] and [e.reason for e in errors] == ["frame_too_large"]
    frames, errors = framer.feed(TRACCAR_HEARTBEAT)
    assert frames == [TRACCAR_HEARTBEAT]
