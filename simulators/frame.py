"""A local metric frame around the simulated city's centre.

The simulator works in metres east/north of the centre (an equirectangular
projection with the centre's latitude as the standard parallel) and only
converts to WGS84 longitude/latitude when it writes files. Across a city
30 km wide at 32 N the scale error of this projection is below 0.3 %, so a
distance of 100 m is off by at most 0.3 m; every margin the scenarios keep
from a boundary is at least 20 m, which absorbs that error and any
difference from the engine's own projection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class LocalFrame:
    """Metres east (x) and north (y) of ``(lat0, lon0)``."""

    lat0: float
    lon0: float

    @property
    def _kx(self) -> float:
        return math.radians(1.0) * EARTH_RADIUS_M * math.cos(math.radians(self.lat0))

    @property
    def _ky(self) -> float:
        return math.radians(1.0) * EARTH_RADIUS_M

    def to_lonlat(
        self, x: ArrayLike, y: ArrayLike
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Metric ``(x, y)`` to ``(lon, lat)`` in degrees."""
        xa = np.asarray(x, dtype=np.float64)
        ya = np.asarray(y, dtype=np.float64)
        return self.lon0 + xa / self._kx, self.lat0 + ya / self._ky

    def to_xy(
        self, lon: ArrayLike, lat: ArrayLike
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(lon, lat)`` in degrees to metric ``(x, y)``."""
        lo = np.asarray(lon, dtype=np.float64)
        la = np.asarray(lat, dtype=np.float64)
        return (lo - self.lon0) * self._kx, (la - self.lat0) * self._ky

    def metres_per_degree(self) -> tuple[float, float]:
        """Metres per degree of longitude and of latitude at the centre."""
        return self._kx, self._ky
