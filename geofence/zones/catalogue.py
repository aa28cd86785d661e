"""The zone catalogue: vectorised metric signed distance over many zones.

:class:`ZoneCatalogue` lays the built zones out as flat arrays (bounds,
circles, chunk vertices, rasters) with an STRtree over the boundary chunks,
and answers :meth:`ZoneCatalogue.signed_distance_m` for many (zone, point)
pairs at once. :func:`load_zones` reads a zones file into one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from operator import attrgetter
from typing import Any, Union

import msgspec
import numpy as np
import shapely
from numpy.typing import NDArray

from geofence.errors import ZoneError
from geofence.gc_pause import gc_paused
from geofence.geo import A_M, distance_m
from geofence.zones.boundary import CHUNK, _chunk_bounds, _chunk_min_distance
from geofence.zones.build import _make_zone, _make_zones, _Zone
from geofence.zones.categories import CategoryIndex
from geofence.zones.features import _fail, _features_of
from geofence.zones.metric import (
    _DEG,
    _KY_MIN,
    FloatArray,
    IntArray,
    _bulge_deg,
    _circle_polygon,
    _degree_halfwidths,
)
from geofence.zones.raster import CELL_REACH_M

#: First search radius of the exact path (metres); widened as needed.
FIRST_RADIUS_M = 250.0

_ID = attrgetter("id")
_KIND = attrgetter("kind")
_CENTER = attrgetter("center")
_RADIUS = attrgetter("radius_m")
_BBOX = attrgetter("bbox")
_GEOM = attrgetter("geom")
_CHUNKS = attrgetter("chunks")
_GRID = attrgetter("grid")
_CATEGORY = attrgetter("category")
_JURISDICTION = attrgetter("jurisdiction")


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
        "_categories",
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
        # categories and jurisdictions: the category rules' index
        self._categories = CategoryIndex(list(map(_CATEGORY, zs)), list(map(_JURISDICTION, zs)),
                                         self._bbox)
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
        with gc_paused():  # many objects, no garbage: collections would only cost
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

    # ------------------------------------------------------------ categories
    # (the index itself: geofence.zones.categories)

    @property
    def categories(self) -> tuple[str, ...]:
        """The zone categories (``properties.category``) present, in order of first use."""
        return self._categories.names

    def zones_of(self, category: str, area: str = "") -> IntArray:
        """Indices of the zones of ``category`` whose jurisdiction lies in ``area``.

        Parameters
        ----------
        category : str
            A zone category (``properties.category``).
        area : str
            A GB/T 2260 code prefix (2 to 6 digits): only zones whose
            ``properties.jurisdiction`` begins with it (a zone's code equals a
            6-digit ``area``; a zone of a shorter code is not inside a longer
            ``area``). Empty: every zone of the category, with or without a
            jurisdiction.

        Returns
        -------
        ndarray of int64
            Ascending zone indices (empty for an unknown category).

        Examples
        --------
        >>> fc = {"type": "FeatureCollection", "features": [
        ...     {"type": "Feature", "id": f"s{i}", "properties": {
        ...         "radius_m": 50, "category": "school", "jurisdiction": j},
        ...      "geometry": {"type": "Point", "coordinates": [118.79 + i / 100, 32.05]}}
        ...     for i, j in enumerate(["320102", "320104", "3201"])]}
        >>> zc = ZoneCatalogue.from_geojson(fc)
        >>> zc.zones_of("school").tolist(), zc.zones_of("school", "320102").tolist()
        ([0, 1, 2], [0])
        >>> zc.zones_of("school", "3201").tolist(), zc.zones_of("bar").tolist()
        ([0, 1, 2], [])
        """
        return self._categories.zones_of(category, area)

    def scope_of(self, category: str, area: str = "") -> int:
        """A number for the zones of ``category`` in ``area`` (see :meth:`zones_of`),
        for :meth:`scope_distance_m`; the same arguments give the same number."""
        return self._categories.scope_of(category, area)

    def scope_zones(self, scope: int) -> IntArray:
        """The zones of a scope (:meth:`scope_of`): :meth:`zones_of` its category and area."""
        return self._categories.scope_zones(scope)

    def scope_distance_m(
        self, scope: NDArray[np.int64], lon: NDArray[np.float64], lat: NDArray[np.float64],
        within_m: NDArray[np.float64],
    ) -> tuple[FloatArray, IntArray]:
        """Signed distance from each point to the nearest zone of its scope.

        The least :meth:`signed_distance_m` over the zones of the scope
        (:meth:`scope_of`): negative inside some zone (how deep inside the
        zone it is deepest in), positive outside all of them. Only the zones
        found near the point by the category's index over zone bounds are
        measured, so the result has :meth:`signed_distance_m`'s guarantee:
        exact up to ``within_m``, beyond it only the sign and a magnitude
        greater than ``within_m`` (``inf`` when no zone of the scope lies
        within reach). ``within_m`` ``inf`` measures every zone of the scope.

        Parameters
        ----------
        scope : ndarray of int
            Each point's scope.
        lon, lat : ndarray of float
            The points, degrees WGS 84.
        within_m : ndarray of float
            Reach of each point (metres).

        Returns
        -------
        d : ndarray of float64
            Metres, as above.
        nearest : ndarray of int64
            The zone that gave ``d`` (-1 when no zone of the scope was near
            enough to measure); the nearest zone whenever ``d`` is within reach.
        """
        s = np.asarray(scope, dtype=np.int64).ravel()
        x = np.asarray(lon, dtype=np.float64).ravel()
        y = np.asarray(lat, dtype=np.float64).ravel()
        n = len(s)
        w = np.broadcast_to(np.asarray(within_m, dtype=np.float64), (n,))
        d = np.full(n, np.inf)
        nearest = np.full(n, -1, np.int64)
        one = self._categories.only_zone(s)
        o = np.flatnonzero(one >= 0)
        if len(o):  # a scope of one zone is that zone
            zo, wo = one[o], w[o]
            do = self.signed_distance_m(zo, x[o], y[o], wo)
            near = do <= wo
            d[o] = np.where(near, do, np.inf)
            nearest[o] = np.where(near, zo, -1)
            m = np.flatnonzero(one < 0)
            if not len(m):
                return d, nearest
            pi, zi = self._categories.candidates(s[m], x[m], y[m], w[m])
            pi = m[pi]
        else:
            pi, zi = self._categories.candidates(s, x, y, w)
        if not len(pi):
            return d, nearest
        if len(pi) > 1 and (pi[1:] < pi[:-1]).any():
            order = np.argsort(pi, kind="stable")
            pi, zi = pi[order], zi[order]
        dd = self.signed_distance_m(zi, x[pi], y[pi], w[pi])
        # per point: the least distance, and of the zones at it the lowest index
        first = np.flatnonzero(np.r_[True, pi[1:] != pi[:-1]])
        least = np.minimum.reduceat(dd, first)
        at_least = dd == np.repeat(least, np.diff(np.r_[first, len(pi)]))
        big = np.iinfo(np.int64).max
        d[pi[first]] = least
        nearest[pi[first]] = np.minimum.reduceat(np.where(at_least, zi, big), first)
        return d, nearest

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
