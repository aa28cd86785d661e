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


@pytest.mark.parametrize("lat", [18.0, 32.0, 45.0, 54.0])
@pytest.mark.parametrize(
    ("dist", "tol"), [(300.0, 0.002), (1_000.0, 0.002), (10_000.0, 0.02)],
)
def test_distance_to_boundary_error_bound(
    lat: float, dist: float, tol: float, vincenty_segment: Callable[..., float],
) -> None:
    # docs/zones.md: the error bound of signed_distance_m against geodesic
    # distances to the lon/lat-straight edge (Vincenty, minimised along the edge)
    rng = np.random.default_rng(int(lat * dist))
    x0, x1 = 110.0, 110.6
    ky = float(metres_per_degree(lat)[1])
    kx = float(metres_per_degree(lat)[0])
    edges = {
        "horizontal": [[x0, lat], [x1, lat], [x1, lat + 0.6], [x0, lat + 0.6], [x0, lat]],
        "diagonal": [[x0, lat], [x1, lat + 0.6], [x0, lat + 0.6], [x0, lat]],
    }
    for name, ring in edges.items():
        zc = ZoneCatalogue.from_geojson(fc(feat(name, poly(ring))))
        sx, sy, ex, ey = ring[0][0], ring[0][1], ring[1][0], ring[1][1]
        t = rng.uniform(0.3, 0.7, 4)
        bx, by = sx + (ex - sx) * t, sy + (ey - sy) * t
        # unit normal of the edge in metres, pointing out of the zone (to the right)
        nx, ny = (ey - sy) * ky, -(ex - sx) * kx
        norm = math.hypot(nx, ny)
        for sign in (1.0, -1.0):  # outside, then inside
            off = sign * rng.uniform(0.5, 1.0, 4) * dist
            px = bx + off * nx / norm / kx
            py = by + off * ny / norm / ky
            got = zc.signed_distance_m(np.zeros(4, dtype=np.int64), px, py, np.full(4, np.inf))
            for g, a, b in zip(got, px, py, strict=True):
                ref = vincenty_segment(a, b, sx, sy, ex, ey)
                assert math.copysign(1.0, g) == sign
                assert abs(abs(g) - ref) < tol, (name, lat, dist, g, ref)


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


def test_index_finds_the_nearest_edge_like_a_brute_force_scan() -> None:
    # independent of the chunk index and the raster: for each point, project
    # the whole boundary into a plane tangent at the point and let GEOS
    # measure; a missed candidate chunk would show up as metres of error
    zc = _district(seed=4, n=2500)
    g = zc.geometry("D")
    ring = np.asarray(g.exterior.coords)
    rng = np.random.default_rng(11)
    pick = ring[rng.integers(0, len(ring) - 1, 400)]
    kx0, ky0 = (float(v) for v in metres_per_degree(32.0))
    r = rng.uniform(0, 600, 400)
    a = rng.uniform(0, 2 * math.pi, 400)
    px = pick[:, 0] + r * np.cos(a) / kx0
    py = pick[:, 1] + r * np.sin(a) / ky0
    within = rng.choice([20.0, 300.0, np.inf], 400)
    got = zc.signed_distance_m(np.zeros(400, dtype=np.int64), px, py, within)
    for i in range(400):
        kx, ky = (float(v) for v in metres_per_degree(py[i]))
        local = shapely.LineString(np.column_stack([(ring[:, 0] - px[i]) * kx, (ring[:, 1] - py[i]) * ky]))
        ref = local.distance(shapely.Point(0.0, 0.0))
        inside = g.contains(shapely.Point(px[i], py[i]))
        assert math.copysign(1, got[i]) == (-1 if inside else 1)
        if ref < within[i] - 0.05:
            assert abs(abs(got[i]) - ref) < 0.05, (i, got[i], ref)
        elif ref > within[i] + 0.05:
            assert abs(got[i]) > within[i]


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-200, 200) | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda c: st.lists(c, max_size=5) | st.dictionaries(st.sampled_from(
        ["type", "id", "geometry", "coordinates", "properties", "radius_m", "name", "features"]), c, max_size=5),
    max_leaves=30,
)
_geometry = st.fixed_dictionaries({
    "type": st.sampled_from(["Polygon", "MultiPolygon", "Point", "LineString", "Nope"]),
    "coordinates": _json,
})


