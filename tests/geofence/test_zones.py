"""geofence.zones: loading, repair/reject, signed distance semantics."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geofence.errors import ValidationError, ZoneError
from geofence.geo import distance_m, metres_per_degree
from geofence.zones import ZoneCatalogue, load_zones


def feat(zid: str | None, geometry: Any, **props: Any) -> dict[str, Any]:
    f: dict[str, Any] = {"type": "Feature", "properties": props, "geometry": geometry}
    if zid is not None:
        f["id"] = zid
    return f


def fc(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def poly(*rings: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [list(r) for r in rings]}


def sq(lon: float, lat: float, h: float) -> list[list[float]]:
    return [[lon - h, lat - h], [lon + h, lat - h], [lon + h, lat + h], [lon - h, lat + h], [lon - h, lat - h]]


def sd(zc: ZoneCatalogue, zid: str, lon: float, lat: float, within: float = math.inf) -> float:
    return float(zc.signed_distance_m(np.array([zc.index_of(zid)]), np.array([lon]), np.array([lat]),
                                      np.array([within]))[0])


def reject(data: Any) -> ZoneError:
    with pytest.raises(ZoneError) as ei:
        ZoneCatalogue.from_geojson(data)
    assert isinstance(ei.value, ValidationError)
    return ei.value


# ---------------------------------------------------------------- loading


def test_ids_index_and_container_protocol() -> None:
    zc = ZoneCatalogue.from_geojson(fc(
        feat("A", poly(sq(118.0, 32.0, 0.01))),
        feat(None, poly(sq(118.1, 32.0, 0.01)), id="B", name="School 17", category="school"),
        feat("C", {"type": "Point", "coordinates": [118.2, 32.0]}, radius_m=150),
    ))
    assert zc.ids == ("A", "B", "C")
    assert [zc.index_of(z) for z in zc.ids] == [0, 1, 2]
    assert "B" in zc and "Z" not in zc and 3 not in zc
    assert len(zc) == 3
    with pytest.raises(KeyError):
        zc.index_of("Z")
    f = zc.feature("B")
    assert f["id"] == "B" and f["properties"]["name"] == "School 17"
    f["properties"]["name"] = "changed"
    assert zc.feature("B")["properties"]["name"] == "School 17"


def test_accepts_json_text_bytes_and_file(tmp_path: Path) -> None:
    data = fc(feat("A", poly(sq(118.0, 32.0, 0.01))))
    assert ZoneCatalogue.from_geojson(json.dumps(data)).ids == ("A",)
    assert ZoneCatalogue.from_geojson(json.dumps(data).encode()).ids == ("A",)
    p = tmp_path / "zones.geojson"
    p.write_text(json.dumps(data))
    assert load_zones(p).ids == ("A",)
    with pytest.raises(ZoneError) as ei:
        load_zones(tmp_path / "missing.geojson")
    assert ei.value.reason == "unreadable"


@pytest.mark.parametrize(
    ("data", "reason", "fragment"),
    [
        ("{not json", "bad_json", "not valid JSON"),
        ({"type": "Feature"}, "not_feature_collection", "FeatureCollection"),
        ({"type": "FeatureCollection", "features": {}}, "not_feature_collection", "array"),
        (fc([1, 2]), "bad_feature", "feature #0"),  # type: ignore[arg-type]
        (fc(feat(None, poly(sq(118, 32, 0.01)))), "missing_id", "feature #0: no `id`"),
        (fc(feat(None, poly(sq(118, 32, 0.01)), id=7)), "bad_id", "must be a string"),
        (fc({"type": "Feature", "id": 7, "properties": {}, "geometry": poly(sq(118, 32, 0.01))}), "bad_id", "string"),
        (fc({"type": "Feature", "id": "a", "properties": {"id": "b"}, "geometry": poly(sq(118, 32, 0.01))}),
         "bad_id", "differ"),
        (fc(feat("A", poly(sq(118, 32, 0.01))), feat("A", poly(sq(119, 32, 0.01)))), "duplicate_id", "feature 'A'"),
        (fc(feat("L", {"type": "LineString", "coordinates": [[118, 32], [118.1, 32]]})),
         "unsupported_geometry", "feature 'L': geometry type 'LineString'"),
        (fc(feat("G", {"type": "GeometryCollection", "geometries": []})), "unsupported_geometry", "feature 'G'"),
        (fc(feat("N", None)), "missing_geometry", "feature 'N'"),
        (fc(feat("P", {"type": "Point", "coordinates": [118, 32]})), "bad_radius", "needs properties.radius_m"),
        (fc(feat("P", {"type": "Point", "coordinates": [118, 32]}, radius_m=-5)), "bad_radius", "-5"),
        (fc(feat("P", {"type": "Point", "coordinates": [118, 32]}, radius_m="100")), "bad_radius", "'100'"),
        (fc(feat("P", {"type": "Point", "coordinates": [118, 32]}, radius_m=float("nan"))), "bad_radius", "nan"),
        (fc(feat("P", {"type": "Point", "coordinates": [32, 118]}, radius_m=10)), "bad_coordinates",
         "latitude 118.0 outside [-90, 90] (GeoJSON is [lon, lat])"),
        (fc(feat("B", poly([[118, 32], [181, 32], [118, 33], [118, 32]]))), "bad_coordinates",
         "feature 'B': Polygon ring 0 position 1: longitude 181.0"),
        (fc(feat("B", poly([[118, 32], [float("nan"), 32], [118, 33], [118, 32]]))), "bad_coordinates", "NaN"),
        (fc(feat("B", poly([[118, 32], ["118.5", 32], [118, 33], [118, 32]]))), "bad_coordinates", "non-numeric"),
        (fc(feat("B", poly([[118, 32], [118.5], [118, 33], [118, 32]]))), "bad_coordinates", "[lon, lat]"),
        (fc(feat("B", poly([[118, 32], [118.5, 32], [118, 32]]))), "invalid_geometry", "at least 3 distinct"),
        (fc(feat("B", {"type": "Polygon", "coordinates": []})), "invalid_geometry", "at least one linear ring"),
        (fc(feat("B", poly([[118, 32], [118.5, 32], [119, 32], [118, 32]]))), "invalid_geometry", "no area"),
        (fc(feat("C", poly(sq(118, 32, 0.01)), name=5)), "bad_property", "properties.name"),
        (fc(feat("T", poly(sq(118, 32, 0.01)))) | {"features": [{"type": "Feat", "id": "T", "geometry": {}}]},
         "bad_feature", "feature 'T'"),
    ],
)
def test_rejections_have_precise_reasons(data: Any, reason: str, fragment: str) -> None:
    err = reject(data)
    assert err.reason == reason
    assert fragment in err.detail, err.detail


def test_bowtie_is_ambiguous_and_rejected_with_location() -> None:
    bowtie = [[118.0, 32.0], [118.1, 32.1], [118.1, 32.0], [118.0, 32.1], [118.0, 32.0]]
    err = reject(fc(feat("X", poly(bowtie))))
    assert err.reason == "invalid_geometry"
    assert err.detail.startswith("feature 'X': Polygon: Self-intersection[118.05 32.05]")
    assert "Self-intersection" in err.detail and "not repaired" in err.detail


def test_hole_outside_shell_is_rejected() -> None:
    err = reject(fc(feat("H", poly(sq(118.0, 32.0, 0.01), sq(118.5, 32.0, 0.005)))))
    assert err.reason == "invalid_geometry" and "feature 'H'" in err.detail


def test_unclosed_ring_is_closed_and_reported() -> None:
    ring = sq(118.0, 32.0, 0.01)[:-1]
    zc = ZoneCatalogue.from_geojson(fc(feat("U", poly(ring))))
    assert any("closed an unclosed ring" in r for r in zc.repairs("U"))
    assert sd(zc, "U", 118.0, 32.0) < 0


def test_tiny_self_intersection_is_repaired_unambiguously() -> None:
    # a digitising slip: a 2 m loop that crosses itself on the edge of a 2 km square
    ring = [[118.0, 32.0], [118.01, 32.0], [118.0102, 32.00001], [118.0102, 31.99999], [118.0101, 32.00001],
            [118.0103, 32.0], [118.02, 32.0], [118.02, 32.02], [118.0, 32.02], [118.0, 32.0]]
    zc = ZoneCatalogue.from_geojson(fc(feat("S", poly(ring))))
    assert zc.repairs("S") == ("Polygon: repaired (Self-intersection[118.01015 32.0000075])",)
    assert shapely.is_valid(shapely.geometry.shape(zc.feature("S")["geometry"]))
    assert sd(zc, "S", 118.01, 32.01) < -900


def test_overlapping_multipolygon_parts_are_merged() -> None:
    g = {"type": "MultiPolygon", "coordinates": [[sq(118.0, 32.0, 0.01)], [sq(118.01, 32.0, 0.01)]]}
    zc = ZoneCatalogue.from_geojson(fc(feat("M", g)))
    assert any("merged" in r for r in zc.repairs("M"))
    # the shared region's internal edges are gone: centre of the overlap is deep inside
    assert sd(zc, "M", 118.005, 32.0) < -900


def test_valid_feature_geometry_is_returned_unchanged() -> None:
    g = poly(sq(118.0, 32.0, 0.01))
    zc = ZoneCatalogue.from_geojson(fc(feat("A", g, name="n")))
    assert zc.feature("A")["geometry"] == g
    assert zc.repairs("A") == ()


# ---------------------------------------------------------------- geometry


def test_square_signs_and_distances() -> None:
    zc = ZoneCatalogue.from_geojson(fc(feat("A", poly(sq(118.0, 32.0, 0.01)))))
    kx, _ky = (float(v) for v in metres_per_degree(32.0))
    # 100 m inside the east edge, 100 m outside it
    assert sd(zc, "A", 118.01 - 100 / kx, 32.0) == pytest.approx(-100.0, abs=0.05)
    assert sd(zc, "A", 118.01 + 100 / kx, 32.0) == pytest.approx(100.0, abs=0.05)
    # outside a corner: distance to the vertex
    lon, lat = 118.01 + 0.001, 32.01 + 0.001
    assert sd(zc, "A", lon, lat) == pytest.approx(float(distance_m(118.01, 32.01, lon, lat)), abs=0.01)


def test_polygon_with_hole() -> None:
    zc = ZoneCatalogue.from_geojson(fc(feat("H", poly(sq(118.0, 32.0, 0.02), sq(118.0, 32.0, 0.005)))))
    kx = float(metres_per_degree(32.0)[0])
    assert sd(zc, "H", 118.0, 32.0) == pytest.approx(0.005 * float(metres_per_degree(32.0)[0]), rel=1e-3)
    assert sd(zc, "H", 118.0 + 0.005 + 50 / kx, 32.0) == pytest.approx(-50.0, abs=0.05)
    assert sd(zc, "H", 118.0 + 0.005 - 50 / kx, 32.0) == pytest.approx(50.0, abs=0.05)


def test_multipolygon_with_holes_nearest_part_wins() -> None:
    g = {"type": "MultiPolygon", "coordinates": [
        [sq(118.0, 32.0, 0.01), sq(118.0, 32.0, 0.002)],
        [sq(118.05, 32.0, 0.01)],
    ]}
    zc = ZoneCatalogue.from_geojson(fc(feat("M", g)))
    kx = float(metres_per_degree(32.0)[0])
    assert sd(zc, "M", 118.0, 32.0) > 0  # inside the hole
    assert sd(zc, "M", 118.05, 32.0) < 0
    mid = 118.025  # between the parts: 0.015 deg from each
    assert sd(zc, "M", mid, 32.0) == pytest.approx(0.015 * kx, rel=1e-3)


def test_circle_is_round_on_the_ground() -> None:
    lat = 50.0  # high latitude: a lon/lat circle would be an ellipse
    zc = ZoneCatalogue.from_geojson(fc(feat("C", {"type": "Point", "coordinates": [120.0, lat]}, radius_m=300)))
    kx, ky = (float(v) for v in metres_per_degree(lat))
    for az in np.linspace(0, 2 * math.pi, 16, endpoint=False):
        lon = 120.0 + 290 * math.sin(az) / kx
        la = lat + 290 * math.cos(az) / ky
        assert sd(zc, "C", lon, la) == pytest.approx(-10.0, abs=0.01)
    # the display polygon contains the whole circle
    g = zc.geometry("C")
    pts = [(120.0 + 300 * math.sin(a) / kx, lat + 300 * math.cos(a) / ky) for a in np.linspace(0, 6.28, 100)]
    assert all(g.contains(shapely.Point(p)) for p in pts)


def test_distance_to_boundary_error_bound(
    vincenty_segment: Callable[..., float],
) -> None:
    # docs/zones.md: |error| < 5 mm up to 1 km and < 5 cm up to 10 km, 18N-54N.
    rng = np.random.default_rng(3)
    for lat in (18.0, 32.0, 45.0, 54.0):
        x0, x1 = 110.0, 110.6  # a long south edge (densified internally)
        zc = ZoneCatalogue.from_geojson(fc(feat("E", poly([[x0, lat], [x1, lat], [x1, lat + 0.3], [x0, lat + 0.3],
                                                         [x0, lat]]))))
        ky = float(metres_per_degree(lat)[1])
        for dist, tol in ((1_000.0, 0.005), (10_000.0, 0.05)):
            px = rng.uniform(x0 + 0.2, x1 - 0.2, 5)
            py = lat - rng.uniform(0.2, 1.0, 5) * dist / ky
            got = zc.signed_distance_m(np.zeros(5, dtype=np.int64), px, py, np.full(5, np.inf))
            for g, a, b in zip(got, px, py, strict=True):
                ref = vincenty_segment(a, b, x0, lat, x1, lat)
                assert g > 0 and abs(g - ref) < tol, (lat, dist, g, ref)
            # a slanted edge, from inside
            zc2 = ZoneCatalogue.from_geojson(fc(feat("S", poly([[x0, lat], [x1, lat + 0.05], [x1, lat + 0.4],
                                                              [x0, lat + 0.4], [x0, lat]]))))
            py2 = lat + 0.05 * (px - x0) / (x1 - x0) + rng.uniform(0.2, 1.0, 5) * dist / ky
            got2 = zc2.signed_distance_m(np.zeros(5, dtype=np.int64), px, py2, np.full(5, np.inf))
            for g, a, b in zip(got2, px, py2, strict=True):
                ref = vincenty_segment(a, b, x0, lat, x1, lat + 0.05)
                assert g < 0 and abs(-g - ref) < tol, (lat, dist, g, ref)


# ------------------------------------------------------------- within_m


def _district(seed: int = 1, n: int = 3000) -> ZoneCatalogue:
    rng = np.random.default_rng(seed)
    a = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = 0.2 * (1 + 0.45 * np.sin(7 * a) + 0.1 * rng.uniform(-1, 1, n))
    ring = np.column_stack([118.8 + r * np.cos(a) / math.cos(math.radians(32)), 32.0 + r * np.sin(a)]).tolist()
    circle = feat("C", {"type": "Point", "coordinates": [118.8, 32.0]}, radius_m=2000)
    small = feat("s", poly(sq(118.9, 32.05, 0.002)))
    return ZoneCatalogue.from_geojson(fc(feat("D", poly([*ring, ring[0]])), circle, small))


def test_within_contract_against_exact_on_a_large_district() -> None:
    zc = _district()
    rng = np.random.default_rng(9)
    n = 30_000
    z = rng.integers(0, 3, n)
    x = 118.8 + rng.uniform(-0.35, 0.35, n)
    y = 32.0 + rng.uniform(-0.3, 0.3, n)
    exact = zc.signed_distance_m(z, x, y, np.full(n, np.inf))
    inside = shapely.contains_xy(np.array([zc.geometry(i) for i in zc.ids])[z], x, y)
    circle = z == 1
    assert (np.sign(exact[~circle]) == np.where(inside[~circle], -1, 1)).all()
    for w in (0.0, 10.0, 150.0, 1500.0):
        got = zc.signed_distance_m(z, x, y, np.full(n, w))
        assert (np.sign(got) == np.sign(exact)).all()
        near = np.abs(exact) <= w
        assert np.abs(got[near] - exact[near]).max(initial=0.0) < 1e-6
        assert (np.abs(got[~near]) > w).all()


def test_scalar_within_broadcasts_and_empty_input() -> None:
    zc = _district()
    d = zc.signed_distance_m(np.array([0, 2]), np.array([118.8, 118.9]), np.array([32.0, 32.05]), np.float64(50.0))
    assert d[0] < -50 and d[1] < 0
    e = zc.signed_distance_m(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), np.zeros(0))
    assert e.shape == (0,)


def test_bad_query_arguments() -> None:
    zc = _district()
    with pytest.raises(IndexError):
        zc.signed_distance_m(np.array([3]), np.array([118.0]), np.array([32.0]), np.array([1.0]))
    with pytest.raises(ValueError):
        zc.signed_distance_m(np.array([0, 1]), np.array([118.0]), np.array([32.0]), np.array([1.0]))
    with pytest.raises(ValueError):
        zc.signed_distance_m(np.array([0]), np.array([np.nan]), np.array([32.0]), np.array([1.0]))


def test_certainty_band_semantics() -> None:
    # contract: certainly inside <=> d < -accuracy; certainly outside <=> d > accuracy
    zc = ZoneCatalogue.from_geojson(fc(feat("A", poly(sq(118.0, 32.0, 0.01)))))
    kx = float(metres_per_degree(32.0)[0])
    acc = np.array([20.0, 20.0, 20.0, 20.0])
    offs = np.array([-30.0, -10.0, 10.0, 30.0])  # metres east of the east edge
    d = zc.signed_distance_m(np.zeros(4, dtype=np.int64), 118.01 + offs / kx, np.full(4, 32.0), acc)
    certainly_inside = d < -acc
    certainly_outside = d > acc
    assert certainly_inside.tolist() == [True, False, False, False]
    assert certainly_outside.tolist() == [False, False, False, True]


@settings(max_examples=60, deadline=None)
@given(
    lon=st.floats(118.45, 119.15), lat=st.floats(31.65, 32.35),
    w=st.sampled_from([0.0, 5.0, 50.0, 500.0, 5_000.0]), zone=st.integers(0, 2),
)
def test_fast_paths_agree_with_exact(lon: float, lat: float, w: float, zone: int) -> None:
    zc = _DISTRICT
    args = (np.array([zone]), np.array([lon]), np.array([lat]))
    exact = float(zc.signed_distance_m(*args, np.array([np.inf]))[0])
    got = float(zc.signed_distance_m(*args, np.array([w]))[0])
    assert math.copysign(1, got) == math.copysign(1, exact)
    if abs(exact) <= w:
        assert got == pytest.approx(exact, abs=1e-6)
    else:
        assert abs(got) > w


_DISTRICT = _district()


# ------------------------------------------------------------- hot reload


def test_updated_replaces_in_place_and_appends() -> None:
    zc = ZoneCatalogue.from_geojson(fc(feat("A", poly(sq(118.0, 32.0, 0.01))), feat("B", poly(sq(119, 32, 0.01)))))
    z2 = zc.updated([feat("A", poly(sq(118.0, 32.0, 0.02))), feat("C", poly(sq(120, 32, 0.01)))])
    assert z2.ids == ("A", "B", "C")
    assert zc.ids == ("A", "B")  # the original is unchanged
    assert sd(zc, "A", 118.015, 32.0) > 0
    assert sd(z2, "A", 118.015, 32.0) < 0
    assert sd(z2, "C", 120.0, 32.0) < 0
    with pytest.raises(ZoneError) as ei:
        zc.updated([feat("Q", {"type": "LineString", "coordinates": []})])
    assert ei.value.reason == "unsupported_geometry" and "feature 'Q'" in ei.value.detail
    with pytest.raises(ZoneError) as ei:
        zc.updated([feat("Q", poly(sq(118, 32, 0.01))), feat("Q", poly(sq(118, 32, 0.01)))])
    assert ei.value.reason == "duplicate_id"


def test_without_removes_and_reindexes() -> None:
    zc = ZoneCatalogue.from_geojson(fc(*(feat(k, poly(sq(118 + i, 32, 0.01))) for i, k in enumerate("ABC"))))
    z2 = zc.without(["A", "nope"])
    assert z2.ids == ("B", "C") and z2.index_of("C") == 1 and "A" not in z2
    assert sd(z2, "C", 120.0, 32.0) < 0
    assert len(zc.without(zc.ids)) == 0


def test_zones_near_finds_every_zone_within_reach() -> None:
    zc = _district()
    rng = np.random.default_rng(2)
    x = 118.8 + rng.uniform(-0.4, 0.4, 2000)
    y = 32.0 + rng.uniform(-0.4, 0.4, 2000)
    pi, zi = zc.zones_near(x, y, 300.0)
    found = set(zip(pi.tolist(), zi.tolist(), strict=True))
    for z in range(len(zc)):
        d = zc.signed_distance_m(np.full(2000, z), x, y, np.full(2000, 300.0))
        for i in np.flatnonzero(d <= 300.0):
            assert (int(i), z) in found
