"""Every decoder and framer is total: hostile input raises nothing but ``FrameError``.

Property-based (hypothesis), straight at the pure decoders (no session catches
anything on the way): random bytes, truncations and mutations of real frames,
huge length fields, deeply nested JSON. Valid frames must still decode.

Seed frames are the decoders' own encoders' output plus captured frames named
where they are defined: JT/T 808 from Traccar (traccar/traccar,
src/test/java/org/traccar/protocol/Jt808ProtocolDecoderTest.java).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from devices import gt06, h02, jt808, osmand, vendor, watch
from devices.errors import FrameError
from devices.framing import FlagFramer, Gt06Framer, StartEndFramer
from geofence.model import DeviceEvent, Fix

NOW = 1_795_356_210_000
PHONE = "013912344329"
FAST = settings(max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# Traccar Jt808ProtocolDecoderTest: a wristband report with 0xEB sub-items (0x0089 bit 12 clear)
TRACCAR_EB_REMOVING = bytes.fromhex(
    "7e020000530095900689830016000000000000000b00a2394803a925f800000000000025112411514701040000003e"
    "300115310113eb29000c00b28988228066613427450900060089ffffefff000600c5ffffffef0004002d0fa5000300"
    "a85c757e")
# Traccar Jt808ProtocolDecoderTest: 0x0704 batch of 8 positions
TRACCAR_BATCH = bytes.fromhex(
    "7E0704014301356777777707F5000801002600000000000000030159741206CBFD5001720000000116052709062401"
    "040000001D03020000002600000000000000030159746606CBFD50016B0000000116052709065301040000001D0302"
    "000000260000000000000003015975E406CBFE58013F0000000116052709072701040000001D030200000026000000"
    "0000000003015976DE06CBFF10012E0000000116052709075601040000001D03020000002600000000000000030159"
    "76BC06CBFED0012D0000000116052709083001040000001D0302000000260000000000000003015976FE06CBFEC001"
    "080000000116052709090001040000001D0302000000260000000000000003015976FE06CBFE7800FC000000011605"
    "2709093301040000001D030200000026000000000000000301597 7A606CBFF3001080000000116052709100201040000"
    "001D030200001F7E".replace(" ", ""))

JT808_SEEDS = [
    TRACCAR_EB_REMOVING,
    TRACCAR_BATCH,
    jt808.encode_location(PHONE, 1, NOW, 32.0, 118.0, battery_pct=50, alarm=1 << 16,
                          extras=[(0xEB, bytes.fromhex("00060089ffffefff")), (0x7E, b"\x7d\x7e")]),
    jt808.encode_location(PHONE, 2, NOW, -33.9, -70.6, version=2019, mileage_km=12.5),
    jt808.encode_register(PHONE, 3),
    jt808.encode_auth(PHONE, 4, "abc", version=2019, imei="864717003283581"),
    jt808.encode_heartbeat(PHONE, 5),
    jt808.encode_set_params(PHONE, 6, {0x29: 30, 0x13: b"host"}),
    *jt808.encode_packets(jt808.MSG_BATCH, PHONE, 7, struct.pack(">HB", 3, 1) + b"".join(
        struct.pack(">H", len(b)) + b for b in [jt808.location_body(NOW, 31.0 + i, 121.0)
                                                 for i in range(3)]), packet_size=40),
]
WATCH_SEEDS = [
    watch.encode_position("SG", "8800000015", NOW, 32.0, 118.0, kind="AL"),
    watch.encode_position("3G", "8800000015", NOW, -1.5, -2.5),
    watch.encode("SG", "8800000015", "LK,0,0,80"),
]
GT06_SEEDS = [
    gt06.encode_login("864717003283581", 1),
    gt06.encode_location(NOW, 32.0, 118.0, 3),
    gt06.encode_location(NOW, -32.0, -118.0, 4, speed_kmh=40),
]
H02_SEEDS = [h02.encode_position("4210051415", NOW, 32.0, 118.0),
             h02.encode_position("4210051415", NOW, -32.0, -118.0, valid=False)]
OSMAND_QUERIES = ["/?id=WB-1&lat=32.05&lon=118.79&timestamp=1795356210&speed=3&batt=80",
                  "id=WB-1&location=32.05,118.79&timestamp=2026-11-22T14:03:30Z"]
OSMAND_BODIES = [
    b'{"location": {"timestamp": "2026-11-22T14:03:30Z", "coords": {"latitude": 32.05, '
    b'"longitude": 118.79, "speed": 1.5}, "battery": {"level": 0.8}}, "device_id": "WB-1"}',
    b'{"id": "WB-1", "lat": 32.05, "lon": 118.79, "timestamp": 1795356210}',
]


def only_frame_errors(fn: Callable[[], Any]) -> Any:
    """Run ``fn``: it returns, or raises FrameError with a reason and a detail; nothing else."""
    try:
        return fn()
    except FrameError as exc:
        assert exc.reason and isinstance(exc.reason, str) and exc.detail
        return None


def sane(messages: Any) -> None:
    for m in messages or ():
        assert isinstance(m, (Fix, DeviceEvent))
        if isinstance(m, Fix):
            assert -90 <= m.lat <= 90 and -180 <= m.lon <= 180


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed frame with a few bytes changed, bytes inserted or deleted, maybe cut short."""
    out = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(("set", "insert", "delete")))
        i = draw(st.integers(0, max(len(out) - 1, 0)))
        if op == "set" and out:
            out[i] = draw(st.integers(0, 255))
        elif op == "insert":
            out[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif out:
            del out[i]
    if draw(st.booleans()):
        out = out[:draw(st.integers(0, len(out)))]
    return bytes(out)


def hostile(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=400), mutated(seeds))


