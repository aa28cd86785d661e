"""Classification of fixes against their zone rules, vectorised over a batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from geofence.engine.lanes import (
    Entry,
)
from geofence.model import (
    Fix,
    VideoHit,
)
from geofence.rules import (
    CURFEW,
    EXCLUSION,
    PersonSpec,
)

if TYPE_CHECKING:
    from geofence.engine.core import Engine


def classify_batch(eng: Engine, pidx: Any, lon: Any, lat: Any, acc: Any) -> tuple[Any, Any, Any]:
    """Classify every (fix, zone rule) pair of the batch in one vectorised pass.

    Leaves per-fix flags (bit 0: some non-curfew condition certainly
    violated; bit 1: certainly outside a curfew zone) and the per-pair
    codes for :meth:`_attach`; returns the flags, the per-pair ``c1``
    codes and each fix's first pair, as arrays.
    """
    n = len(pidx)
    counts = eng._csr_count[pidx]
    total = int(counts.sum())
    ends = np.cumsum(counts)
    if total == 0:
        eng._g_flags = [0] * n
        eng._g_l1, eng._g_l2, eng._g_ends = [], [], [0] * n
        return np.zeros(n, np.int8), np.zeros(0, np.int8), np.zeros(n, np.int64)
    rep = np.repeat(np.arange(n), counts)
    offs = np.arange(total) - np.repeat(ends - counts, counts)
    pos = eng._csr_start[pidx][rep] + offs
    zone = eng._csr_zone[pos]
    buf = eng._csr_buf[pos]
    curfew = eng._csr_kind[pos] == CURFEW
    a = acc[rep]
    d = eng._zones.signed_distance_m(zone, lon[rep], lat[rep], a + buf)
    inside = (d < -a).astype(np.int8) - (d > a).astype(np.int8)  # 1 in, -1 out, 0 unsure
    c1 = np.where(eng._csr_kind[pos] == EXCLUSION, inside, -inside)
    appr = np.where((d > a) & (d < buf - a), 1, np.where((d > buf + a) | (d < -a), -1, 0))
    viol = ((c1 == 1) & ~curfew) | (appr == 1)
    cf_out = (c1 == 1) & curfew
    flags = (np.bincount(rep, weights=viol, minlength=n) > 0).astype(np.int8) | (
        (np.bincount(rep, weights=cf_out, minlength=n) > 0).astype(np.int8) << 1)
    eng._g_flags = flags.tolist()
    eng._g_l1 = c1.tolist()
    eng._g_l2 = appr.tolist()
    eng._g_ends = ends.tolist()
    return flags, c1, ends - counts


def attach_codes(eng: Engine, e: Entry) -> None:
    """Give a fix of this batch its per-rule codes (``c1``, ``c2``)."""
    gi = e.gi
    if gi < 0 or e.c1 is not None:
        return
    t = eng._g_ends[gi]
    s = eng._g_ends[gi - 1] if gi else 0
    e.c1 = tuple(eng._g_l1[s:t])
    e.c2 = tuple(eng._g_l2[s:t])


def ensure_codes(eng: Engine, spec: PersonSpec | None, ents: Sequence[Entry]) -> None:
    """Classify fixes that have no codes yet (entries re-run by a rewind)."""
    if spec is None or not spec.zone_rules:
        return
    todo = [e for e in ents if e.c1 is None and type(e.msg) is Fix and e.msg.valid]
    if not todo:
        return
    k = len(spec.zone_rules)
    n = len(todo)
    lon = np.repeat(np.array([e.msg.lon for e in todo]), k)  # type: ignore[union-attr]
    lat = np.repeat(np.array([e.msg.lat for e in todo]), k)  # type: ignore[union-attr]
    a = np.repeat(np.array([e.msg.accuracy_m for e in todo]), k)  # type: ignore[union-attr]
    zone = np.tile(spec.zone_idx, n)
    buf = np.tile(spec.buffer_m, n)
    kind = np.tile(spec.kinds, n)
    d = eng._zones.signed_distance_m(zone, lon, lat, a + buf)
    inside = (d < -a).astype(np.int8) - (d > a).astype(np.int8)
    c1 = np.where(kind == EXCLUSION, inside, -inside).tolist()
    c2 = np.where((d > a) & (d < buf - a), 1,
                  np.where((d > buf + a) | (d < -a), -1, 0)).tolist()
    for i, e in enumerate(todo):
        e.c1 = tuple(c1[i * k:(i + 1) * k])
        e.c2 = tuple(c2[i * k:(i + 1) * k])


def classify_video(eng: Engine, vids: list[tuple[Entry, PersonSpec]]) -> None:
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
    ca = eng._cfg.camera_accuracy_m
    d = eng._zones.signed_distance_m(
        np.array(zi, np.int64), np.array(lo), np.array(la), np.full(len(zi), ca + 1.0)
    )
    inside = (d < -ca).astype(np.int8).tolist()
    for e, s, t in spans:
        e.c1 = tuple(inside[s:t])