@settings(max_examples=300, deadline=None)
@given(features=st.lists(st.fixed_dictionaries(
    {"type": st.sampled_from(["Feature", "feature"]), "id": st.one_of(st.text(max_size=3), st.integers(0, 3)),
     "geometry": st.one_of(_geometry, _json), "properties": st.one_of(st.none(), _json)}), max_size=4))
def test_garbage_raises_only_zone_error(features: list[dict[str, Any]]) -> None:
    try:
        zc = ZoneCatalogue.from_geojson(fc(*features))
    except ZoneError as e:
        assert e.reason and e.detail
        return
    assert len(zc) == len(features)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000), lat=st.floats(18, 54), n=st.integers(3, 300),
    hole=st.booleans(), within=st.sampled_from([0.0, 30.0, 300.0, np.inf]),
)
def test_random_polygons_sign_and_vertex_bound(seed: int, lat: float, n: int, hole: bool, within: float) -> None:
    rng = np.random.default_rng(seed)
    a = (np.arange(n) + rng.uniform(-0.3, 0.3, n)) * (2 * math.pi / n)
    r = 0.01 * (1 + 0.5 * np.sin(3 * a) * rng.uniform(0, 1) + 0.1 * rng.uniform(-1, 1, n))
    c = math.cos(math.radians(lat))
    shell = np.column_stack([115 + r * np.cos(a) / c, lat + r * np.sin(a)]).tolist()
    rings = [[*shell, shell[0]]]
    if hole and n >= 12:  # the shell's inner radius is then > 0.003 degrees
        rings.append(sq(115.0, lat, 0.0008)[::-1])
    zc = ZoneCatalogue.from_geojson(fc(feat("R", poly(*rings))))
    m = 300
    px = 115 + rng.uniform(-0.02, 0.02, m) / c
    py = lat + rng.uniform(-0.02, 0.02, m)
    d = zc.signed_distance_m(np.zeros(m, dtype=np.int64), px, py, np.full(m, within))
    inside = shapely.contains_xy(zc.geometry("R"), px, py)
    assert ((d < 0) == inside).all()
    # every vertex is on the boundary: no distance within reach exceeds the nearest vertex
    verts = np.concatenate([np.asarray(rg) for rg in rings])
    nearest_vertex = distance_m(px[:, None], py[:, None], verts[None, :, 0], verts[None, :, 1]).min(axis=1)
    exact = np.abs(d) <= within
    assert (np.abs(d[exact]) <= nearest_vertex[exact] + 1e-3).all()
    assert (np.abs(d[~exact]) > within).all()


@pytest.mark.parametrize("lat", [18.0, 54.0, 70.0])
def test_large_circle_bounds_hold_the_whole_circle(lat: float) -> None:
    # a 100 km circle: its widest longitude is poleward of the centre; points
    # 5 m outside it must not be settled by the bounding box as far away
    zc = ZoneCatalogue.from_geojson(fc(feat("C", {"type": "Point", "coordinates": [100.0, lat]}, radius_m=100_000)))
    kx, ky = (float(v) for v in metres_per_degree(lat))
    az = np.linspace(0, 2 * math.pi, 720, endpoint=False)
    lo = np.zeros(len(az))
    hi = np.full(len(az), 200_000.0)
    for _ in range(60):  # bisect (all azimuths at once) for the point 5 m past the circle
        mid = (lo + hi) / 2
        d = distance_m(100.0, lat, 100.0 + mid * np.sin(az) / kx, lat + mid * np.cos(az) / ky)
        inner = d < 100_005.0
        lo = np.where(inner, mid, lo)
        hi = np.where(inner, hi, mid)
    lon = 100.0 + lo * np.sin(az) / kx
    la = lat + lo * np.cos(az) / ky
    d = zc.signed_distance_m(np.zeros(len(az), dtype=np.int64), lon, la, np.full(len(az), 10.0))
    assert np.abs(d - 5.0).max() < 0.01