# --------------------------------------------------------------------------- JT/T 808


def jt808_all(data: bytes) -> None:
    for escaped in (True, False):
        for model in (None, "G-360P"):
            d = only_frame_errors(lambda e=escaped, m=model: jt808.decode(  # type: ignore[misc]
                data, now_ms=NOW, escaped=e, model=m))
            if d is not None:
                sane(d.telemetry)
    fast = jt808.decode_report(data)  # never raises: None for anything it does not take
    if fast is not None:
        assert fast[3] == jt808.decode(data).telemetry
    only_frame_errors(lambda: jt808.unescape(data))
    msg = only_frame_errors(lambda: jt808.parse_frame(data))
    body = msg.body if msg is not None else data
    for fn in (lambda: jt808.decode_location(body), lambda: jt808.decode_batch(body),
               lambda: jt808.decode_register(body, 2013), lambda: jt808.decode_register(body, 2019),
               lambda: jt808.decode_auth(body, 2019), lambda: jt808.decode_auth(body, 2013),
               lambda: jt808.decode_general_response(body),
               lambda: jt808.decode_register_response(body), lambda: jt808.decode_set_params(body)):
        only_frame_errors(fn)
    if msg is not None:
        r = jt808.Reassembler(max_packets=8, max_pending=2)
        joined = only_frame_errors(lambda: r.add(msg, NOW))
        if joined is not None and joined[0] is not None:
            only_frame_errors(lambda: jt808.decode_message(joined[0].message, now_ms=NOW))
    assert isinstance(vendor.item_events([(0xEB, data), (0xD0, data[:4])]), list)
    assert vendor.sub_items(data) is None or isinstance(vendor.sub_items(data), dict)


@FAST
@given(hostile(JT808_SEEDS))
@example(b"\x7e\x7d\x7e")
@example(b"\x7e" + b"\x00" * 40 + b"\x7e")
def test_jt808_hostile_bytes(data):
    jt808_all(data)


