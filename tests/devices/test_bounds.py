"""The JSON shape limits applied to MQTT payloads and OsmAnd bodies before parsing."""

from __future__ import annotations

import json

import pytest

from devices import osmand
from devices.bounds import MAX_JSON_DEPTH, json_bounds, json_depth
from devices.errors import FrameError


@pytest.mark.parametrize(("raw", "depth"), [
    (b"1", 0),
    (b'"[[[["', 0),
    (b"[]", 1),
    (b"[[]][[]]", 2),
    (b'{"a": {"b": [1, 2]}}', 3),
    (b'[{"a": "[[[[\\"[[{{"}]', 2),  # brackets and an escaped quote inside a string
    (b"[" * 5000 + b"]" * 5000, 5000),
])
def test_depth_counts_brackets_outside_strings(raw: bytes, depth: int):
    assert json_depth(raw) == depth


def test_depth_stops_early_once_over_the_limit():
    assert json_depth(b"[" * 5000, stop_at=10) == 11


def test_bounds_refuse_deep_and_large_payloads_with_reasons():
    with pytest.raises(FrameError) as deep:
        json_bounds(b"[" * 5000 + b"]" * 5000, max_bytes=1 << 20)
    assert deep.value.reason == "too_deep" and str(MAX_JSON_DEPTH) in deep.value.detail
    with pytest.raises(FrameError) as large:
        json_bounds(b"[" + b"1," * 100 + b"1]", max_bytes=50)
    assert large.value.reason == "payload_too_large" and "203 bytes > limit 50" in large.value.detail
    batch = json.dumps([{"kind": "fix", "device_id": f"d{i}", "lat": 1.0, "lon": 2.0}
                        for i in range(1000)]).encode()
    json_bounds(batch, max_bytes=1 << 20)  # a wide batch is fine: depth 2


def test_osmand_json_body_nested_too_deep_is_refused():
    body = b'{"device_id": "a", "location": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    with pytest.raises(FrameError) as exc:
        osmand.decode_json(body, 0)
    assert exc.value.reason == "too_deep"


def test_osmand_empty_location_list_is_refused_not_ignored():
    with pytest.raises(FrameError) as exc:
        osmand.decode_json(b'{"device_id": "a", "location": []}', 0)
    assert exc.value.reason == "empty"
