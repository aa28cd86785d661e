"""A small synthetic world for the engine tests (Nanjing, metres from a centre).

Zones (all positions in metres east/north of C = 118.79 E, 32.05 N):

* ``school``: circle of radius 150 m at (0, 0)                (exclusion, buffer 100)
* ``district``: square polygon of half-side 3,000 m at (0, 0)  (inclusion)
* ``home-A``: circle of radius 60 m at (1,000, 0)               (curfew 22:00-06:00)
* ``park``: square polygon of half-side 200 m at (-1,500, 0)    (exclusion of P-B)
"""

from __future__ import annotations

import json
from typing import Any

from geofence.engine import Engine, EngineConfig
from geofence.geo import metres_per_degree
from geofence.model import DeviceEvent, Fix, Order, VideoHit, parse_orders, parse_ts
from geofence.zones import ZoneCatalogue

LON0, LAT0 = 118.79, 32.05
_KX, _KY = (float(v) for v in metres_per_degree(LAT0))

T0 = parse_ts("2026-11-22T12:00:00Z")  # 20:00 in Asia/Shanghai, a Sunday
MIN = 60_000
SEC = 1_000


def pt(x: float, y: float = 0.0) -> tuple[float, float]:
    """(lon, lat) of a point ``x`` m east and ``y`` m north of the centre."""
    return LON0 + x / _KX, LAT0 + y / _KY


def square(cx: float, cy: float, half: float) -> list[list[float]]:
    ring = [pt(cx - half, cy - half), pt(cx + half, cy - half), pt(cx + half, cy + half),
            pt(cx - half, cy + half), pt(cx - half, cy - half)]
    return [list(p) for p in ring]


def zones_geojson() -> dict[str, Any]:
    def circle(zid: str, x: float, y: float, r: float) -> dict[str, Any]:
        return {"type": "Feature", "id": zid, "properties": {"radius_m": r},
                "geometry": {"type": "Point", "coordinates": list(pt(x, y))}}

    def poly(zid: str, x: float, y: float, half: float) -> dict[str, Any]:
        return {"type": "Feature", "id": zid, "properties": {},
                "geometry": {"type": "Polygon", "coordinates": [square(x, y, half)]}}

    return {"type": "FeatureCollection", "features": [
        circle("school", 0, 0, 150), poly("district", 0, 0, 3000),
        circle("home-A", 1000, 0, 60), poly("park", -1500, 0, 200)]}


def zones() -> ZoneCatalogue:
    return ZoneCatalogue.from_geojson(zones_geojson())


def orders_json(**overrides: Any) -> list[dict[str, Any]]:
    a: dict[str, Any] = {
        "person_id": "P-A", "devices": ["WB-A", "WB-A2"], "jurisdiction": "320102",
        "timezone": "Asia/Shanghai",
        "rules": [
            {"id": "r1", "type": "exclusion", "zone": "school", "buffer_m": 100},
            {"id": "r2", "type": "inclusion", "zone": "district"},
            {"id": "r3", "type": "curfew", "zone": "home-A",
             "windows": [{"days": "daily", "start": "22:00", "end": "06:00"}]},
            {"id": "r4", "type": "no_contact", "person": "P-B", "distance_m": 200},
            {"id": "r5", "type": "signal_loss", "after_s": 900},
        ],
    }
    b: dict[str, Any] = {
        "person_id": "P-B", "devices": ["WB-B"], "jurisdiction": "320104",
        "rules": [{"id": "b1", "type": "exclusion", "zone": "park"}],
    }
    a.update(overrides)
    return [a, b]


def orders(**overrides: Any) -> list[Order]:
    return parse_orders(json.dumps(orders_json(**overrides)))


def engine(config: EngineConfig = EngineConfig(), **overrides: Any) -> Engine:
    return Engine(zones(), orders(**overrides), config)


def fix(t: int, x: float, y: float = 0.0, acc: float = 10.0, dev: str = "WB-A",
        valid: bool = True, **kw: Any) -> Fix:
    lon, lat = pt(x, y)
    return Fix(device_id=dev, ts=t, lat=lat, lon=lon, accuracy_m=acc, valid=valid, **kw)


def event(t: int, name: str, dev: str = "WB-A") -> DeviceEvent:
    return DeviceEvent(device_id=dev, ts=t, event=name)  # type: ignore[arg-type]


def hit(t: int, name: str, x: float, y: float = 0.0, **kw: Any) -> VideoHit:
    lon, lat = pt(x, y)
    return VideoHit(camera_id=kw.pop("camera_id", "CAM-1"), ts=t, event=name,  # type: ignore[arg-type]
                    lat=lat, lon=lon, **kw)


def summary(records: Any) -> list[tuple[str, str, str, str]]:
    """(event, kind, rule_id, time) per record: opened_at or cleared_at."""
    out = []
    for r in records:
        a = r.alert
        when = a.cleared_at if r.event == "cleared" else (a.updated_at or a.opened_at)
        out.append((r.event, a.kind, a.rule_id, when))
    return out