@FAST
@given(st.sampled_from(JT808_SEEDS), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_jt808_huge_length_and_count_fields(seed, props, count):
    content = bytearray(jt808.unescape(seed[1:-1]))
    content[2:4] = struct.pack(">H", props)  # body length, sub-package bits, version bit
    if len(content) > 17:
        content[13:15] = struct.pack(">H", count)  # a batch count / packet total, by position
    content[-1] = 0
    content[-1] = _xor(content[:-1])
    data = b"\x7e" + jt808.escape(bytes(content)) + b"\x7e"
    jt808_all(data)


def _xor(data: bytes | bytearray) -> int:
    x = 0
    for b in data:
        x ^= b
    return x


@FAST
@given(st.sampled_from(JT808_SEEDS), st.lists(st.integers(1, 64), min_size=1, max_size=20),
       st.binary(max_size=30))
def test_flag_framer_any_chunks(seed, cuts, junk):
    f = FlagFramer(max_frame=256)
    stream, pos, got = junk + seed + junk + seed, 0, []
    for c in cuts:
        frames, errors = f.feed(stream[pos:pos + c])
        assert all(isinstance(e, FrameError) for e in errors)
        got += frames
        pos += c
    frames, errors = f.feed(stream[pos:])
    assert all(isinstance(e, FrameError) for e in errors)
    for fr in got + frames:
        jt808_all(fr)


@FAST
@given(st.floats(-90, 90), st.floats(-180, 180), st.integers(0, 0xFFFFFFFF),
       st.integers(0, 100), st.integers(-1000, 20000), st.sampled_from((2013, 2019)),
       st.lists(st.tuples(st.integers(0x40, 0xFF).filter(lambda t: t != 0xFE),
                          st.binary(max_size=12)), max_size=4))
def test_jt808_valid_reports_still_decode(lat, lon, alarm, battery, alt, version, extras):
    frame = jt808.encode_location(PHONE, 9, NOW, lat, lon, alarm=alarm, battery_pct=battery,
                                  altitude_m=alt, version=version, extras=extras)
    d = jt808.decode(frame)
    fix = d.telemetry[0]
    assert isinstance(fix, Fix) and fix.device_id == PHONE and fix.ts == NOW
    assert abs(fix.lat - lat) < 1e-6 and abs(fix.lon - lon) < 1e-6 and fix.battery_pct == battery
    assert all(isinstance(m, DeviceEvent) for m in d.telemetry[1:])
    fast = jt808.decode_report(frame)
    assert fast is None or fast[3] == d.telemetry


# --------------------------------------------------------------------------- watch, GT06, H02


@FAST
@given(hostile(WATCH_SEEDS))
@example(b"[SG*8800000015*FFFF*" + b"," * 5000 + b"]")
def test_watch_hostile_bytes(data):
    d = only_frame_errors(lambda: watch.decode(data, now_ms=NOW))
    if d is not None:
        sane(d.telemetry)
    only_frame_errors(lambda: watch.unescape(data))
    f = StartEndFramer(b"[", b"]", 512)
    _frames, errors = f.feed(data)
    assert all(isinstance(e, FrameError) for e in errors)


@FAST
@given(hostile(GT06_SEEDS))
@example(b"\x79\x79\xff\xff\x12")
def test_gt06_hostile_bytes(data):
    d = only_frame_errors(lambda: gt06.decode(data))
    if d is not None:
        sane(d.telemetry("864717003283581", NOW))
    _frames, errors = Gt06Framer(512).feed(data)
    assert all(isinstance(e, FrameError) for e in errors)


@FAST
@given(hostile(H02_SEEDS))
def test_h02_hostile_bytes(data):
    d = only_frame_errors(lambda: h02.decode(data, now_ms=NOW))
    if d is not None:
        sane(d.telemetry)
    _frames, errors = StartEndFramer(b"*", b"#", 512).feed(data)
    assert all(isinstance(e, FrameError) for e in errors)


TOKENS = st.sampled_from([
    "nan", "inf", "-inf", "1e400", "-0", "-1", "\u00b2", "\u0663\u0663", "\uff11\uff12", "", " ",
    "0x1F", "9" * 40, "1_0", "\x00", "A", "V", "S", "W", "999999", "311299", "000000", "246060",
    "FFFFFFFF", "ZZ"])


@st.composite
def field_mutated(draw: st.DrawFn, seeds: list[bytes], sep: str) -> list[str]:
    """A seed's fields (split at ``sep``) with some replaced by hostile tokens or text."""
    parts = draw(st.sampled_from(seeds)).decode("latin-1").split(sep)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(parts) - 1))
        parts[i] = draw(st.one_of(TOKENS, st.text(max_size=8)))
    if draw(st.booleans()):
        parts = parts[:draw(st.integers(1, len(parts)))]
    return parts


@FAST
@given(field_mutated([s[1:-1].split(b"*", 3)[3] for s in WATCH_SEEDS], ","))
@example(["UD", "221126", "140330", "A", "32.0", "N", "118.0", "E", "0", "0", "0", "nan", "100",
          "90", "0", "0", "0"])
def test_watch_hostile_fields(fields):
    content = ",".join(fields).encode("utf-8")
    d = only_frame_errors(lambda: watch.decode(watch.encode("SG", "8800000015", content),
                                               now_ms=NOW))
    if d is not None:
        sane(d.telemetry)


@FAST
@given(field_mutated([s[1:-1] for s in H02_SEEDS], ","))
@example(["HQ", "4210051415", "V1", "140330", "A", "nan", "N", "11800.0", "E", "0", "0",
          "221126", "FFFFFBFF"])
@example(["HQ", "4210051415", "V1", "14033\u00b2", "A", "3200.0", "N", "11800.0", "E", "0", "0",
          "221126", "FFFFFBFF"])
def test_h02_hostile_fields(fields):
    frame = ("*" + ",".join(fields) + "#").encode("utf-8")
    d = only_frame_errors(lambda: h02.decode(frame, now_ms=NOW))
    if d is not None:
        sane(d.telemetry)


