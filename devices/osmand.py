"""OsmAnd / Traccar Client HTTP protocol: query-string and JSON variants.

Query string (``GET`` or form ``POST`` to any path)::

    /?id=123456&timestamp=1377177267&lat=60.0&lon=30.0&speed=0&bearing=0&altitude=0&accuracy=5&batt=87

- device: ``id`` or ``deviceid``;
- time: ``timestamp`` as epoch seconds, epoch milliseconds (values above
  10^11 are milliseconds) or ISO 8601 (``2016-01-27T18:55:47Z``; a time
  without zone is UTC, a space may replace the ``T``); missing -> receive time;
- position: ``lat`` + ``lon`` or ``location=lat,lon``;
- ``accuracy`` (metres; ``hacc`` too), ``speed`` (m/s), ``bearing`` or
  ``heading`` (degrees), ``altitude``, ``batt``/``battery`` (percent),
  ``valid`` (``true``/``false``).

JSON (``POST``, ``Content-Type: application/json``): the Traccar Client /
background-geolocation shape ``{"device_id": ..., "location": {"timestamp":
ISO, "coords": {"latitude", "longitude", "accuracy", "speed", "heading",
"altitude"}, "battery": {"level": 0..1}}}`` (``location`` may be a list), or a
flat object with the query-string keys.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from devices.bounds import json_bounds
from devices.errors import FrameError
from geofence.errors import ValidationError
from geofence.model import Fix, Telemetry, parse_ts

#: Largest OsmAnd request body (a Traccar Client batch is a few KiB).
MAX_BODY = 64 * 1024


def _float(value: Any, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise FrameError("malformed", f"{what} {str(value)[:40]!r} is not a number") from None
    except OverflowError:  # an integer beyond any float
        raise FrameError("non_finite_number", f"{what} {str(value)[:40]!r} is too large") from None
    if not math.isfinite(v):
        raise FrameError("non_finite_number", f"{what} is {value!r}")
    return v


def parse_time(value: Any, now_ms: int) -> int:
    """Epoch ms from seconds, milliseconds or ISO 8601 (naive = UTC).

    Examples
    --------
    >>> parse_time("1377177267", 0), parse_time("1442068686579", 0)
    (1377177267000, 1442068686579)
    >>> parse_time("2016-01-27T18:55:47Z", 0)
    1453920947000
    """
    if value is None or value == "":
        return now_ms
    if isinstance(value, bool):
        raise FrameError("invalid_timestamp", "timestamp is a boolean")
    if isinstance(value, (int, float)) or (isinstance(value, str) and _EPOCH.match(value.strip())):
        try:
            v = float(value)
        except OverflowError:
            v = math.inf
        if not math.isfinite(v) or v < 0:
            raise FrameError("invalid_timestamp", f"timestamp {str(value)[:40]!r} out of range")
        return _in_range(int(v) if v > 1e11 else round(v * 1000), value)
    text = str(value).strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise FrameError("invalid_timestamp", f"timestamp {str(value)[:40]!r} is not "
                         "epoch seconds, milliseconds or ISO 8601") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return _in_range(round(dt.timestamp() * 1000), value)


_EPOCH = re.compile(r"-?[0-9]+(\.[0-9]*)?\Z")
"""Epoch seconds or milliseconds as text (ASCII digits only)."""


def _in_range(ms: int, value: Any) -> int:
    """``ms`` if the contract accepts it as a time, else ``invalid_timestamp``."""
    try:
        return parse_ts(ms)
    except ValidationError:
        raise FrameError("invalid_timestamp", f"timestamp {str(value)[:40]!r} out of range") from None


def _fix(params: Mapping[str, Any], now_ms: int) -> Fix:
    dev = params.get("id") or params.get("deviceid") or params.get("device_id")
    if not dev:
        raise FrameError("missing_field", "no device id (`id` or `deviceid`)")
    dev = str(dev)
    if "location" in params and ("lat" not in params or "lon" not in params):
        parts = str(params["location"]).split(",")
        if len(parts) != 2:
            raise FrameError("malformed", f"location {str(params['location'])[:40]!r} is not lat,lon")
        lat, lon = _float(parts[0], "latitude"), _float(parts[1], "longitude")
    elif "lat" in params and "lon" in params:
        lat, lon = _float(params["lat"], "latitude"), _float(params["lon"], "longitude")
    else:
        raise FrameError("missing_field", "no position (`lat`+`lon` or `location`)")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise FrameError("out_of_range", f"latitude {lat} or longitude {lon} out of range")
    kw: dict[str, Any] = {}
    acc = params.get("accuracy", params.get("hacc"))
    if acc not in (None, ""):
        a = _float(acc, "accuracy")
        if 0 < a <= 1_000_000:  # 0 means unknown on many phones
            kw["accuracy_m"] = a
    speed = params.get("speed")
    if speed not in (None, ""):
        s = _float(speed, "speed")
        if 0 <= s <= 1000:
            kw["speed_mps"] = s
    heading = params.get("bearing", params.get("heading"))
    if heading not in (None, ""):
        h = _float(heading, "heading")
        if 0 <= h <= 360:
            kw["heading_deg"] = h
    alt = params.get("altitude")
    if alt not in (None, ""):
        al = _float(alt, "altitude")
        if -1000 <= al <= 20000:
            kw["altitude_m"] = al
    batt = params.get("batt", params.get("battery"))
    if batt not in (None, ""):
        b = _float(batt, "battery")
        if 0 <= b <= 100:
            kw["battery_pct"] = b
    valid = params.get("valid")
    if valid is not None:
        kw["valid"] = str(valid).lower() not in ("false", "0", "no")
    if len(dev) > 256:
        raise FrameError("string_too_long", "device id longer than 256 characters")
    return Fix(device_id=dev, ts=parse_time(params.get("timestamp"), now_ms), lat=lat, lon=lon,
               source="gnss", **kw)


def decode_query(target: str, now_ms: int) -> list[Telemetry]:
    """Decode a request target (``/?id=...&lat=...``) or a bare query string."""
    query = urlsplit(target).query if ("?" in target or target.startswith("/")) else target
    params = dict(parse_qsl(query, keep_blank_values=True))
    return [_fix(params, now_ms)]


def _from_bg_location(loc: Mapping[str, Any], dev: Any, now_ms: int) -> Fix:
    coords = loc.get("coords")
    if not isinstance(coords, Mapping):
        raise FrameError("missing_field", "location without `coords`")
    params: dict[str, Any] = {
        "id": dev, "timestamp": loc.get("timestamp"),
        "lat": coords.get("latitude"), "lon": coords.get("longitude"),
        "accuracy": coords.get("accuracy"), "speed": coords.get("speed"),
        "heading": coords.get("heading"), "altitude": coords.get("altitude"),
    }
    battery = loc.get("battery")
    if isinstance(battery, Mapping) and isinstance(battery.get("level"), (int, float)):
        level = float(battery["level"])
        if 0 <= level <= 1:
            params["batt"] = round(level * 100, 1)
    return _fix(params, now_ms)


_KEY = re.compile(r"(?i)(?<![a-z0-9_])key=[^&\s]*")


def redact_key(text: str) -> str:
    """``text`` with any ``key=`` value masked, so a device key never reaches a dead letter."""
    return _KEY.sub("key=***", text)


def request_key(target: str, body: str, authorization: str | None) -> str | None:
    """The device key of a request: ``Authorization: Bearer``, else a ``key=`` parameter.

    The parameter is read from the query string, or from a form body.
    """
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    for text in (urlsplit(target).query, "" if body.lstrip().startswith("{") else body):
        for name, value in parse_qsl(text, keep_blank_values=True):
            if name == "key" and value:
                return value
    return None


def decode_json(body: bytes | str, now_ms: int) -> list[Telemetry]:
    """Decode a JSON POST body (background-geolocation shape or flat keys).

    The body's size and nesting are bounded before it is parsed
    (``payload_too_large``, ``too_deep``).
    """
    raw = body.encode() if isinstance(body, str) else body
    json_bounds(raw, MAX_BODY)
    try:
        data = json.loads(raw)
    except ValueError as exc:  # also bytes that are not UTF-8 and integers of 4300+ digits
        raise FrameError("malformed_json", f"body is not JSON: {str(exc)[:200]}") from None
    except RecursionError:
        raise FrameError("malformed_json", "body nests arrays or objects too deeply") from None
    if not isinstance(data, Mapping):
        raise FrameError("wrong_type", "the JSON body must be an object")
    if "location" in data and not isinstance(data["location"], str):
        dev = data.get("device_id") or data.get("id") or data.get("deviceid")
        locs = data["location"]
        items = locs if isinstance(locs, list) else [locs]
        out: list[Telemetry] = []
        for item in items:
            if not isinstance(item, Mapping):
                raise FrameError("wrong_type", "each location must be an object")
            out.append(_from_bg_location(item, dev, now_ms))
        if not out:
            raise FrameError("empty", "the location list is empty")
        return out
    return [_fix(data, now_ms)]


def decode(frame: str | bytes, now_ms: int) -> list[Telemetry]:
    """``wardstream decode --protocol osmand``: a request target or a JSON body."""
    try:
        text = frame.decode() if isinstance(frame, bytes) else frame
    except UnicodeDecodeError as exc:
        raise FrameError("malformed", f"request is not UTF-8 (byte {exc.start})") from None
    if text.lstrip().startswith("{"):
        return decode_json(text, now_ms)
    return decode_query(text, now_ms)
