"""Benchmark of the command-centre stores (a plain script, not a test).

    PYTHONPATH=. python bench/bench_store.py [--dsn DSN] [--fixes 300000] [--alerts 20000]

Measures, into the local PostgreSQL, in one run and on a throwaway schema:

* track store: sustained fixes/s of the telemetry sink's write path (batched
  JSON envelopes decoded with the contract decoder, COPY into the daily
  partition, latest-position upsert), in batches of 2,000 as the sink takes
  them from Kafka; and the COPY alone;
* baseline: the same fixes written row by row with INSERT (one statement per
  fix, one transaction per batch), on a sample;
* alert sink: lifecycle records/s through the idempotent apply function in
  batches of 500, a replay of the same records (all duplicates), and a
  baseline that applies one record per round trip.

Targets: track store >= 20,000 fixes/s. Figures are reported with
their ratio to the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from alerts.db import create_pool, utc
from alerts.store import apply_records
from alerts.tracks import TrackStore
from geofence.model import Fix, TelemetryDecoder, format_ts

T0 = 1_795_356_210_000
BATCH = 2000


def make_fixes(n: int, devices: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [{"kind": "fix", "device_id": f"WB-{i % devices:06d}", "ts": T0 - 3_600_000 + i * 10,
             "lat": 32.0 + rng.random() * 0.2, "lon": 118.7 + rng.random() * 0.2,
             "accuracy_m": round(rng.uniform(3, 40), 1), "battery_pct": rng.randint(5, 100)}
            for i in range(n)]


def make_records(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        a = {"alert_id": f"A-{i:07d}", "person_id": f"P-{i % 5000:05d}", "rule_id": "r1",
             "kind": "exclusion_entered", "severity": "red", "opened_at": format_ts(T0 + i),
             "cleared_at": None, "lat": 32.05, "lon": 118.79, "jurisdiction": "320102",
             "late": False, "status": "open"}
        out.append({"event": "opened", "alert": a, "at": a["opened_at"]})
    return out


async def bench(dsn: str, n_fixes: int, n_alerts: int, baseline_n: int) -> dict[str, float]:
    schema = "bench_" + uuid.uuid4().hex[:8]
    pool = await create_pool(dsn, schema, max_size=2)
    results: dict[str, float] = {}
    try:
        fixes = make_fixes(n_fixes, devices=5000)
        envelopes = [json.dumps(fixes[i:i + 50]).encode() for i in range(0, len(fixes), 50)]
        decoder = TelemetryDecoder(now_ms=lambda: T0)
        store = TrackStore(retention_days=30)

        # the sink's path: decode envelopes of 50 fixes, write 2,000 fixes per transaction
        per_batch = BATCH // 50
        async with pool.acquire() as conn:
            started = time.perf_counter()
            for i in range(0, len(envelopes), per_batch):
                msgs: list[Fix] = []
                for env in envelopes[i:i + per_batch]:
                    msgs.extend(m for m in decoder.decode(env).messages if isinstance(m, Fix))
                await store.write(conn, msgs, T0)
            results["track_sink_fixes_s"] = n_fixes / (time.perf_counter() - started)
            assert await conn.fetchval("SELECT count(*) FROM track_fixes") == n_fixes

            # COPY alone (rows prepared beforehand)
            objs = [Fix(**{k: v for k, v in f.items() if k != "kind"}) for f in fixes]
            batches = [store.rows(objs[i:i + BATCH], T0)[0] for i in range(0, len(objs), BATCH)]
            started = time.perf_counter()
            for rows in batches:
                await conn.copy_records_to_table(
                    "track_fixes", records=rows,
                    columns=("device_id", "ts", "lat", "lon", "accuracy_m", "valid", "speed_mps",
                             "heading_deg", "battery_pct"))
            results["track_copy_only_fixes_s"] = n_fixes / (time.perf_counter() - started)

            # baseline: one INSERT per fix, one transaction per batch of 2,000
            sample = objs[:baseline_n]
            started = time.perf_counter()
            for i in range(0, len(sample), BATCH):
                async with conn.transaction():
                    for f in sample[i:i + BATCH]:
                        await conn.execute(
                            "INSERT INTO track_fixes (device_id, ts, lat, lon, accuracy_m, valid,"
                            " speed_mps, heading_deg, battery_pct)"
                            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                            f.device_id, utc(f.ts), f.lat, f.lon, f.accuracy_m, f.valid,
                            f.speed_mps, f.heading_deg, f.battery_pct)
            results["track_baseline_insert_fixes_s"] = len(sample) / (time.perf_counter() - started)

            # alert sink
            records = make_records(n_alerts)
            started = time.perf_counter()
            for i in range(0, n_alerts, 500):
                async with conn.transaction():
                    await apply_records(conn, records[i:i + 500], T0)
            results["alert_sink_records_s"] = n_alerts / (time.perf_counter() - started)
            started = time.perf_counter()
            for i in range(0, n_alerts, 500):
                async with conn.transaction():
                    assert await apply_records(conn, records[i:i + 500], T0) == []
            results["alert_sink_replay_records_s"] = n_alerts / (time.perf_counter() - started)
            more = make_records(n_alerts + baseline_n // 10)[n_alerts:]
            started = time.perf_counter()
            for rec in more:
                await apply_records(conn, [rec], T0)
            results["alert_baseline_one_per_call_s"] = len(more) / (time.perf_counter() - started)
    finally:
        await pool.close()
        conn2: asyncpg.Connection = await asyncpg.connect(dsn)
        await conn2.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn2.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=os.environ.get(
        "WARDSTREAM_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--fixes", type=int, default=300_000)
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--baseline", type=int, default=20_000, help="fixes in the INSERT baseline")
    args = parser.parse_args()
    r = asyncio.run(bench(args.dsn, args.fixes, args.alerts, args.baseline))
    base = r["track_baseline_insert_fixes_s"]
    print(f"cores: {os.cpu_count()}  fixes: {args.fixes:,}  alerts: {args.alerts:,}")
    print("| measure | per second | ratio to baseline |")
    print("|---|---:|---:|")
    print(f"| track sink (decode + COPY + latest positions), fixes | {r['track_sink_fixes_s']:,.0f} | {r['track_sink_fixes_s'] / base:.1f}x |")
    print(f"| COPY alone, fixes | {r['track_copy_only_fixes_s']:,.0f} | {r['track_copy_only_fixes_s'] / base:.1f}x |")
    print(f"| baseline: INSERT per fix, fixes | {base:,.0f} | 1.0x |")
    ab = r["alert_baseline_one_per_call_s"]
    print(f"| alert sink, batches of 500, records | {r['alert_sink_records_s']:,.0f} | {r['alert_sink_records_s'] / ab:.1f}x |")
    print(f"| alert sink replay (all duplicates), records | {r['alert_sink_replay_records_s']:,.0f} | {r['alert_sink_replay_records_s'] / ab:.1f}x |")
    print(f"| baseline: one record per round trip, records | {ab:,.0f} | 1.0x |")
    target = r["track_sink_fixes_s"] >= 20_000
    print(f"track store target >= 20,000 fixes/s: {'met' if target else 'NOT met'}")
    return 0 if target else 1


if __name__ == "__main__":
    sys.exit(main())
