"""Metric bounds in degrees: how wide a box must be to hold a distance in metres.

The zone index works in longitude/latitude and the contract in metres. The
helpers here convert between the two with bounds that hold everywhere along
the way (the smallest metres per degree met anywhere in a range, plus the
poleward bulge of geodesics), so a box computed from a distance is certain
to contain every point within that distance. Circles are measured and drawn
with the same scales.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from geofence.geo import A_M, E2, meridional_radius_m, metres_per_degree

#: Vertices of the polygon that approximates a circle for display and bounds.
CIRCLE_VERTICES = 72

_DEG = math.pi / 180.0
#: Smallest meridional metres per degree anywhere (at the equator).
_KY_MIN = float(meridional_radius_m(0.0)) * _DEG
#: Upper bound of metres per degree of latitude or longitude anywhere.
_K_MAX = 111_700.0

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


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


def _circle_bbox(lon: float, lat: float, radius: float) -> tuple[float, float, float, float]:
    """Bounds certain to hold the circle: smallest scales within its reach."""
    rla = radius / _KY_MIN * 1.0001
    # _bulge_deg for a scalar, without numpy's per-call cost (70,000 circles)
    bulge = rla * rla * _DEG * math.tan(min(abs(lat) + 1.0, 89.0) * _DEG) / 4.0
    far = min(abs(lat) + rla + bulge, 89.9)
    rlo = radius / (A_M * _DEG * math.cos(far * _DEG)) * 1.0001
    return (lon - rlo, lat - rla, lon + rlo, lat + rla)


def _degree_halfwidths(y: FloatArray, w: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Half-widths in degrees of a box certain to hold every point within ``w`` metres."""
    with np.errstate(invalid="ignore", over="ignore"):
        dlat = w / _KY_MIN * 1.0001 + 1e-9
        far = np.minimum(np.abs(y) + dlat + _bulge_deg(np.minimum(dlat, 90.0), y), 89.9)
        kx, _ = metres_per_degree(far)
        dlon = np.minimum(w / kx * 1.0001 + 1e-9, 360.0)
    return np.asarray(dlon, dtype=np.float64), np.asarray(np.minimum(dlat, 180.0), dtype=np.float64)
