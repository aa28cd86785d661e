"""Reading and validating GeoJSON zone features.

Every rule of the contract's zone format is checked here, and every fault is
a :class:`~geofence.errors.ZoneError` whose detail names the feature and
what is wrong with it: positions (``[lon, lat]``, finite, in range), rings
(closed, three distinct positions), polygons (valid, or repaired when the
repair keeps the enclosed area), ids and properties. Building the index
structures of a zone is :mod:`geofence.zones.build`'s part.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from itertools import chain
from typing import Any, Union

import msgspec
import numpy as np
import shapely

from geofence.errors import ZoneError
from geofence.zones.metric import FloatArray

#: Largest accepted circle radius.
MAX_RADIUS_M = 100_000.0
#: Allowed relative change of area when an invalid polygon is repaired.
REPAIR_AREA_TOLERANCE = 1e-3


def _fail(zone_id: str | None, reason: str, why: str) -> ZoneError:
    where = f"feature '{zone_id}'" if zone_id is not None else "zones"
    return ZoneError(reason, f"{where}: {why}")


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _position(zid: str, p: object, where: str) -> tuple[float, float]:
    if not isinstance(p, (list, tuple)) or not 2 <= len(p) <= 3:
        raise _fail(zid, "bad_coordinates", f"{where}: a position must be [lon, lat] or [lon, lat, alt], got {p!r:.80}")
    if not all(_is_number(c) for c in p):
        raise _fail(zid, "bad_coordinates", f"{where}: non-numeric coordinate in {p!r:.80}")
    lon, lat = float(p[0]), float(p[1])
    if not (math.isfinite(lon) and math.isfinite(lat)) or (len(p) == 3 and not math.isfinite(float(p[2]))):
        raise _fail(zid, "bad_coordinates", f"{where}: coordinate is NaN or infinite in {p!r:.80}")
    if not -180.0 <= lon <= 180.0:
        raise _fail(zid, "bad_coordinates", f"{where}: longitude {lon} outside [-180, 180] (GeoJSON is [lon, lat])")
    if not -90.0 <= lat <= 90.0:
        raise _fail(zid, "bad_coordinates", f"{where}: latitude {lat} outside [-90, 90] (GeoJSON is [lon, lat])")
    return lon, lat


_SEQ_TYPES = frozenset({list, tuple})
_LIST_ONLY = {list}
_NUM_TYPES = frozenset({int, float})


def _ring_array(zid: str, ring: object, where: str) -> FloatArray:
    """Positions of a ring as an (n, 2) array, every coordinate validated."""
    if not isinstance(ring, (list, tuple)):
        raise _fail(zid, "bad_coordinates", f"{where}: a linear ring must be an array of positions")
    arr: FloatArray | None = None
    # (set(map(type, ...)) answers the common case at C speed; the generator
    # expressions decide the rest, as they always did)
    if ring and (
        (set(map(type, ring)) <= _SEQ_TYPES and set(map(len, ring)) == {2})
        or all(isinstance(p, (list, tuple)) and len(p) == 2 for p in ring)
    ):
        try:
            a = np.array(ring)
        except (ValueError, TypeError):
            a = None
        # the fast path takes only plain numbers (booleans would pass as 0/1)
        if a is not None and a.dtype.kind in "if" and a.ndim == 2 and (
            set(map(type, chain.from_iterable(ring))) <= _NUM_TYPES
            or not any(type(c) is bool for p in ring for c in p)
        ):
            a = a.astype(np.float64)
            if np.isfinite(a).all() and (np.abs(a[:, 0]) <= 180.0).all() and (np.abs(a[:, 1]) <= 90.0).all():
                arr = a
    if arr is None:  # slow path: find and name the first bad position
        pts = [_position(zid, p, f"{where} position {i}") for i, p in enumerate(ring)]
        arr = np.array(pts, dtype=np.float64).reshape(len(pts), 2)
    return arr


def _ring(zid: str, ring: object, where: str, repairs: list[str]) -> FloatArray:
    a = _ring_array(zid, ring, where)
    # drop consecutive duplicates (harmless, and they make zero-length edges)
    if len(a) > 1:
        keep = np.r_[True, (a[1:] != a[:-1]).any(axis=1)]
        a = a[keep]
    if len(a) >= 2 and (a[0] != a[-1]).any():
        a = np.vstack([a, a[:1]])
        repairs.append(f"{where}: closed an unclosed ring")
    if len(a) < 4:  # closed, no consecutive repeats: A B C A at least
        distinct = len({(float(p[0]), float(p[1])) for p in a})
        raise _fail(zid, "invalid_geometry", f"{where}: a ring needs at least 3 distinct positions, got {distinct}")
    return a


def _ring_area(ring: FloatArray) -> float:
    xs = ring[:, 0]
    ys = ring[:, 1]
    return float(abs((xs[:-1] * ys[1:]).sum() - (xs[1:] * ys[:-1]).sum()) / 2.0)


def _polygonal(g: shapely.Geometry) -> shapely.Geometry:
    """Keep the polygonal part of a make_valid result."""
    if isinstance(g, (shapely.Polygon, shapely.MultiPolygon)):
        return g
    parts = [p for p in getattr(g, "geoms", []) if isinstance(p, (shapely.Polygon, shapely.MultiPolygon))]
    if not parts:
        return shapely.Polygon()
    return shapely.union_all(parts)


def _polygon(zid: str, coords: object, where: str, repairs: list[str]) -> shapely.Geometry:
    if not isinstance(coords, (list, tuple)) or not coords:
        raise _fail(zid, "invalid_geometry", f"{where}: a polygon needs at least one linear ring")
    rings = [_ring(zid, r, f"{where} ring {i}", repairs) for i, r in enumerate(coords)]
    poly = shapely.Polygon(rings[0], rings[1:])
    if poly.is_valid:
        return poly
    why = shapely.is_valid_reason(poly)
    fixed = _polygonal(shapely.make_valid(poly))
    expected = _ring_area(rings[0]) - sum(_ring_area(h) for h in rings[1:])
    got = float(fixed.area)
    scale = max(abs(expected), got, 1e-30)
    if fixed.is_empty or got <= 0.0 or abs(got - expected) > REPAIR_AREA_TOLERANCE * scale:
        change = "it would leave no area" if fixed.is_empty or got <= 0 else (
            f"repair would change the enclosed area by {100.0 * abs(got - expected) / scale:.2f}%"
        )
        raise _fail(zid, "invalid_geometry", f"{where}: {why}; ambiguous, not repaired ({change})")
    repairs.append(f"{where}: repaired ({why})")
    return fixed


def _finite_positive(v: object) -> float | None:
    if not _is_number(v):
        return None
    f = float(v)  # type: ignore[arg-type]
    return f if math.isfinite(f) and f > 0 else None


def _feature_id(f: Mapping[str, Any], position: int) -> str:
    props = f.get("properties")
    if props is not None and not isinstance(props, Mapping):
        raise _fail(None, "bad_feature", f"feature #{position}: `properties` must be an object or null")
    fid = f.get("id")
    pid = props.get("id") if isinstance(props, Mapping) else None
    for v in (fid, pid):
        if v is not None and not isinstance(v, str):
            raise _fail(None, "bad_id", f"feature #{position}: id must be a string, got {v!r:.60}")
    if fid is not None and pid is not None and fid != pid:
        raise _fail(None, "bad_id", f"feature #{position}: `id` {fid!r} and `properties.id` {pid!r} differ")
    zid = fid if fid is not None else pid
    if zid is None:
        raise _fail(None, "missing_id", f"feature #{position}: no `id` and no `properties.id`")
    if not zid.strip() or len(zid) > 256:
        raise _fail(None, "bad_id", f"feature #{position}: id must be 1-256 characters and not blank")
    return zid


def _freeze(zid: str, feature: Mapping[str, Any]) -> bytes:
    """The feature as compact JSON: a private copy that costs little memory."""
    try:
        return msgspec.json.encode(feature)
    except (TypeError, msgspec.MsgspecError) as e:
        raise _fail(zid, "bad_property", f"the feature is not JSON-serialisable ({e})") from None


def _features_of(data: Union[str, bytes, Mapping[str, Any]]) -> list[Any]:
    """The features list of a FeatureCollection given as text or mapping."""
    obj: Any
    if isinstance(data, (str, bytes, bytearray)):
        try:
            obj = msgspec.json.decode(data)
        except msgspec.DecodeError as e:
            raise _fail(None, "bad_json", f"not valid JSON ({e})") from None
    else:
        obj = data
    if not isinstance(obj, Mapping) or obj.get("type") != "FeatureCollection":
        raise _fail(None, "not_feature_collection", "expected a GeoJSON object with \"type\": \"FeatureCollection\"")
    feats = obj.get("features")
    if not isinstance(feats, list):
        raise _fail(None, "not_feature_collection", "`features` must be an array")
    return feats


