"""Acceptance run: a simulated day replayed through the engine must score 1.0 / 1.0.

``python -m simulators.acceptance --persons 5000 --out /tmp/sim5000`` generates
the day (timed), verifies the truth against the tracks (optional, slow),
replays it with :func:`geofence.engine.replay_lines` exactly as ``wardstream
replay`` does, scores the alerts and exits 1 unless precision and recall
are both 1.0 and every jitter/teleport/expired person stayed silent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators.acceptance", description=__doc__)
    p.add_argument("--persons", type=int, default=5000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="/tmp/wardstream-acceptance")
    p.add_argument("--profile", choices=("full", "jt808"), default="full")
    p.add_argument("--verify", action="store_true", help="also run the truth oracle (slow)")
    p.add_argument("--chunk", type=int, default=8192, help="replay_lines chunk (its default)")
    args = p.parse_args(argv)

    from geofence.engine import replay_lines
    from geofence.model import encode, parse_orders
    from geofence.zones import load_zones
    from simulators.caseload import SimConfig, generate, write
    from simulators.score import score

    t0 = time.perf_counter()
    cl = generate(SimConfig.for_profile(args.profile, persons=args.persons, seed=args.seed))
    t1 = time.perf_counter()
    paths = write(cl, args.out)
    t2 = time.perf_counter()
    print(f"generate {args.persons} persons: model {t1 - t0:.1f} s, files {t2 - t1:.1f} s, "
          f"{cl.truth['meta']['messages']:,} messages, {len(cl.truth['expected'])} expected alerts")
    truth = json.loads(Path(paths["truth.json"]).read_text())
    if args.verify:
        from simulators.verify import verify

        with open(paths["telemetry.jsonl"], "rb") as f:
            problems = verify(Path(paths["zones.geojson"]).read_bytes(),
                              Path(paths["orders.json"]).read_bytes(),
                              (line.rstrip(b"\n") for line in f), truth, cl.config.lat, cl.config.lon)
        print(f"verify: {len(problems)} problems ({time.perf_counter() - t2:.1f} s)")
        for prob in problems[:20]:
            print("  " + prob)
    t3 = time.perf_counter()
    zones = load_zones(paths["zones.geojson"])
    orders = parse_orders(Path(paths["orders.json"]).read_bytes())
    with open(paths["telemetry.jsonl"], "rb") as f:
        alerts, summary = replay_lines((line.rstrip(b"\n") for line in f), zones, orders, chunk=args.chunk)
    t4 = time.perf_counter()
    print(f"replay: {summary.messages:,} messages in {t4 - t3:.1f} s "
          f"({summary.messages / (t4 - t3):,.0f}/s), {summary.alerts} alerts, rejected {dict(summary.rejected)}")
    with open(Path(args.out) / "alerts.jsonl", "wb") as f:
        for a in alerts:
            f.write(encode(a) + b"\n")
    report = score(truth, [json.loads(encode(a)) for a in alerts])
    print(report.text())
    silent_ok = not any(report.silent_violations.values())
    ok = report.precision == 1.0 and report.recall == 1.0 and silent_ok
    print("ACCEPTED" if ok else "NOT ACCEPTED")
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
