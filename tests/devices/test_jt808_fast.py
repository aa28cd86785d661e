"""The JT/T 808 location fast path gives exactly what the full decoder gives.

``jt808.decode_report`` (and the session's use of it) skips the header,
message and Location objects for plain 0x0200 reports. Differential tests:
for generated and mutated frames it must either decline (``None``) or agree
with ``jt808.decode`` field for field, and a session using it must produce
the same outcome as one that always takes the full path.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import jt808
from devices.codec import ms_to_bcd_time
from devices.errors import FrameError
from devices.registry import Registry
from devices.sessions import Jt808Session, Outcome
from geofence.model import parse_orders

NOW = 1_795_356_210_000
PHONE = "013912344329"
ORDERS = parse_orders(b'[{"person_id": "P", "devices": ["013912344329"], '
                      b'"jurisdiction": "320102", "rules": []}]')


def reference(frame: bytes) -> tuple[str, int, int, list[object]] | None:
    """What decode() says, in decode_report's shape (None: not a clean 0x0200)."""
    try:
        d = jt808.decode(frame)
    except FrameError:
        return None
    h = d.message.header
    if h.msg_id != jt808.MSG_LOCATION:
        return None
    return h.phone, h.version, h.serial, list(d.telemetry)


u32 = st.integers(0, 0xFFFFFFFF)
times = st.one_of(
    st.integers(NOW - 400 * 86_400_000, NOW + 86_400_000).map(lambda ms: ms_to_bcd_time(ms, 8.0)),
    st.binary(min_size=6, max_size=6))
items = st.lists(st.tuples(st.sampled_from([0x01, 0x30, 0x31, 0xFE, 0xFE, 0x25, 0xE1]),
                           st.binary(max_size=5)), max_size=4)


@st.composite
def location_frames(draw: st.DrawFn) -> bytes:
    body = struct.pack(
        ">IIIIhHH", draw(st.sampled_from([0, 1, 1 << 16, 1 << 17 | 1 << 7, 0xFFFFFFFF])),
        draw(st.one_of(st.sampled_from([0, 2, 6, 10, 14]), u32)),
        draw(st.one_of(st.sampled_from([90_000_000, 90_000_001]), st.integers(0, 91_000_000),
                       u32)),
        draw(st.one_of(st.sampled_from([180_000_000, 180_000_001]),
                       st.integers(0, 181_000_000), u32)),
        draw(st.integers(-32768, 32767)), draw(st.integers(0, 0xFFFF)),
        draw(st.integers(0, 0xFFFF))) + draw(times)
    for tid, value in draw(items):
        body += bytes((tid, len(value))) + value
    if draw(st.booleans()):  # a truncated last item
        body += bytes((0xFE, 3, 50))
    phone = draw(st.sampled_from([PHONE, "013900000000"]))
    return jt808.frame(jt808.MSG_LOCATION, phone, draw(st.integers(0, 0xFFFF)), body,
                       version=draw(st.sampled_from([2013, 2019])))


@settings(max_examples=600, deadline=None)
@given(location_frames())
def test_fast_path_agrees_with_full_decoder(frame: bytes) -> None:
    fast = jt808.decode_report(frame)
    ref = reference(frame)
    if fast is not None:
        assert ref is not None and (fast[0], fast[1], fast[2], list(fast[3])) == ref
    elif ref is not None:
        # declining is allowed only for what the fast path does not handle
        assert b"\x7d" in frame or len(frame) < 43


@settings(max_examples=600, deadline=None)
@given(location_frames(), st.data())
def test_fast_path_on_mutated_frames(frame: bytes, data: st.DataObject) -> None:
    raw = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(1, len(raw) - 2))] = data.draw(st.integers(0, 255))
    frame = bytes(raw)
    fast = jt808.decode_report(frame)
    if fast is not None:
        assert reference(frame) == (fast[0], fast[1], fast[2], list(fast[3]))


def test_fast_path_declines_other_frames() -> None:
    assert jt808.decode_report(jt808.encode_heartbeat(PHONE, 1)) is None
    assert jt808.decode_report(jt808.encode_auth(PHONE, 1, "code")) is None
    ok = jt808.encode_location(PHONE, 9, NOW, 32.0, 118.0, alarm=1, battery_pct=90)
    assert jt808.decode_report(ok) is not None
    bad_check = ok[:-2] + bytes((ok[-2] ^ 1,)) + ok[-1:]
    assert jt808.decode_report(bad_check) is None
    # a sub-package flag: the full decoder decides
    content = bytearray(jt808.unescape(ok[1:-1]))
    content[2] |= 0x20
    assert jt808.decode_report(b"\x7e" + jt808.escape(bytes(content)) + b"\x7e") is None


def outcome_tuple(out: Outcome) -> tuple[object, ...]:
    err = None if out.error is None else (out.error.reason, out.error.detail)
    return out.result, out.telemetry, out.replies, out.dead, err, out.device_id


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(location_frames(), st.sampled_from([
    jt808.encode_location("013900000000", 5, NOW, 32.0, 118.0),   # not this terminal
    jt808.encode_location(PHONE, 6, NOW + 3 * 86_400_000, 32.0, 118.0),  # far future
    jt808.encode_location(PHONE, 7, NOW - 1000, 32.0, 118.0, alarm=1 << 16, battery_pct=10),
    jt808.encode_heartbeat(PHONE, 8),
])), min_size=1, max_size=6))
def test_session_outcomes_same_with_and_without_fast_path(frames: list[bytes]) -> None:
    registry = Registry(ORDERS, b"k")
    fast, slow = Jt808Session(registry), Jt808Session(registry)
    auth = jt808.encode_auth(PHONE, 1, registry.auth_code(PHONE))
    fast.on_frame(auth, NOW)
    slow.on_frame(auth, NOW)
    real = jt808.decode_report
    for frame in frames:
        a = fast.on_frame(frame, NOW)
        jt808.decode_report = lambda *_a, **_k: None  # type: ignore[assignment]
        try:
            b = slow.on_frame(frame, NOW)
        finally:
            jt808.decode_report = real  # type: ignore[assignment]
        assert outcome_tuple(a) == outcome_tuple(b)


@pytest.mark.parametrize("version", [2013, 2019])
def test_session_fast_path_is_taken_for_plain_reports(version: int,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry(ORDERS, b"k")
    s = Jt808Session(registry)
    s.on_frame(jt808.encode_auth(PHONE, 1, registry.auth_code(PHONE), version=version), NOW)
    calls: list[bytes] = []
    monkeypatch.setattr(jt808, "decode", lambda frame, **kw: calls.append(frame))
    out = s.on_frame(jt808.encode_location(PHONE, 2, NOW, 32.0, 118.0, version=version), NOW)
    assert out.result == "ok" and len(out.telemetry) == 1 and calls == []
    assert jt808.decode_general_response(jt808.parse_frame(out.replies[0]).body) == (
        2, jt808.MSG_LOCATION, 0)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=80), st.binary(min_size=60, max_size=5000)))
def test_xor8_is_the_xor_of_every_byte(data: bytes) -> None:
    from functools import reduce
    from operator import xor

    from devices.codec import xor8

    assert xor8(data) == reduce(xor, data, 0)
