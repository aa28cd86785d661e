"""Ellipsoidal distances in metres, vectorised with numpy.

Everything here works on the WGS 84 ellipsoid with longitude first (the
GeoJSON order). Two families of functions:

* :func:`distance_m` -- point-to-point distance for arrays of coordinate
  pairs (no_contact, video device separation, circle zones).
* :func:`metres_per_degree` -- the local scale factors used by
  :mod:`geofence.zones` to measure distances in a frame centred on each point.

Short distances (below :data:`FLAT_LIMIT_M`) use the mean-latitude flat-earth
formula with the ellipsoid's meridional (M) and prime-vertical (N) radii of
curvature; longer ones use Lambert's formula on reduced latitudes. Against
a Vincenty inverse solution (``tests/geofence/test_geo.py``) the error is
below 1 mm up to 5 km, 4 mm at 10 km, 3 cm at 20 km and 1.5 m at 1,000 km
anywhere between 0 and 60 degrees of latitude (see docs/zones.md).
"""

from __future__ import annotations

from typing import Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "A_M",
    "E2",
    "FLAT_LIMIT_M",
    "F",
    "distance_m",
    "meridional_radius_m",
    "metres_per_degree",
    "prime_vertical_radius_m",
]

#: WGS 84 semi-major axis, metres.
A_M = 6378137.0
#: WGS 84 flattening.
F = 1.0 / 298.257223563
#: First eccentricity squared.
E2 = F * (2.0 - F)
#: Below this (flat-formula) distance the mean-latitude formula is used.
FLAT_LIMIT_M = 20_000.0

_DEG = np.pi / 180.0

FloatArray = NDArray[np.float64]
_Num = Union[float, ArrayLike]


def meridional_radius_m(lat_deg: _Num) -> FloatArray:
    """Meridional radius of curvature M at latitude ``lat_deg`` (degrees).

    Examples
    --------
    >>> round(float(meridional_radius_m(0.0)))
    6335439
    """
    s = np.sin(np.asarray(lat_deg, dtype=np.float64) * _DEG)
    return np.asarray(A_M * (1.0 - E2) / (1.0 - E2 * s * s) ** 1.5, dtype=np.float64)


def prime_vertical_radius_m(lat_deg: _Num) -> FloatArray:
    """Prime-vertical radius of curvature N at latitude ``lat_deg`` (degrees).

    Examples
    --------
    >>> round(float(prime_vertical_radius_m(0.0)))
    6378137
    """
    s = np.sin(np.asarray(lat_deg, dtype=np.float64) * _DEG)
    return np.asarray(A_M / np.sqrt(1.0 - E2 * s * s), dtype=np.float64)


def metres_per_degree(lat_deg: _Num) -> tuple[FloatArray, FloatArray]:
    """Metres per degree of longitude and of latitude at ``lat_deg``.

    Returns
    -------
    (kx, ky) : tuple of ndarray
        ``kx = N cos(lat) * pi/180`` and ``ky = M * pi/180``.

    Examples
    --------
    >>> kx, ky = metres_per_degree(32.06)
    >>> round(float(kx)), round(float(ky))
    (94432, 110888)
    """
    lat = np.asarray(lat_deg, dtype=np.float64)
    kx = prime_vertical_radius_m(lat) * np.cos(lat * _DEG) * _DEG
    ky = meridional_radius_m(lat) * _DEG
    return np.asarray(kx, dtype=np.float64), np.asarray(ky, dtype=np.float64)


def _flat(lon1: FloatArray, lat1: FloatArray, lon2: FloatArray, lat2: FloatArray) -> FloatArray:
    dlon = (lon2 - lon1 + 180.0) % 360.0 - 180.0
    kx, ky = metres_per_degree(0.5 * (lat1 + lat2))
    return np.asarray(np.hypot(dlon * kx, (lat2 - lat1) * ky), dtype=np.float64)


def _lambert(lon1: FloatArray, lat1: FloatArray, lon2: FloatArray, lat2: FloatArray) -> FloatArray:
    b1 = np.arctan((1.0 - F) * np.tan(lat1 * _DEG))
    b2 = np.arctan((1.0 - F) * np.tan(lat2 * _DEG))
    dl = (lon2 - lon1) * _DEG
    h = np.sin((b2 - b1) / 2.0) ** 2 + np.cos(b1) * np.cos(b2) * np.sin(dl / 2.0) ** 2
    sigma = 2.0 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    p = (b1 + b2) / 2.0
    q = (b2 - b1) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (sigma - np.sin(sigma)) * np.sin(p) ** 2 * np.cos(q) ** 2 / np.cos(sigma / 2.0) ** 2
        y = (sigma + np.sin(sigma)) * np.cos(p) ** 2 * np.sin(q) ** 2 / np.sin(sigma / 2.0) ** 2
        d = A_M * (sigma - F / 2.0 * (x + y))
    return np.asarray(d, dtype=np.float64)


def distance_m(lon1: _Num, lat1: _Num, lon2: _Num, lat2: _Num) -> FloatArray:
    """Distance in metres between points, vectorised with broadcasting.

    Parameters
    ----------
    lon1, lat1, lon2, lat2 : float or array_like
        Degrees, WGS 84, longitude first. Arrays broadcast against each other.

    Returns
    -------
    ndarray of float64
        Ellipsoidal distance in metres (error below 1 mm up to 5 km, 4 mm at
        10 km, 1.5 m at 1,000 km; see the module docstring). A 0-d array for
        scalar input.

    Examples
    --------
    >>> round(float(distance_m(118.79, 32.06, 118.80, 32.06)), 2)
    944.32
    >>> distance_m([118.79, 118.79], [32.06, 32.06], 118.79, [32.06, 32.07]).round(1).tolist()
    [0.0, 1108.9]
    """
    a, b, c, d = np.broadcast_arrays(
        np.asarray(lon1, dtype=np.float64),
        np.asarray(lat1, dtype=np.float64),
        np.asarray(lon2, dtype=np.float64),
        np.asarray(lat2, dtype=np.float64),
    )
    flat = _flat(a, b, c, d)
    far = flat > FLAT_LIMIT_M
    if np.any(far):
        flat = np.array(flat, dtype=np.float64, copy=True)
        flat[far] = _lambert(a[far], b[far], c[far], d[far])
    return flat
