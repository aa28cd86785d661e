"""``wardstream simulate``: synthetic caseloads, load generation and scoring.

Subcommands
-----------
generate  a city, orders, a day of telemetry and its ground truth
verify    re-derive the truth from the written tracks (a consistency oracle)
score     compare alerts with a ground-truth file; non-zero exit below thresholds
send      push a generated day to Kafka, to the gateway (JT/T 808 or OsmAnd) or to stdout
live      a live caseload forever (event time = wall time) for the demo
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from simulators.caseload import DEFAULT_SHARES, SimConfig
from stream.cli import Parser


def _center(text: str) -> tuple[float, float]:
    try:
        lat_s, lon_s = text.split(",")
        lat, lon = float(lat_s), float(lon_s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--center wants LAT,LON, got {text!r}") from None
    if not (-85 <= lat <= 85 and -180 <= lon <= 180):
        raise argparse.ArgumentTypeError(f"--center {text!r} is out of range")
    return lat, lon


def _share(text: str) -> tuple[str, float]:
    try:
        kind, value = text.split("=")
        share = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--share wants KIND=FRACTION, got {text!r}") from None
    if kind not in DEFAULT_SHARES:
        raise argparse.ArgumentTypeError(f"unknown scenario {kind!r}; one of {sorted(DEFAULT_SHARES)}")
    if not 0 <= share <= 0.2:
        raise argparse.ArgumentTypeError("a share is a fraction between 0 and 0.2")
    return kind, share


def _phone_share(text: str) -> float:
    try:
        share = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--phone-share wants a fraction, got {text!r}") from None
    if not 0 <= share <= 1:
        raise argparse.ArgumentTypeError("--phone-share is a fraction between 0 and 1")
    return share


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="wardstream simulate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    g = sub.add_parser("generate", help="generate zones, orders, a day of telemetry and ground truth")
    g.add_argument("--persons", type=int, default=None, help="default 1000 (200 with --demo)")
    g.add_argument("--seed", type=int, default=None, help="default 1 (7 with --demo)")
    g.add_argument("--demo", action="store_true",
                   help="the demo caseload (breaches right after 10:00, orders valid 2024-2100); "
                        "see config/demo-zones.geojson and config/demo-orders.json")
    g.add_argument("--out", required=True, help="output folder")
    g.add_argument("--center", type=_center, default=(32.06, 118.79), help="LAT,LON (default Nanjing)")
    g.add_argument("--day", default="2026-11-22", help="local date of the simulated day")
    g.add_argument("--timezone", default="Asia/Shanghai")
    g.add_argument("--city-radius-m", type=float, default=15_000.0)
    g.add_argument("--district-detail-m", type=float, default=12.0,
                   help="vertex spacing of district boundaries (12 m gives thousands of vertices)")
    g.add_argument("--interval-s", type=float, default=60.0, help="normal report interval")
    g.add_argument("--share", type=_share, action="append", default=[],
                   help="KIND=FRACTION of persons in a scenario (repeatable)")
    g.add_argument("--phone-share", type=_phone_share, default=0.05,
                   help="phone-supervised persons (check-ins, no wristband) added to --persons, as a "
                        "fraction of it (default %(default)s; 0: none; the jt808 profile has none)")
    g.add_argument("--profile", choices=("full", "jt808"), default="full",
                   help="jt808: only what JT/T 808 carries (10 m accuracy, whole seconds, no outliers)")
    g.add_argument("--malformed", type=int, default=None, help="malformed lines (default persons/100)")
    g.add_argument("--no-telemetry", action="store_true", help="write zones, orders and truth only")
    g.add_argument("--zones-out", default=None, help="also write the zones to this path")
    g.add_argument("--orders-out", default=None, help="also write the orders to this path")
    g.add_argument("--provisioning-out", default=None,
                   help="also write a gateway provisioning file (0600) naming every device")
    g.add_argument("--provisioning-protocol", default=None,
                   choices=("jt808", "watch", "gt06", "h02", "osmand", "mqtt"),
                   help="protocol the devices are provisioned for (default: jt808 with "
                        "--profile jt808, else osmand)")
    g.add_argument("--keys-out", default=None,
                   help="with --provisioning-out: where to write the phones' keys, a JSON object of "
                        "device id -> key (0600; default phone-keys.json next to the provisioning file)")
    g.add_argument("--quiet", action="store_true")

    v = sub.add_parser("verify", help="check truth.json against the generated tracks")
    v.add_argument("--dir", required=True, help="a folder written by `generate`")
    v.add_argument("--center", type=_center, default=None, help="default: from truth.json")

    s = sub.add_parser("score", help="score alerts against ground truth")
    s.add_argument("--truth", required=True)
    s.add_argument("--alerts", required=True, help="JSONL of alerts (replay) or lifecycle records")
    s.add_argument("--min-precision", type=float, default=0.0)
    s.add_argument("--min-recall", type=float, default=0.0)
    s.add_argument("--tolerance-s", type=float, default=1.0, help="slack around opened_at windows")
    s.add_argument("--json", default=None, help="also write the report as JSON here")

    from simulators import feed

    feed.add_send_parser(sub)
    feed.add_live_parser(sub)
    return p


def main(argv: Sequence[str]) -> int:
    """Entry point of ``wardstream simulate``."""
    args = _parser().parse_args(list(argv))
    if args.cmd == "generate":
        return _generate(args)
    if args.cmd == "verify":
        return _verify(args)
    if args.cmd == "score":
        return _score(args)
    from simulators import feed

    try:  # an unusable keys file is a one-line error, before anything is sent
        feed.load_keys(getattr(args, "osmand_keys", None))
    except ValueError as exc:
        print(f"wardstream simulate {args.cmd}: {exc}", file=sys.stderr)
        return 2
    if args.cmd == "send":
        return feed.send_main(args)
    if args.cmd == "live":
        return feed.live_main(args)
    return 2  # pragma: no cover - argparse enforces the choices


def _generate(args: argparse.Namespace) -> int:
    from simulators.caseload import dumps, generate, write

    shares = dict(DEFAULT_SHARES)
    shares.update(dict(args.share))
    if args.demo:
        from simulators.live import demo_config

        cfg = demo_config(args.persons or 200, 7 if args.seed is None else args.seed)
    else:
        cfg = SimConfig.for_profile(
            args.profile, persons=args.persons or 1000, seed=1 if args.seed is None else args.seed,
            lat=args.center[0], lon=args.center[1], day=args.day, timezone=args.timezone,
            interval_s=args.interval_s, city_radius_m=args.city_radius_m,
            district_detail_m=args.district_detail_m, shares=tuple(shares.items()),
            malformed_lines=args.malformed, phone_share=args.phone_share,
        )
    if cfg.persons < 2:
        print("wardstream simulate: --persons must be at least 2", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    caseload = generate(cfg)
    t1 = time.perf_counter()
    if args.no_telemetry:
        import os

        os.makedirs(args.out, exist_ok=True)
        paths = {}
        for name, obj in (("zones.geojson", caseload.zones), ("orders.json", caseload.orders),
                          ("truth.json", caseload.truth)):
            paths[name] = os.path.join(args.out, name)
            with open(paths[name], "wb") as f:
                f.write(dumps(obj) if name != "zones.geojson" else json.dumps(caseload.zones).encode())
    else:
        paths = write(caseload, args.out, progress=not args.quiet and sys.stderr.isatty())
    for extra, name in ((args.zones_out, "zones.geojson"), (args.orders_out, "orders.json")):
        if extra:
            with open(paths[name], "rb") as src, open(extra, "wb") as dst:
                dst.write(src.read())
    if args.provisioning_out:
        try:
            keys_path = _provisioning(args, paths["orders.json"], {p.device_id for p in caseload.phones})
        except OSError as exc:
            print(f"wardstream simulate generate: cannot write {exc.filename}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 2
        if keys_path is not None:
            paths["phone keys"] = keys_path
    t2 = time.perf_counter()
    meta = caseload.truth["meta"]
    if not args.quiet:
        bad = sum(caseload.truth["rejected"].values())
        phones = f" and {len(caseload.phones)} phone-supervised" if caseload.phones else ""
        print(f"generated {cfg.persons} persons{phones}, {meta['messages']} messages in {meta['lines']} lines "
              f"({bad} of them to be rejected by a consumer), "
              f"{len(caseload.truth['expected'])} expected alerts "
              f"(model {t1 - t0:.1f} s, files {t2 - t1:.1f} s)", file=sys.stderr)
        for name, path in paths.items():
            print(f"  {name:<16} {path}", file=sys.stderr)
    return 0


def _provisioning(args: argparse.Namespace, orders_path: str, phones: set[str]) -> str | None:
    """Write the gateway provisioning file; phones get a fresh key each, written to the keys file.

    Wristband devices are provisioned for the day's protocol without a secret (the simulated
    terminals present none); a phone authenticates its check-ins with its key. Returns the
    keys file's path when there are phones.
    """
    import os

    from devices.provisioning import Provisioning, hash_secret, new_secret, save
    from geofence.model import parse_orders

    proto = args.provisioning_protocol or ("jt808" if args.profile == "jt808" else "osmand")
    with open(orders_path, "rb") as fh:
        orders = parse_orders(fh.read())
    keys = {d: new_secret() for o in orders for d in o.devices if d in phones}
    entries = [{"device_id": d, "protocol": "osmand", "secret_hash": hash_secret(keys[d])}
               if d in keys else {"device_id": d, "protocol": proto}
               for o in orders for d in o.devices]
    save(Provisioning.parse(entries), args.provisioning_out)
    if not keys:
        return None
    path = args.keys_out or os.path.join(os.path.dirname(os.path.abspath(args.provisioning_out)),
                                         "phone-keys.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(keys, fh, indent=1)
        fh.write("\n")
    os.chmod(path, 0o600)
    return path


def _verify(args: argparse.Namespace) -> int:
    import os

    from simulators.verify import verify

    d = args.dir
    with open(os.path.join(d, "truth.json"), "rb") as f:
        truth = json.load(f)
    if args.center is None:
        meta = truth["meta"]
        lat, lon = meta.get("center", [32.06, 118.79])
    else:
        lat, lon = args.center
    with open(os.path.join(d, "zones.geojson"), "rb") as zf, open(os.path.join(d, "orders.json"), "rb") as of, \
            open(os.path.join(d, "telemetry.jsonl"), "rb") as tf:
        problems = verify(zf.read(), of.read(), (line.rstrip(b"\n") for line in tf), truth, lat, lon)
    for p in problems:
        print(p)
    print(f"{len(problems)} problems; truth has {len(truth['expected'])} expected alerts", file=sys.stderr)
    return 1 if problems else 0


def _score(args: argparse.Namespace) -> int:
    from simulators.score import load_alerts, score

    for name, path in (("truth", args.truth), ("alerts", args.alerts)):
        try:
            with open(path, encoding="utf-8") as f:
                if name == "truth":
                    truth = json.load(f)
                else:
                    alerts = load_alerts(f.read())
        except OSError as exc:
            print(f"wardstream simulate score: cannot read {name} {path!r}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 2
        except (ValueError, KeyError) as exc:
            print(f"wardstream simulate score: invalid {name} {path!r}: {exc}", file=sys.stderr)
            return 2
    try:
        report = score(truth, alerts, tolerance_s=args.tolerance_s)
    except (KeyError, TypeError, AttributeError) as exc:
        print(f"wardstream simulate score: {args.truth!r} and {args.alerts!r} are not a truth file "
              f"and alerts as generate and replay write them (no {exc})", file=sys.stderr)
        return 2
    print(report.text())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report.as_dict(), f, ensure_ascii=False, indent=1)
    silent_bad = any(report.silent_violations.values())
    if report.precision < args.min_precision or report.recall < args.min_recall:
        print(f"below threshold: precision {report.precision:.4f} (min {args.min_precision}), "
              f"recall {report.recall:.4f} (min {args.min_recall})", file=sys.stderr)
        return 1
    if silent_bad and args.min_precision >= 1.0:
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
