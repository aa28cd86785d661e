"""Zone catalogue: GeoJSON zones, spatial index and metric signed distance.

A :class:`ZoneCatalogue` holds the zones of the contract (GeoJSON
FeatureCollection, RFC 7946, longitude first): ``Polygon`` and
``MultiPolygon`` (holes honoured) and ``Point`` with ``properties.radius_m``
(a circle that is round on the ground). It answers one question, vectorised
over (zone, point) pairs: how many metres is the point from the zone's
boundary, negative inside and positive outside
(:meth:`ZoneCatalogue.signed_distance_m`).

Geometry semantics
------------------
* Polygon edges are straight lines in longitude/latitude (RFC 7946 section
  3.1.1); containment is decided on those edges exactly (shapely/GEOS).
* Distances are ellipsoidal (WGS 84), measured in a frame centred on each
  point with the mean-latitude scale of each vertex (see
  :func:`geofence.geo.metres_per_degree`). Edges longer than
  :data:`DENSIFY_DEG` are split for the distance computation so the frame's
  curvature stays negligible. Error bound against Vincenty geodesics at
  18-54 N (docs/zones.md): below 1 mm up to 5 km from the boundary, 4 mm at
  10 km.
* Circles: ``distance(centre, point) - radius_m`` with the ellipsoidal
  distance of :func:`geofence.geo.distance_m`.

Speed
-----
Each pair is settled by the cheapest test that can settle it:

1. the zone's bounding box (every kind): a point farther than ``within_m``
   outside it is certainly outside (a metric lower bound is returned);
2. circles left over: one vectorised distance;
3. a per-zone raster (large zones only): cells that the boundary does not
   touch are wholly inside or outside and carry a lower bound of their
   distance to the boundary; a point in such a cell with clearance greater
   than ``within_m`` is settled there;
4. everything else: prepared ``contains_xy`` for the sign and, for the
   distance, candidate boundary chunks (at most :data:`CHUNK` segments
   each) from the raster cell's list or a bulk STRtree query, followed by
   numpy point-segment distances over the candidate (pair, chunk) rows.

No Python loop runs per pair or per zone at query time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import Any, Union

import msgspec
import numpy as np
import shapely
from numpy.typing import NDArray

from geofence.errors import ZoneError
from geofence.geo import A_M, E2, distance_m, meridional_radius_m, metres_per_degree
from geofence.model import _gc_paused

__all__ = [
    "CHUNK",
    "DENSIFY_DEG",
    "MAX_RADIUS_M",
    "ZoneCatalogue",
    "load_zones",
]

#: Boundary segments per indexed chunk.
CHUNK = 8
#: Edges longer than this (degrees, in either coordinate) are split for the
#: distance computation (the shape is unchanged: splits lie on the edge).
DENSIFY_DEG = 0.002
#: Largest accepted circle radius.
MAX_RADIUS_M = 100_000.0
#: Vertices of the polygon that approximates a circle for display and bounds.
CIRCLE_VERTICES = 72
#: Zones with at least this many boundary segments, or wider than
#: GRID_MIN_EXTENT_M, get a raster accelerator.
GRID_MIN_SEGMENTS = 256
GRID_MIN_EXTENT_M = 2_000.0
GRID_MAX_CELLS = 65_536
GRID_MAX_STEPS = 96
#: First search radius of the exact path (metres); widened as needed.
FIRST_RADIUS_M = 250.0
#: Raster cells list the boundary chunks within this many metres of them.
CELL_REACH_M = 250.0
#: Allowed relative change of area when an invalid polygon is repaired.
REPAIR_AREA_TOLERANCE = 1e-3

_DEG = math.pi / 180.0
#: Smallest meridional metres per degree anywhere (at the equator).
_KY_MIN = float(meridional_radius_m(0.0)) * _DEG

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


# --------------------------------------------------------------------------
# parsing and validation
# --------------------------------------------------------------------------


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


def _scales(lat: float) -> tuple[float, float]:
    """Metres per degree of longitude and latitude at ``lat`` (scalar, fast)."""
    s = math.sin(lat * _DEG)
    q = 1.0 - E2 * s * s
    return A_M / math.sqrt(q) * math.cos(lat * _DEG) * _DEG, A_M * (1.0 - E2) / (q * math.sqrt(q)) * _DEG


def _circle_polygon(lon: float, lat: float, radius_m: float) -> shapely.Polygon:
    kx, ky = _scales(lat)
    a = np.linspace(0.0, 2.0 * np.pi, CIRCLE_VERTICES, endpoint=False)
    # circumscribe the circle so the polygon contains it
    r = radius_m / math.cos(math.pi / CIRCLE_VERTICES)
    xs = lon + r * np.cos(a) / kx
    ys = lat + r * np.sin(a) / ky
    return shapely.Polygon(np.column_stack([xs, ys]))


class _Zone(msgspec.Struct, frozen=True, gc=False):
    """One parsed zone (a frozen struct: about 20x cheaper to build than a frozen dataclass)."""

    id: str
    feature: bytes  # the (repaired) GeoJSON feature, compact JSON
    kind: str  # "polygon" or "circle"
    geom: shapely.Geometry | None  # lon/lat polygonal geometry (None for circles)
    bbox: tuple[float, float, float, float]
    chunks: FloatArray  # (n_chunks, CHUNK, 4) lon1, lat1, lon2, lat2 (padded)
    center: tuple[float, float]
    radius_m: float
    grid: _Grid | None
    repairs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Grid:
    x0: float
    y0: float
    dx: float
    dy: float
    nx: int
    ny: int
    state: NDArray[np.int8]  # -1 inside, +1 outside, 0 touched by the boundary
    clearance: NDArray[np.float32]  # metres, lower bound of distance to boundary
    cell_start: NDArray[np.int64]  # per cell: first entry in cell_chunks
    cell_count: NDArray[np.int64]  # per cell: number of entries
    cell_chunks: NDArray[np.int64]  # zone-local chunk indices, by cell


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


def _segments(geom: shapely.Geometry) -> list[FloatArray]:
    """Boundary rings of a polygonal geometry as (n, 4) segment arrays."""
    out: list[FloatArray] = []
    polys = geom.geoms if isinstance(geom, shapely.MultiPolygon) else [geom]
    for p in polys:
        for ring in [p.exterior, *p.interiors]:
            c = np.asarray(ring.coords, dtype=np.float64)[:, :2]
            seg = np.column_stack([c[:-1], c[1:]])
            seg = seg[(seg[:, 0] != seg[:, 2]) | (seg[:, 1] != seg[:, 3])]
            if len(seg):
                out.append(_densify(seg))
    return out


def _densify(seg: FloatArray) -> FloatArray:
    span = np.maximum(np.abs(seg[:, 2] - seg[:, 0]), np.abs(seg[:, 3] - seg[:, 1]))
    parts = np.maximum(1, np.ceil(span / DENSIFY_DEG).astype(np.int64))
    if int(parts.max()) == 1:
        return seg
    rep = np.repeat(np.arange(len(seg)), parts)
    start = np.repeat(np.cumsum(parts) - parts, parts)
    k = (np.arange(len(rep)) - start).astype(np.float64)
    n = parts[rep].astype(np.float64)
    s = seg[rep]
    t0 = k / n
    t1 = (k + 1) / n
    x0 = s[:, 0] + (s[:, 2] - s[:, 0]) * t0
    y0 = s[:, 1] + (s[:, 3] - s[:, 1]) * t0
    x1 = np.where(k + 1 == n, s[:, 2], s[:, 0] + (s[:, 2] - s[:, 0]) * t1)
    y1 = np.where(k + 1 == n, s[:, 3], s[:, 1] + (s[:, 3] - s[:, 1]) * t1)
    return np.column_stack([x0, y0, x1, y1])


def _chunks(rings: list[FloatArray]) -> FloatArray:
    """Rings cut into runs of CHUNK consecutive segments, (n, CHUNK, 4).

    A short last run is padded with zero-length segments at the ring's last
    vertex, so every run stays continuous (each segment starts where the
    previous ended) and can be read as a polyline of CHUNK + 1 vertices.
    """
    blocks: list[FloatArray] = []
    for seg in rings:
        n = len(seg)
        nc = -(-n // CHUNK)
        pad = nc * CHUNK - n
        if pad:
            end = np.concatenate([seg[-1, 2:], seg[-1, 2:]])[None, :]
            seg = np.vstack([seg, np.repeat(end, pad, axis=0)])
        blocks.append(seg.reshape(nc, CHUNK, 4))
    if not blocks:
        return np.zeros((0, CHUNK, 4))
    return np.ascontiguousarray(np.concatenate(blocks))


def _bulge_deg(span_deg: Any, lat_deg: Any) -> Any:
    """How far (degrees) a geodesic spanning ``span_deg`` can stray poleward of its ends.

    A great circle between two points bulges towards the pole by about
    ``s^2 tan(lat) / 8`` (s the angular length); doubled for margin. Scale
    bounds use the latitude plus this, so they hold along the whole path.
    """
    t = np.tan(np.minimum(np.abs(lat_deg) + 1.0, 89.0) * _DEG)
    return span_deg * span_deg * _DEG * t / 4.0


def _lat_scale_bounds(y0: float, y1: float, x_span: float = 0.0) -> tuple[float, float]:
    """Lowest metres/degree of longitude and latitude over [y0, y1].

    ``x_span`` (degrees of longitude covered) adds the poleward bulge of
    geodesics across the range.
    """
    span = math.hypot(x_span, y1 - y0)
    far = min(max(abs(y0), abs(y1)) + float(_bulge_deg(span, max(abs(y0), abs(y1)))), 89.999)
    near = 0.0 if y0 <= 0.0 <= y1 else min(abs(y0), abs(y1))
    kx, _ = metres_per_degree(far)
    _, ky = metres_per_degree(near)
    return float(kx), float(ky)


def _build_grid(geom: shapely.Geometry, bbox: tuple[float, float, float, float], chunks: FloatArray) -> _Grid:
    x0, y0, x1, y1 = bbox
    kx_lo, ky_lo = _lat_scale_bounds(y0, y1, x1 - x0)
    w_m = max((x1 - x0) * kx_lo, 1.0)
    h_m = max((y1 - y0) * ky_lo, 1.0)
    nseg = int(np.count_nonzero((chunks[:, :, :2] != chunks[:, :, 2:]).any(axis=2)))
    target = min(GRID_MAX_CELLS, max(256, 8 * nseg))
    side = math.sqrt(w_m * h_m / target)
    nx = int(min(512, max(1, math.ceil(w_m / side))))
    ny = int(min(512, max(1, math.ceil(h_m / side))))
    dx = max((x1 - x0) / nx, 1e-12)
    dy = max((y1 - y0) / ny, 1e-12)
    # mark every cell the boundary passes through: sample each segment at
    # under half a cell, then dilate by one cell (catches corner clips)
    seg = chunks.reshape(-1, 4)
    span = np.maximum(np.abs(seg[:, 2] - seg[:, 0]) / dx, np.abs(seg[:, 3] - seg[:, 1]) / dy)
    ns = (np.ceil(span * 2.0).astype(np.int64) + 1).clip(2, None)
    rep = np.repeat(np.arange(len(seg)), ns)
    start = np.repeat(np.cumsum(ns) - ns, ns)
    t = (np.arange(len(rep)) - start) / (ns[rep] - 1).astype(np.float64)
    s = seg[rep]
    px = s[:, 0] + (s[:, 2] - s[:, 0]) * t
    py = s[:, 1] + (s[:, 3] - s[:, 1]) * t
    ix = np.clip(((px - x0) / dx).astype(np.int64), 0, nx - 1)
    iy = np.clip(((py - y0) / dy).astype(np.int64), 0, ny - 1)
    marked = np.zeros((ny + 2, nx + 2), dtype=bool)
    marked[iy + 1, ix + 1] = True
    marked = _dilate(marked)
    # Chebyshev distance (in cells) to the nearest marked cell
    steps = np.full(marked.shape, GRID_MAX_STEPS, dtype=np.int32)
    reached = marked.copy()
    steps[reached] = 0
    for k in range(1, GRID_MAX_STEPS):
        grown = _dilate(reached)
        new = grown & ~reached
        if not new.any():
            break
        steps[new] = k
        reached = grown
    marked = marked[1:-1, 1:-1]
    steps = steps[1:-1, 1:-1]
    cx = x0 + (np.arange(nx) + 0.5) * dx
    cy = y0 + (np.arange(ny) + 0.5) * dy
    gx, gy = np.meshgrid(cx, cy)
    shapely.prepare(geom)  # the catalogue prepares it anyway; here it speeds up the raster
    inside = shapely.contains_xy(geom, gx.ravel(), gy.ravel()).reshape(ny, nx)
    state = np.where(marked, 0, np.where(inside, -1, 1)).astype(np.int8)
    cell_m = min(dx * kx_lo, dy * ky_lo)
    clearance = (np.maximum(steps - 1, 0) * cell_m * 0.9999).astype(np.float32)
    start, count, entries = _cell_lists(chunks, x0, y0, dx, dy, nx, ny, y1)
    return _Grid(x0, y0, dx, dy, nx, ny, state.ravel(), clearance.ravel(), start, count, entries)


def _chunk_bounds(c: FloatArray) -> FloatArray:
    if not len(c):
        return np.zeros((0, 4))
    return np.column_stack([
        np.minimum(c[:, :, 0], c[:, :, 2]).min(axis=1),
        np.minimum(c[:, :, 1], c[:, :, 3]).min(axis=1),
        np.maximum(c[:, :, 0], c[:, :, 2]).max(axis=1),
        np.maximum(c[:, :, 1], c[:, :, 3]).max(axis=1),
    ])


def _cell_lists(
    chunks: FloatArray, x0: float, y0: float, dx: float, dy: float, nx: int, ny: int, y1: float,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """For each cell, the chunks within CELL_REACH_M of it (CSR layout).

    A point in the cell has every boundary point within CELL_REACH_M of it
    in one of these chunks, so a search of radius <= CELL_REACH_M needs no
    tree query.
    """
    cb = _chunk_bounds(chunks)
    far = min(max(abs(y0), abs(y1)) + CELL_REACH_M / _KY_MIN, 89.9)
    mx = CELL_REACH_M / (A_M * _DEG * math.cos(far * _DEG)) * 1.0001
    my = CELL_REACH_M / _KY_MIN * 1.0001
    ix0 = np.clip(np.floor((cb[:, 0] - mx - x0) / dx), 0, nx - 1).astype(np.int64)
    ix1 = np.clip(np.floor((cb[:, 2] + mx - x0) / dx), 0, nx - 1).astype(np.int64)
    iy0 = np.clip(np.floor((cb[:, 1] - my - y0) / dy), 0, ny - 1).astype(np.int64)
    iy1 = np.clip(np.floor((cb[:, 3] + my - y0) / dy), 0, ny - 1).astype(np.int64)
    w = ix1 - ix0 + 1
    h = iy1 - iy0 + 1
    k = w * h
    chunk = np.repeat(np.arange(len(cb), dtype=np.int64), k)
    j = np.arange(int(k.sum()), dtype=np.int64) - np.repeat(np.cumsum(k) - k, k)
    cx = ix0[chunk] + j % w[chunk]
    cy = iy0[chunk] + j // w[chunk]
    cell = cy * nx + cx
    order = np.argsort(cell, kind="stable")
    count = np.bincount(cell, minlength=nx * ny).astype(np.int64)
    start = np.cumsum(count) - count
    return start, count, chunk[order]


def _dilate(a: NDArray[np.bool_]) -> NDArray[np.bool_]:
    out = a.copy()
    out[1:, :] |= a[:-1, :]
    out[:-1, :] |= a[1:, :]
    b = out.copy()
    out[:, 1:] |= b[:, :-1]
    out[:, :-1] |= b[:, 1:]
    return out


def _make_zone(f: object, position: int) -> _Zone:
    if not isinstance(f, Mapping):
        raise _fail(None, "bad_feature", f"feature #{position}: not a JSON object")
    zid = _feature_id(f, position)
    if f.get("type") != "Feature":
        raise _fail(zid, "bad_feature", f"`type` must be \"Feature\", got {f.get('type')!r:.40}")
    props = f.get("properties") or {}
    for key in ("name", "category"):
        v = props.get(key)
        if v is not None and not isinstance(v, str):
            raise _fail(zid, "bad_property", f"properties.{key} must be a string, got {v!r:.60}")
    g = f.get("geometry")
    if not isinstance(g, Mapping):
        raise _fail(zid, "missing_geometry", "no geometry object")
    gtype = g.get("type")
    coords = g.get("coordinates")
    repairs: list[str] = []
    feature: dict[str, Any] = dict(f)  # shallow: it is serialised below, never kept
    feature["id"] = zid
    if gtype == "Point":
        lon, lat = _position(zid, coords, "Point")
        if "radius_m" not in props:
            raise _fail(zid, "bad_radius", "a Point zone needs properties.radius_m (metres)")
        radius = _finite_positive(props.get("radius_m"))
        if radius is None or radius > MAX_RADIUS_M:
            raise _fail(
                zid, "bad_radius",
                f"properties.radius_m must be a number in (0, {MAX_RADIUS_M:g}], got {props.get('radius_m')!r:.40}",
            )
        return _Zone(
            zid, _freeze(zid, feature), "circle", None, _circle_bbox(lon, lat, radius),
            _NO_CHUNKS, (lon, lat), radius, None, (),
        )
    if gtype == "Polygon":
        geom = _polygon(zid, coords, "Polygon", repairs)
    elif gtype == "MultiPolygon":
        if not isinstance(coords, (list, tuple)) or not coords:
            raise _fail(zid, "invalid_geometry", "MultiPolygon needs at least one polygon")
        parts = [_polygon(zid, c, f"MultiPolygon part {i}", repairs) for i, c in enumerate(coords)]
        geom = shapely.union_all(parts) if len(parts) > 1 else parts[0]
        if len(parts) > 1 and abs(geom.area - sum(p.area for p in parts)) > 1e-12 * max(geom.area, 1e-30):
            repairs.append("MultiPolygon: overlapping parts merged")
        geom = _polygonal(geom)
    elif gtype is None:
        raise _fail(zid, "missing_geometry", "geometry has no `type`")
    else:
        raise _fail(
            zid, "unsupported_geometry",
            f"geometry type {gtype!r:.40} is not supported (Polygon, MultiPolygon, or Point with properties.radius_m)",
        )
    if geom.is_empty or geom.area <= 0.0:
        raise _fail(zid, "invalid_geometry", f"{gtype} encloses no area")
    minx, miny, maxx, maxy = (float(v) for v in geom.bounds)
    if maxx - minx > 180.0:
        raise _fail(zid, "invalid_geometry", "zone spans more than 180 degrees of longitude (antimeridian crossing is not supported)")
    if repairs:
        feature["geometry"] = shapely.geometry.mapping(shapely.orient_polygons(geom))
    rings = _segments(geom)
    nseg = sum(len(r) for r in rings)
    chunks = _chunks(rings)
    kx_lo, ky_lo = _lat_scale_bounds(miny, maxy, maxx - minx)
    extent = max((maxx - minx) * kx_lo, (maxy - miny) * ky_lo)
    grid = None
    if nseg >= GRID_MIN_SEGMENTS or extent >= GRID_MIN_EXTENT_M:
        grid = _build_grid(geom, (minx, miny, maxx, maxy), chunks)
    c = geom.centroid
    return _Zone(zid, _freeze(zid, feature), "polygon", geom, (minx, miny, maxx, maxy), chunks,
                 (float(c.x), float(c.y)), 0.0, grid, tuple(repairs))


_ID = attrgetter("id")
_KIND = attrgetter("kind")
_CENTER = attrgetter("center")
_RADIUS = attrgetter("radius_m")
_BBOX = attrgetter("bbox")
_GEOM = attrgetter("geom")
_CHUNKS = attrgetter("chunks")
_GRID = attrgetter("grid")
_NO_CHUNKS: FloatArray = np.zeros((0, CHUNK, 4))
_NO_CHUNKS.setflags(write=False)
#: Upper bound of metres per degree of latitude or longitude anywhere.
_K_MAX = 111_700.0


def _circle_bbox(lon: float, lat: float, radius: float) -> tuple[float, float, float, float]:
    """Bounds certain to hold the circle: smallest scales within its reach."""
    rla = radius / _KY_MIN * 1.0001
    # _bulge_deg for a scalar, without numpy's per-call cost (70,000 circles)
    bulge = rla * rla * _DEG * math.tan(min(abs(lat) + 1.0, 89.0) * _DEG) / 4.0
    far = min(abs(lat) + rla + bulge, 89.9)
    rlo = radius / (A_M * _DEG * math.cos(far * _DEG)) * 1.0001
    return (lon - rlo, lat - rla, lon + rlo, lat + rla)


def _make_zones(feats: Sequence[Any]) -> list[_Zone]:
    """``[_make_zone(f, i) for i, f in enumerate(feats)]``, in vectorised batches.

    The common zones (circles; polygons, holes and all, that are valid as
    given and small enough to need no raster) are recognised with cheap checks and
    built together: one array per coordinate, shapely's array functions,
    segments densified and chunked for all polygons at once. The checks only
    route: every feature they do not accept (anything unusual, invalid or
    large) goes through :func:`_make_zone`, in input order, so errors,
    repairs and rasters are exactly those of the single path.
    """
    n = len(feats)
    zones: list[_Zone | None] = [None] * n
    slow: list[int] = []
    c_i: list[int] = []
    c_id: list[str] = []
    c_feat: list[bytes] = []
    c_xyr: list[tuple[Any, Any, Any]] = []
    p_i: list[int] = []
    p_id: list[str] = []
    p_feat: list[bytes] = []
    p_ring: list[list[list[Any]]] = []
    encode = msgspec.json.encode
    for i, f in enumerate(feats):
        if type(f) is not dict:
            slow.append(i)
            continue
        props = f.get("properties")
        fid = f.get("id")
        if props is None:
            pid = None
        elif type(props) is dict:
            pid = props.get("id")
            nm = props.get("name")
            cat = props.get("category")
            if (nm is not None and type(nm) is not str) or (cat is not None and type(cat) is not str):
                slow.append(i)
                continue
        else:
            slow.append(i)
            continue
        g = f.get("geometry")
        if type(g) is not dict or f.get("type") != "Feature":
            slow.append(i)
            continue
        if type(fid) is str and (pid is None or (type(pid) is str and pid == fid)):
            zid = fid
            feature = f  # its "id" already is zid: encodes like the copy of _make_zone
        elif fid is None and type(pid) is str:
            zid = pid
            feature = dict(f)
            feature["id"] = zid
        else:
            slow.append(i)
            continue
        if len(zid) > 256 or not zid.strip():
            slow.append(i)
            continue
        gtype = g.get("type")
        coords = g.get("coordinates")
        try:
            if gtype == "Point":
                if type(coords) is list and len(coords) == 2 and props and "radius_m" in props:
                    x, y = coords
                    r = props["radius_m"]
                    tx, ty, tr = type(x), type(y), type(r)
                    if (tx is float or tx is int) and (ty is float or ty is int) and (tr is float or tr is int):
                        c_feat.append(encode(feature))
                        c_i.append(i)
                        c_id.append(zid)
                        c_xyr.append((x, y, r))
                        continue
            elif (gtype == "Polygon" and type(coords) is list and coords
                  and set(map(type, coords)) == _LIST_ONLY and min(map(len, coords)) >= 4):
                p_feat.append(encode(feature))
                p_i.append(i)
                p_id.append(zid)
                p_ring.append(coords)
                continue
        except (TypeError, msgspec.MsgspecError):
            pass  # not serialisable: _make_zone names the fault
        slow.append(i)
    if c_i:
        slow.extend(_circle_batch(zones, c_i, c_id, c_feat, c_xyr))
    if p_i:
        slow.extend(_polygon_batch(zones, p_i, p_id, p_feat, p_ring))
    slow.sort()
    for i in slow:
        zones[i] = _make_zone(feats[i], i)
    return zones  # type: ignore[return-value]


def _circle_batch(
    zones: list[_Zone | None], idx: list[int], ids: list[str], feats: list[bytes],
    xyr: list[tuple[Any, Any, Any]],
) -> list[int]:
    """Build the circles that pass every check of :func:`_make_zone`; return the others."""
    try:  # (every value is a plain int or float: checked by the caller)
        a = np.fromiter(chain.from_iterable(xyr), np.float64, 3 * len(xyr)).reshape(len(xyr), 3)
    except (ValueError, TypeError, OverflowError):
        return idx
    x, y, r = a[:, 0], a[:, 1], a[:, 2]
    with np.errstate(invalid="ignore"):
        ok = (np.abs(x) <= 180.0) & (np.abs(y) <= 90.0) & (r > 0.0) & (r <= MAX_RADIUS_M)
    rest = [idx[k] for k in np.flatnonzero(~ok).tolist()]
    good = np.flatnonzero(ok).tolist()
    for k, (lon, lat, radius) in zip(good, a[good].tolist(), strict=True):
        zones[idx[k]] = _Zone(ids[k], feats[k], "circle", None, _circle_bbox(lon, lat, radius),
                              _NO_CHUNKS, (lon, lat), radius, None, ())
    return rest


def _polygon_batch(
    zones: list[_Zone | None], idx: list[int], ids: list[str], feats: list[bytes],
    polys: list[list[list[Any]]],
) -> list[int]:
    """Build the plain polygons that pass every check of :func:`_make_zone`; return the others.

    Accepted: a shell and any holes, each a closed ring of plain [lon, lat]
    numbers in range with no repeated consecutive position; valid as given
    (no repair), positive area, too small for a raster. Coordinates,
    segments, densification and chunks are those of the single path,
    computed for all rings at once.
    """
    rings = list(chain.from_iterable(polys))
    pos = list(chain.from_iterable(rings))
    if not set(map(type, pos)) <= _SEQ_TYPES or set(map(len, pos)) != {2}:
        return idx
    if not set(map(type, chain.from_iterable(pos))) <= _NUM_TYPES:
        return idx  # booleans, strings, nested lists, ...
    try:  # fromiter: a third of np.array's time on nested lists
        xy = np.fromiter(chain.from_iterable(pos), np.float64, 2 * len(pos)).reshape(len(pos), 2)
    except (ValueError, TypeError, OverflowError):
        return idx
    m = len(polys)
    nrings = np.fromiter(map(len, polys), np.int64, m)
    ring_poly = np.repeat(np.arange(m), nrings)
    lens = np.fromiter(map(len, rings), np.int64, len(rings))
    end = np.cumsum(lens)
    start = end - lens
    x, y = xy[:, 0], xy[:, 1]
    bad_pos = ~((np.abs(x) <= 180.0) & (np.abs(y) <= 90.0))  # NaN fails too
    same_next = np.zeros(len(xy), dtype=bool)  # position equal to the next one of its ring
    same_next[:-1] = (x[1:] == x[:-1]) & (y[1:] == y[:-1])
    same_next[end - 1] = False
    bad_ring = np.bincount(np.repeat(np.arange(len(rings)), lens), weights=bad_pos | same_next,
                           minlength=len(rings)) > 0
    bad_ring |= (x[start] != x[end - 1]) | (y[start] != y[end - 1])  # unclosed: _make_zone repairs
    bad = np.bincount(ring_poly, weights=bad_ring, minlength=m) > 0
    good = np.flatnonzero(~bad)
    if not len(good):
        return idx
    # the polygons, exactly as shapely.Polygon(shell, holes) builds each
    keep_ring = ~bad[ring_poly]
    gxy = xy[np.repeat(keep_ring, lens)]
    glens = lens[keep_ring]  # positions per kept ring
    gnr = nrings[good]  # rings per kept polygon
    n_gr = len(glens)
    gend = np.cumsum(glens)
    roff = np.concatenate([[0], gend])
    poff = np.concatenate([[0], np.cumsum(gnr)])
    geoms = shapely.from_ragged_array(shapely.GeometryType.POLYGON, gxy, (roff, poff))
    bounds = shapely.bounds(geoms)
    span = np.maximum(bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1])
    ok = shapely.is_valid(geoms) & (shapely.area(geoms) > 0.0) & (span * _K_MAX < GRID_MIN_EXTENT_M * 0.999)
    # segments of every ring (consecutive positions; none has length zero)
    seg = np.column_stack([gxy[:-1], gxy[1:]])
    seg_ring = np.repeat(np.arange(n_gr), glens)[:-1]
    inner = np.ones(len(seg), dtype=bool)
    inner[gend[:-1] - 1] = False  # from a ring's last position to the next ring's first
    seg = seg[inner]
    seg_ring = seg_ring[inner]
    sp = np.maximum(np.abs(seg[:, 2] - seg[:, 0]), np.abs(seg[:, 3] - seg[:, 1]))
    parts = np.maximum(1, np.ceil(sp / DENSIFY_DEG).astype(np.int64))
    dseg = _densify(seg)
    nseg = np.bincount(np.repeat(seg_ring, parts), minlength=n_gr)  # per ring
    ok &= np.add.reduceat(nseg, poff[:-1]) < GRID_MIN_SEGMENTS
    # chunks: each ring's segments in runs of CHUNK, the last run padded with
    # zero-length segments at the ring's last vertex (as _chunks does)
    nch = -(-nseg // CHUNK)
    cend = np.cumsum(nch)
    last = np.cumsum(nseg) - 1
    pad = np.concatenate([dseg[last, 2:], dseg[last, 2:]], axis=1)
    flat = np.repeat(pad, nch * CHUNK, axis=0)
    within = np.arange(len(dseg)) - np.repeat(np.cumsum(nseg) - nseg, nseg)
    flat[np.repeat((cend - nch) * CHUNK, nseg) + within] = dseg
    chunks = flat.reshape(-1, CHUNK, 4)
    # a polygon's chunks: from its shell's first to its last hole's last
    c0 = (cend - nch)[poff[:-1]].tolist()
    c1 = cend[poff[1:] - 1].tolist()
    cen = shapely.get_coordinates(shapely.centroid(geoms))
    rest = [idx[k] for k in np.flatnonzero(bad).tolist()]
    okl = ok.tolist()
    bl = bounds.tolist()
    cl = cen.tolist()
    for j, k in enumerate(good.tolist()):
        if not okl[j]:
            rest.append(idx[k])
            continue
        cx, cy = cl[j]
        zones[idx[k]] = _Zone(ids[k], feats[k], "polygon", geoms[j], tuple(bl[j]),
                              chunks[c0[j]:c1[j]], (cx, cy), 0.0, None, ())
    return rest


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


# --------------------------------------------------------------------------
# the catalogue
# --------------------------------------------------------------------------


class ZoneCatalogue:
    """An immutable set of zones with vectorised metric signed distance.

    Build it with :meth:`from_geojson` (or :func:`load_zones`); derive new
    catalogues for hot reload with :meth:`updated` and :meth:`without`.

    Examples
    --------
    >>> fc = {"type": "FeatureCollection", "features": [
    ...     {"type": "Feature", "id": "home", "properties": {"radius_m": 100},
    ...      "geometry": {"type": "Point", "coordinates": [118.79, 32.06]}},
    ...     {"type": "Feature", "properties": {"id": "sq", "name": "square"},
    ...      "geometry": {"type": "Polygon", "coordinates": [[[118.80, 32.05],
    ...        [118.81, 32.05], [118.81, 32.06], [118.80, 32.06], [118.80, 32.05]]]}}]}
    >>> zc = ZoneCatalogue.from_geojson(fc)
    >>> zc.ids, len(zc), "sq" in zc
    (('home', 'sq'), 2, True)
    >>> d = zc.signed_distance_m(np.array([0, 1]), np.array([118.79, 118.805]),
    ...                          np.array([32.0605, 32.055]), np.array([500.0, 500.0]))
    >>> d.round(1).tolist()  # 55 m from the circle centre; the square is 944 m wide
    [-44.6, -472.2]
    """

    __slots__ = (
        "_bbox",
        "_bounds_tree",
        "_cell_chunks",
        "_cell_count",
        "_cell_start",
        "_center",
        "_chunk_bbox",
        "_chunk_zone",
        "_chunks",
        "_geoms",
        "_grid_clear",
        "_grid_f",
        "_grid_i",
        "_grid_state",
        "_index",
        "_is_circle",
        "_radius",
        "_tree",
        "_vx",
        "_vy",
        "_zones",
        "ids",
    )

    def __init__(self, zones: Sequence[_Zone] = ()) -> None:
        self._zones: tuple[_Zone, ...] = tuple(zones)
        self.ids: tuple[str, ...] = tuple(map(_ID, self._zones))
        self._index: dict[str, int] = dict(zip(self.ids, range(len(self.ids)), strict=True))
        if len(self._index) != len(self.ids):
            seen: set[str] = set()
            for zid in self.ids:
                if zid in seen:
                    raise _fail(zid, "duplicate_id", "the id appears more than once")
                seen.add(zid)
        n = len(self._zones)
        zs = self._zones
        # columns by C-level iteration (map/attrgetter, fromiter): 70,000 zones
        self._is_circle = np.fromiter(map("circle".__eq__, map(_KIND, zs)), bool, n)
        self._center = np.fromiter(chain.from_iterable(map(_CENTER, zs)), np.float64, 2 * n).reshape(n, 2)
        self._radius = np.fromiter(map(_RADIUS, zs), np.float64, n)
        self._bbox = np.fromiter(chain.from_iterable(map(_BBOX, zs)), np.float64, 4 * n).reshape(n, 4)
        geoms = np.empty(n, dtype=object)
        geoms[:] = list(map(_GEOM, zs))
        shapely.prepare(geoms)
        self._geoms = geoms
        all_chunks = list(map(_CHUNKS, zs))
        counts = np.fromiter(map(len, all_chunks), np.int64, n)
        self._chunk_zone = np.repeat(np.arange(n, dtype=np.int64), counts)
        some = [c for c in all_chunks if len(c)]
        self._chunks = np.concatenate(some) if some else np.zeros((0, CHUNK, 4))
        cb = _chunk_bounds(self._chunks)
        self._chunk_bbox = cb
        # hot-path layout: each chunk as its CHUNK + 1 vertices (segments of a
        # chunk are consecutive on one ring), x and y in separate arrays
        c = self._chunks
        self._vx = np.ascontiguousarray(np.concatenate([c[:, :, 0], c[:, -1:, 2]], axis=1))
        self._vy = np.ascontiguousarray(np.concatenate([c[:, :, 1], c[:, -1:, 3]], axis=1))
        # STRtree: a sort-tile-recursive bulk-loaded R-tree (see docs/zones.md
        # for why it, and not rtree.Index, serves the bulk queries)
        self._tree = shapely.STRtree(shapely.box(cb[:, 0], cb[:, 1], cb[:, 2], cb[:, 3]))
        # the index over zone bounds serves zones_near only: built on first use
        self._bounds_tree: shapely.STRtree | None = None
        # raster accelerators, flattened
        off = np.full(n, -1, dtype=np.int64)
        gx0 = np.zeros(n)
        gy0 = np.zeros(n)
        gdx = np.ones(n)
        gdy = np.ones(n)
        gnx = np.zeros(n, dtype=np.int64)
        gny = np.zeros(n, dtype=np.int64)
        states: list[NDArray[np.int8]] = []
        clears: list[NDArray[np.float32]] = []
        starts: list[NDArray[np.int64]] = []
        cnts: list[NDArray[np.int64]] = []
        entries: list[NDArray[np.int64]] = []
        chunk_off = np.cumsum(counts) - counts
        pos = 0
        epos = 0
        for i in [i for i, g in enumerate(map(_GRID, zs)) if g is not None]:
            z = zs[i]
            g = z.grid
            assert g is not None
            off[i] = pos
            gx0[i], gy0[i], gdx[i], gdy[i], gnx[i], gny[i] = g.x0, g.y0, g.dx, g.dy, g.nx, g.ny
            states.append(g.state)
            clears.append(g.clearance)
            starts.append(g.cell_start + epos)
            cnts.append(g.cell_count)
            entries.append(g.cell_chunks + chunk_off[i])
            pos += g.nx * g.ny
            epos += len(g.cell_chunks)
        self._cell_start = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
        self._cell_count = np.concatenate(cnts) if cnts else np.zeros(0, dtype=np.int64)
        self._cell_chunks = np.concatenate(entries) if entries else np.zeros(0, dtype=np.int64)
        self._grid_i = np.column_stack([off, gnx, gny]).astype(np.int64).reshape(n, 3)
        self._grid_f = np.column_stack([gx0, gy0, gdx, gdy]).astype(np.float64).reshape(n, 4)
        self._grid_state = np.concatenate(states) if states else np.zeros(0, dtype=np.int8)
        self._grid_clear = np.concatenate(clears) if clears else np.zeros(0, dtype=np.float32)

    # ------------------------------------------------------------ building

    @classmethod
    def from_geojson(cls, data: Union[str, bytes, Mapping[str, Any]]) -> ZoneCatalogue:
        """Build a catalogue from a GeoJSON FeatureCollection.

        Parameters
        ----------
        data : str, bytes or mapping
            The FeatureCollection as JSON text or as a parsed mapping.

        Returns
        -------
        ZoneCatalogue

        Raises
        ------
        ZoneError
            With ``reason`` one of ``bad_json``, ``not_feature_collection``,
            ``bad_feature``, ``missing_id``, ``bad_id``, ``duplicate_id``,
            ``missing_geometry``, ``unsupported_geometry``,
            ``bad_coordinates``, ``bad_radius``, ``bad_property``,
            ``invalid_geometry``; ``detail`` names the feature and the fault.
        """
        with _gc_paused():  # many objects, no garbage: collections would only cost
            return cls(_make_zones(_features_of(data)))

    def updated(self, features: Sequence[Mapping[str, Any]]) -> ZoneCatalogue:
        """A new catalogue with ``features`` added or replacing same-id zones.

        For hot reload (a zone published on the control topic). This
        catalogue is unchanged; only the given features are parsed and
        rasterised, the other zones are reused.

        Parameters
        ----------
        features : sequence of mapping
            GeoJSON features, validated exactly as in :meth:`from_geojson`.

        Returns
        -------
        ZoneCatalogue
            Replaced zones keep their index; new zones are appended in order.

        Raises
        ------
        ZoneError
            When a feature is invalid or an id appears twice in ``features``
            (nothing is applied then).
        """
        new = [_make_zone(f, i) for i, f in enumerate(features)]
        zones = list(self._zones)
        seen: set[str] = set()
        for z in new:
            if z.id in seen:
                raise _fail(z.id, "duplicate_id", "the id appears more than once in the update")
            seen.add(z.id)
            i = self._index.get(z.id)
            if i is None:
                zones.append(z)
            else:
                zones[i] = z
        return type(self)(zones)

    def without(self, ids: Iterable[str]) -> ZoneCatalogue:
        """A new catalogue without the given ids.

        Parameters
        ----------
        ids : iterable of str
            Zone ids to drop; unknown ids are ignored (a tombstone for a zone
            never seen is not an error).

        Returns
        -------
        ZoneCatalogue
            Indices of the remaining zones shift down: call :meth:`index_of`
            again.
        """
        drop = set(ids)
        return type(self)([z for z in self._zones if z.id not in drop])

    # ------------------------------------------------------------ lookup

    def index_of(self, zone_id: str) -> int:
        """Index of ``zone_id`` in this catalogue, for :meth:`signed_distance_m`.

        Raises
        ------
        KeyError
            If the catalogue has no such zone.
        """
        return self._index[zone_id]

    def __contains__(self, zone_id: object) -> bool:
        return isinstance(zone_id, str) and zone_id in self._index

    def __len__(self) -> int:
        return len(self._zones)

    def __repr__(self) -> str:
        return f"ZoneCatalogue({len(self)} zones)"

    def feature(self, zone_id: str) -> dict[str, Any]:
        """The zone's GeoJSON feature, with the repaired geometry if it was repaired.

        Parameters
        ----------
        zone_id : str

        Returns
        -------
        dict
            A fresh copy (mutating it does not change the catalogue); its
            ``id`` is always set, even when the input used ``properties.id``.

        Raises
        ------
        KeyError
            If the catalogue has no such zone.
        """
        return msgspec.json.decode(self._zones[self._index[zone_id]].feature)  # type: ignore[no-any-return]

    def repairs(self, zone_id: str) -> tuple[str, ...]:
        """What was repaired in the zone's geometry at load time (empty if nothing)."""
        return self._zones[self._index[zone_id]].repairs

    def geometry(self, zone_id: str) -> shapely.Geometry:
        """The zone as a shapely geometry in lon/lat (circles: a 72-gon around the circle)."""
        z = self._zones[self._index[zone_id]]
        if z.geom is None:
            return _circle_polygon(z.center[0], z.center[1], z.radius_m)
        return z.geom

    def bounds(self, zone_id: str) -> tuple[float, float, float, float]:
        """``(min_lon, min_lat, max_lon, max_lat)`` of the zone."""
        return self._zones[self._index[zone_id]].bbox

    def zones_near(self, lon: ArrayLike1, lat: ArrayLike1, within_m: float) -> tuple[IntArray, IntArray]:
        """Candidate (point, zone) pairs whose bounds lie within ``within_m`` of each point.

        A bulk index query over zone bounds (no exact test): every zone whose
        boundary or interior is within ``within_m`` of a point is returned,
        plus some that are not. Feed the pairs to :meth:`signed_distance_m`.

        Parameters
        ----------
        lon, lat : array_like of float
            Points, degrees WGS 84.
        within_m : float
            Search distance in metres.

        Returns
        -------
        (point_idx, zone_idx) : tuple of int64 ndarray
        """
        x = np.asarray(lon, dtype=np.float64).ravel()
        y = np.asarray(lat, dtype=np.float64).ravel()
        dlon, dlat = _degree_halfwidths(y, np.full(len(y), float(within_m)))
        boxes = shapely.box(x - dlon, y - dlat, x + dlon, y + dlat)
        tree = self._bounds_tree
        if tree is None:
            bb = self._bbox
            tree = self._bounds_tree = shapely.STRtree(shapely.box(bb[:, 0], bb[:, 1], bb[:, 2], bb[:, 3]))
        pi, zi = tree.query(boxes)
        return pi.astype(np.int64), zi.astype(np.int64)

    # ------------------------------------------------------------ distance

    def signed_distance_m(
        self,
        zone_idx: NDArray[np.int64],
        lon: NDArray[np.float64],
        lat: NDArray[np.float64],
        within_m: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        """Signed metric distance from each point to its zone's boundary.

        Parameters
        ----------
        zone_idx : ndarray of int
            Zone index (see :meth:`index_of`) of each pair.
        lon, lat : ndarray of float
            The pair's point, degrees WGS 84.
        within_m : ndarray of float (or scalar, broadcast)
            Up to this distance the result is exact (within the documented
            error bound). Beyond it the result only has the right sign and a
            magnitude greater than ``within_m``. ``inf`` (or NaN) asks for
            exact distances everywhere; negative values count as 0.

        Returns
        -------
        ndarray of float64
            Metres: negative inside the zone, positive outside.

        Raises
        ------
        IndexError
            For a zone index outside ``[0, len(self))``.
        ValueError
            For arrays of different lengths or non-finite coordinates.
        """
        z = np.asarray(zone_idx, dtype=np.int64).ravel()
        x = np.asarray(lon, dtype=np.float64).ravel()
        y = np.asarray(lat, dtype=np.float64).ravel()
        n = len(z)
        if len(x) != n or len(y) != n:
            raise ValueError(f"zone_idx, lon and lat must have one length, got {n}, {len(x)}, {len(y)}")
        w = np.broadcast_to(np.asarray(within_m, dtype=np.float64), (n,))
        w = np.where(np.isnan(w), np.inf, np.maximum(w, 0.0))
        out = np.empty(n, dtype=np.float64)
        if n == 0:
            return out
        if int(z.min()) < 0 or int(z.max()) >= len(self._zones):
            raise IndexError(f"zone index out of range [0, {len(self._zones)})")
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ValueError("lon/lat must be finite")
        # 1. bounding box, for every zone kind: a point farther than within_m
        # outside its zone's box is settled with a metric lower bound
        bb = np.take(self._bbox, z, axis=0)  # take: ~10x faster than fancy indexing on 2-D rows
        ex = np.maximum(np.maximum(bb[:, 0] - x, x - bb[:, 2]), 0.0)
        ey = np.maximum(np.maximum(bb[:, 1] - y, y - bb[:, 3]), 0.0)
        in_box = (ex == 0.0) & (ey == 0.0)
        # metres per degree never fall below these along the way: latitude
        # everywhere >= M(0); longitude >= a cos(lat) at the largest |lat| met
        far_lat = np.maximum(np.abs(y), np.abs(np.clip(y, bb[:, 1], bb[:, 3])))
        far_lat += _bulge_deg(ex + ey, far_lat)
        kx_lo = (A_M * _DEG) * np.cos(np.minimum(far_lat, 89.999) * _DEG)
        lb = np.sqrt((ex * kx_lo) ** 2 + (ey * _KY_MIN) ** 2) * 0.9999
        settled = lb > w
        out[settled] = lb[settled]
        rest = ~settled
        circ = self._is_circle[z]
        ci = np.flatnonzero(rest & circ)
        if len(ci):
            zc = z[ci]
            cc = np.take(self._center, zc, axis=0)
            out[ci] = distance_m(cc[:, 0], cc[:, 1], x[ci], y[ci]) - self._radius[zc]
        # 2. raster accelerator (points inside the box of a zone with a raster)
        gi = np.take(self._grid_i, z, axis=0)
        g = np.flatnonzero(rest & in_box & (gi[:, 0] >= 0))
        todo = rest & ~circ
        if len(g):
            gf = np.take(self._grid_f, z[g], axis=0)
            gg = gi[g]
            ix = np.minimum(((x[g] - gf[:, 0]) / gf[:, 2]).astype(np.int64), gg[:, 1] - 1)
            iy = np.minimum(((y[g] - gf[:, 1]) / gf[:, 3]).astype(np.int64), gg[:, 2] - 1)
            cell = gg[:, 0] + iy * gg[:, 1] + ix
            st = self._grid_state[cell]
            cl = self._grid_clear[cell]
            ok = (st != 0) & (cl > w[g])
            h = g[ok]
            out[h] = st[ok] * cl[ok]
            todo[h] = False
        # 3. exact
        e = np.flatnonzero(todo)
        if len(e):
            out[e] = self._exact(z[e], x[e], y[e], w[e])
        return out

    def _exact(self, z: IntArray, x: FloatArray, y: FloatArray, w: FloatArray) -> FloatArray:
        inside = shapely.contains_xy(self._geoms[z], x, y)
        d = np.empty(len(z), dtype=np.float64)
        # search radius: start small and widen, so a large within_m (or inf)
        # does not pull in every chunk of a large zone; a pair is settled when
        # its nearest candidate lies within the searched radius (any closer
        # boundary point would have been a candidate), or the radius reached
        # within_m, or the search box covered the whole zone
        r = np.minimum(w, FIRST_RADIUS_M)
        todo = np.arange(len(z))
        while len(todo):
            best, covers = self._nearest_within(z[todo], x[todo], y[todo], r[todo])
            rt = r[todo]
            wt = w[todo]
            done = (best <= rt) | (rt >= wt) | covers
            h = todo[done]
            bd = best[done]
            # nothing found up to within_m: the true distance exceeds within_m
            d[h] = np.where(np.isfinite(bd), bd, np.nextafter(wt[done], np.inf))
            nd = ~done
            grow = np.where(np.isfinite(best[nd]), best[nd], rt[nd] * 4.0)
            todo = todo[nd]
            r[todo] = np.minimum(np.maximum(grow, rt[nd] * 1.0001), wt[nd])
        return np.where(inside, -d, d)

    def _nearest_within(
        self, z: IntArray, x: FloatArray, y: FloatArray, r: FloatArray,
    ) -> tuple[FloatArray, NDArray[np.bool_]]:
        """Nearest boundary distance among chunks within ``r`` of each point (inf if none)."""
        dlon, dlat = _degree_halfwidths(y, r)
        bb = np.take(self._bbox, z, axis=0)
        qx0 = np.maximum(x - dlon, bb[:, 0])
        qy0 = np.maximum(y - dlat, bb[:, 1])
        qx1 = np.minimum(x + dlon, bb[:, 2])
        qy1 = np.minimum(y + dlat, bb[:, 3])
        covers = (qx0 == bb[:, 0]) & (qy0 == bb[:, 1]) & (qx1 == bb[:, 2]) & (qy1 == bb[:, 3])
        valid = (qx0 <= qx1) & (qy0 <= qy1)
        best = np.full(len(z), np.inf)
        gi = np.take(self._grid_i, z, axis=0)
        in_box = (x >= bb[:, 0]) & (x <= bb[:, 2]) & (y >= bb[:, 1]) & (y <= bb[:, 3])
        by_cell = valid & in_box & (gi[:, 0] >= 0) & (r <= CELL_REACH_M)
        pairs: list[IntArray] = []
        found: list[IntArray] = []
        c = np.flatnonzero(by_cell)
        if len(c):
            # the raster cell lists every chunk within CELL_REACH_M: no tree query
            gf = np.take(self._grid_f, z[c], axis=0)
            gg = gi[c]
            ix = np.minimum(((x[c] - gf[:, 0]) / gf[:, 2]).astype(np.int64), gg[:, 1] - 1)
            iy = np.minimum(((y[c] - gf[:, 1]) / gf[:, 3]).astype(np.int64), gg[:, 2] - 1)
            cell = gg[:, 0] + iy * gg[:, 1] + ix
            cnt = self._cell_count[cell]
            pair = np.repeat(c, cnt)
            j = np.arange(len(pair), dtype=np.int64) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            qc = self._cell_chunks[np.repeat(self._cell_start[cell], cnt) + j]
            cb = self._chunk_bbox[qc]
            keep = (cb[:, 0] <= qx1[pair]) & (cb[:, 2] >= qx0[pair]) & (cb[:, 1] <= qy1[pair]) & (cb[:, 3] >= qy0[pair])
            pairs.append(pair[keep])
            found.append(qc[keep])
        vi = np.flatnonzero(valid & ~by_cell)
        if len(vi):
            boxes = shapely.box(qx0[vi], qy0[vi], qx1[vi], qy1[vi])
            qi, qc = self._tree.query(boxes)
            pair = vi[qi]
            keep = self._chunk_zone[qc] == z[pair]
            pairs.append(pair[keep])
            found.append(qc[keep])
        if pairs:
            pair = np.concatenate(pairs) if len(pairs) > 1 else pairs[0]
            qc = np.concatenate(found) if len(found) > 1 else found[0]
            if len(pair):
                if len(pair) > 1 and (pair[1:] < pair[:-1]).any():
                    order = np.argsort(pair, kind="stable")
                    pair = pair[order]
                    qc = qc[order]
                best_c = _chunk_min_distance(self._vx, self._vy, qc, x[pair], y[pair])
                starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
                best[pair[starts]] = np.minimum.reduceat(best_c, starts)
        return best, covers


ArrayLike1 = Union[float, Sequence[float], NDArray[np.float64]]


def _degree_halfwidths(y: FloatArray, w: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Half-widths in degrees of a box certain to hold every point within ``w`` metres."""
    with np.errstate(invalid="ignore", over="ignore"):
        dlat = w / _KY_MIN * 1.0001 + 1e-9
        far = np.minimum(np.abs(y) + dlat + _bulge_deg(np.minimum(dlat, 90.0), y), 89.9)
        kx, _ = metres_per_degree(far)
        dlon = np.minimum(w / kx * 1.0001 + 1e-9, 360.0)
    return np.asarray(dlon, dtype=np.float64), np.asarray(np.minimum(dlat, 180.0), dtype=np.float64)


_BLOCK = 32_768


def _chunk_min_distance(
    vx: FloatArray, vy: FloatArray, qc: IntArray, px: FloatArray, py: FloatArray,
) -> FloatArray:
    """Metres from each point to the nearest segment of its candidate chunk."""
    out = np.empty(len(qc), dtype=np.float64)
    for s in range(0, len(qc), _BLOCK):
        e = min(s + _BLOCK, len(qc))
        q = qc[s:e]
        out[s:e] = _block_distance(vx[q], vy[q], px[s:e], py[s:e])
    return out


def _block_distance(vx: FloatArray, vy: FloatArray, px: FloatArray, py: FloatArray) -> FloatArray:
    """Distance from point i to the polyline vx[i], vy[i] (degrees), metres.

    Each vertex goes into a frame centred on the point with the scale at the
    mean latitude of point and vertex, linearised about the point:
    ``kx(lat_p + dlat/2) ~ kx(lat_p) - M sin(lat_p) (pi/180)^2 dlat / 2`` and
    likewise for ``ky`` with dM/dlat; the distance to each segment is then
    planar.
    """
    lat = py * _DEG
    s = np.sin(lat)
    c = np.cos(lat)
    q = 1.0 - E2 * s * s
    m = A_M * (1.0 - E2) / (q * np.sqrt(q))
    nrad = A_M / np.sqrt(q)
    ax = (nrad * c * _DEG)[:, None]
    bx = (m * s * (_DEG * _DEG / 2.0))[:, None]
    ay = (m * _DEG)[:, None]
    by = (3.0 * E2 * m * s * c / q * (_DEG * _DEG / 2.0))[:, None]
    u = vy - py[:, None]
    xv = (vx - px[:, None]) * (ax - bx * u)
    yv = u * (ay + by * u)
    x1 = xv[:, :-1]
    y1 = yv[:, :-1]
    dx = xv[:, 1:] - x1
    dy = yv[:, 1:] - y1
    # zero-length segments (padding): t = 0, the distance to the vertex
    ll = dx * dx + dy * dy + 1e-300
    t = np.minimum(np.maximum(-(x1 * dx + y1 * dy) / ll, 0.0), 1.0)
    ex = x1 + t * dx
    ey = y1 + t * dy
    return np.asarray(np.sqrt((ex * ex + ey * ey).min(axis=1)), dtype=np.float64)


def load_zones(path: Union[str, os.PathLike[str]]) -> ZoneCatalogue:
    """Read a zones file (GeoJSON FeatureCollection) into a :class:`ZoneCatalogue`.

    Raises
    ------
    ZoneError
        ``unreadable`` when the file cannot be read, or any reason of
        :meth:`ZoneCatalogue.from_geojson`.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        raise ZoneError("unreadable", f"zones file {os.fspath(path)!r}: {e.strerror or e}") from None
    return ZoneCatalogue.from_geojson(data)
