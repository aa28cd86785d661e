"""Classification of fixes against their zone rules, vectorised over a batch.

A fix is classified against each zone rule of its person by the signed
distance to the zone (:meth:`~geofence.zones.ZoneCatalogue.signed_distance_m`)
and its accuracy: :func:`zone_codes` is the one formula. Code ``c1`` says
whether the rule is certainly violated (1), certainly kept (-1) or neither
(0); ``c2`` does the same for an exclusion's approach buffer. The functions
here return values and keep no state.

A category rule (every zone of a category, perhaps within an area) is
measured by :func:`rule_distances` against the nearest zone of its scope
(:meth:`~geofence.zones.ZoneCatalogue.scope_distance_m`): the least signed
distance over the zones. The same :func:`zone_codes` then says "certainly
inside some zone" (``d < -acc``), "certainly outside every zone"
(``d > acc``) and "certainly within the buffer of some zone but inside
none" exactly as for one zone; :func:`rule_zone` names the zone that
decided.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import numpy as np

from geofence.engine.state import Entry
from geofence.model import CheckIn, Fix, VideoHit
from geofence.rules import CURFEW, EXCLUSION, PersonSpec, ZoneIndex, ZoneRule, scope_index

__all__ = ["NOTHING", "Classified", "RuleTable", "attach_codes", "classify_fixes",
           "classify_video", "ensure_codes", "rule_distances", "rule_measures", "rule_zone",
           "zone_codes", "zone_named"]


class RuleTable(NamedTuple):
    """Every person's zone rules as flat arrays (compressed sparse rows).

    Person ``p`` (the engine's numbering) has rules ``start[p]`` to
    ``start[p] + count[p] - 1``; rule ``r`` tests zone ``zone[r]`` (a zone
    index, or for a category rule :func:`geofence.rules.scope_index` of its
    scope) with buffer ``buffer_m[r]`` and kind ``kind[r]``
    (:data:`geofence.rules.EXCLUSION`, ...).
    """

    start: Any
    count: Any
    zone: Any
    buffer_m: Any
    kind: Any

    @staticmethod
    def empty() -> RuleTable:
        """A table of no persons."""
        i64 = np.zeros(0, np.int64)
        return RuleTable(i64, i64, i64, np.zeros(0, np.float64), np.zeros(0, np.int8))


class Classified(NamedTuple):
    """The classifications of one batch's valid fixes, by geometry index ``gi``.

    ============  ==========================================================
    ``flags``     per fix: bit 0, some non-curfew condition (or approach
                  buffer) is certainly violated; bit 1, certainly outside a
                  curfew zone
    ``codes``     ``c1`` of every (fix, rule) pair, the fix's pairs in rule order
    ``approach``  ``c2`` of every pair
    ``ends``      per fix, the end of its pairs in ``codes``
    ``nearest``   an array: per pair of a category rule, the zone nearest
                  the fix within reach (-1: none, or a one-zone rule);
                  ``None`` when the batch has no category rule (read per
                  fix by :meth:`nearest_of`, for the few that open alerts)
    ============  ==========================================================
    """

    flags: list[int]
    codes: list[int]
    approach: list[int]
    ends: list[int]
    nearest: Any

    def curfew_code(self, gi: int, rule: int) -> int:
        """``c1`` of fix ``gi`` against its person's rule number ``rule``."""
        return self.codes[(self.ends[gi - 1] if gi else 0) + rule]

    def nearest_of(self, gi: int) -> tuple[int, ...] | None:
        """``nearest`` of fix ``gi``'s pairs in rule order (``None``: the
        batch has no category rule, or ``gi`` no fix of it)."""
        if self.nearest is None or gi < 0:
            return None
        return tuple(self.nearest[(self.ends[gi - 1] if gi else 0):self.ends[gi]].tolist())


NOTHING = Classified([], [], [], [], None)
"""The classifications of a batch with no valid fix."""


def zone_codes(d: Any, acc: Any, buffer_m: Any, kind: Any) -> tuple[Any, Any]:
    """Codes ``c1`` and ``c2`` of (fix, rule) pairs from their signed distances.

    Parameters
    ----------
    d : ndarray of float
        Signed distance (m) of each fix to the rule's zone (negative inside).
    acc : ndarray of float
        Each fix's accuracy (m).
    buffer_m : ndarray of float
        The rule's approach buffer (0: none).
    kind : ndarray of int8
        The rule's kind.

    Returns
    -------
    c1, c2 : ndarray of int
        ``c1``: 1 the rule is certainly violated (inside an exclusion zone,
        outside an inclusion or curfew zone), -1 certainly kept, 0 neither;
        ``c2``: 1 certainly inside the approach buffer but not the zone, -1
        certainly not in the buffer, 0 neither.

    Examples
    --------
    >>> import numpy as np
    >>> c1, c2 = zone_codes(np.array([-50.0, 5.0, 60.0]), np.array([10.0] * 3),
    ...                     np.array([100.0] * 3), np.array([EXCLUSION] * 3, np.int8))
    >>> c1.tolist(), c2.tolist()
    ([1, 0, -1], [-1, 0, 1])
    """
    inside = (d < -acc).astype(np.int8) - (d > acc).astype(np.int8)  # 1 in, -1 out, 0 unsure
    c1 = np.where(kind == EXCLUSION, inside, -inside)
    c2 = np.where((d > acc) & (d < buffer_m - acc), 1,
                  np.where((d > buffer_m + acc) | (d < -acc), -1, 0))
    return c1, c2


def rule_distances(zones: ZoneIndex, zone: Any, lon: Any, lat: Any, within: Any) -> Any:
    """Signed distance (m) of each (point, rule) pair to what its rule protects.

    Parameters
    ----------
    zones : ZoneIndex
        The catalogue.
    zone : ndarray of int
        Per pair, its rule's ``zone_idx``: a zone index (>= 0), or
        :func:`geofence.rules.scope_index` of a category rule's scope (< -1).
    lon, lat : ndarray of float
        The pair's point.
    within : ndarray of float
        Exact up to this distance (see
        :meth:`~geofence.zones.ZoneCatalogue.signed_distance_m`).

    Returns
    -------
    ndarray of float
        For a zone, the signed distance to it; for a category rule, the
        least signed distance over the zones of its scope (``inf`` when none
        lies within reach).
    """
    return rule_measures(zones, zone, lon, lat, within)[0]


def rule_measures(zones: ZoneIndex, zone: Any, lon: Any, lat: Any, within: Any
                  ) -> tuple[Any, Any | None]:
    """:func:`rule_distances`, and for the pairs of category rules the zone
    that gave each distance (-1 for other pairs, and where the distance is
    beyond reach): the zone
    :func:`rule_zone` names at that point and reach. The second value is
    ``None`` when no pair has a category rule."""
    zone = np.asarray(zone, np.int64)
    cat = zone < -1
    if not cat.any():
        return zones.signed_distance_m(zone, lon, lat, within), None
    d = np.empty(len(zone), np.float64)
    near = np.full(len(zone), -1, np.int64)
    one = np.flatnonzero(~cat)
    if len(one):
        d[one] = zones.signed_distance_m(zone[one], lon[one], lat[one], within[one])
    c = np.flatnonzero(cat)
    dc, nc = zones.scope_distance_m(-2 - zone[c], lon[c], lat[c], within[c])  # scope_index
    d[c] = dc
    near[c] = np.where(dc <= within[c], nc, -1)  # beyond reach: not known to be the nearest
    return d, near


def rule_zone(zones: ZoneIndex, zr: ZoneRule, lon: float, lat: float, within: float) -> str:
    """The zone that decides rule ``zr`` at a point: the alert's ``zone``.

    The rule's own zone; for a category rule the nearest zone of its scope:
    the zone :meth:`~geofence.zones.ZoneCatalogue.scope_distance_m` finds
    nearest up to ``within`` metres (the batch's classification finds the
    same, :func:`rule_measures`, and the engine takes it from there), or
    when none is that near, the nearest of all of them measured exactly.
    """
    if zr.zone_idx >= -1:
        return zr.zone_id
    scope = scope_index(zr.zone_idx)
    zs = zones.scope_zones(scope)
    if not len(zs):
        return zr.zone_id
    n = len(zs)
    if n == 1:
        return zones.ids[int(zs[0])]
    d1, k1 = zones.scope_distance_m(np.array([scope]), np.array([lon]), np.array([lat]),
                                    np.array([within]))
    if float(d1[0]) <= within:
        return zones.ids[int(k1[0])]
    # outside every zone by more than ``within``: each d is a lower bound of
    # the zone's distance (up to the error of the exact distance, docs/zones.md:
    # a millimetre at 1 km, centimetres at 20 km); measure exactly the zones
    # that could be nearest
    x, y = np.full(n, lon), np.full(n, lat)
    d = zones.signed_distance_m(zs, x, y, np.full(n, within))
    k = int(np.argmin(d))
    ub = float(zones.signed_distance_m(zs[k:k + 1], x[:1], y[:1], np.full(1, np.inf))[0])
    c = np.flatnonzero((d <= ub + 0.002 + 4e-6 * abs(ub)) | (np.arange(n) == k))
    de = zones.signed_distance_m(zs[c], x[c], y[c], np.full(len(c), np.inf))
    k = int(c[np.argmin(de)])
    return zones.ids[int(zs[k])]


def zone_named(zones: ZoneIndex, zr: ZoneRule, fix: Fix, near: tuple[int, ...] | None,
               i: int) -> str | Callable[[], str]:
    """The zone a category rule's alert names at ``fix`` (the rule's number
    ``i``): its batch's nearest zone when known (``near``:
    :meth:`Classified.nearest_of`), else :func:`rule_zone` at the reach the
    batch used (accuracy and buffer), as a function measured only if the
    alert opens."""
    if near is not None and near[i] >= 0:
        return zones.ids[near[i]]
    return partial(rule_zone, zones, zr, fix.lon, fix.lat, fix.accuracy_m + zr.buffer_m)


def classify_fixes(zones: ZoneIndex, table: RuleTable, pidx: Any, lon: Any, lat: Any,
                   acc: Any) -> tuple[Classified, Any, Any, Any]:
    """Classify every (fix, zone rule) pair of a batch in one vectorised pass.

    ``pidx`` is each fix's person (a row of ``table``). Returns the
    :class:`Classified` lists and, as arrays, the per-fix flags, the per-pair
    ``c1`` codes and each fix's first pair.
    """
    n = len(pidx)
    counts = table.count[pidx]
    total = int(counts.sum())
    ends = np.cumsum(counts)
    if total == 0:
        return (Classified([0] * n, [], [], [0] * n, None), np.zeros(n, np.int8), np.zeros(0, np.int8),
                np.zeros(n, np.int64))
    rep = np.repeat(np.arange(n), counts)
    offs = np.arange(total) - np.repeat(ends - counts, counts)
    pos = table.start[pidx][rep] + offs
    buf = table.buffer_m[pos]
    kind = table.kind[pos]
    curfew = kind == CURFEW
    a = acc[rep]
    d, near = rule_measures(zones, table.zone[pos], lon[rep], lat[rep], a + buf)
    c1, appr = zone_codes(d, a, buf, kind)
    viol = ((c1 == 1) & ~curfew) | (appr == 1)
    cf_out = (c1 == 1) & curfew
    flags = (np.bincount(rep, weights=viol, minlength=n) > 0).astype(np.int8) | (
        (np.bincount(rep, weights=cf_out, minlength=n) > 0).astype(np.int8) << 1)
    cls = Classified(flags.tolist(), c1.tolist(), appr.tolist(), ends.tolist(), near)
    return cls, flags, c1, ends - counts


def attach_codes(e: Entry, cls: Classified) -> None:
    """Give a fix of the batch classified in ``cls`` its per-rule codes (``c1``, ``c2``)."""
    gi = e.gi
    if gi < 0 or e.c1 is not None:
        return
    t = cls.ends[gi]
    s = cls.ends[gi - 1] if gi else 0
    e.c1 = tuple(cls.codes[s:t])
    e.c2 = tuple(cls.approach[s:t])


def ensure_codes(zones: ZoneIndex, spec: PersonSpec | None, ents: Sequence[Entry]) -> None:
    """Classify fixes and check-ins that have no codes yet (entries re-run by
    a rewind, the check-ins of a person under a checkin rule), all of the
    lane's at once. A check-in's position is judged as a fix's: the same
    signed distances, accuracies and :func:`zone_codes`."""
    if spec is None or not spec.zone_rules:
        return
    todo = [e for e in ents if e.c1 is None and (
        (type(e.msg) is Fix and e.msg.valid) or type(e.msg) is CheckIn)]
    if not todo:
        return
    k = len(spec.zone_rules)
    n = len(todo)
    lon = np.repeat(np.array([e.msg.lon for e in todo]), k)  # type: ignore[union-attr]
    lat = np.repeat(np.array([e.msg.lat for e in todo]), k)  # type: ignore[union-attr]
    a = np.repeat(np.array([e.msg.accuracy_m for e in todo]), k)  # type: ignore[union-attr]
    buf = np.tile(spec.buffer_m, n)
    d = rule_distances(zones, np.tile(spec.zone_idx, n), lon, lat, a + buf)
    c1a, c2a = zone_codes(d, a, buf, np.tile(spec.kinds, n))
    c1, c2 = c1a.tolist(), c2a.tolist()
    for i, e in enumerate(todo):
        e.c1 = tuple(c1[i * k:(i + 1) * k])
        e.c2 = tuple(c2[i * k:(i + 1) * k])


def classify_video(zones: ZoneIndex, camera_accuracy_m: float,
                   vids: list[tuple[Entry, PersonSpec]]) -> None:
    """Give face matches their ``c1`` codes: 1 where the camera is certainly
    inside the rule's zone (deeper than ``camera_accuracy_m``), else 0."""
    zi: list[int] = []
    lo: list[float] = []
    la: list[float] = []
    spans: list[tuple[Entry, int, int]] = []
    for e, spec in vids:
        h: VideoHit = e.msg  # type: ignore[assignment]
        s = len(zi)
        for zr in spec.zone_rules:
            zi.append(zr.zone_idx)
            lo.append(h.lon)
            la.append(h.lat)
        spans.append((e, s, len(zi)))
    ca = camera_accuracy_m
    d = rule_distances(zones, np.array(zi, np.int64), np.array(lo), np.array(la),
                       np.full(len(zi), ca + 1.0))
    inside = (d < -ca).astype(np.int8).tolist()
    for e, s, t in spans:
        e.c1 = tuple(inside[s:t])
