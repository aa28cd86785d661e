"""Building zones: one parsed feature becomes a :class:`_Zone` ready to index.

:func:`_make_zone` is the reference path for one feature: validation
(:mod:`geofence.zones.features`), boundary chunks, and a raster for large
zones. :func:`_make_zones` builds a whole collection, routing the common
zones (circles, plain valid polygons) through vectorised batches that give
exactly what the reference path gives, and everything else through it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

import msgspec
import numpy as np
import shapely

from geofence.zones.boundary import _NO_CHUNKS, CHUNK, DENSIFY_DEG, _chunks, _densify, _segments
from geofence.zones.features import (
    _LIST_ONLY,
    _NUM_TYPES,
    _SEQ_TYPES,
    MAX_RADIUS_M,
    _fail,
    _feature_id,
    _finite_positive,
    _freeze,
    _polygon,
    _polygonal,
    _position,
)
from geofence.zones.metric import _K_MAX, FloatArray, _circle_bbox, _lat_scale_bounds
from geofence.zones.raster import GRID_MIN_EXTENT_M, GRID_MIN_SEGMENTS, _build_grid, _Grid

_JURISDICTION = re.compile(r"[0-9]{2,6}")


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
    category: str | None = None  # properties.category
    jurisdiction: str | None = None  # properties.jurisdiction: a 2-6 digit GB/T 2260 prefix


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
    category: str | None = props.get("category")
    jurisdiction = _jurisdiction(zid, props.get("jurisdiction"))
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
            _NO_CHUNKS, (lon, lat), radius, None, (), category, jurisdiction,
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
                 (float(c.x), float(c.y)), 0.0, grid, tuple(repairs), category, jurisdiction)


def _jurisdiction(zid: str, v: object) -> str | None:
    """``properties.jurisdiction``: absent, or a GB/T 2260 code prefix of 2 to 6 digits."""
    if v is None:
        return None
    if not isinstance(v, str) or not _JURISDICTION.fullmatch(v):
        raise _fail(zid, "bad_property", "properties.jurisdiction must be a GB/T 2260 code"
                    f" prefix of 2 to 6 digits (province 2, city 4, county 6), got {v!r:.60}")
    return v


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
    c_tag: list[tuple[str | None, str | None]] = []
    p_i: list[int] = []
    p_id: list[str] = []
    p_feat: list[bytes] = []
    p_ring: list[list[list[Any]]] = []
    p_tag: list[tuple[str | None, str | None]] = []
    encode = msgspec.json.encode
    for i, f in enumerate(feats):
        if type(f) is not dict:
            slow.append(i)
            continue
        props = f.get("properties")
        fid = f.get("id")
        cat = jur = None
        if props is None:
            pid = None
        elif type(props) is dict:
            pid = props.get("id")
            nm = props.get("name")
            cat = props.get("category")
            jur = props.get("jurisdiction")
            if (nm is not None and type(nm) is not str) or (cat is not None and type(cat) is not str) or (
                    jur is not None and (type(jur) is not str or not _JURISDICTION.fullmatch(jur))):
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
                        c_tag.append((cat, jur))
                        continue
            elif (gtype == "Polygon" and type(coords) is list and coords
                  and set(map(type, coords)) == _LIST_ONLY and min(map(len, coords)) >= 4):
                p_feat.append(encode(feature))
                p_i.append(i)
                p_id.append(zid)
                p_ring.append(coords)
                p_tag.append((cat, jur))
                continue
        except (TypeError, msgspec.MsgspecError):
            pass  # not serialisable: _make_zone names the fault
        slow.append(i)
    if c_i:
        slow.extend(_circle_batch(zones, c_i, c_id, c_feat, c_xyr, c_tag))
    if p_i:
        slow.extend(_polygon_batch(zones, p_i, p_id, p_feat, p_ring, p_tag))
    slow.sort()
    for i in slow:
        zones[i] = _make_zone(feats[i], i)
    return zones  # type: ignore[return-value]


def _circle_batch(
    zones: list[_Zone | None], idx: list[int], ids: list[str], feats: list[bytes],
    xyr: list[tuple[Any, Any, Any]], tags: list[tuple[str | None, str | None]],
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
                              _NO_CHUNKS, (lon, lat), radius, None, (), *tags[k])
    return rest


def _polygon_batch(
    zones: list[_Zone | None], idx: list[int], ids: list[str], feats: list[bytes],
    polys: list[list[list[Any]]], tags: list[tuple[str | None, str | None]],
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
                              chunks[c0[j]:c1[j]], (cx, cy), 0.0, None, (), *tags[k])
    return rest


