"""A synthetic city: county-like districts, schools, bars and victims' homes.

Districts are the cells of a Voronoi diagram of district seats, clipped to
an irregular city outline, whose shared edges are then roughened by
midpoint displacement into boundaries with thousands of vertices (the
shape of real county boundaries that follow rivers and roads). Each shared
edge is roughened once and used by both neighbours, so the districts tile
the city with no gap and no overlap.

Everything here is in the metric :class:`~simulators.frame.LocalFrame`;
:func:`zones_geojson` converts to RFC 7946 longitude/latitude.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import MultiPoint, Point, Polygon

from simulators.frame import LocalFrame

# GB/T 2260 codes and names of Nanjing's districts (the default centre).
NANJING_DISTRICTS: tuple[tuple[str, str], ...] = (
    ("320102", "玄武区"), ("320104", "秦淮区"), ("320105", "建邺区"),
    ("320106", "鼓楼区"), ("320111", "浦口区"), ("320113", "栖霞区"),
    ("320114", "雨花台区"), ("320115", "江宁区"), ("320116", "六合区"),
    ("320117", "溧水区"), ("320118", "高淳区"),
)


@dataclass
class District:
    """One county-like district (an inclusion zone)."""

    code: str
    name: str
    geom: Polygon          # metric frame
    core: Any              # geom shrunk by the routine margin (where people live and move)


@dataclass
class ExclusionZone:
    """A school, bar or victim's home (an exclusion zone)."""

    zone_id: str
    category: str
    geom: Any              # metric polygon (a circle is approximated only for geometry tests)
    center: tuple[float, float]
    radius_m: float | None  # set for circles (GeoJSON Point + radius_m)
    district: str

    def signed_distance(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
        """Metres to the boundary, negative inside (exact for circles)."""
        if self.radius_m is not None:
            return np.hypot(x - self.center[0], y - self.center[1]) - self.radius_m
        pts = shapely.points(x, y)
        d = shapely.distance(pts, self.geom.boundary)
        inside = shapely.contains_xy(self.geom, x, y)
        return np.where(inside, -d, d)


@dataclass
class City:
    """Districts and exclusion zones around a centre."""

    frame: LocalFrame
    radius_m: float
    districts: list[District]
    zones: list[ExclusionZone] = field(default_factory=list)

    def district(self, code: str) -> District:
        for d in self.districts:
            if d.code == code:
                return d
        raise KeyError(code)

    def district_codes_at(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> list[str]:
        """District code of each point (``""`` outside the city)."""
        out = np.full(len(x), "", dtype=object)
        for d in self.districts:
            out[shapely.contains_xy(d.geom, x, y)] = d.code
        return [str(v) for v in out]


def _outline(rng: np.random.Generator, radius: float) -> Polygon:
    """An irregular, star-shaped city outline."""
    n = 48
    ang = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    wobble = 1.0 + 0.12 * np.sin(3 * ang + rng.uniform(0, 6.28)) + rng.uniform(-0.05, 0.05, n)
    r = radius * wobble
    return Polygon(np.column_stack([r * np.cos(ang), r * np.sin(ang)]))


def _seeds(rng: np.random.Generator, outline: Polygon, n: int, radius: float) -> NDArray[np.float64]:
    """District seats spread over the outline (dart throwing with a spacing floor)."""
    pts: list[tuple[float, float]] = [(0.0, 0.0)]
    spacing = radius * 1.6 / math.sqrt(n)
    tries = 0
    while len(pts) < n:
        tries += 1
        x, y = rng.uniform(-radius, radius, 2)
        if not outline.buffer(-spacing * 0.4).contains(Point(x, y)):
            continue
        if min(math.hypot(x - px, y - py) for px, py in pts) < spacing * (0.7 if tries < 5000 else 0.3):
            continue
        pts.append((x, y))
    return np.array(pts)


def _rough(
    a: tuple[float, float], b: tuple[float, float], spacing: float, amp: float,
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    """Midpoint displacement between ``a`` and ``b``; returns points a..b inclusive."""
    length = math.hypot(b[0] - a[0], b[1] - a[1])
    depth = max(0, math.ceil(math.log2(max(length / spacing, 1.0))))
    pts = np.array([a, b], dtype=np.float64)
    scale = amp
    for _ in range(depth):
        p0, p1 = pts[:-1], pts[1:]
        mid = (p0 + p1) / 2
        d = p1 - p0
        seg = np.hypot(d[:, 0], d[:, 1])
        normal = np.column_stack([-d[:, 1], d[:, 0]]) / np.maximum(seg, 1e-9)[:, None]
        off = rng.uniform(-1.0, 1.0, len(mid)) * scale * seg
        mid = mid + normal * off[:, None]
        out = np.empty((len(pts) + len(mid), 2))
        out[0::2] = pts
        out[1::2] = mid
        pts = out
        scale *= 0.78
    return pts


def build_districts(
    rng: np.random.Generator,
    frame: LocalFrame,
    radius_m: float,
    codes: tuple[tuple[str, str], ...],
    detail_m: float,
    core_margin_m: float,
) -> list[District]:
    """Tile the city with roughened Voronoi districts."""
    outline = _outline(rng, radius_m)
    seeds = _seeds(rng, outline, len(codes), radius_m)
    cells = shapely.voronoi_polygons(
        MultiPoint(seeds), extend_to=outline.buffer(radius_m)
    )
    raw: list[Polygon] = []
    for seed in seeds:
        cell = next(c for c in cells.geoms if c.contains(Point(seed)))
        clipped = cell.intersection(outline)
        if clipped.geom_type != "Polygon":  # keep the biggest piece
            clipped = max(clipped.geoms, key=lambda g: g.area)
        raw.append(clipped)
    # Shared edges keyed by their rounded endpoints, roughened once.
    def key(p: tuple[float, float]) -> tuple[int, int]:
        return (round(p[0] * 10), round(p[1] * 10))

    amp = 0.16
    for _attempt in range(8):
        edge_cache: dict[tuple[tuple[int, int], tuple[int, int]], NDArray[np.float64]] = {}
        edge_rng = np.random.default_rng(rng.integers(2**63))
        polys: list[Polygon] = []
        for cell in raw:
            ring = list(shapely.get_coordinates(cell.exterior))[:-1]
            parts: list[NDArray[np.float64]] = []
            for i in range(len(ring)):
                a = (float(ring[i][0]), float(ring[i][1]))
                b = (float(ring[(i + 1) % len(ring)][0]), float(ring[(i + 1) % len(ring)][1]))
                ka, kb = key(a), key(b)
                if (ka, kb) in edge_cache:
                    line = edge_cache[(ka, kb)]
                elif (kb, ka) in edge_cache:
                    line = edge_cache[(kb, ka)][::-1]
                else:
                    line = _rough(a, b, detail_m, amp, edge_rng)
                    edge_cache[(ka, kb)] = line
                parts.append(line[:-1])
            polys.append(Polygon(np.concatenate(parts)))
        if all(p.is_valid for p in polys):
            total = sum(p.area for p in polys)
            try:
                union = shapely.union_all(polys).area
            except shapely.errors.GEOSException:
                union = -1.0
            if abs(union - total) < 1e-6 * total:
                break
        amp *= 0.7  # a roughened edge crossed another: roughen less
    else:  # pragma: no cover - the smooth Voronoi cells are always valid
        polys = raw
    out = []
    for (code, name), poly in zip(codes, polys, strict=True):
        core = poly.buffer(-core_margin_m)
        if core.geom_type == "MultiPolygon":
            core = max(core.geoms, key=lambda g: g.area)
        shapely.prepare(poly)
        shapely.prepare(core)
        out.append(District(code, name, poly, core))
    return out


def _school(rng: np.random.Generator, cx: float, cy: float, with_hole: bool) -> Polygon:
    """A campus: an irregular, rotated polygon, sometimes with a hole."""
    n = int(rng.integers(6, 14))
    ang = np.sort(rng.uniform(0, 2 * math.pi, n))
    r = rng.uniform(90, 160) * rng.uniform(0.75, 1.0, n)
    shell = np.column_stack([cx + r * np.cos(ang), cy + r * np.sin(ang)])
    poly = Polygon(shell)
    if not poly.is_valid:
        poly = poly.convex_hull
    if with_hole:
        # a public block (housing, a road junction) that is not part of the campus
        hole = Point(cx + rng.uniform(-15, 15), cy + rng.uniform(-15, 15)).buffer(
            rng.uniform(30, 45), quad_segs=4
        )
        if poly.buffer(-10).contains(hole):
            poly = Polygon(shell if poly.is_valid else poly.exterior.coords,
                           [list(hole.exterior.coords)[::-1]])
            if not poly.is_valid:
                poly = poly.buffer(0)
    return poly


def place_zones(
    rng: np.random.Generator, city: City, n_schools: int, n_bars: int, n_victims: int
) -> None:
    """Scatter schools, bars and victims' homes over the districts' cores."""
    cores = [d.core for d in city.districts]
    weights = np.array([c.area for c in cores])
    weights /= weights.sum()
    zones: list[ExclusionZone] = []

    def sample(n: int) -> list[tuple[float, float, str]]:
        out: list[tuple[float, float, str]] = []
        while len(out) < n:
            k = int(rng.choice(len(cores), p=weights))
            minx, miny, maxx, maxy = cores[k].bounds
            xs = rng.uniform(minx, maxx, 64)
            ys = rng.uniform(miny, maxy, 64)
            ok = shapely.contains_xy(cores[k], xs, ys)
            for x, y in zip(xs[ok], ys[ok], strict=True):
                if len(out) < n:
                    out.append((float(x), float(y), city.districts[k].code))
        return out

    for i, (x, y, code) in enumerate(sample(n_schools)):
        geom = _school(rng, x, y, with_hole=rng.random() < 0.25)
        zones.append(ExclusionZone(f"Z-school-{i + 1:05d}", "school", geom, (x, y), None, code))
    for i, (x, y, code) in enumerate(sample(n_bars)):
        r = float(rng.uniform(25, 70))
        zones.append(ExclusionZone(f"Z-bar-{i + 1:05d}", "bar", Point(x, y).buffer(r), (x, y), r, code))
    for i, (x, y, code) in enumerate(sample(n_victims)):
        if rng.random() < 0.7:
            r = float(rng.uniform(150, 400))
            geom = Point(x, y).buffer(r)
            zones.append(ExclusionZone(f"Z-victim-{i + 1:05d}", "victim_home", geom, (x, y), r, code))
        else:  # a residential compound drawn as a polygon
            w, h = rng.uniform(120, 260, 2)
            rot = rng.uniform(0, math.pi)
            c, s = math.cos(rot), math.sin(rot)
            box = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
            shell = np.column_stack([x + box[:, 0] * c - box[:, 1] * s, y + box[:, 0] * s + box[:, 1] * c])
            zones.append(
                ExclusionZone(f"Z-victim-{i + 1:05d}", "victim_home", Polygon(shell), (x, y), None, code)
            )
    for z in zones:
        shapely.prepare(z.geom)
    city.zones = zones


def _ring_lonlat(frame: LocalFrame, coords: Any) -> list[list[float]]:
    arr = np.asarray(coords, dtype=np.float64)
    lon, lat = frame.to_lonlat(arr[:, 0], arr[:, 1])
    return [[round(float(a), 7), round(float(b), 7)] for a, b in zip(lon, lat, strict=True)]


def polygon_geojson(frame: LocalFrame, poly: Polygon) -> dict[str, Any]:
    """A metric shapely polygon as a GeoJSON Polygon (CCW shell, CW holes)."""
    poly = shapely.geometry.polygon.orient(poly, 1.0)
    rings = [_ring_lonlat(frame, poly.exterior.coords)]
    rings += [_ring_lonlat(frame, r.coords) for r in poly.interiors]
    return {"type": "Polygon", "coordinates": rings}


def circle_feature(
    frame: LocalFrame, zone_id: str, cx: float, cy: float, radius_m: float, props: dict[str, Any]
) -> dict[str, Any]:
    """A circle zone: GeoJSON Point with ``properties.radius_m``."""
    lon, lat = frame.to_lonlat(cx, cy)
    return {
        "type": "Feature",
        "id": zone_id,
        "geometry": {"type": "Point", "coordinates": [round(float(lon), 7), round(float(lat), 7)]},
        "properties": {"radius_m": round(radius_m, 1), **props},
    }


def district_features(city: City) -> list[dict[str, Any]]:
    """GeoJSON features of the districts (inclusion zones, id = code)."""
    return [
        {
            "type": "Feature",
            "id": d.code,
            "geometry": polygon_geojson(city.frame, d.geom),
            "properties": {"name": d.name, "category": "district", "jurisdiction": d.code},
        }
        for d in city.districts
    ]


def exclusion_features(city: City, used: set[str] | None = None) -> list[dict[str, Any]]:
    """GeoJSON features of the exclusion zones (only ``used`` ones when given)."""
    out: list[dict[str, Any]] = []
    for z in city.zones:
        if used is not None and z.zone_id not in used:
            continue
        props = {"name": z.zone_id, "category": z.category, "jurisdiction": z.district}
        if z.radius_m is not None:
            out.append(circle_feature(city.frame, z.zone_id, z.center[0], z.center[1], z.radius_m, props))
        else:
            out.append({"type": "Feature", "id": z.zone_id,
                        "geometry": polygon_geojson(city.frame, z.geom), "properties": props})
    return out