def test_each_pair_is_independent_of_its_batch() -> None:
    # replay determinism: a fix must get the same bits whatever else shares its
    # batch (shuffled input, other batch sizes, the pair alone)
    zc = _DISTRICT
    rng = np.random.default_rng(5)
    n = 5_000
    z = rng.integers(0, 3, n)
    x = 118.8 + rng.uniform(-0.35, 0.35, n)
    y = 32.0 + rng.uniform(-0.3, 0.3, n)
    w = rng.choice([0.0, 20.0, 300.0, np.inf], n)
    whole = zc.signed_distance_m(z, x, y, w)
    perm = rng.permutation(n)
    shuffled = np.empty(n)
    shuffled[perm] = zc.signed_distance_m(z[perm], x[perm], y[perm], w[perm])
    assert np.array_equal(whole, shuffled)
    pieces = np.concatenate([zc.signed_distance_m(z[s:s + 7], x[s:s + 7], y[s:s + 7], w[s:s + 7])
                             for s in range(0, n, 7)])
    assert np.array_equal(whole, pieces)
    alone = [float(zc.signed_distance_m(z[i:i + 1], x[i:i + 1], y[i:i + 1], w[i:i + 1])[0]) for i in range(0, n, 97)]
    assert alone == whole[::97].tolist()


def test_boundary_chunks_are_continuous_runs() -> None:
    # the hot path reads each chunk as a polyline of CHUNK + 1 vertices; that
    # holds only if every segment starts where the previous one ended
    g = {"type": "MultiPolygon", "coordinates": [
        [sq(118.0, 32.0, 0.05), sq(118.0, 32.0, 0.004)],  # long edges: densified
        [_district(seed=2, n=700).feature("D")["geometry"]["coordinates"][0]],
    ]}
    zc = ZoneCatalogue.from_geojson(fc(feat("M", g)))
    c = zc._chunks
    assert len(c) > 10
    assert np.array_equal(c[:, :-1, 2:], c[:, 1:, :2])


# ------------------------------------------------------------- batch build = single path
# from_geojson builds circles and simple polygons in vectorised batches and
# sends everything else through _make_zone; the result must be the catalogue
# that _make_zone alone builds, array for array, distance for distance.


def _single_path(features: list[Any]) -> ZoneCatalogue:
    from geofence.zones import _make_zone

    return ZoneCatalogue([_make_zone(f, i) for i, f in enumerate(features)])


