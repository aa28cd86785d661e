"""No input kills a session or a framer: random and mutated frames (hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices import gt06, h02, jt808, watch
from devices.errors import FrameError
from devices.framing import FlagFramer, Gt06Framer, StartEndFramer
from devices.registry import Registry
from devices.sessions import Gt06Session, H02Session, Jt808Session, WatchSession
from geofence.model import Fix, parse_orders

NOW = 1_795_356_210_000
ORDERS = parse_orders(b'[{"person_id": "P", "devices": ["013912344329", "8800000015", '
                      b'"864717003283581", "4210051415"], "jurisdiction": "320102", "rules": []}]')
SEEDS = {
    "jt808": jt808.encode_location("013912344329", 1, NOW, 32.0, 118.0, battery_pct=50),
    "watch": watch.encode_position("SG", "8800000015", NOW, 32.0, 118.0, kind="AL"),
    "gt06": gt06.encode_location(NOW, 32.0, 118.0, 3),
    "h02": h02.encode_position("4210051415", NOW, 32.0, 118.0),
}


def sessions():
    r = Registry(ORDERS, b"k")
    return {"jt808": Jt808Session(r), "watch": WatchSession(r), "gt06": Gt06Session(r),
            "h02": H02Session(r)}


def framers():
    return {"jt808": FlagFramer(max_frame=512), "watch": StartEndFramer(b"[", b"]", 512),
            "gt06": Gt06Framer(512), "h02": StartEndFramer(b"*", b"#", 512)}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SEEDS)), st.binary(max_size=300))
def test_random_bytes_never_raise(protocol, data):
    out = sessions()[protocol].on_frame(data, NOW)
    assert out.error is None or isinstance(out.error, FrameError)
    _frames, errors = framers()[protocol].feed(data)
    assert all(isinstance(e, FrameError) for e in errors)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(SEEDS)), st.data())
def test_mutated_real_frames_never_raise(protocol, data):
    seed = bytearray(SEEDS[protocol])
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(seed) - 1))
        seed[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(seed)))
    frame = bytes(seed[:cut]) if data.draw(st.booleans()) else bytes(seed)
    s = sessions()[protocol]
    if protocol == "gt06":
        s.on_frame(gt06.encode_login("864717003283581", 1), NOW)
    if protocol == "jt808":
        s.on_frame(jt808.encode_auth("013912344329", 1, Registry(ORDERS, b"k").auth_code(
            "013912344329")), NOW)
    out = s.on_frame(frame, NOW)
    assert out.error is None or out.dead  # every bad frame is dead-lettered with a reason
    for msg in out.telemetry:
        if isinstance(msg, Fix):
            assert -90 <= msg.lat <= 90 and -180 <= msg.lon <= 180


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(SEEDS)), st.lists(st.integers(1, 40), min_size=1, max_size=30),
       st.binary(max_size=20))
def test_any_split_of_a_stream_gives_the_same_frames(protocol, cuts, junk):
    seed = SEEDS[protocol]
    stream = seed + junk.replace(seed[:1], b"") + seed  # junk without start markers
    if protocol == "gt06":
        stream = seed + junk.replace(b"\x78", b"").replace(b"\x79", b"") + seed
    f = framers()[protocol]
    got, pos = [], 0
    for c in cuts:
        got += f.feed(stream[pos:pos + c])[0]
        pos += c
    got += f.feed(stream[pos:])[0]
    assert got == [seed, seed]
