"""The category index of a zone catalogue: which zones a category rule means, and where.

A category rule (docs/rules.md, "Rules by zone category") names a category
(``properties.category``) and perhaps an area, a prefix of the zones'
``properties.jurisdiction`` codes. :class:`CategoryIndex` numbers each
(category, area) pair as a *scope*, lists its zones, and finds the zones of
a scope near each of many points without measuring the others: a grid of
cells over the zones of every category for reaches up to ``_CAT_REACH_M``,
an STRtree per category for longer ones. Measuring the candidates is the
catalogue's (:meth:`~geofence.zones.ZoneCatalogue.scope_distance_m`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely

from geofence.zones.metric import FloatArray, IntArray, _degree_halfwidths

#: Longest jurisdiction prefix (a county's GB/T 2260 code).
_JUR_MAX = 6
#: The category grid: cells of this many degrees list every zone of a
#: category whose bounds lie within _CAT_REACH_M of the cell; a point with a
#: longer reach asks the category's STRtree instead. A zone that would fill
#: more than _CAT_MAX_CELLS cells is a candidate for every point of its category.
_CAT_CELL_DEG = 0.005
_CAT_REACH_M = 500.0
_CAT_MAX_CELLS = 4096


class CategoryIndex:
    """The zones of each category and jurisdiction, numbered as scopes, and
    an index that finds the zones of a scope near a point.

    Built by :class:`~geofence.zones.ZoneCatalogue` from its zones' categories,
    jurisdictions and bounds, in the catalogue's zone order.
    """

    __slots__ = ("_bbox", "_cat", "_cat_grid", "_cat_names", "_cat_trees", "_cat_zones",
                 "_jpre", "_scope_arr", "_scope_cat", "_scope_keys", "_scope_len",
                 "_scope_members", "_scope_pre", "_scopes")

    def __init__(self, categories: Sequence[str | None], jurisdictions: Sequence[str | None],
                 bbox: FloatArray) -> None:
        n = len(categories)
        self._bbox = bbox
        # each zone's category number (-1: none) and, per prefix length L, its
        # jurisdiction's first L digits as an integer (-1: no jurisdiction or a
        # shorter one; column 0 is 0 for every zone: the empty prefix)
        self._cat_names: dict[str, int] = {}
        for c in categories:
            if c is not None and c not in self._cat_names:
                self._cat_names[c] = len(self._cat_names)
        self._cat = np.fromiter((-1 if c is None else self._cat_names[c] for c in categories),
                                np.int64, n)
        self._cat_zones: list[IntArray] = [np.flatnonzero(self._cat == k)
                                           for k in range(len(self._cat_names))]
        self._cat_trees: list[shapely.STRtree | None] = [None] * len(self._cat_names)
        self._cat_grid: tuple[IntArray, IntArray, IntArray, IntArray] | None = None  # on first use
        jpre = np.full((n, _JUR_MAX + 1), -1, np.int64)
        jpre[:, 0] = 0
        for i, j in enumerate(jurisdictions):
            if j is not None:
                for k in range(2, len(j) + 1):
                    jpre[i, k] = int(j[:k])
        self._jpre = jpre
        self._scopes: dict[tuple[str, str], int] = {}
        self._scope_cat: list[int] = []
        self._scope_len: list[int] = []
        self._scope_pre: list[int] = []
        self._scope_keys: list[tuple[str, str]] = []
        self._scope_members: dict[int, IntArray] = {}
        # per scope: its category, area length and prefix (the three lists
        # above) and its only zone (-1: none or several); rebuilt when a
        # scope is added (_table)
        self._scope_arr = np.zeros((0, 4), np.int64)

    @property
    def names(self) -> tuple[str, ...]:
        """The categories present, in order of first use."""
        return tuple(self._cat_names)

    def zones_of(self, category: str, area: str = "") -> IntArray:
        """Ascending indices of the zones of ``category`` in ``area``
        (:meth:`geofence.zones.ZoneCatalogue.zones_of`)."""
        k = self._cat_names.get(category)
        if k is None:
            return np.zeros(0, np.int64)
        z = self._cat_zones[k]
        if not area:
            return z
        pre = self._prefix(area)
        return z[self._jpre[z, len(area)] == pre]

    def scope_of(self, category: str, area: str = "") -> int:
        """A number for the zones of ``category`` in ``area`` (see :meth:`zones_of`),
        for :meth:`candidates`; the same arguments give the same number."""
        key = (category, area)
        s = self._scopes.get(key)
        if s is None:
            pre = self._prefix(area) if area else 0
            s = self._scopes[key] = len(self._scope_cat)
            self._scope_cat.append(self._cat_names.get(category, -1))
            self._scope_len.append(len(area))
            self._scope_pre.append(pre)
            self._scope_keys.append(key)
        return s

    def scope_zones(self, scope: int) -> IntArray:
        """The zones of a scope (:meth:`scope_of`): :meth:`zones_of` its category and area."""
        z = self._scope_members.get(scope)
        if z is None:
            z = self._scope_members[scope] = self.zones_of(*self._scope_keys[scope])
        return z

    @staticmethod
    def _prefix(area: str) -> int:
        if not (2 <= len(area) <= _JUR_MAX and area.isascii() and area.isdigit()):
            raise ValueError(f"area must be a code prefix of 2 to {_JUR_MAX} digits, got {area!r:.40}")
        return int(area)

    def only_zone(self, s: IntArray) -> IntArray:
        """For each scope in ``s``, its one zone if it has exactly one, else -1:
        such a scope is measured as that zone, without the index."""
        return np.take(self._table()[:, 3], s)

    def _table(self) -> IntArray:
        if len(self._scope_arr) != len(self._scope_cat):
            one = [int(z[0]) if len(z) == 1 else -1
                   for z in map(self.scope_zones, range(len(self._scope_cat)))]
            self._scope_arr = np.array([self._scope_cat, self._scope_len, self._scope_pre, one],
                                       np.int64).T.copy()
        return self._scope_arr

    def candidates(self, s: IntArray, x: FloatArray, y: FloatArray,
                   w: FloatArray) -> tuple[IntArray, IntArray]:
        """(point, zone) pairs to measure for the points' scopes: every zone of
        point ``i``'s scope ``s[i]`` whose bounds lie within ``w[i]`` metres of
        it (``w`` ``inf``: every zone of the scope), and none farther than that
        by the grid's or the tree's bounds."""
        n = len(s)
        none = np.zeros(0, np.int64)
        if n == 0:
            return none, none
        sa = np.take(self._table(), s, axis=0)
        scat, slen, spre = sa[:, 0], sa[:, 1], sa[:, 2]
        pis: list[IntArray] = []
        zis: list[IntArray] = []
        has = scat >= 0
        near = np.flatnonzero(has & (w <= _CAT_REACH_M))
        if len(near):  # the common case: the grid's cells, no geometry built
            keys, start, kz, big = self._grid()
            key = (scat[near] << 32) | (_cell(x[near] + 180.0) << 16) | _cell(y[near] + 90.0)
            # looked up in key order: a sorted search walks the table once
            # instead of jumping about it (several times faster at this size)
            by = np.argsort(key)
            ks = key[by]
            at = np.minimum(np.searchsorted(keys, ks), len(keys) - 1)
            hit = keys[at] == ks
            lo = np.empty(len(near), np.int64)
            cnt = np.empty(len(near), np.int64)
            lo[by] = start[at]
            cnt[by] = np.where(hit, start[at + 1] - start[at], 0)
            tot = int(cnt.sum())
            if tot:
                pi = np.repeat(near, cnt)
                j = np.arange(tot, dtype=np.int64) - np.repeat(np.cumsum(cnt) - cnt, cnt)
                pis.append(pi)
                zis.append(kz[np.repeat(lo, cnt) + j])
            for b in big.tolist():
                f = near[scat[near] == self._cat[b]]
                pis.append(f)
                zis.append(np.full(len(f), b, np.int64))
        far = np.flatnonzero(has & ~(w <= _CAT_REACH_M))
        for k in np.unique(scat[far]).tolist():
            sel = far[scat[far] == k]
            zk = self._cat_zones[k]
            fin = np.isfinite(w[sel])
            if fin.any():  # nearby zones of the category, by the index over their bounds
                f = sel[fin]
                dlon, dlat = _degree_halfwidths(y[f], w[f])
                boxes = shapely.box(x[f] - dlon, y[f] - dlat, x[f] + dlon, y[f] + dlat)
                tree = self._cat_trees[k]
                if tree is None:
                    bb = self._bbox[zk]
                    tree = self._cat_trees[k] = shapely.STRtree(
                        shapely.box(bb[:, 0], bb[:, 1], bb[:, 2], bb[:, 3]))
                qi, qz = tree.query(boxes)
                pis.append(f[qi])
                zis.append(zk[qz])
            if not fin.all():  # every zone of the category
                f = sel[~fin]
                pis.append(np.repeat(f, len(zk)))
                zis.append(np.tile(zk, len(f)))
        if not pis:
            return none, none
        pi = np.concatenate(pis).astype(np.int64) if len(pis) > 1 else pis[0]
        zi = np.concatenate(zis).astype(np.int64) if len(zis) > 1 else zis[0]
        keep = self._jpre[zi, slen[pi]] == spre[pi]  # the area of the point's scope
        if len(near):  # the grid's candidates: bounds within reach of the point
            px, py, pw = x[pi], y[pi], w[pi]
            hx, hy = _degree_halfwidths(py, pw)
            bb = np.take(self._bbox, zi, axis=0)
            keep &= ((bb[:, 0] <= px + hx) & (bb[:, 2] >= px - hx) & (bb[:, 1] <= py + hy)
                     & (bb[:, 3] >= py - hy)) | ~np.isfinite(pw)
        pi, zi = pi[keep], zi[keep]
        return pi, zi

    def _grid(self) -> tuple[IntArray, IntArray, IntArray, IntArray]:
        """The grid over zones in a category: its distinct cell keys
        (category, column, row) ascending, where each key's zones start in
        the zone list (one more entry: the end), the zone list, and the
        zones too large for the grid."""
        if self._cat_grid is not None:
            return self._cat_grid
        z = np.flatnonzero(self._cat >= 0)
        bb = self._bbox[z]
        ylat = np.where(np.abs(bb[:, 1]) > np.abs(bb[:, 3]), bb[:, 1], bb[:, 3])
        dlon, dlat = _degree_halfwidths(ylat, np.full(len(z), _CAT_REACH_M))
        x0 = _cell(bb[:, 0] - dlon + 180.0)
        x1 = _cell(bb[:, 2] + dlon + 180.0)
        y0 = _cell(bb[:, 1] - dlat + 90.0)
        y1 = _cell(bb[:, 3] + dlat + 90.0)
        nx = x1 - x0 + 1
        nc = nx * (y1 - y0 + 1)
        big = nc > _CAT_MAX_CELLS
        sm = np.flatnonzero(~big)
        nc_s = nc[sm]
        rep = np.repeat(sm, nc_s)
        offs = np.arange(len(rep), dtype=np.int64) - np.repeat(np.cumsum(nc_s) - nc_s, nc_s)
        ix = x0[rep] + offs % nx[rep]
        iy = y0[rep] + offs // nx[rep]
        keys = (self._cat[z[rep]] << 32) | (ix << 16) | iy
        order = np.argsort(keys, kind="stable")  # stable: a cell's zones stay ascending
        keys = keys[order]
        first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])[:len(keys)]
        ukeys = keys[first] if len(keys) else np.full(1, -1, np.int64)  # -1 matches no cell
        start = np.append(first, len(keys)).astype(np.int64) if len(keys) else np.zeros(2, np.int64)
        self._cat_grid = (ukeys, start, z[rep][order], z[big])
        return self._cat_grid


def _cell(v: FloatArray) -> IntArray:
    """Column (longitude + 180) or row (latitude + 90) of the category grid."""
    return np.clip(np.floor(v / _CAT_CELL_DEG), 0, 0xFFFF).astype(np.int64)
