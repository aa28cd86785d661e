"""Benchmark: ZoneCatalogue.signed_distance_m against a naive per-pair loop.

Generates its own data around Nanjing (32.06 N, 118.79 E): district-sized
irregular polygons with thousands of vertices (inclusion zones) and 20,000
small exclusion zones (circles, polygons, some with holes); then classifies
1,000,000 (zone, point) pairs with the vectorised path, batch by batch, and,
in the same run, a naive baseline on a subsample: per pair, rtree candidates
over zone bounds, then shapely ``contains`` and ``distance`` in a Python loop.

Run::

    PYTHONPATH=. python bench/bench_zones.py            # full size
    PYTHONPATH=. python bench/bench_zones.py --pairs 200000 --quick
    PYTHONPATH=. python bench/bench_zones.py --setup    # loading costs of `wardstream replay`

``--setup`` measures instead what ``wardstream replay`` pays before the
first fix, on the world of bench/bench_engine.py (70,016 zones, 50,000
orders), each repeat in a fresh process that first calls ``tune_gc`` as
the replay command does: ``load_zones`` (file read, JSON decode, catalogue
build), ``parse_orders`` (file bytes) and ``compile_orders``; and, in the
same processes, the reference paths: the zone-by-zone build
(``_make_zone``), the order-by-order parse (``{"orders": [...]}`` form) and
per-order ``compile_order``.

Prints one table and a JSON line (for ``wardstream bench``).
"""

from __future__ import annotations

import os

# one BLAS thread per process, as a worker runs (set before numpy is imported)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import math
import platform
import resource
import sys
import time
from typing import Any

import numpy as np
import rtree
import shapely

from geofence.geo import metres_per_degree
from geofence.zones import ZoneCatalogue

LON0, LAT0 = 118.79, 32.06


def district_ring(cx: float, cy: float, radius_deg: float, n: int, rng: np.random.Generator,
                  harmonics: int = 40, amplitude: float = 0.25, noise: float = 0.004,
                  floor: float = 0.35) -> list[list[float]]:
    """An irregular star-shaped ring: a few harmonics plus fine noise (no self-crossing).

    Also used by bench_engine.py (with its own shape parameters).
    """
    a = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, harmonics):
        r += rng.normal(0, amplitude / k) * np.sin(k * a + rng.uniform(0, 2 * np.pi))
    r += rng.normal(0, noise, n)
    r = radius_deg * np.clip(r, floor, None)
    xs = cx + r * np.cos(a) / math.cos(math.radians(cy))
    ys = cy + r * np.sin(a)
    ring = np.column_stack([xs, ys]).round(7).tolist()
    return [*ring, ring[0]]


def small_zone(i: int, rng: np.random.Generator, box: tuple[float, float, float, float]) -> dict[str, Any]:
    x = float(rng.uniform(box[0], box[2]))
    y = float(rng.uniform(box[1], box[3]))
    kx, ky = (float(v) for v in metres_per_degree(y))
    kind = i % 4
    if kind in (0, 1):  # circle, 50-300 m
        return {"type": "Feature", "id": f"X-{i}", "properties": {"radius_m": float(rng.uniform(50, 300)),
                                                                 "category": "school"},
                "geometry": {"type": "Point", "coordinates": [x, y]}}
    n = int(rng.integers(8, 64))
    a = (np.arange(n) + rng.uniform(-0.3, 0.3, n)) * (2 * np.pi / n)
    rad = rng.uniform(80, 400) * (1 + 0.3 * rng.uniform(-1, 1, n))
    ring = np.column_stack([x + rad * np.cos(a) / kx, y + rad * np.sin(a) / ky]).tolist()
    rings = [[*ring, ring[0]]]
    if kind == 3:  # a hole (a courtyard)
        h = 0.25 * float(rad.min())
        rings.append([[x - h / kx, y - h / ky], [x - h / kx, y + h / ky], [x + h / kx, y + h / ky],
                      [x + h / kx, y - h / ky], [x - h / kx, y - h / ky]])
    return {"type": "Feature", "id": f"X-{i}", "properties": {"category": "bar"},
            "geometry": {"type": "Polygon", "coordinates": rings}}


