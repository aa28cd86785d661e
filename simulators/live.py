"""The live demo feed: a generated caseload replayed on the wall clock, forever.

The zones file written by ``wardstream simulate generate`` carries the
generator's settings as a GeoJSON foreign member (``wardstream_simulation``),
so the live feed rebuilds exactly the caseload whose zones and orders the
worker and gateway loaded, and checks that the persons and devices agree.

Time mapping: simulated time ``s`` (ms) is sent with event time
``wall0 + (s - s0) / speedup`` where ``s0`` is just before the demo's
front-loaded breaches (so alerts appear within the first minute); when the
simulated day ends it starts again, one simulated day later in event time.
``wardstream demo`` generates its caseload at start with the breaches staged
at the current local time of day (:func:`demo_config` with
:func:`local_time_of_day`), so the simulated clock shows the real hour: people
are at work by day and at home in the curfew hours, whenever the demo runs.
At ``speedup`` 1 event time is wall time and every duration is real; above
1 people move (and report) faster than life, which keeps a demo busy but
shortens dwell and signal-loss spans accordingly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from geofence.errors import WardstreamError
from geofence.model import Order
from simulators.caseload import SimConfig, config_from_dict, generate
from simulators.feed import Item, item_ts, parse_line

DAY_MS = 86_400_000
DEMO_BREACHES = ("exclusion", "approach", "inclusion", "curfew", "curfew_late", "signal_loss",
                 "tamper", "removed", "sos", "battery_low", "backfill")
"""Breach scenarios the demo stages more often than a real caseload has them."""


class LiveFeedError(WardstreamError):
    """The zones/orders given to the live feed were not written by the generator."""


DEMO_TIMEZONE = "Asia/Shanghai"
"""Local time zone of the demo city and of its orders' curfews."""


def local_time_of_day(now_ms: int | None = None, timezone: str = DEMO_TIMEZONE) -> float:
    """Seconds since local midnight in ``timezone`` at ``now_ms`` (default: now), whole seconds."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    ms = int(time.time() * 1000) if now_ms is None else now_ms
    local = dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(timezone))
    return float(local.hour * 3600 + local.minute * 60 + local.second)


def demo_config(persons: int = 200, seed: int = 7, front_load_s: float = 10 * 3600.0) -> SimConfig:
    """Demo settings, with the breaches staged from ``front_load_s`` (seconds after local midnight).

    The committed demo files (config/demo-*.json) use the default, 10:00;
    ``wardstream demo`` passes the local time of day at which it starts.
    """
    from simulators.caseload import DEFAULT_SHARES

    shares = dict(DEFAULT_SHARES)
    shares.update({"expired": 0.0, "teleport": 0.0})
    # one of each breach in the first minute, then an hour of new incidents every minute or so;
    # the demo's wristbands report over OsmAnd, which carries positions only, so the zone
    # breaches are staged most often
    shares.update(dict.fromkeys(DEMO_BREACHES, 0.05))
    shares.update(dict.fromkeys(("exclusion", "approach", "inclusion"), 0.08))
    return SimConfig(persons=persons, seed=seed, timezone=DEMO_TIMEZONE, district_detail_m=90.0,
                     city_radius_m=12_000.0, front_load_s=front_load_s, incident_window_s=3600.0,
                     open_validity=True, shares=tuple(shares.items()), malformed_lines=4)


def live_items(zones: dict[str, Any], orders: Sequence[Order], speedup: float = 1.0,
               now_ms: int | None = None, loops: int | None = None) -> Iterator[Item]:
    """Items with wall-clock event times, in delivery order, forever (or ``loops`` days)."""
    meta = zones.get("wardstream_simulation")
    if not isinstance(meta, dict):
        raise LiveFeedError("the zones file has no `wardstream_simulation` settings; "
                            "write it with `wardstream simulate generate`")
    cfg = config_from_dict(meta)
    caseload = generate(cfg)
    import json

    from geofence.model import parse_orders

    made = {o.person_id: o for o in parse_orders(json.dumps(caseload.orders))}
    for o in orders:
        if made.get(o.person_id) != o:
            raise LiveFeedError(
                f"order of {o.person_id!r} differs from what the generator makes from the zones "
                "file's settings; regenerate both files with `wardstream simulate generate --demo`")
    want = {d for o in orders for d in o.devices}
    day0 = caseload.day_start_ms
    s0 = day0 + int(((cfg.front_load_s or 8 * 3600.0) - 5.0) * 1000)
    wall0: int | None = now_ms  # fixed at the first item sent, after skipping to s0
    k = 0
    while loops is None or k < loops:
        for line in caseload.lines():
            item = parse_line(line)
            if item.messages is not None:
                msgs = [m for m in item.messages if m.get("device_id", "") in want or "camera_id" in m]
                if not msgs:
                    continue
                item = Item(b"", msgs, item.backfill)
            t = item_ts(item)
            if k == 0 and t is not None and t < s0:
                continue
            if wall0 is None:
                wall0 = int(time.time() * 1000)
            if item.messages is not None:
                shifted = []
                for m in item.messages:
                    if isinstance(m.get("ts"), int):
                        sim = m["ts"] + k * DAY_MS
                        m = {**m, "ts": wall0 + int((sim - s0) / speedup)}
                    shifted.append(m)
                item = Item(b"", shifted, item.backfill)
            yield item
        k += 1
