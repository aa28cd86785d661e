"""``wardstream notify``: notification policies and duty rosters from the command line.

``wardstream notify policy add --channel C --recipient R [--prefix P] [--tier T]
[--severities red,orange] [--kinds K,...] [--events opened,escalated]
[--quiet 22:00-06:30] [--quiet-tz ZONE]``, ``policy list``, ``policy rm ID``;
``wardstream notify roster add --jurisdiction J --officer NAME --from T --to T
[--contact CHANNEL=ADDRESS ...]``, ``roster list``, ``roster rm ID``. Changes
are written to the audit log as made by ``cli``. Reads
``WARDSTREAM_DATABASE_URL`` and ``WARDSTREAM_DATABASE_SCHEMA``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from alerts.db import create_pool, system_clock, utc
from alerts.notify import store
from alerts.notify.policy import CHANNELS, check_policy_body, check_shift_body
from alerts.store import audit
from geofence.errors import WardstreamError
from stream.settings import Settings


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="wardstream notify",
                                 description="Manage who is paged for alerts: notification "
                                             "policies and duty rosters.")
    sub = ap.add_subparsers(dest="what", required=True)
    pol = sub.add_parser("policy", help="notification policies").add_subparsers(dest="op",
                                                                                 required=True)
    add = pol.add_parser("add", help="add a policy")
    add.add_argument("--channel", required=True, choices=CHANNELS)
    add.add_argument("--recipient", required=True,
                     help="'duty' for the officer on the roster, or an address")
    add.add_argument("--prefix", default="", help="jurisdiction prefix (default: every one)")
    add.add_argument("--tier", default="county", choices=("county", "city", "province"))
    add.add_argument("--severities", help="comma-separated (default: every severity)")
    add.add_argument("--kinds", help="comma-separated alert kinds (default: every kind)")
    add.add_argument("--events", default="opened,escalated", help="comma-separated events")
    add.add_argument("--quiet", help="quiet hours HH:MM-HH:MM (red alerts are always paged)")
    add.add_argument("--quiet-tz", default="Asia/Shanghai")
    pol.add_parser("list", help="list policies")
    rm = pol.add_parser("rm", help="remove a policy")
    rm.add_argument("id", type=int)
    ros = sub.add_parser("roster", help="duty roster").add_subparsers(dest="op", required=True)
    radd = ros.add_parser("add", help="add a duty shift")
    radd.add_argument("--jurisdiction", required=True)
    radd.add_argument("--officer", required=True)
    radd.add_argument("--from", dest="starts", required=True, help="RFC 3339 start")
    radd.add_argument("--to", dest="ends", required=True, help="RFC 3339 end")
    radd.add_argument("--contact", action="append", default=[], metavar="CHANNEL=ADDRESS")
    ros.add_parser("list", help="list shifts")
    rrm = ros.add_parser("rm", help="remove a shift")
    rrm.add_argument("id", type=int)
    return ap


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    pool = await create_pool(settings.database_url, settings.database_schema)
    try:
        async with pool.acquire() as conn, conn.transaction():
            out: Any
            if args.what == "policy" and args.op == "add":
                body: dict[str, Any] = {
                    "channel": args.channel, "recipient": args.recipient,
                    "jurisdiction_prefix": args.prefix, "tier": args.tier,
                    "events": _csv(args.events), "severities": _csv(args.severities),
                    "kinds": _csv(args.kinds), "quiet_tz": args.quiet_tz}
                if args.quiet:
                    start, _, end = args.quiet.partition("-")
                    body["quiet_start"], body["quiet_end"] = start, end
                out = await store.add_policy(conn, check_policy_body(body), "cli")
                await audit(conn, system_clock(), "cli", "notify.policy.add",
                            str(out["policy_id"]), None, "local")
            elif args.what == "policy" and args.op == "list":
                out = await store.list_policies(conn, "")
            elif args.what == "policy":
                if not await store.delete_policy(conn, args.id, ""):
                    raise WardstreamError(f"no policy {args.id}")
                await audit(conn, system_clock(), "cli", "notify.policy.delete", str(args.id),
                            None, "local")
                out = {"deleted": args.id}
            elif args.op == "add":
                contacts: dict[str, str] = {}
                for c in args.contact:
                    channel, sep, address = c.partition("=")
                    if not sep:
                        raise WardstreamError(f"--contact {c!r}: use CHANNEL=ADDRESS with a "
                                              f"channel of {', '.join(CHANNELS)}")
                    contacts[channel] = address
                shift = check_shift_body({"jurisdiction": args.jurisdiction,
                                          "officer": args.officer, "starts_at": args.starts,
                                          "ends_at": args.ends, "contacts": contacts})
                out = await store.add_shift(conn, shift["jurisdiction"], shift["officer"],
                                            utc(shift["starts_at"]), utc(shift["ends_at"]),
                                            shift["contacts"], "cli")
                await audit(conn, system_clock(), "cli", "notify.roster.add",
                            str(out["shift_id"]), None, "local")
            elif args.op == "list":
                out = await store.list_shifts(conn, "", None, None)
            else:
                if not await store.delete_shift(conn, args.id, ""):
                    raise WardstreamError(f"no shift {args.id}")
                await audit(conn, system_clock(), "cli", "notify.roster.delete", str(args.id),
                            None, "local")
                out = {"deleted": args.id}
    finally:
        await pool.close()
    print(json.dumps(out, ensure_ascii=False, default=str))
    return 0


def main(argv: Sequence[str]) -> int:
    """Entry point of ``wardstream notify``."""
    args = _parser().parse_args(list(argv))
    try:
        return asyncio.run(_run(args, Settings.from_env()))
    except (WardstreamError, OSError) as exc:
        print(f"wardstream notify: {exc}".splitlines()[0], file=sys.stderr)
        return 2
