"""Benchmark: the rules engine alone and `wardstream replay` end to end.

Generates its own world around Nanjing (32.06 N, 118.79 E): 16 district
polygons of 2,400 vertices each (inclusion zones), 20,000 small exclusion
zones (circles and polygons), one home circle per person (curfew 22:00-06:00,
Asia/Shanghai), and an order per person with an inclusion, two exclusions out
of the 20,000, a curfew and a signal_loss rule. Telemetry: 20 fixes per
person, one a minute, from 21:50 local time (so curfew windows open during
the run), random walks around home; 1 % of persons walk into one of their
exclusion zones and 0.5 % leave their district.

Measures, in one run:

* engine alone: pre-decoded fixes through ``Engine.process`` in batches
  (``--batch``), then ``flush``;
* replay end to end: the JSONL file (one object per line) through the real
  ``wardstream replay`` in a subprocess (file in, alerts out, zone loading
  included), its wall time and peak RSS;
* the category world (``build_world(categories=True)``): the same zones,
  persons and telemetry with every zone rule by category (exclusion from
  every zone of a category, within the county or anywhere; inclusion in any
  district of the county), the engine's throughput on it as a ratio to the
  plain world's measured in the same run (target >= 0.8: the median of
  ``--rounds`` alternating runs of both), and the peak RSS of its replay
  (target <= 1.5 GiB). Its 200 categories (``--categories``) of about 100
  zones each put few zones of a person's categories near home, so the
  random walks raise about as many alerts as in the plain world (4,361
  records against 3,764) and the ratio measures what category rules cost;
* the dense category world (``--dense-categories``, 20 by default): the
  same with 20 categories of about 1,000 zones (50-300 m across, about one
  of a person's two categories per square kilometre), so that the random
  walks spend about 8 % of their fixes inside or beside one and raise five
  times the plain world's records; its ratio is reported beside the records
  it raised, with no target (it measures the cost of five times the alerts
  as much as the cost of the rules);
* a naive baseline on a subsample: per fix, rtree candidates over all zone
  bounds then shapely ``contains`` per candidate in a Python loop (no
  accuracy, no distance, no state: strictly less work than the engine).

Run::

    PYTHONPATH=. python bench/bench_engine.py            # 1,000,000 fixes, 50,000 persons
    PYTHONPATH=. python bench/bench_engine.py --quick    # 100,000 fixes, 5,000 persons

Prints a table and one JSON line (for ``wardstream bench``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import rtree
import shapely
from bench_zones import district_ring as zone_ring  # sibling script: same folder on sys.path

from geofence.engine import Engine, EngineConfig, tune_gc
from geofence.geo import metres_per_degree
from geofence.model import Fix, parse_orders, parse_ts
from geofence.zones import ZoneCatalogue

LON0, LAT0 = 118.79, 32.06
KX, KY = (float(v) for v in metres_per_degree(LAT0))
START = parse_ts("2026-11-22T21:50:00+08:00")


def district_ring(cx: float, cy: float, radius_deg: float, n: int,
                  rng: np.random.Generator) -> list[list[float]]:
    """This bench's district shape: bench_zones' ring with milder harmonics."""
    return zone_ring(cx, cy, radius_deg, n, rng, harmonics=30, amplitude=0.2, noise=0.003,
                     floor=0.6)


N_CATEGORIES = 200
"""Categories of the category world (``--categories``): zone ``X-i`` is in
category ``i % N``."""
DENSE_CATEGORIES = 20
"""Categories of the dense category world (``--dense-categories``)."""


def build_world(persons: int, exclusions: int, fixes_per: int, seed: int,
                categories: bool = False, n_categories: int = N_CATEGORIES) -> dict[str, Any]:
    """The plain world, or (``categories``) the same zones, persons and
    telemetry with every zone rule by category instead: each exclusion zone in
    one of ``n_categories`` categories and in the county of the nearest
    district; each person excluded from every zone of the category of the
    zones the plain world names (``ex1`` within the person's county, ``ex2``
    anywhere) and included in any district of their county."""
    rng = np.random.default_rng(seed)
    features: list[dict[str, Any]] = []
    centres = []
    for i in range(16):
        cx = LON0 + (i % 4 - 1.5) * 0.13
        cy = LAT0 + (i // 4 - 1.5) * 0.11
        centres.append((cx, cy))
        features.append({"type": "Feature", "id": f"D-{i:02d}",
                         "properties": {"category": "district", "jurisdiction": f"3201{i:02d}"},
                         "geometry": {"type": "Polygon",
                                      "coordinates": [district_ring(cx, cy, 0.05, 2400, rng)]}})
    ex_xy = np.column_stack([rng.uniform(LON0 - 0.25, LON0 + 0.25, exclusions),
                             rng.uniform(LAT0 - 0.21, LAT0 + 0.21, exclusions)])
    ex_r = rng.uniform(50, 300, exclusions)
    cen = np.array(centres)
    county = ((ex_xy[:, None, 0] - cen[None, :, 0]) ** 2
              + (ex_xy[:, None, 1] - cen[None, :, 1]) ** 2).argmin(axis=1)
    for i in range(exclusions):
        x, y = float(ex_xy[i, 0]), float(ex_xy[i, 1])
        tags = ({"category": f"C-{i % n_categories}", "jurisdiction": f"3201{county[i]:02d}"}
                if categories else {})
        if i % 2 == 0:
            features.append({"type": "Feature", "id": f"X-{i}",
                             "properties": {"radius_m": float(ex_r[i]), **tags},
                             "geometry": {"type": "Point", "coordinates": [x, y]}})
        else:
            k = 12
            a = np.linspace(0, 2 * np.pi, k, endpoint=False) + rng.uniform(0, 1)
            rr = ex_r[i] * rng.uniform(0.7, 1.0, k)
            ring = np.column_stack([x + rr * np.cos(a) / KX, y + rr * np.sin(a) / KY]).round(7).tolist()
            features.append({"type": "Feature", "id": f"X-{i}", "properties": tags,
                             "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}})
    district = rng.integers(0, 16, persons)
    cxy = np.array(centres)[district]
    ang = rng.uniform(0, 2 * np.pi, persons)
    rad = rng.uniform(0, 0.025, persons)
    home = np.column_stack([cxy[:, 0] + rad * np.cos(ang) / math.cos(math.radians(LAT0)),
                            cxy[:, 1] + rad * np.sin(ang)])
    orders = []
    ex_pick = rng.integers(0, exclusions, (persons, 2))
    for p in range(persons):
        features.append({"type": "Feature", "id": f"H-{p}", "properties": {"radius_m": 40.0},
                         "geometry": {"type": "Point",
                                      "coordinates": [float(home[p, 0]), float(home[p, 1])]}})
        if categories:
            zr: list[dict[str, Any]] = [
                {"id": "inc", "type": "inclusion", "category": "district", "area": "county"},
                {"id": "ex1", "type": "exclusion", "category": f"C-{ex_pick[p, 0] % n_categories}",
                 "area": "county", "buffer_m": 50},
                {"id": "ex2", "type": "exclusion", "category": f"C-{ex_pick[p, 1] % n_categories}"}]
        else:
            zr = [{"id": "inc", "type": "inclusion", "zone": f"D-{district[p]:02d}"},
                  {"id": "ex1", "type": "exclusion", "zone": f"X-{ex_pick[p, 0]}", "buffer_m": 50},
                  {"id": "ex2", "type": "exclusion", "zone": f"X-{ex_pick[p, 1]}"}]
        orders.append({
            "person_id": f"P-{p:06d}", "devices": [f"WB-{p:06d}"],
            "jurisdiction": f"3201{district[p] % 16:02d}",
            "rules": [
                *zr,
                {"id": "cf", "type": "curfew", "zone": f"H-{p}",
                 "windows": [{"days": "daily", "start": "22:00", "end": "06:00"}]},
                {"id": "sl", "type": "signal_loss", "after_s": 900},
            ]})
    # telemetry: random walks around home, some into an exclusion zone or out of the district
    n = persons * fixes_per
    step = rng.normal(0, 40, (persons, fixes_per, 2)).cumsum(axis=1)
    x = home[:, 0:1] + step[:, :, 0] / KX + rng.uniform(-60, 60, (persons, 1)) / KX
    y = home[:, 1:2] + step[:, :, 1] / KY + rng.uniform(-60, 60, (persons, 1)) / KY
    # home by 22:00 local (fix 10 onwards): within a few metres of home, like a
    # person indoors; 2 % stay out past the start of their curfew
    night = np.arange(fixes_per) >= 10
    stay_out = rng.random(persons) >= 0.02
    home_x = home[:, 0:1] + rng.normal(0, 4, (persons, fixes_per)) / KX
    home_y = home[:, 1:2] + rng.normal(0, 4, (persons, fixes_per)) / KY
    m = stay_out[:, None] & night[None, :]
    x = np.where(m, home_x, x)
    y = np.where(m, home_y, y)
    intruders = rng.random(persons) < 0.01
    target = ex_xy[ex_pick[:, 0]]
    span = slice(2, 2 + max(3, fixes_per // 3))
    x[intruders, span] = target[intruders, 0:1] + rng.normal(0, 5, (int(intruders.sum()), 1)) / KX
    y[intruders, span] = target[intruders, 1:2]
    leavers = rng.random(persons) < 0.005
    x[leavers, fixes_per // 2:] += 0.2
    acc = rng.choice([5.0, 8.0, 10.0, 15.0, 30.0], (persons, fixes_per))
    valid = rng.random((persons, fixes_per)) > 0.03
    ts = START + np.arange(fixes_per)[None, :] * 60_000 + rng.integers(0, 60_000, (persons, 1))
    order = np.argsort(ts.ravel(), kind="stable")
    pid = np.repeat(np.arange(persons), fixes_per)[order]
    tsv = ts.ravel()[order]
    xv, yv = x.ravel()[order].round(7), y.ravel()[order].round(7)
    av, vv = acc.ravel()[order], valid.ravel()[order]
    devices = [f"WB-{p:06d}" for p in range(persons)]
    fixes = [Fix(device_id=devices[p], ts=int(t), lat=float(b), lon=float(a), accuracy_m=float(c),
                 valid=bool(v))
             for p, t, a, b, c, v in zip(pid.tolist(), tsv.tolist(), xv.tolist(), yv.tolist(),
                                         av.tolist(), vv.tolist(), strict=True)]
    assert len(fixes) == n
    return {"zones": {"type": "FeatureCollection", "features": features}, "orders": orders,
            "fixes": fixes}


def naive(zones_fc: dict[str, Any], fixes: list[Fix], orders: list[dict[str, Any]],
          sample: int) -> float:
    """Per fix: rtree candidates over all zone bounds, then shapely contains per candidate."""
    geoms = []
    ids = []
    for f in zones_fc["features"]:
        g = shapely.geometry.shape(f["geometry"])
        if f["geometry"]["type"] == "Point":
            r = f["properties"]["radius_m"]
            g = shapely.Point(g.x, g.y).buffer(1.0, 32)
            g = shapely.affinity.scale(g, r / KX, r / KY)
        shapely.prepare(g)
        geoms.append(g)
        ids.append(f["id"])
    idx = rtree.index.Index((i, g.bounds, None) for i, g in enumerate(geoms))
    mine = {o["devices"][0]: {r["zone"] for r in o["rules"] if "zone" in r} for o in orders}
    pos = {z: i for i, z in enumerate(ids)}
    want = {d: {pos[z] for z in zs} for d, zs in mine.items()}
    step = max(1, len(fixes) // sample)
    sub = fixes[::step][:sample]
    t0 = time.perf_counter()
    hits = 0
    for fx in sub:
        zs = want[fx.device_id]
        p = shapely.Point(fx.lon, fx.lat)
        for c in idx.intersection((fx.lon, fx.lat, fx.lon, fx.lat)):
            if c in zs and geoms[c].contains(p):
                hits += 1
    dt = time.perf_counter() - t0
    return len(sub) / dt


def replay(world: dict[str, Any]) -> tuple[float, float, int] | None:
    """``wardstream replay`` of the world in a subprocess: (wall s, peak RSS MiB, alerts)."""
    fixes: list[Fix] = world["fixes"]
    n = len(fixes)
    with tempfile.TemporaryDirectory() as tmp:
        zp, op, tp, ap_ = (Path(tmp) / n_ for n_ in ("zones.geojson", "orders.json",
                                                     "day.jsonl", "alerts.jsonl"))
        zp.write_bytes(msgspec.json.encode(world["zones"]))
        op.write_bytes(msgspec.json.encode(world["orders"]))
        enc = msgspec.json.Encoder()
        with open(tp, "wb") as fh:
            for i in range(0, n, 50_000):
                fh.write(b"".join(enc.encode(f) + b"\n" for f in fixes[i:i + 50_000]))
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        # the real CLI entry point; the wrapper only reports the child's own peak
        # RSS (VmHWM of its address space: ru_maxrss would include the
        # parent's pages inherited through fork/vfork before exec)
        wrapper = ("import sys; from stream.cli import main; rc = main(sys.argv[1:]); "
                   "hwm = [ln.split()[1] for ln in open('/proc/self/status') "
                   "if ln.startswith('VmHWM')]; "
                   "print('MAXRSS_KIB', hwm[0] if hwm else 'nan', file=sys.stderr); sys.exit(rc)")
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", wrapper, "replay", "--zones", str(zp),
                            "--orders", str(op), "--telemetry", str(tp), "--out", str(ap_)],
                           capture_output=True, text=True, env=env, check=False)
        replay_s = time.perf_counter() - t0
        if p.returncode != 0:
            print(p.stderr, file=sys.stderr)
            return None
        rss_line = [ln for ln in p.stderr.splitlines() if ln.startswith("MAXRSS_KIB")]
        replay_rss = float(rss_line[0].split()[1]) / 1024 if rss_line else float("nan")
        replay_alerts = len(ap_.read_bytes().splitlines())
        print("\n".join(ln for ln in p.stderr.splitlines() if not ln.startswith("MAXRSS")),
              file=sys.stderr)
    return replay_s, replay_rss, replay_alerts


def engine_fps(world: dict[str, Any], batch: int) -> tuple[float, int]:
    """Fixes per second of the engine alone over the world (GC as tuned), and its records."""
    fixes: list[Fix] = world["fixes"]
    zones = ZoneCatalogue.from_geojson(world["zones"])
    engine = Engine(zones, parse_orders(json.dumps(world["orders"])), EngineConfig())
    t0 = time.perf_counter()
    records = 0
    for i in range(0, len(fixes), batch):
        records += len(engine.process(fixes[i:i + batch]).records)
    records += len(engine.flush())
    return len(fixes) / (time.perf_counter() - t0), records


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    ap.add_argument("--persons", type=int, default=50_000)
    ap.add_argument("--fixes-per-person", type=int, default=20)
    ap.add_argument("--exclusions", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=10_000, help="engine batch size")
    ap.add_argument("--naive-sample", type=int, default=20_000)
    ap.add_argument("--quick", action="store_true", help="5,000 persons (100,000 fixes)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--skip-replay", action="store_true")
    ap.add_argument("--categories", type=int, default=N_CATEGORIES,
                    help="zone categories of the category world (fewer: more zones per rule)")
    ap.add_argument("--dense-categories", type=int, default=DENSE_CATEGORIES,
                    help="zone categories of the dense category world (0: do not measure it)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating runs of the plain and the category world for their ratio")
    ap.add_argument("--skip-category", action="store_true",
                    help="do not measure the category worlds")
    ap.add_argument("--skip-default-gc", action="store_true",
                    help="do not also time the engine with default GC settings")
    args = ap.parse_args(argv)
    if args.quick:
        args.persons, args.exclusions, args.naive_sample = 5_000, 5_000, 5_000
    t0 = time.perf_counter()
    world = build_world(args.persons, args.exclusions, args.fixes_per_person, args.seed)
    gen_s = time.perf_counter() - t0
    fixes: list[Fix] = world["fixes"]
    n = len(fixes)

    t0 = time.perf_counter()
    zones = ZoneCatalogue.from_geojson(world["zones"])
    zones_s = time.perf_counter() - t0
    orders = parse_orders(json.dumps(world["orders"]))
    t0 = time.perf_counter()
    engine = Engine(zones, orders, EngineConfig())
    build_s = time.perf_counter() - t0

    def run(engine: Engine) -> tuple[float, int]:
        t0 = time.perf_counter()
        records = 0
        for i in range(0, n, args.batch):
            records += len(engine.process(fixes[i:i + args.batch]).records)
        records += len(engine.flush())
        return time.perf_counter() - t0, records

    # first with CPython's default collector settings, then tuned as the
    # replay command and the worker run it (geofence.engine.tune_gc)
    default_s = float("nan")
    if not args.skip_default_gc:
        default_s, _ = run(engine)
        engine = Engine(zones, orders, EngineConfig())
    tune_gc()
    eng_s, records = run(engine)
    rss_engine = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    open_now = len(engine.open_alerts())
    del engine

    replay_s = replay_rss = float("nan")
    replay_alerts = -1
    if not args.skip_replay:
        got = replay(world)
        if got is None:
            return 1
        replay_s, replay_rss, replay_alerts = got

    # the category world: the same zones, persons and telemetry, every zone
    # rule by category; the engine's throughput on it as a ratio to the plain
    # world's, measured here one after the other (same machine, same load)
    cat_ratio = cat_rss = dense_ratio = float("nan")
    cat_range = dense_range = ""
    cat_records = dense_records = -1

    def versus(n_categories: int) -> tuple[float, str, int, float] | None:
        """Median ratio of alternating runs, their range, records, replay RSS."""
        cworld = build_world(args.persons, args.exclusions, args.fixes_per_person, args.seed,
                             categories=True, n_categories=n_categories)
        ratios = []
        crecords = -1
        for _ in range(max(1, args.rounds)):
            plain_fps, _ = engine_fps(world, args.batch)
            cat_fps, crecords = engine_fps(cworld, args.batch)
            ratios.append(cat_fps / plain_fps)
        rss = float("nan")
        if not args.skip_replay:
            got = replay(cworld)
            if got is None:
                return None
            rss = got[1]
        ratios.sort()
        return (float(np.median(ratios)), f"{ratios[0]:.2f}-{ratios[-1]:.2f}", crecords, rss)

    if not args.skip_category:
        got_c = versus(args.categories)
        if got_c is None:
            return 1
        cat_ratio, cat_range, cat_records, cat_rss = got_c
        if args.dense_categories > 0:
            got_c = versus(args.dense_categories)
            if got_c is None:
                return 1
            dense_ratio, dense_range, dense_records, _ = got_c

    naive_fps = naive(world["zones"], fixes, world["orders"], args.naive_sample)
    eng_fps = n / eng_s
    rows = [
        ("machine", f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"),
        ("persons / fixes / zones", f"{args.persons:,} / {n:,} / {len(zones):,}"),
        ("data generation", f"{gen_s:.1f} s"),
        ("zone catalogue build", f"{zones_s:.1f} s"),
        ("engine construction", f"{build_s:.2f} s"),
        (f"engine alone, default GC (batches of {args.batch:,})", f"{n / default_s:,.0f} fixes/s ({default_s:.2f} s)"),
        (f"engine alone, tune_gc (batches of {args.batch:,})", f"{eng_fps:,.0f} fixes/s ({eng_s:.2f} s, {records:,} records, {open_now:,} open)"),
        ("replay end to end (subprocess)", f"{n / replay_s:,.0f} fixes/s ({replay_s:.2f} s, {replay_alerts:,} alerts)"),
        ("naive baseline (rtree + contains loop)", f"{naive_fps:,.0f} fixes/s on {args.naive_sample:,} fixes"),
        ("engine / naive", f"{eng_fps / naive_fps:.1f}x"),
        ("peak RSS: bench process (data + engine)", f"{rss_engine:,.0f} MiB"),
        ("peak RSS: replay process", f"{replay_rss:,.0f} MiB"),
        (f"category world ({args.categories} categories): engine throughput / plain world",
         f"{cat_ratio:.2f} (median of {args.rounds}: {cat_range}; target >= 0.8; "
         f"{cat_records:,} records, plain {records:,})"),
        ("category world: peak RSS of replay process", f"{cat_rss:,.0f} MiB (target <= 1,536 MiB)"),
        (f"dense category world ({args.dense_categories} categories): throughput / plain",
         f"{dense_ratio:.2f} (median of {args.rounds}: {dense_range}; {dense_records:,} records, "
         f"plain {records:,})"),
    ]
    w = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    def whole(x: float) -> int | None:  # None: not measured (skipped)
        return round(x) if x == x else None

    print(json.dumps({"bench": "engine", "fixes": n, "persons": args.persons, "zones": len(zones),
                      "engine_fixes_per_s": round(eng_fps),
                      "engine_default_gc_fixes_per_s": whole(n / default_s),
                      "replay_fixes_per_s": whole(n / replay_s),
                      "naive_fixes_per_s": round(naive_fps), "ratio_vs_naive": round(eng_fps / naive_fps, 2),
                      "rss_bench_mib": round(rss_engine), "rss_replay_mib": whole(replay_rss),
                      "zones_build_s": round(zones_s, 2), "batch": args.batch,
                      "category_throughput_ratio": None if cat_ratio != cat_ratio else round(cat_ratio, 3),
                      "category_rss_replay_mib": whole(cat_rss),
                      "dense_category_throughput_ratio":
                          None if dense_ratio != dense_ratio else round(dense_ratio, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
