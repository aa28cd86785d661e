"""Contract types: every rejection reason with a real example, and fuzzing."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geofence.errors import OrderError, ValidationError, WardstreamError
from geofence.model import (
    Alert,
    AlertRecord,
    DeviceEvent,
    Fix,
    TelemetryDecoder,
    VideoHit,
    dead_letters,
    encode,
    format_ts,
    json_depth_exceeds,
    parse_order,
    parse_orders,
    parse_ts,
)

NOW = 1_795_356_210_000  # 2026-11-22T14:03:30Z
FIX = {"kind": "fix", "device_id": "WB-000123", "ts": "2026-11-22T14:03:30Z", "lat": 32.05, "lon": 118.79}


def decoder(**kw: int) -> TelemetryDecoder:
    return TelemetryDecoder(now_ms=lambda: NOW, **kw)


def reject(payload: object, **kw: int) -> tuple[str, str]:
    raw = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    batch = decoder(**kw).decode(raw)
    assert not batch.messages, batch.messages
    assert len(batch.rejected) == 1
    return batch.rejected[0].reason, batch.rejected[0].detail


def test_fix_defaults_and_time_forms() -> None:
    a = decoder().decode_one(json.dumps(FIX))
    b = decoder().decode_one(json.dumps({**FIX, "ts": "2026-11-22T22:03:30+08:00"}))
    c = decoder().decode_one(json.dumps({**FIX, "ts": NOW}))
    assert isinstance(a, Fix)
    assert a.ts == b.ts == c.ts == NOW
    assert a.accuracy_m == 10.0 and a.valid is True and a.source is None


def test_all_three_kinds_and_batches() -> None:
    msgs = [
        FIX,
        {"kind": "device_event", "device_id": "WB-1", "ts": NOW, "event": "removed"},
        {"kind": "video_hit", "camera_id": "CAM-9", "ts": NOW, "event": "face_match",
         "lat": 32.0, "lon": 118.7, "person_id": "P-1", "confidence": 0.93, "jurisdiction": "320102"},
    ]
    batch = decoder().decode(json.dumps(msgs))
    assert [type(m) for m in batch.messages] == [Fix, DeviceEvent, VideoHit]
    assert batch.rejected == []


@pytest.mark.parametrize(
    ("payload", "reason", "needle"),
    [
        (b'{"kind": "fix", "device_id": "x", "ts": 1, "lat": NaN, "lon": 1}', "non_finite_number", "NaN"),
        (b'{"kind": "fix", "device_id": "x", "ts": 1, "lat": 1, "lon": Infinity}', "non_finite_number", "Infinity"),
        ({**FIX, "lat": 90.5}, "out_of_range", "$.lat"),
        ({**FIX, "lat": -91}, "out_of_range", "$.lat"),
        ({**FIX, "lon": 180.01}, "out_of_range", "$.lon"),
        ({**FIX, "lon": -200}, "out_of_range", "$.lon"),
        (b'{"kind": "fix", "device_id": "x", "ts": 1, "lat": 1e999, "lon": 1}', "out_of_range", "$.lat"),
        ({k: v for k, v in FIX.items() if k != "lat"}, "missing_field", "`lat`"),
        ({k: v for k, v in FIX.items() if k != "device_id"}, "missing_field", "`device_id`"),
        ({k: v for k, v in FIX.items() if k != "kind"}, "missing_field", "`kind`"),
        ({**FIX, "lat": "32.05"}, "wrong_type", "$.lat"),
        ({**FIX, "valid": "yes"}, "wrong_type", "$.valid"),
        ({**FIX, "ts": True}, "wrong_type", "$.ts"),
        ({**FIX, "ts": "2026-11-22T14:03:30"}, "invalid_timestamp", "UTC offset"),
        ({**FIX, "ts": "yesterday"}, "invalid_timestamp", "RFC 3339"),
        ({**FIX, "ts": "2026-11-24T14:03:31Z"}, "future_timestamp", "ahead of its arrival"),
        ({**FIX, "device_id": "W" * 257}, "string_too_long", "$.device_id"),
        ({**FIX, "device_id": ""}, "empty_string", "$.device_id"),
        ({**FIX, "kind": "position"}, "unknown_kind", "'position'"),
        ({"kind": "device_event", "device_id": "x", "ts": NOW, "event": "dance"}, "unknown_event", "'dance'"),
        ({"kind": "video_hit", "camera_id": "c", "ts": NOW, "event": "riot", "lat": 1, "lon": 1},
         "unknown_event", "'riot'"),
        ({"kind": "video_hit", "camera_id": "c", "ts": NOW, "event": "fight", "lat": 1, "lon": 1,
          "confidence": 1.5}, "out_of_range", "$.confidence"),
        ({**FIX, "source": "satellite"}, "invalid_value", "$.source"),
        ({"kind": "checkin", "device_id": "PH-1", "ts": NOW, "lat": 32.05, "lon": 118.79},
         "missing_field", "needs `face_score` or `action_ok`"),
        ({"kind": "checkin", "device_id": "PH-1", "ts": NOW, "lat": 32.05, "lon": 118.79,
          "face_score": 1.2}, "out_of_range", "$.face_score"),
        (b'{"kind": "fix", "device_id": ', "malformed_json", "truncated"),
        (b"\xff\xfe", "malformed_json", "malformed"),
        (b"42", "wrong_type", "object or an array"),
    ],
)
def test_every_rejection_reason(payload: object, reason: str, needle: str) -> None:
    got_reason, detail = reject(payload)
    assert got_reason == reason, detail
    assert needle in detail


def test_oversized_batch_and_payload() -> None:
    batch = [dict(FIX, ts=NOW - i) for i in range(11)]
    assert reject(batch, max_batch=10)[0] == "batch_too_large"
    assert reject(json.dumps(FIX), max_bytes=20)[0] == "payload_too_large"
    # a batch with one bad member still rejects the batch by size first
    assert reject([*batch, {"kind": "x"}], max_batch=10)[0] == "batch_too_large"


def test_one_bad_member_does_not_sink_the_batch() -> None:
    msgs = [FIX, {**FIX, "lat": 95}, {**FIX, "ts": NOW - 1000}, {"kind": "nope"}]
    batch = decoder().decode(json.dumps(msgs))
    assert [m.ts for m in batch.messages] == [NOW, NOW - 1000]
    assert [(r.index, r.reason) for r in batch.rejected] == [(1, "out_of_range"), (3, "unknown_kind")]
    letters = dead_letters(batch.rejected, "telemetry:2@77")
    assert [d.source for d in letters] == ["telemetry:2@77[1]", "telemetry:2@77[3]"]
    assert json.loads(letters[0].raw)["lat"] == 95


GOOD = json.dumps(FIX).encode()
NAN = b'{"kind": "fix", "device_id": "WB-9", "ts": 1795356210000, "lat": NaN, "lon": 118.7}'


@pytest.mark.parametrize("depth", [40, 1_100, 100_000])
@pytest.mark.parametrize("shape", ["array", "object", "field"])
def test_deep_nesting_is_rejected_before_parsing(depth: int, shape: str) -> None:
    inner = {"array": b"[" * depth + b"]" * depth,
             "object": b'{"a":' * depth + b"1" + b"}" * depth,
             "field": b'[{"kind": "fix", "x": ' + b"[" * depth + b"]" * depth + b"}]"}[shape]
    reason, detail = reject(inner)
    assert reason == "too_deep" and "32 levels" in detail


def test_depth_scan_ignores_brackets_in_strings_and_counts_exactly() -> None:
    assert not json_depth_exceeds(b'["' + b"[" * 100 + b'"]', 2)
    assert not json_depth_exceeds(b'[' + b'[1],' * 100 + b'[2]]', 2)
    assert json_depth_exceeds(b'[' + b'[1],' * 100 + b'[[2]]]', 2)
    assert not json_depth_exceeds(b'[{"a": "\\\"[[[["}]', 2)
    payload = json.dumps({**FIX, "detail": "[" * 200}).encode()
    assert decoder().decode(payload).messages  # brackets inside a string are not nesting


@pytest.mark.parametrize("position", [0, 30, 60])
def test_a_nan_member_of_an_envelope_rejects_only_that_member(position: int) -> None:
    members = [GOOD] * 60
    members.insert(position, NAN)
    batch = decoder().decode(b"[" + b", ".join(members) + b"]")
    assert len(batch.messages) == 60
    assert [(r.index, r.reason) for r in batch.rejected] == [(position, "non_finite_number")]
    assert '"WB-9"' in batch.rejected[0].raw


def test_every_member_of_a_non_json_envelope_is_judged_alone() -> None:
    members = [GOOD, b'{"kind": "fix", "device_id": "WB-8", "ts": 1, "lat": -Infinity,'
                     b' "lon": 1}', b"5", b'{"kind": "nope"}', GOOD]
    batch = decoder().decode(b"[" + b",".join(members) + b",NaN]")
    assert len(batch.messages) == 2
    assert [(r.index, r.reason) for r in batch.rejected] == [
        (1, "non_finite_number"), (2, "wrong_type"), (3, "unknown_kind"),
        (5, "non_finite_number")]


def test_a_member_that_is_not_json_rejects_it_and_the_rest_saying_why() -> None:
    cut = GOOD[:-1]  # its closing brace is missing
    batch = decoder().decode(b"[" + b",".join([GOOD, GOOD, cut, GOOD]) + b"]")
    assert len(batch.messages) == 2
    [r] = batch.rejected
    assert r.index == 2 and r.reason == "malformed_json"
    assert "rest of the array cannot be separated" in r.detail


def test_future_is_measured_from_the_arrival_when_given() -> None:
    d = TelemetryDecoder(max_future_ms=300_000, now_ms=lambda: NOW)
    fix = json.dumps({**FIX, "ts": NOW + 400_000})
    assert d.decode(fix).rejected[0].reason == "future_timestamp"
    assert d.decode(fix, arrival_ms=NOW + 200_000).messages
    r = d.decode(fix, arrival_ms=NOW - 100_000).rejected[0]
    assert r.reason == "future_timestamp" and "500 s ahead" in r.detail


def test_decode_one_raises_the_projects_error() -> None:
    with pytest.raises(ValidationError) as info:
        decoder().decode_one(b"{}")
    assert isinstance(info.value, WardstreamError)
    assert info.value.reason == "missing_field"


def test_time_helpers_round_trip() -> None:
    assert format_ts(NOW) == "2026-11-22T14:03:30Z"
    assert format_ts(NOW + 5) == "2026-11-22T14:03:30.005Z"
    assert parse_ts(format_ts(NOW + 5)) == NOW + 5
    with pytest.raises(ValidationError):
        parse_ts(-1)


ORDER = {
    "person_id": "P-0001", "devices": ["WB-000123"], "jurisdiction": "320102",
    "valid_from": "2026-11-01T00:00:00+08:00", "valid_until": "2027-02-01T00:00:00+08:00",
    "rules": [
        {"id": "r1", "type": "exclusion", "zone": "Z-school-17", "buffer_m": 100},
        {"id": "r2", "type": "inclusion", "zone": "320102"},
        {"id": "r3", "type": "curfew", "zone": "home-P-0001",
         "windows": [{"days": "daily", "start": "22:00", "end": "06:00"}]},
        {"id": "r4", "type": "no_contact", "person": "P-0002", "distance_m": 200},
        {"id": "r5", "type": "signal_loss", "after_s": 900},
    ],
}


def test_contract_example_order_parses() -> None:
    (order,) = parse_orders(json.dumps([ORDER]))
    assert order.timezone == "Asia/Shanghai"
    assert order.valid_from_ms() == parse_ts("2026-10-31T16:00:00Z")
    assert order.active_at(NOW) and not order.active_at(parse_ts("2027-03-01T00:00:00Z"))
    curfew = order.rules[2]
    assert curfew.windows[0].minutes() == (22 * 60, 6 * 60)
    assert curfew.windows[0].weekdays() == frozenset(range(7))


def test_orders_yaml_is_accepted() -> None:
    yaml_text = (
        "- person_id: P-9\n  devices: [D-9]\n  jurisdiction: '320104'\n"
        "  rules:\n  - {id: s, type: signal_loss, after_s: 600}\n"
    )
    (order,) = parse_orders(yaml_text)
    assert order.rules[0].after_s == 600


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"jurisdiction": "32"}, "6-digit"),
        ({"timezone": "Mars/Olympus"}, "unknown timezone"),
        ({"devices": []}, "at least one device"),
        ({"valid_until": "2026-10-01T00:00:00Z"}, "not after valid_from"),
        ({"rules": [{"id": "a", "type": "exclusion"}]}, "needs `zone`"),
        ({"rules": [{"id": "a", "type": "curfew", "zone": "h", "windows": []}]}, "needs `windows`"),
        ({"rules": [{"id": "a", "type": "curfew", "zone": "h",
                     "windows": [{"start": "25:00", "end": "06:00"}]}]}, "not HH:MM"),
        ({"rules": [{"id": "a", "type": "curfew", "zone": "h",
                     "windows": [{"days": "mon,funday", "start": "22:00", "end": "06:00"}]}]}, "days"),
        ({"rules": [{"id": "a", "type": "no_contact"}]}, "needs `person`"),
        ({"rules": [{"id": "a", "type": "teleport"}]}, "$.rules[0].type"),
        ({"rules": [{"id": "a", "type": "signal_loss"}, {"id": "a", "type": "signal_loss"}]}, "repeat"),
        ({"rules": [{"id": "a", "type": "signal_loss", "severity": "purple"}]}, "severity"),
        ({"rules": [{"id": "c1", "type": "checkin", "windows": [{"start": "08:00", "end": "10:00"}]},
                    {"id": "c2", "type": "checkin", "windows": [{"start": "18:00", "end": "19:00"}]}]},
         "at most one checkin rule"),
        ({"colour": "red"}, "unknown field"),
    ],
)
def test_invalid_orders_say_why(change: dict[str, object], needle: str) -> None:
    with pytest.raises(OrderError) as info:
        parse_orders(json.dumps([{**ORDER, **change}]))
    assert needle in str(info.value)


_IGNORED_FIELDS: list[tuple[dict[str, object], str]] = [
    ({"id": "x1", "type": "exclusion", "zone": "z",
      "windows": [{"start": "09:00", "end": "10:00"}]}, "time windows on exclusion rules"),
    ({"id": "x1", "type": "inclusion", "zone": "z",
      "windows": [{"start": "09:00", "end": "10:00"}]}, "time windows on inclusion rules"),
    ({"id": "x1", "type": "inclusion", "zone": "z", "buffer_m": 50}, "`buffer_m` applies only"),
    ({"id": "x1", "type": "curfew", "zone": "z", "buffer_m": 0,
      "windows": [{"start": "22:00", "end": "06:00"}]}, "`buffer_m` applies only"),
    ({"id": "x1", "type": "exclusion", "zone": "z", "distance_m": 200}, "`distance_m` applies only"),
    ({"id": "x1", "type": "exclusion", "zone": "z", "person": "P-2"}, "`person` applies only"),
    ({"id": "x1", "type": "curfew", "zone": "z", "after_s": 60,
      "windows": [{"start": "22:00", "end": "06:00"}]}, "`after_s` applies only"),
    ({"id": "x1", "type": "no_contact", "person": "P-2", "zone": "z"}, "`zone` applies only"),
    ({"id": "x1", "type": "no_contact", "person": "P-2",
      "windows": [{"start": "22:00", "end": "06:00"}]}, "`windows` applies only"),
    ({"id": "x1", "type": "signal_loss", "dwell_s": 30}, "`dwell_s` applies only"),
    ({"id": "x1", "type": "signal_loss", "zone": "z"}, "`zone` applies only"),
    ({"id": "x1", "type": "signal_loss", "buffer_m": 10}, "`buffer_m` applies only"),
]


@pytest.mark.parametrize(("rule", "needle"), _IGNORED_FIELDS)
def test_a_field_the_engine_would_ignore_is_refused_with_the_rule_id(
        rule: dict[str, object], needle: str) -> None:
    order = {**ORDER, "rules": [*ORDER["rules"], rule]}  # type: ignore[list-item]
    for text in (json.dumps([order]), json.dumps({"orders": [order]})):
        with pytest.raises(OrderError) as info:
            parse_orders(text)
        assert info.value.reason == "unsupported_field"
        assert "rule 'x1'" in info.value.detail and needle in info.value.detail


def test_an_unknown_rule_key_names_the_rule() -> None:
    order = {**ORDER, "rules": [*ORDER["rules"],  # type: ignore[list-item]
                                {"id": "x1", "type": "exclusion", "zone": "z", "hours": "9-10"}]}
    with pytest.raises(OrderError) as info:
        parse_orders(json.dumps([order]))
    assert info.value.reason == "unknown_field"
    assert "rule 'x1'" in info.value.detail and "unknown field `hours`" in info.value.detail


def test_every_field_that_applies_is_accepted_and_defaults_are_kept() -> None:
    (order,) = parse_orders(json.dumps([{**ORDER, "rules": [
        {"id": "e", "type": "exclusion", "zone": "z", "buffer_m": 5, "severity": "orange",
         "dwell_s": 10},
        {"id": "i", "type": "inclusion", "zone": "z", "severity": "red", "dwell_s": 0},
        {"id": "c", "type": "curfew", "zone": "z", "windows": [{"start": "22:00", "end": "06:00"}],
         "dwell_s": 60},
        {"id": "n", "type": "no_contact", "person": "P-2", "dwell_s": 5},
        {"id": "s", "type": "signal_loss", "severity": "yellow"},
        {"id": "e2", "type": "exclusion", "zone": "z"}]}]))
    e, _, _, n, sig, e2 = order.rules
    assert (e.effective_buffer_m(), e2.effective_buffer_m()) == (5.0, 0.0)
    assert n.effective_distance_m() == 200.0 and sig.effective_after_s() == 900
    assert e2.buffer_m is None and n.distance_m is None and sig.after_s is None


def test_orders_file_level_errors() -> None:
    with pytest.raises(OrderError, match="array"):
        parse_orders("{}")
    with pytest.raises(OrderError, match="repeats"):
        parse_orders(json.dumps([ORDER, ORDER]))
    other = {**ORDER, "person_id": "P-0002"}
    with pytest.raises(OrderError, match="already worn"):
        parse_orders(json.dumps([ORDER, other]))
    with pytest.raises(OrderError):
        parse_order("not a mapping")


def test_alert_record_round_trip() -> None:
    alert = Alert(alert_id="a1", person_id="P-1", rule_id="r1", kind="exclusion_entered",
                  severity="red", opened_at=format_ts(NOW), lat=32.05, lon=118.79,
                  jurisdiction="320102")
    data = json.loads(encode(AlertRecord(event="opened", alert=alert)))
    assert data["alert"]["cleared_at"] is None and data["alert"]["status"] == "open"
    assert data["alert"]["late"] is False and data["event"] == "opened"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=20,
)
field_names = st.sampled_from(["kind", "device_id", "camera_id", "ts", "lat", "lon", "event",
                               "accuracy_m", "valid", "confidence", "person_id", "source"])
plausible = st.dictionaries(field_names, json_values | st.sampled_from(
    ["fix", "device_event", "video_hit", "sos", "face_match", NOW, 32.0, "2026-11-22T14:03:30Z"]))


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, plausible, st.lists(plausible, max_size=5)))
def test_random_json_never_raises(value: object) -> None:
    raw = json.dumps(value)
    batch = decoder().decode(raw)
    for m in batch.messages:
        assert isinstance(m, (Fix, DeviceEvent, VideoHit))
        assert isinstance(m.ts, int)
        if isinstance(m, (Fix, VideoHit)):
            assert -90 <= m.lat <= 90 and -180 <= m.lon <= 180 and math.isfinite(m.lat)
    for r in batch.rejected:
        assert r.reason and r.detail


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(raw: bytes) -> None:
    batch = decoder().decode(raw)
    assert batch.messages or batch.rejected or raw.strip() == b"[]"


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_random_orders_raise_only_order_errors(value: object) -> None:
    try:
        parse_orders(json.dumps(value))
    except OrderError:
        pass


# ---------------------------------------------------------------- orders: fast path = reference path
# parse_orders decodes a plain JSON array straight into Order structs; the
# {"orders": [...]} form (and YAML) takes the reference path (json.loads, then
# msgspec.convert per order). Both must give equal orders and identical errors.

_INVALID_CHANGES: list[dict[str, object]] = [
    {"jurisdiction": "32"}, {"timezone": "Mars/Olympus"}, {"devices": []}, {"devices": [""]},
    {"person_id": ""}, {"person_id": 7}, {"valid_until": "2026-10-01T00:00:00Z"},
    {"valid_from": "yesterday"}, {"valid_from": True}, {"valid_from": -5},
    {"rules": [{"id": "a", "type": "exclusion"}]},
    {"rules": [{"id": "a", "type": "exclusion", "zone": ""}]},
    {"rules": [{"id": "a", "type": "curfew", "zone": "h", "windows": []}]},
    {"rules": [{"id": "a", "type": "curfew", "zone": "h", "windows": [{"start": "25:00", "end": "06:00"}]}]},
    {"rules": [{"id": "a", "type": "curfew", "zone": "h", "windows": [{"start": "22:00", "end": "22:00"}]}]},
    {"rules": [{"id": "a", "type": "curfew", "zone": "h",
                "windows": [{"days": "mon,funday", "start": "22:00", "end": "06:00"}]}]},
    {"rules": [{"id": "a", "type": "curfew", "zone": "h", "windows": [{"days": " ", "start": "22:00", "end": "06:00"}]}]},
    {"rules": [{"id": "a", "type": "no_contact"}]}, {"rules": [{"id": "a", "type": "teleport"}]},
    {"rules": [{"id": "a", "type": "signal_loss"}, {"id": "a", "type": "signal_loss"}]},
    {"rules": [{"id": "a", "type": "signal_loss", "severity": "purple"}]},
    {"rules": [{"id": "a", "type": "signal_loss", "after_s": 900.5}]},
    {"rules": [{"id": "a", "type": "exclusion", "zone": "z", "buffer_m": -1}]},
    {"colour": "red"}, {"rules": "none"},
    {"rules": [{"id": "a", "type": "exclusion", "zone": "z", "windows": [{"start": "09:00", "end": "10:00"}]}]},
    {"rules": [{"id": "a", "type": "signal_loss", "buffer_m": 3}]},
    {"rules": [{"id": "a", "type": "exclusion", "zone": "z", "hours": 3}]},
]


def _error(text: str) -> tuple[str, str]:
    with pytest.raises(OrderError) as info:
        parse_orders(text)
    return info.value.reason, info.value.detail


@pytest.mark.parametrize("change", _INVALID_CHANGES)
@pytest.mark.parametrize("position", [0, 2])
def test_fast_and_reference_paths_reject_alike(change: dict[str, object], position: int) -> None:
    good = [{**ORDER, "person_id": f"P-{i}", "devices": [f"D-{i}"]} for i in range(3)]
    good[position] = {**good[position], **change}
    assert _error(json.dumps(good)) == _error(json.dumps({"orders": good}))


def test_fast_and_reference_paths_parse_alike() -> None:
    orders = [{**ORDER, "person_id": f"P-{i}", "devices": [f"D-{i}", f"E-{i}"],
               "valid_from": [None, 1_790_000_000_000, "2026-11-01T00:00:00+08:00"][i % 3],
               "timezone": ["Asia/Shanghai", "Asia/Urumqi", "UTC"][i % 3]} for i in range(30)]
    for o in orders[::4]:
        o.pop("valid_until")
    fast = parse_orders(json.dumps(orders))
    ref = parse_orders(json.dumps({"orders": orders}))
    assert fast == ref
    assert [o.valid_from for o in fast] == [None, 1_790_000_000_000, parse_ts("2026-11-01T00:00:00+08:00")] * 10
    # cross-order checks run on the fast path too
    assert _error(json.dumps([*orders, orders[3]])) == _error(json.dumps({"orders": [*orders, orders[3]]}))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(list(ORDER)), json_values), max_size=3))
def test_random_order_arrays_agree_with_the_reference_path(value: list[dict[str, object]]) -> None:
    value = [{**ORDER, **v} for v in value]
    outcomes = []
    for text in (json.dumps(value), json.dumps({"orders": value})):
        try:
            outcomes.append(("ok", parse_orders(text)))
        except OrderError as e:
            outcomes.append(("error", (e.reason, e.detail)))
    assert outcomes[0] == outcomes[1]
