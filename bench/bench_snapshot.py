"""Engine snapshots with many quiet lanes: how long they take, against processing.

Run by hand (not a timed test)::

    PYTHONPATH=. python bench/bench_snapshot.py [--persons 50000] [--quick]

The stream worker snapshots each partition's engine every
``snapshot_interval_s`` (10 s) on its event loop. A snapshot turns every
lane with more than liveness to keep as a ``Lane`` object, encoded with
msgpack; lanes kept in bulk (quiet lanes, most of a caseload) go as arrays.
Its cost grows with the persons held, not with the traffic. This benchmark builds the world of
``bench_engine.py`` (1,000,000 fixes, 50,000 persons by default), feeds an
engine the first 80 % of the fixes, then takes two snapshots in a row,
restores one into a new engine, and feeds the rest to both, against an
engine that never took a snapshot (the records must be the same). It does
so for the previous format (2: every lane as an object; the first snapshot
materialises the bulk lanes, the second finds them as objects) and for the
current one (3: lanes in quiet mode stay arrays), and gives format 3's
times as ratios to format 2's and to the time the engine takes to process
100,000 fixes, all measured in the same run.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_engine import build_world  # noqa: E402

from geofence.engine import Engine, EngineConfig, tune_gc  # noqa: E402
from geofence.model import parse_orders  # noqa: E402
from geofence.zones import ZoneCatalogue  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    ap.add_argument("--persons", type=int, default=50_000)
    ap.add_argument("--exclusions", type=int, default=20_000)
    ap.add_argument("--fixes-per-person", type=int, default=20)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--quick", action="store_true", help="5,000 persons")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    if args.quick:
        args.persons, args.exclusions = 5_000, 5_000
    world = build_world(args.persons, args.exclusions, args.fixes_per_person, args.seed)
    zones = ZoneCatalogue.from_geojson(world["zones"])
    orders = parse_orders(json.dumps(world["orders"]))
    tune_gc()
    fixes = world["fixes"]
    n = len(fixes)
    cut = n * 4 // 5

    def feed(engine: Engine, lo: int, hi: int) -> tuple[float, int]:
        t0 = time.perf_counter()
        records = 0
        for i in range(lo, hi, args.batch):
            records += len(engine.process(fixes[i:min(i + args.batch, hi)]).records)
        return time.perf_counter() - t0, records

    out: dict[str, object] = {"bench": "snapshot", "persons": args.persons, "fixes": n}
    per_100k = 0.0
    timings: dict[int, dict[str, float]] = {}
    for version in (2, 3):  # the previous format (every lane an object), then arrays
        engine = Engine(zones, orders, EngineConfig())
        head_s, _ = feed(engine, 0, cut)
        per_100k = head_s / cut * 100_000
        t: dict[str, float] = {}
        t0 = time.perf_counter()
        first = engine.snapshot(version)
        t["first_snapshot_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        second = engine.snapshot(version)
        t["second_snapshot_s"] = time.perf_counter() - t0
        t["first_snapshot_mb"] = len(first) / 1e6
        gc.freeze()  # as the worker does after a snapshot
        t0 = time.perf_counter()
        restored = Engine(zones, orders, EngineConfig())
        t["engine_build_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        restored.restore(second)
        t["restore_s"] = time.perf_counter() - t0
        timings[version] = t
        if version == 3:
            tail_after_s, rec_after = feed(engine, cut, n)
            _, rec_restored = feed(restored, cut, n)
        del restored, engine, first, second
        gc.unfreeze()
        gc.collect()
    plain = Engine(zones, orders, EngineConfig())
    feed(plain, 0, cut)
    tail_plain_s, rec_plain = feed(plain, cut, n)
    if not rec_after == rec_restored == rec_plain:
        print(f"records differ after a snapshot: {rec_after} and {rec_restored} (restored) "
              f"against {rec_plain}", file=sys.stderr)
        return 1
    out["engine_s_per_100k_fixes"] = round(per_100k, 3)
    for version, t in timings.items():
        for k, v in t.items():
            out[f"v{version}_{k}"] = round(v, 3)
    for k in ("first_snapshot_s", "second_snapshot_s", "restore_s"):
        out[f"{k[:-2]}_v3_vs_v2"] = round(timings[3][k] / timings[2][k], 3)
        out[f"{k[:-2]}_v3_vs_100k_fixes"] = round(timings[3][k] / per_100k, 2)
    out.update({
        "rest_after_snapshot_fixes_per_s": round((n - cut) / tail_after_s),
        "rest_without_snapshot_fixes_per_s": round((n - cut) / tail_plain_s),
    })
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
