"""Fuzzing the worker's decode-and-evaluate path with hostile telemetry.

Generated payloads (deep nesting, oversized text, duplicates, timestamps far
in the past and future, NaN and Infinity, every JSON type in every field,
broken envelopes) go through the worker's own steps without a broker:
:class:`TelemetryDecoder` then :meth:`Engine.process` and timers. Nothing
may raise; every message either comes out as a reject with a reason, or is
counted by the engine in exactly one of its outcomes.
"""

from __future__ import annotations

import json
from typing import Any

import scenario
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geofence.engine import Engine, batch_watermark
from geofence.model import DeadLetter, TelemetryDecoder, dead_letters

NOW = scenario.T0 + 3_600_000
DEVICES = ["WB-P1", "WB-P2", "WB-P3", "WB-P4", "WB-P5", "WB-P6", "WB-P7", "GHOST", ""]
REASONS = {"malformed_json", "non_finite_number", "wrong_type", "missing_field",
           "unknown_kind", "unknown_event", "invalid_value", "out_of_range", "string_too_long",
           "empty_string", "invalid_timestamp", "future_timestamp", "batch_too_large",
           "payload_too_large", "too_deep", "invalid_message"}

anything = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8)
timestamps = st.one_of(
    st.integers(NOW - 10 * 86_400_000, NOW + 600_000),  # around now, some late
    st.sampled_from([0, -1, 1, NOW + 23 * 3_600_000, 2**53, 253402300799999,
                     253402300800000, 2**63, "2026-11-20T13:30:00Z", "2026-11-20T13:30:00",
                     "9999-12-31T23:59:59Z", "not a time", True]),
    anything)
floats = st.one_of(st.floats(-200, 200), st.floats(), st.sampled_from([0.0, -0.0]), anything)


@st.composite
def message(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["fix", "device_event", "video_hit", "nope", None]))
    m: dict[str, Any] = {"kind": kind, "ts": draw(timestamps)}
    if kind == "video_hit":
        m.update(camera_id=draw(st.sampled_from(["CAM-1", ""]) | anything),
                 event=draw(st.sampled_from(["face_match", "fight", "x"]) | anything),
                 person_id=draw(st.sampled_from(["P1", "P6", "ZZ", None]) | anything),
                 confidence=draw(floats), lat=draw(floats), lon=draw(floats))
    else:
        m.update(device_id=draw(st.sampled_from(DEVICES) | anything),
                 lat=draw(st.floats(31.9, 32.2) | floats), lon=draw(st.floats(118.6, 118.9) | floats),
                 event=draw(st.sampled_from(["tamper", "heartbeat", "sos", "zzz"]) | anything))
    for name in draw(st.lists(st.sampled_from(["ts", "lat", "lon", "event", "kind"]), max_size=2)):
        m.pop(name, None)
    if draw(st.booleans()):
        m[draw(st.text(max_size=6))] = draw(anything)
    return m


def render(value: Any, nan_literal: bool) -> bytes:
    text = json.dumps(value, allow_nan=True)
    return (text if nan_literal else text.replace("NaN", "null")).encode()


@st.composite
def payload(draw: Any) -> bytes:
    shape = draw(st.sampled_from(["one", "envelope", "deep", "huge", "junk", "broken",
                                  "backfill"]))
    if shape == "backfill":  # a live fix, then repeated items from beyond the horizon
        device = draw(st.sampled_from(DEVICES[:7]))
        ago = draw(st.integers(0, 86_400_000))
        old = {"kind": "fix", "device_id": device, "ts": NOW - ago, "lat": 32.05, "lon": 118.79}
        live = {**old, "ts": NOW}
        return render([live] + [old] * draw(st.integers(1, 4)), False)
    if shape == "deep":
        depth = draw(st.integers(30, 5000))
        inner = draw(st.sampled_from([b"[", b'{"a":', b'[{"kind":"fix","x":']))
        return inner * depth
    if shape == "huge":
        return b'{"kind":"fix","device_id":"' + b"W" * draw(st.integers(257, 70_000)) + b'"}'
    if shape == "junk":
        return draw(st.binary(max_size=200))
    msgs = draw(st.lists(message(), min_size=1, max_size=12))
    if draw(st.booleans()):  # duplicates, in place
        msgs = msgs + draw(st.lists(st.sampled_from(msgs), max_size=6))
    nan = draw(st.booleans())
    if shape == "one":
        return render(msgs[0], nan)
    parts = [render(m, nan) for m in msgs]
    if shape == "broken":
        i = draw(st.integers(0, len(parts) - 1))
        parts[i] = parts[i][: draw(st.integers(0, max(0, len(parts[i]) - 1)))]
    return b"[" + b",".join(parts) + b"]"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(st.lists(payload(), min_size=1, max_size=6), st.integers(-86_400_000, 86_400_000))
def test_hostile_telemetry_yields_only_results_and_dead_letters(
        payloads: list[bytes], arrival_shift: int) -> None:
    decoder = TelemetryDecoder(max_batch=50, max_bytes=64 * 1024, max_future_ms=300_000,
                               now_ms=lambda: NOW)
    engine = Engine(scenario.zones(), scenario.orders())
    arrival = NOW + arrival_shift
    for i, raw in enumerate(payloads):
        decoded = decoder.decode(raw, arrival)
        letters: list[DeadLetter] = dead_letters(decoded.rejected, f"telemetry:0@{i}")
        assert all(d.reason in REASONS and d.detail for d in letters), letters
        for m in decoded.messages:
            assert isinstance(m.ts, int) and 0 <= m.ts <= arrival + 300_000
        batch = decoded.messages
        result = engine.process(batch)
        outcomes = (len(result.unknown) + result.duplicates + result.late + result.too_late
                    + result.ignored)
        assert 0 <= outcomes <= len(batch), (outcomes, len(batch), result)
        top = batch_watermark([m for m in batch if m not in result.unknown])
        if top >= 0:
            engine.advance(top)
        for rec in result.records:
            assert rec.alert.alert_id and rec.event
    engine.advance(arrival + 3_600_000)
    engine.snapshot()