@pytest.mark.parametrize("seed", [*WATCH_SEEDS, *GT06_SEEDS, *H02_SEEDS])
def test_valid_seeds_decode(seed):
    if seed.startswith(b"["):
        assert watch.decode(seed, now_ms=NOW).frame.device_id == "8800000015"
    elif seed.startswith(b"*"):
        assert isinstance(h02.decode(seed, now_ms=NOW).telemetry[0], Fix)
    else:
        d = gt06.decode(seed)
        assert d.login_id == "864717003283581" or isinstance(d.telemetry("x", NOW)[0], Fix)


# --------------------------------------------------------------------------- OsmAnd

JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(),
                      st.integers(10**300, 10**1000), st.floats(allow_nan=True),
                      st.text(max_size=20), TOKENS)
JSON_VALUE = st.recursive(JSON_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=20)
KEYS = st.sampled_from(["id", "deviceid", "device_id", "lat", "lon", "location", "timestamp",
                        "speed", "bearing", "heading", "altitude", "accuracy", "batt", "valid",
                        "coords", "latitude", "longitude", "battery", "level"])


@st.composite
def osmand_object(draw: st.DrawFn) -> Any:
    """Objects shaped like OsmAnd bodies with hostile values."""
    value = st.deferred(lambda: st.one_of(JSON_VALUE, st.dictionaries(KEYS, value, max_size=5)))
    return draw(st.dictionaries(KEYS, value, max_size=8))


@FAST
@given(st.one_of(osmand_object(), JSON_VALUE))
def test_osmand_json_bodies(obj):
    body = json.dumps(obj)
    sane(only_frame_errors(lambda: osmand.decode_json(body.encode(), NOW)))
    sane(only_frame_errors(lambda: osmand.decode(body, NOW)))


@FAST
@given(st.one_of(st.binary(max_size=300), mutated(OSMAND_BODIES)))
def test_osmand_json_bytes(body):
    sane(only_frame_errors(lambda: osmand.decode_json(body, NOW)))
    sane(only_frame_errors(lambda: osmand.decode(body, NOW)))


@FAST
@given(st.one_of(st.text(max_size=300),
                 st.lists(st.tuples(KEYS, st.one_of(TOKENS, st.text(max_size=30))),
                          max_size=8).map(
                     lambda kv: "/?" + "&".join(f"{k}={v}" for k, v in kv)),
                 mutated([q.encode() for q in OSMAND_QUERIES]).map(
                     lambda b: b.decode("latin-1"))))
@example("id=a&lat=1&lon=2&timestamp=%C2%B2")  # a superscript two passes str.isdigit
@example("id=a&lat=1&lon=2&timestamp=99999999999999999999999")
def test_osmand_queries(target):
    sane(only_frame_errors(lambda: osmand.decode_query(target, NOW)))
    sane(only_frame_errors(lambda: osmand.decode(target, NOW)))


@pytest.mark.parametrize("body", [
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 50_000 + "1" + "}" * 50_000,
    '{"location": ' + "[" * 50_000 + "]" * 50_000 + "}",
    '{"id": "x", "lat": 1' + "0" * 5000 + ', "lon": 2}',
    '{"id": "x", "lat": 1e999, "lon": 2}',
    '{"id": "x", "lat": 1, "lon": 2, "timestamp": 1' + "0" * 5000 + "}",
    '{"id": "x", "lat": 1' + "0" * 400 + ', "lon": 2}',
    '{"id": "x", "lat": 1, "lon": 2, "timestamp": 1' + "0" * 400 + "}",
    '{"id": "x", "lat": 1, "lon": 2, "timestamp": "9999-12-31T23:59:59-23:59"}',
    '{"id": "x", "lat": 1, "lon": 2, "timestamp": "\u00b2"}',
    b'{"id": "\xff"}'.decode("latin-1"),
])
def test_osmand_deep_and_huge_json_is_a_frame_error(body):
    with pytest.raises(FrameError):
        osmand.decode_json(body, NOW)
    with pytest.raises(FrameError):
        osmand.decode(body.encode(), NOW)


@pytest.mark.parametrize("seed", OSMAND_QUERIES)
def test_osmand_valid_queries_decode(seed):
    (fix,) = osmand.decode_query(seed, NOW)
    assert isinstance(fix, Fix) and fix.device_id == "WB-1" and fix.lat == 32.05


@pytest.mark.parametrize("seed", OSMAND_BODIES)
def test_osmand_valid_bodies_decode(seed):
    (fix,) = osmand.decode_json(seed, NOW)
    assert isinstance(fix, Fix) and fix.device_id == "WB-1" and fix.lon == 118.79
