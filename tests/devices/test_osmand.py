"""OsmAnd / Traccar Client requests.

Source (used as data): Traccar, src/test/java/org/traccar/protocol/OsmAndProtocolDecoderTest.java
(query-string variants and the background-geolocation JSON bodies).
"""

from __future__ import annotations

import pytest

from devices import osmand
from devices.errors import FrameError

NOW = 1_700_000_000_000
JSON_BG = (b'{"location":{"event":"motionchange","is_moving":false,"uuid":"0e9a2473-a9a7-4c00-997b-'
           b'fb97d2154e75","timestamp":"2021-07-21T08:06:34.444Z","odometer":0,"coords":{"latitude":'
           b'-6.1148096,"longitude":106.6837015,"accuracy":3.8,"speed":18.67,"speed_accuracy":0.26,'
           b'"heading":63,"heading_accuracy":0.28,"altitude":35.7,"altitude_accuracy":3.8},"activity"'
           b':{"type":"still","confidence":100},"battery":{"is_charging":false,"level":0.79},"extras"'
           b':{}},"device_id":"8737767034"}')
JSON_UNKNOWN_HEADING = (b'{"location":{"timestamp":"2025-06-15T13:45:12.862Z","coords":{"latitude":'
                        b'37.4219983,"longitude":-122.084,"accuracy":5,"speed":0,"heading":-1,'
                        b'"altitude":5},"is_moving":false,"odometer":0,"event":"motionchange",'
                        b'"battery":{"level":1,"is_charging":false},"activity":{"type":"still"},'
                        b'"extras":{}},"device_id":"48241179"}')


@pytest.mark.parametrize("target,dev,lat,lon,ts", [
    ("/?id=902064&lat=42.06288&lon=-88.23412&timestamp=2016-01-27T18%3A55%3A47Z&hdop=6.0"
     "&altitude=224.0&speed=0.0", "902064", 42.06288, -88.23412, "2016-01-27T18:55:47Z"),
    ("/?id=902064&lat=42.06288&lon=-88.23412&timestamp=1442068686579&hdop=6.0&altitude=224.0"
     "&speed=0.0", "902064", 42.06288, -88.23412, 1442068686579),
    ("/?lat=49.60688&lon=6.15788&timestamp=2014-06-04+09%3A10%3A11&altitude=384.7&speed=0.0"
     "&id=353861053849681", "353861053849681", 49.60688, 6.15788, "2014-06-04T09:10:11Z"),
    ("/?id=123456&timestamp=1377177267&lat=60.0&lon=30.0", "123456", 60.0, 30.0, 1377177267000),
    ("/?id=123456&timestamp=1377177267&location=60.0,30.0", "123456", 60.0, 30.0, 1377177267000),
    ("/?lat=60.0&lon=30.0&speed=0.0&heading=0.0&vacc=0&hacc=0&altitude=0&deviceid=123456",
     "123456", 60.0, 30.0, NOW),
])
def test_query_variants(target, dev, lat, lon, ts, verify_fix):
    (fix,) = osmand.decode_query(target, NOW)
    verify_fix(fix, device_id=dev, lat=lat, lon=lon, ts=ts)


def test_battery_and_accuracy():
    (fix,) = osmand.decode_query("/?id=861001000719969&lat=41.666667&lon=-0.883333&altitude="
                                 "350.059479&speed=0.000000&batt=87&accuracy=12.5", NOW)
    assert fix.battery_pct == 87.0 and fix.accuracy_m == 12.5 and fix.ts == NOW


def test_background_geolocation_json(verify_fix):
    (fix,) = osmand.decode_json(JSON_BG, NOW)
    verify_fix(fix, device_id="8737767034", lat=-6.1148096, lon=106.6837015,
               ts="2021-07-21T08:06:34.444Z")
    assert (fix.accuracy_m, fix.speed_mps, fix.heading_deg, fix.altitude_m, fix.battery_pct) == (
        3.8, 18.67, 63.0, 35.7, 79.0)
    (fix,) = osmand.decode_json(JSON_UNKNOWN_HEADING, NOW)
    assert fix.heading_deg is None and fix.battery_pct == 100.0 and fix.accuracy_m == 5.0


def test_flat_json_and_dispatch(verify_fix):
    (fix,) = osmand.decode('{"deviceid": "A1", "lat": 32.05, "lon": 118.79, "timestamp": 1795356210}', NOW)
    verify_fix(fix, device_id="A1", lat=32.05, lon=118.79, ts="2026-11-22T14:03:30Z")


@pytest.mark.parametrize("target,reason", [
    ("/?timestamp=1377177267&lat=60.0&lon=30.0", "missing_field"),
    ("/?id=1&lat=60.0", "missing_field"),
    ("/?id=1&lat=91&lon=0", "out_of_range"),
    ("/?id=1&lat=nan&lon=0", "non_finite_number"),
    ("/?id=1&lat=1&lon=2&timestamp=yesterday", "invalid_timestamp"),
    ("/?id=1&location=1", "malformed"),
])
def test_rejections(target, reason):
    with pytest.raises(FrameError) as err:
        osmand.decode_query(target, NOW)
    assert err.value.reason == reason


def test_bad_json():
    with pytest.raises(FrameError) as err:
        osmand.decode_json(b"{not json", NOW)
    assert err.value.reason == "malformed_json"
