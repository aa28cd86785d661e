"""geofence.geo: vectorised ellipsoidal distance against Vincenty's inverse."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geofence.geo import distance_m, metres_per_degree

Ref = Callable[[float, float, float, float], float]


def _offset(lon: float, lat: float, dist: float, az: float) -> tuple[float, float]:
    kx, ky = metres_per_degree(lat)
    return lon + dist * math.sin(az) / float(kx), lat + dist * math.cos(az) / float(ky)


@pytest.mark.parametrize(
    ("dist", "bound"),
    [(100.0, 1e-4), (1_000.0, 1e-3), (10_000.0, 0.02), (100_000.0, 1.0), (1_000_000.0, 20.0)],
)
def test_distance_error_bound_against_vincenty(dist: float, bound: float, vincenty: Ref) -> None:
    # the bounds documented in geofence.geo and docs/zones.md, 0-60 degrees N
    rng = np.random.default_rng(int(dist))
    lon = rng.uniform(73, 135, 300)
    lat = rng.uniform(0, 60, 300)
    az = rng.uniform(0, 2 * math.pi, 300)
    ends = [_offset(a, b, dist, c) for a, b, c in zip(lon, lat, az, strict=True)]
    lon2 = np.array([e[0] for e in ends])
    lat2 = np.array([e[1] for e in ends])
    got = distance_m(lon, lat, lon2, lat2)
    ref = np.array([vincenty(a, b, c, d) for a, b, c, d in zip(lon, lat, lon2, lat2, strict=True)])
    assert np.abs(got - ref).max() < bound


def test_broadcasting_and_scalar() -> None:
    d = distance_m(118.79, 32.06, np.array([118.79, 118.80]), 32.06)
    assert d.shape == (2,)
    assert d[0] == 0.0
    assert np.ndim(distance_m(118.79, 32.06, 118.80, 32.06)) == 0


def test_symmetry_and_known_value(vincenty: Ref) -> None:
    # one degree of latitude at 45N on WGS 84 is 111,131.7 m (Vincenty)
    a = float(distance_m(100.0, 44.5, 100.0, 45.5))
    assert a == pytest.approx(vincenty(100.0, 44.5, 100.0, 45.5), abs=0.5)
    assert a == pytest.approx(float(distance_m(100.0, 45.5, 100.0, 44.5)), abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(
    lon=st.floats(73, 135),
    lat=st.floats(18, 54),
    dist=st.floats(0, 5_000),
    az=st.floats(0, 2 * math.pi),
)
def test_short_distances_millimetre(
    lon: float, lat: float, dist: float, az: float, vincenty: Ref
) -> None:
    lon2, lat2 = _offset(lon, lat, dist, az)
    assert abs(float(distance_m(lon, lat, lon2, lat2)) - vincenty(lon, lat, lon2, lat2)) < 1e-3


def test_crossing_the_antimeridian_takes_the_short_way() -> None:
    assert float(distance_m(179.999, 0.0, -179.999, 0.0)) == pytest.approx(222.6, abs=0.2)