def build(n_districts: int, n_small: int, vertices: tuple[int, int], seed: int) -> tuple[dict[str, Any], int]:
    rng = np.random.default_rng(seed)
    feats: list[dict[str, Any]] = []
    side = math.ceil(math.sqrt(n_districts))
    total_vertices = 0
    for i in range(n_districts):
        cx = LON0 + (i % side - side / 2) * 0.42
        cy = LAT0 + (i // side - side / 2) * 0.36
        n = int(rng.integers(vertices[0], vertices[1] + 1))
        total_vertices += n
        feats.append({"type": "Feature", "id": f"D-{i}", "properties": {"category": "county"},
                      "geometry": {"type": "Polygon", "coordinates": [district_ring(cx, cy, 0.2, n, rng)]}})
    half = side / 2 * 0.42
    box = (LON0 - half, LAT0 - half, LON0 + half, LAT0 + half)
    feats.extend(small_zone(i, rng, box) for i in range(n_small))
    return {"type": "FeatureCollection", "features": feats}, total_vertices


def make_pairs(zc: ZoneCatalogue, n_pairs: int, n_districts: int, seed: int) -> tuple[np.ndarray, ...]:
    """A quarter of the pairs test a district, three quarters a small zone."""
    rng = np.random.default_rng(seed + 1)
    nd = n_pairs // 4
    ns = n_pairs - nd
    zd = rng.integers(0, n_districts, nd)
    bb = np.array([zc.bounds(zc.ids[i]) for i in range(n_districts)])
    # people live in their district: 95 % of the points inside, the rest anywhere near it
    xd = rng.uniform(bb[zd, 0], bb[zd, 2])
    yd = rng.uniform(bb[zd, 1], bb[zd, 3])
    geoms = np.array([zc.geometry(zc.ids[i]) for i in range(n_districts)])
    for _ in range(30):
        bad = ~shapely.contains_xy(geoms[zd], xd, yd) & (rng.uniform(size=nd) < 0.95)
        if not bad.any():
            break
        xd[bad] = rng.uniform(bb[zd[bad], 0], bb[zd[bad], 2])
        yd[bad] = rng.uniform(bb[zd[bad], 1], bb[zd[bad], 3])
    zs = rng.integers(n_districts, len(zc), ns)
    # small zones: 10 % of the points within ~1 km of their zone, the rest anywhere
    sb = np.array([zc.bounds(zc.ids[i]) for i in range(n_districts, len(zc))])
    lo = bb[:, :2].min(axis=0)
    hi = bb[:, 2:].max(axis=0)
    xs = rng.uniform(lo[0], hi[0], ns)
    ys = rng.uniform(lo[1], hi[1], ns)
    near = rng.uniform(size=ns) < 0.10
    b = sb[zs[near] - n_districts]
    xs[near] = (b[:, 0] + b[:, 2]) / 2 + rng.uniform(-0.01, 0.01, near.sum())
    ys[near] = (b[:, 1] + b[:, 3]) / 2 + rng.uniform(-0.009, 0.009, near.sum())
    z = np.concatenate([zd, zs])
    x = np.concatenate([xd, xs])
    y = np.concatenate([yd, ys])
    # within_m: accuracy for inclusion (10-50 m), buffer + accuracy for exclusion (100-300 m)
    w = np.concatenate([rng.uniform(10, 50, nd), rng.uniform(100, 300, ns)])
    order = rng.permutation(n_pairs)
    return z[order].astype(np.int64), x[order], y[order], w[order]


def boundary_pairs(zc: ZoneCatalogue, n_pairs: int, n_districts: int, seed: int) -> tuple[np.ndarray, ...]:
    """Worst case: every point within a few hundred metres of a district boundary."""
    rng = np.random.default_rng(seed + 2)
    z = rng.integers(0, n_districts, n_pairs)
    x = np.empty(n_pairs)
    y = np.empty(n_pairs)
    for i in range(n_districts):
        m = np.flatnonzero(z == i)
        c = np.asarray(zc.geometry(zc.ids[i]).exterior.coords)
        pick = c[rng.integers(0, len(c) - 1, len(m))]
        kx, ky = (float(v) for v in metres_per_degree(float(c[:, 1].mean())))
        r = rng.exponential(120.0, len(m))
        a = rng.uniform(0, 2 * np.pi, len(m))
        x[m] = pick[:, 0] + r * np.cos(a) / kx
        y[m] = pick[:, 1] + r * np.sin(a) / ky
    return z.astype(np.int64), x, y, rng.uniform(10, 50, n_pairs)


def timed(zc: ZoneCatalogue, z: np.ndarray, x: np.ndarray, y: np.ndarray, w: np.ndarray,
          batch: int) -> tuple[float, float, np.ndarray]:
    """Wall time, CPU time of this process, and the results."""
    out = np.empty(len(z))
    t = time.perf_counter()
    c = time.process_time()
    for s in range(0, len(z), batch):
        e = s + batch
        out[s:e] = zc.signed_distance_m(z[s:e], x[s:e], y[s:e], w[s:e])
    return time.perf_counter() - t, time.process_time() - c, out


def naive(zc: ZoneCatalogue, z: np.ndarray, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray]:
    """Per pair: rtree candidates, then shapely contains/distance, in Python."""
    n = len(zc)
    boxes = [zc.bounds(zid) for zid in zc.ids]
    idx = rtree.index.Index((i, boxes[i], None) for i in range(n))
    geoms = [zc.geometry(zid) for zid in zc.ids]
    for g in geoms:
        shapely.prepare(g)  # a fair baseline: prepared shapes, boundaries built once
    edges = [g.boundary for g in geoms]
    out = np.empty(len(z))
    t0 = time.perf_counter()
    for i in range(len(z)):
        kx, ky = metres_per_degree(y[i])
        dl = w[i] / float(ky)
        cand = idx.intersection((x[i] - dl * 1.3, y[i] - dl, x[i] + dl * 1.3, y[i] + dl))
        zi = int(z[i])
        p = shapely.Point(x[i], y[i])
        if zi not in set(cand):
            out[i] = w[i] + 1.0
            continue
        g = geoms[zi]
        inside = g.contains(p)
        # naive metric distance: degrees scaled by the local metres per degree
        d = edges[zi].distance(p) * float(kx)
        out[i] = -d if inside else d
    return time.perf_counter() - t0, out


def _rss_now_mib() -> float:
    """Current resident set size (Linux /proc), MiB."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return float("nan")


_SETUP_CHILD = r"""
import sys, time
from geofence.engine import tune_gc
from geofence.model import parse_orders
from geofence.rules import compile_order, compile_orders
from geofence.zones import ZoneCatalogue, _features_of, _make_zone, load_zones
zp, op, ref = sys.argv[1], sys.argv[2], sys.argv[3] == "ref"
tune_gc()
out = {}
t = time.perf_counter()
if ref:
    with open(zp, "rb") as fh:
        feats = _features_of(fh.read())
    zones = ZoneCatalogue([_make_zone(f, i) for i, f in enumerate(feats)])
    del feats
else:
    zones = load_zones(zp)
out["zones"] = time.perf_counter() - t
with open(op, "rb") as fh:
    raw = fh.read()
t = time.perf_counter()
orders = parse_orders(b'{"orders": ' + raw + b"}" if ref else raw)
out["orders"] = time.perf_counter() - t
tune_gc()
t = time.perf_counter()
specs = [compile_order(o, zones, 0.0) for o in orders] if ref else compile_orders(orders, zones, 0.0)
out["compile"] = time.perf_counter() - t
print(" ".join(f"{k}={v:.4f}" for k, v in out.items()))
"""


def setup_main(repeats: int, seed: int) -> int:
    """Loading costs of ``wardstream replay`` on the bench_engine world (see the module doc)."""
    import subprocess
    import tempfile
    from pathlib import Path

    import msgspec

    sys.path.insert(0, str(Path(__file__).parent))
    import bench_engine  # sibling script (imports this module: import it only here)

    world = bench_engine.build_world(50_000, 20_000, 1, seed)
    results: dict[str, dict[str, list[float]]] = {"batch": {}, "ref": {}}
    with tempfile.TemporaryDirectory() as tmp:
        zp, op = Path(tmp) / "zones.geojson", Path(tmp) / "orders.json"
        zp.write_bytes(msgspec.json.encode(world["zones"]))
        op.write_bytes(msgspec.json.encode(world["orders"]))
        del world
        env = dict(os.environ)
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
        for _ in range(repeats):
            for mode in ("batch", "ref"):  # interleaved: the same machine noise for both
                p = subprocess.run([sys.executable, "-c", _SETUP_CHILD, str(zp), str(op), mode],
                                   capture_output=True, text=True, env=env, check=True)
                for item in p.stdout.split():
                    k, v = item.split("=")
                    results[mode].setdefault(k, []).append(float(v))
    rows = []
    for k, label in (("zones", "load_zones (70,016 zones)"), ("orders", "parse_orders (50,000)"),
                     ("compile", "compile 50,000 orders")):
        b, r = results["batch"][k], results["ref"][k]
        ratios = sorted(x / y for x, y in zip(b, r, strict=True))
        rows.append((label, f"{min(b):.2f}-{max(b):.2f} s", f"{min(r):.2f}-{max(r):.2f} s",
                     f"{ratios[0]:.2f}-{ratios[-1]:.2f}"))
    head = ("step (fresh process, tune_gc)", "batch path", "reference path", "ratio")
    w = [max(len(row[i]) for row in [head, *rows]) for i in range(4)]
    for row in [head, *rows]:
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(row)))
    print(json.dumps({"bench": "zones_setup", "repeats": repeats,
                      **{f"{m}_{k}_s": [round(v, 4) for v in vs] for m in results for k, vs in results[m].items()}}))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=1_000_000)
    ap.add_argument("--districts", type=int, default=16)
    ap.add_argument("--small", type=int, default=20_000)
    ap.add_argument("--min-vertices", type=int, default=2_000)
    ap.add_argument("--max-vertices", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=20_000, help="pairs per signed_distance_m call")
    ap.add_argument("--naive-sample", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="smaller naive sample")
    ap.add_argument("--setup", action="store_true",
                    help="measure the loading costs of `wardstream replay` instead (see the module doc)")
    ap.add_argument("--repeats", type=int, default=5, help="--setup: fresh processes per path")
    a = ap.parse_args(argv)
    if a.setup:
        return setup_main(a.repeats, a.seed)
    if a.quick:
        a.naive_sample = min(a.naive_sample, 5_000)

    t = time.perf_counter()
    fc, nvert = build(a.districts, a.small, (a.min_vertices, a.max_vertices), a.seed)
    t_gen = time.perf_counter() - t
    rss_before = _rss_now_mib()
    t = time.perf_counter()
    c = time.process_time()
    zc = ZoneCatalogue.from_geojson(fc)
    t_build = time.perf_counter() - t
    c_build = time.process_time() - c
    rss_catalogue = _rss_now_mib() - rss_before
    z, x, y, w = make_pairs(zc, a.pairs, a.districts, a.seed)

    zc.signed_distance_m(z[:2000], x[:2000], y[:2000], w[:2000])  # warm-up
    t_vec, c_vec, out = timed(zc, z, x, y, w, a.batch)
    rate = len(z) / t_vec
    small_batch = 1_000
    t_small, c_small, _ = timed(zc, z[:200_000], x[:200_000], y[:200_000], w[:200_000], small_batch)
    rate_small = min(len(z), 200_000) / t_small
    bz, bx, by, bw = boundary_pairs(zc, min(200_000, a.pairs), a.districts, a.seed)
    t_b, c_b, _ = timed(zc, bz, bx, by, bw, a.batch)
    rate_b = len(bz) / t_b

    m = min(a.naive_sample, len(z))
    t_naive, ref = naive(zc, z[:m], x[:m], y[:m], w[:m])
    naive_rate = m / t_naive
    # the same slice through the vectorised path, for a like-for-like ratio
    t_same, _, _ = timed(zc, z[:m], x[:m], y[:m], w[:m], a.batch)
    agree = float(np.mean(np.sign(out[:m]) == np.sign(ref)))
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    inside_frac = float(np.mean(out < 0))
    rows = [
        ("zones", f"{len(zc):,} ({a.districts} districts, {nvert:,} district vertices; {a.small:,} small)"),
        ("generate / build catalogue", f"{t_gen:.2f} s / {t_build:.2f} s wall, {c_build:.2f} CPU-s"),
        ("catalogue memory (RSS growth)", f"{rss_catalogue:,.0f} MiB"),
        ("pairs classified", f"{len(z):,} in batches of {a.batch:,} ({inside_frac:.1%} inside)"),
        ("vectorised", f"{rate:,.0f} pairs/s wall, {len(z) / c_vec:,.0f} per CPU-s ({t_vec:.2f} s)"),
        (f"vectorised, batches of {small_batch:,}",
         f"{rate_small:,.0f} pairs/s wall, {min(len(z), 200_000) / c_small:,.0f} per CPU-s"),
        ("vectorised, all near district boundaries",
         f"{rate_b:,.0f} pairs/s wall, {len(bz) / c_b:,.0f} per CPU-s ({len(bz):,} pairs, within 10-50 m)"),
        ("naive baseline (rtree + shapely loop)",
         f"{naive_rate:,.0f} pairs/s wall on {m:,} pairs"),
        ("speed-up (wall clock, same run)",
         f"{rate / naive_rate:.0f}x; {t_naive / t_same:.0f}x on the naive's own pairs"),
        ("sign agreement with naive", f"{agree:.4%} of {m:,} pairs"),
        ("peak RSS", f"{rss_mib:,.0f} MiB"),
        ("machine", f"{platform.machine()}, {platform.python_version()}, shapely {shapely.__version__}"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print(json.dumps({
        "bench": "zones", "pairs": len(z), "pairs_per_s": round(rate), "naive_pairs_per_s": round(naive_rate),
        "speedup": round(rate / naive_rate, 1), "speedup_same_pairs": round(t_naive / t_same, 1),
        "pairs_per_cpu_s": round(len(z) / c_vec), "build_s": round(t_build, 2), "build_cpu_s": round(c_build, 2),
        "catalogue_mib": round(rss_catalogue), "peak_rss_mib": round(rss_mib),
        "batch": a.batch, "pairs_per_s_batch_1000": round(rate_small), "boundary_pairs_per_s": round(rate_b),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
