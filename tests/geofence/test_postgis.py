"""Cross-check of ZoneCatalogue geometry against PostGIS (independent GEOS/PROJ path).

For concave polygons, polygons with holes and multipolygons at 18-53 N,
24,000 (zone, point) pairs, half of them within a few hundred metres of the
boundary, are loaded into PostGIS in bulk. PostGIS decides containment with
ST_Contains and measures ST_Distance to the boundary after ST_Transform to a
transverse Mercator centred on the zone (WGS 84 ellipsoid; the boundary is
first segmentized in degrees so its edges stay the lon/lat-straight edges of
RFC 7946). Outside a 1 m band around the boundary, the sign and the distance
from signed_distance_m must agree, and so must the certain-inside /
certain-outside decisions for random accuracies.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import asyncpg
import numpy as np
import pytest

from geofence.geo import metres_per_degree
from geofence.zones import ZoneCatalogue

N_PER_ZONE = 4_000


def _blob(lon: float, lat: float, r_deg: float, n: int, rng: np.random.Generator, lobes: int = 5) -> list[list[float]]:
    a = (np.arange(n) + rng.uniform(-0.3, 0.3, n)) * (2 * math.pi / n)
    r = r_deg * (1 + 0.45 * np.sin(lobes * a) + 0.12 * rng.uniform(-1, 1, n))
    c = math.cos(math.radians(lat))
    ring = np.column_stack([lon + r * np.cos(a) / c, lat + r * np.sin(a)]).round(8).tolist()
    return [*ring, ring[0]]


def _comb(lon: float, lat: float) -> list[list[float]]:
    """A comb: deeply concave, with reflex vertices 200 m apart."""
    ring = [[lon, lat]]
    for i in range(6):
        x = lon + i * 0.004
        ring += [[x, lat + 0.02], [x + 0.002, lat + 0.02], [x + 0.002, lat + 0.003]]
    ring += [[lon + 0.024, lat + 0.003], [lon + 0.024, lat], [lon, lat]]
    return ring


def _zones(rng: np.random.Generator) -> dict[str, Any]:
    def f(zid: str, geom: dict[str, Any]) -> dict[str, Any]:
        return {"type": "Feature", "id": zid, "properties": {}, "geometry": geom}

    holes = [_blob(113.3 + dx, 23.1 + dy, 0.004, 40, rng, 3)[::-1] for dx, dy in ((0.008, 0.0), (-0.008, 0.002))]
    return {"type": "FeatureCollection", "features": [
        f("concave-nanjing", {"type": "Polygon", "coordinates": [_blob(118.8, 32.06, 0.05, 800, rng)]}),
        f("holes-guangzhou", {"type": "Polygon", "coordinates": [_blob(113.3, 23.1, 0.05, 500, rng), *holes]}),
        f("multi-harbin", {"type": "MultiPolygon", "coordinates": [
            [_blob(126.6, 45.75, 0.03, 300, rng), _blob(126.6, 45.75, 0.006, 30, rng, 2)[::-1]],
            [_blob(126.76, 45.75, 0.03, 300, rng)],
        ]}),
        f("comb-sanya", {"type": "Polygon", "coordinates": [_comb(109.5, 18.25)]}),
        f("concave-mohe", {"type": "Polygon", "coordinates": [_blob(122.5, 52.97, 0.04, 600, rng, 7)]}),
        f("multi-holes-chengdu", {"type": "MultiPolygon", "coordinates": [
            [_blob(104.06, 30.66, 0.02, 200, rng), _blob(104.06, 30.66, 0.005, 24, rng, 2)[::-1]],
            [_blob(104.12, 30.70, 0.02, 200, rng, 4), _blob(104.12, 30.70, 0.004, 24, rng, 2)[::-1]],
        ]}),
    ]}


def _points(zc: ZoneCatalogue, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    zs, xs, ys = [], [], []
    for i, zid in enumerate(zc.ids):
        x0, y0, x1, y1 = zc.bounds(zid)
        mx, my = 0.2 * (x1 - x0), 0.2 * (y1 - y0)
        half = N_PER_ZONE // 2
        ux = rng.uniform(x0 - mx, x1 + mx, half)
        uy = rng.uniform(y0 - my, y1 + my, half)
        # the other half near the boundary: a boundary vertex plus up to ~300 m
        coords = np.concatenate([np.asarray(r.coords)[:, :2] for r in _rings(zc.geometry(zid))])
        pick = coords[rng.integers(0, len(coords), N_PER_ZONE - half)]
        kx, ky = (float(v) for v in metres_per_degree((y0 + y1) / 2))
        r = rng.exponential(60.0, len(pick))
        a = rng.uniform(0, 2 * math.pi, len(pick))
        nx = pick[:, 0] + r * np.cos(a) / kx
        ny = pick[:, 1] + r * np.sin(a) / ky
        zs.append(np.full(N_PER_ZONE, i))
        xs.append(np.concatenate([ux, nx]))
        ys.append(np.concatenate([uy, ny]))
    return np.concatenate(zs).astype(np.int64), np.concatenate(xs), np.concatenate(ys)


def _rings(g: Any) -> list[Any]:
    polys = list(g.geoms) if hasattr(g, "geoms") else [g]
    return [r for p in polys for r in (p.exterior, *p.interiors)]


async def _postgis(dsn: str, zc: ZoneCatalogue, z: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import json

    schema = f"zones_xcheck_{uuid.uuid4().hex[:8]}"
    rng_srid = np.random.default_rng()
    srids: list[int] = []
    conn = await asyncpg.connect(dsn)
    try:
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        except asyncpg.PostgresError as e:
            pytest.fail(f"PostGIS is needed for this cross-check (apt-get install postgresql-15-postgis-3): {e}")
        await conn.execute(f"CREATE SCHEMA {schema}")
        try:
            await conn.execute(f"""
                CREATE TABLE {schema}.zone (idx int PRIMARY KEY, geom geometry, srid int, edge geometry);
                CREATE TABLE {schema}.pt (id int PRIMARY KEY, zone int, geom geometry);""")
            # PROJ pipelines are cached per SRID (a proj string per call would rebuild one each
            # time), so each zone's transverse Mercator gets a private SRID for this test
            base = 910000 + int(rng_srid.integers(0, 80_000))
            rows = []
            for i, zid in enumerate(zc.ids):
                x0, y0, x1, y1 = zc.bounds(zid)
                proj = (f"+proj=tmerc +lat_0={(y0 + y1) / 2:.6f} +lon_0={(x0 + x1) / 2:.6f} +k=1 "
                        "+x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs")
                rows.append((i, json.dumps(zc.feature(zid)["geometry"]), base + i, proj))
            srids = [r[2] for r in rows]
            await conn.executemany(
                "INSERT INTO spatial_ref_sys (srid, auth_name, auth_srid, proj4text) VALUES ($1, 'wardstream', $1, $2)",
                [(r[2], r[3]) for r in rows])
            await conn.executemany(
                f"INSERT INTO {schema}.zone VALUES ($1, ST_SetSRID(ST_GeomFromGeoJSON($2), 4326), $3)",
                [r[:3] for r in rows])
            # the boundary, segmentized in degrees, on the zone's own transverse Mercator
            await conn.execute(
                f"UPDATE {schema}.zone SET edge = ST_Transform(ST_Segmentize(ST_Boundary(geom), 0.0005), srid)")
            await conn.execute(
                f"""INSERT INTO {schema}.pt
                    SELECT g.i - 1, g.z, ST_SetSRID(ST_MakePoint(g.x, g.y), 4326)
                    FROM unnest($1::int[], $2::float8[], $3::float8[]) WITH ORDINALITY AS g(z, x, y, i)""",
                z.tolist(), x.tolist(), y.tolist())
            res = await conn.fetch(f"""
                SELECT p.id, ST_Contains(b.geom, p.geom) AS inside,
                       ST_Distance(b.edge, ST_Transform(p.geom, b.srid)) AS dist
                FROM {schema}.pt p JOIN {schema}.zone b ON b.idx = p.zone ORDER BY p.id""")
        finally:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
            await conn.execute("DELETE FROM spatial_ref_sys WHERE srid = ANY($1::int[])", srids)
    finally:
        await conn.close()
    inside = np.array([r["inside"] for r in res], dtype=bool)
    dist = np.array([r["dist"] for r in res], dtype=np.float64)
    assert len(dist) == len(z)
    return inside, dist


async def test_signed_distance_agrees_with_postgis(database_url: str) -> None:
    rng = np.random.default_rng(2026)
    zc = ZoneCatalogue.from_geojson(_zones(rng))
    assert all(not zc.repairs(zid) for zid in zc.ids)  # test shapes are valid as written
    z, x, y = _points(zc, rng)
    assert len(z) >= 20_000
    pg_inside, pg_dist = await _postgis(database_url, zc, z, x, y)
    pg_signed = np.where(pg_inside, -pg_dist, pg_dist)

    exact = zc.signed_distance_m(z, x, y, np.full(len(z), np.inf))
    band = pg_dist > 1.0
    near = pg_dist < 300.0
    assert band.sum() > 20_000 and (band & near).sum() > 8_000  # the check is dense near the boundary
    assert (np.sign(exact[band]) == np.sign(pg_signed[band])).all()
    err = np.abs(exact - pg_signed)
    # millimetres near the boundary, centimetres up to ~10 km (docs/zones.md; the
    # TM scale error is below 1e-6 within 10 km of its central meridian)
    assert err[band & near].max() < 0.002, err[band & near].max()
    assert err[band].max() < 0.05, err[band].max()

    # the fast paths, with within_m = a random accuracy: same decisions
    acc = rng.choice([5.0, 10.0, 25.0, 50.0, 100.0, 500.0], len(z))
    fast = zc.signed_distance_m(z, x, y, acc)
    clear = np.abs(pg_dist - acc) > 1.0
    for mine, theirs in (
        (fast < -acc, pg_inside & (pg_dist > acc)),   # certainly inside
        (fast > acc, ~pg_inside & (pg_dist > acc)),   # certainly outside
    ):
        assert (mine[clear] == theirs[clear]).all()


async def test_circles_and_point_distances_agree_with_postgis_geography(database_url: str) -> None:
    # circles: distance to the centre on the WGS 84 spheroid (PostGIS geography,
    # an independent geodesic implementation) minus the radius
    rng = np.random.default_rng(7)
    centres = [(118.79, 32.06, 150.0), (126.6, 45.75, 2_000.0), (109.5, 18.25, 40.0), (122.5, 52.97, 800.0)]
    zc = ZoneCatalogue.from_geojson({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": f"C{i}", "properties": {"radius_m": r},
         "geometry": {"type": "Point", "coordinates": [lon, lat]}} for i, (lon, lat, r) in enumerate(centres)]})
    n = 2_000
    z = np.repeat(np.arange(len(centres)), n // len(centres))
    clon = np.array([c[0] for c in centres])[z]
    clat = np.array([c[1] for c in centres])[z]
    rad = np.array([c[2] for c in centres])[z]
    kx, ky = metres_per_degree(clat)
    dist = rad * rng.uniform(0.0, 3.0, len(z))
    az = rng.uniform(0, 2 * math.pi, len(z))
    x = clon + dist * np.sin(az) / kx
    y = clat + dist * np.cos(az) / ky
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        rows = await conn.fetch(
            """SELECT ST_Distance(ST_MakePoint(cx, cy)::geography, ST_MakePoint(px, py)::geography, true) AS d
               FROM unnest($1::float8[], $2::float8[], $3::float8[], $4::float8[])
                    WITH ORDINALITY AS t(cx, cy, px, py, i) ORDER BY i""",
            clon.tolist(), clat.tolist(), x.tolist(), y.tolist())
    finally:
        await conn.close()
    geodesic = np.array([r["d"] for r in rows])
    ref = geodesic - rad
    got = zc.signed_distance_m(z.astype(np.int64), x, y, np.full(len(z), np.inf))
    band = np.abs(ref) > 1.0
    assert (np.sign(got[band]) == np.sign(ref[band])).all()
    assert np.abs(got - ref).max() < 0.002, np.abs(got - ref).max()  # observed 0.3 mm
