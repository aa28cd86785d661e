"""Spatial fixtures: an independent geodesic reference and zone builders."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

_A = 6378137.0
_F = 1 / 298.257223563
_B = _A * (1 - _F)


def vincenty_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Vincenty's inverse formula on WGS 84 (written here, sub-millimetre).

    Independent of geofence.geo: iterative solution of the geodesic on the
    ellipsoid (T. Vincenty, Survey Review 23(176), 1975).
    """
    big_l = math.radians(lon2 - lon1)
    u1 = math.atan((1 - _F) * math.tan(math.radians(lat1)))
    u2 = math.atan((1 - _F) * math.tan(math.radians(lat2)))
    su1, cu1, su2, cu2 = math.sin(u1), math.cos(u1), math.sin(u2), math.cos(u2)
    lam = big_l
    for _ in range(200):
        sl, cl = math.sin(lam), math.cos(lam)
        ss = math.hypot(cu2 * sl, cu1 * su2 - su1 * cu2 * cl)
        if ss == 0:
            return 0.0
        cs = su1 * su2 + cu1 * cu2 * cl
        sig = math.atan2(ss, cs)
        sa = cu1 * cu2 * sl / ss
        c2a = 1 - sa * sa
        c2sm = cs - 2 * su1 * su2 / c2a if c2a else 0.0
        c = _F / 16 * c2a * (4 + _F * (4 - 3 * c2a))
        prev = lam
        lam = big_l + (1 - c) * _F * sa * (sig + c * ss * (c2sm + c * cs * (-1 + 2 * c2sm * c2sm)))
        if abs(lam - prev) < 1e-13:
            break
    u_sq = c2a * (_A * _A - _B * _B) / (_B * _B)
    ka = 1 + u_sq / 16384 * (4096 + u_sq * (-768 + u_sq * (320 - 175 * u_sq)))
    kb = u_sq / 1024 * (256 + u_sq * (-128 + u_sq * (74 - 47 * u_sq)))
    ds = kb * ss * (c2sm + kb / 4 * (cs * (-1 + 2 * c2sm * c2sm)
                                     - kb / 6 * c2sm * (-3 + 4 * ss * ss) * (-3 + 4 * c2sm * c2sm)))
    return _B * ka * (sig - ds)


def vincenty_to_segment_m(px: float, py: float, x1: float, y1: float, x2: float, y2: float) -> float:
    """Geodesic distance from a point to a lon/lat-straight segment.

    Golden-section search over the segment parameter followed by a dense
    scan around the optimum; the distance along a short segment is unimodal.
    """

    def f(t: float) -> float:
        return vincenty_m(px, py, x1 + (x2 - x1) * t, y1 + (y2 - y1) * t)

    ts = np.linspace(0.0, 1.0, 65)
    vals = [f(float(t)) for t in ts]
    k = int(np.argmin(vals))
    lo, hi = float(ts[max(k - 1, 0)]), float(ts[min(k + 1, 64)])
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = f(a), f(b)
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = f(b)
    return min(fa, fb, vals[0], vals[-1])


@pytest.fixture(scope="session")
def vincenty() -> Callable[[float, float, float, float], float]:
    return vincenty_m


@pytest.fixture(scope="session")
def vincenty_segment() -> Callable[..., float]:
    return vincenty_to_segment_m
