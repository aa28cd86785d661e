"""``wardstream replay``: deterministic offline evaluation of a telemetry file.

Usage::

    wardstream replay --zones zones.geojson --orders orders.json \\
        --telemetry day.jsonl [--out alerts.jsonl]

Prints one alert JSON object per line per episode (its final state), ordered
by ``opened_at`` then ``alert_id``, to stdout or ``--out``; a summary (lines
read, rejected by reason, duplicates, late data) on stderr. Exit 0 when the
inputs are readable even if some telemetry lines were rejected; exit 2 with
a one-line reason when the zones or orders are invalid or a file cannot be
read. Uses the same engine as the stream worker
(:func:`geofence.engine.replay_lines`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence

from geofence.engine import EngineConfig, replay_lines, tune_gc
from geofence.errors import WardstreamError
from geofence.model import encode, parse_orders
from geofence.zones import load_zones
from stream.cli import Parser


def _lines(path: str) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        yield from fh


def main(argv: Sequence[str]) -> int:
    """Entry point of ``wardstream replay``; returns the exit code."""
    p = Parser(prog="wardstream replay", description=__doc__.split("\n\n")[0])
    p.add_argument("--zones", required=True, help="GeoJSON FeatureCollection of zones")
    p.add_argument("--orders", required=True, help="supervision orders (JSON array or YAML)")
    p.add_argument("--telemetry", required=True, help="JSONL telemetry (objects or arrays)")
    p.add_argument("--out", help="write alerts here instead of stdout")
    p.add_argument("--lateness-s", type=float, default=120.0, help="lateness horizon (s)")
    args = p.parse_args(list(argv))
    tune_gc()  # loading allocates many small objects: fewer collections
    try:
        zones = load_zones(args.zones)
    except WardstreamError as exc:
        print(f"wardstream replay: invalid zones {args.zones!r}: {exc}", file=sys.stderr)
        return 2
    try:
        with open(args.orders, "rb") as fh:
            orders = parse_orders(fh.read())
    except OSError as exc:
        print(f"wardstream replay: cannot read orders {args.orders!r}: {exc.strerror}",
              file=sys.stderr)
        return 2
    except WardstreamError as exc:
        print(f"wardstream replay: invalid orders {args.orders!r}: {exc}", file=sys.stderr)
        return 2
    cfg = EngineConfig(lateness_ms=int(args.lateness_s * 1000))
    tune_gc()
    try:
        with open(args.telemetry, "rb") as fh_t:
            alerts, summary = replay_lines(fh_t, zones, orders, cfg)
    except OSError as exc:
        print(f"wardstream replay: cannot read telemetry {args.telemetry!r}: {exc.strerror}",
              file=sys.stderr)
        return 2
    payload = b"".join(encode(a) + b"\n" for a in alerts)
    if args.out:
        try:
            with open(args.out, "wb") as out:
                out.write(payload)
        except OSError as exc:
            print(f"wardstream replay: cannot write {args.out!r}: {exc.strerror}", file=sys.stderr)
            return 2
    else:
        sys.stdout.buffer.write(payload)
        sys.stdout.flush()
    print(f"wardstream replay: {summary.text()}", file=sys.stderr)
    return 0