def _same_catalogue(a: ZoneCatalogue, b: ZoneCatalogue) -> None:
    assert a.ids == b.ids
    for za, zb in zip(a._zones, b._zones, strict=True):
        assert (za.id, za.feature, za.kind, za.bbox, za.center, za.radius_m, za.repairs) == \
               (zb.id, zb.feature, zb.kind, zb.bbox, zb.center, zb.radius_m, zb.repairs)
        assert np.array_equal(za.chunks, zb.chunks) and (za.grid is None) == (zb.grid is None)
        assert (za.geom is None) == (zb.geom is None)
        if za.geom is not None:
            assert shapely.equals_exact(za.geom, zb.geom, 0.0)
    for name in ("_bbox", "_center", "_radius", "_is_circle", "_chunks", "_chunk_zone", "_chunk_bbox",
                 "_vx", "_vy", "_grid_i", "_grid_f", "_grid_state", "_grid_clear", "_cell_start",
                 "_cell_count", "_cell_chunks"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name


def _mixed_features(rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        lon = float(rng.uniform(100, 125))
        lat = float(rng.uniform(18, 54))
        kind = int(rng.integers(0, 9))
        if kind <= 2:  # circles: floats, ints, a 3-d position (single path)
            c: list[Any] = [lon, lat] if kind < 2 else [round(lon), round(lat), 5]
            out.append(feat(f"c{i}", {"type": "Point", "coordinates": c},
                            radius_m=float(rng.uniform(5, 3000)) if kind == 0 else int(rng.integers(1, 500))))
            continue
        k = int(rng.integers(3, 40))
        a = np.sort(rng.uniform(0, 2 * np.pi, k))
        scale = float(rng.choice([0.0005, 0.003, 0.03]))  # the largest need a raster (single path)
        ring = np.column_stack([lon + scale * np.cos(a), lat + scale * np.sin(a)]).round(7).tolist()
        ring.append(ring[0])
        if kind == 4:
            ring = [[int(x * 1000) / 1000 if j % 2 else x for j, x in enumerate(p)] for p in ring]
            ring[-1] = ring[0]
        elif kind == 5:
            ring = ring[:-1]  # unclosed: closed and reported by the single path
        elif kind == 6:
            ring.insert(1, list(ring[0]))  # a repeated position: dropped by the single path
        elif kind == 7 and k >= 4:
            ring[1], ring[2] = ring[2], ring[1]  # maybe self-intersecting: repaired or rejected
        g = poly(ring)
        if kind == 8:
            g = poly(ring, sq(lon, lat, scale / 10)[::-1])  # a hole
        props = {"name": f"zone {i}"} if i % 3 else {"id": f"p{i}"}
        out.append(feat(None if "id" in props else f"p{i}", g, **props))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_batch_build_equals_single_path(seed: int) -> None:
    rng = np.random.default_rng(seed)
    features = _mixed_features(rng, 300)
    rejected = 0
    while True:
        try:
            single = _single_path(features)
            break
        except ZoneError as e:  # same error from the batch build; then drop that feature
            err = reject(fc(*features))
            assert (err.reason, err.detail) == (e.reason, e.detail)
            features = [f for f in features if f"feature '{f.get('id') or f['properties']['id']}'"
                        not in e.detail]
            rejected += 1
    assert len(features) > 250
    batch = ZoneCatalogue.from_geojson(fc(*features))
    _same_catalogue(batch, single)
    # and the same bits on random points near every zone, for every within_m
    m = 20_000
    z = rng.integers(0, len(batch), m)
    cen = batch._center[z]
    x = cen[:, 0] + rng.normal(0, 0.01, m)
    y = cen[:, 1] + rng.normal(0, 0.01, m)
    w = rng.choice([0.0, 30.0, 500.0, np.inf], m)
    assert np.array_equal(batch.signed_distance_m(z, x, y, w), single.signed_distance_m(z, x, y, w))


def test_bench_shapes_batch_build_equals_single_path() -> None:
    # the shapes of bench/bench_engine.py: 12-gon exclusion zones, circles, districts
    rng = np.random.default_rng(3)
    features: list[dict[str, Any]] = []
    for i in range(400):
        x, y = 118.79 + rng.uniform(-0.25, 0.25), 32.06 + rng.uniform(-0.21, 0.21)
        r = rng.uniform(50, 300)
        if i % 2 == 0:
            features.append(feat(f"X-{i}", {"type": "Point", "coordinates": [x, y]}, radius_m=float(r)))
        else:
            a = np.linspace(0, 2 * np.pi, 12, endpoint=False) + rng.uniform(0, 1)
            rr = r * rng.uniform(0.7, 1.0, 12)
            kx, ky = (float(v) for v in metres_per_degree(32.06))
            ring = np.column_stack([x + rr * np.cos(a) / kx, y + rr * np.sin(a) / ky]).round(7).tolist()
            features.append(feat(f"X-{i}", poly([*ring, ring[0]])))
    features.append(_district().feature("D"))
    batch = ZoneCatalogue.from_geojson(json.dumps(fc(*features)))
    single = _single_path(json.loads(json.dumps(features)))
    _same_catalogue(batch, single)


@pytest.mark.parametrize("bad_at", [0, 5, 9])
def test_batch_build_reports_the_first_bad_feature(bad_at: int) -> None:
    good = [feat(f"c{i}", {"type": "Point", "coordinates": [118.0 + i / 100, 32.0]}, radius_m=100) for i in range(5)]
    good += [feat(f"p{i}", poly(sq(118.0 + i / 100, 32.1, 0.001))) for i in range(5)]
    cases = [
        feat("B1", {"type": "Point", "coordinates": [118.0, 95.0]}, radius_m=10),
        feat("B2", {"type": "Point", "coordinates": [118.0, 32.0]}, radius_m=0),
        feat("B3", {"type": "Point", "coordinates": [118.0, True]}, radius_m=10),
        feat("B4", poly([[118, 32], [118.5, 32], [119, 32], [118, 32]])),
        feat("B5", poly([[118, 32], [181, 32], [118, 33], [118, 32]])),
        feat("B6", poly([[118, 32], [118.1, 32], [False, 32.1], [118, 32]])),
        feat("p0", poly(sq(119, 32, 0.001))),  # duplicate id
        feat("B8", poly([[118.0, 32.0], [118.1, 32.1], [118.1, 32.0], [118.0, 32.1], [118.0, 32.0]])),
    ]
    for bad in cases:
        for second in cases:
            features = list(good)
            features.insert(bad_at, bad)
            features.append(second)
            got = reject(fc(*features))
            with pytest.raises(ZoneError) as ref:
                _single_path(features)
            assert (got.reason, got.detail) == (ref.value.reason, ref.value.detail)
