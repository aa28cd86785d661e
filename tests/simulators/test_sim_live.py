"""The demo feed: wall-clock event times, and alerts within the first minute."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import msgspec
import pytest

from geofence.engine import replay_lines
from geofence.model import parse_orders, parse_ts
from geofence.zones import ZoneCatalogue
from simulators.feed import item_ts, parse_line
from simulators.live import LiveFeedError, live_items

ROOT = Path(__file__).resolve().parents[2]
NOW = 1_800_000_000_000  # 2027-01-15: the demo orders are valid far beyond the simulated day


def _first_minutes(minutes: float) -> list[bytes]:
    zones = json.loads((ROOT / "config/demo-zones.geojson").read_text())
    orders = parse_orders((ROOT / "config/demo-orders.json").read_bytes())
    lines = []
    for item in live_items(zones, orders, now_ms=NOW, loops=1):
        t = item_ts(item)
        if t is not None and t > NOW + minutes * 60_000:
            break
        if item.messages is None:
            lines.append(item.raw)
        else:
            lines.append(msgspec.json.encode(item.messages if item.backfill else item.messages[0]))
    return lines


def test_demo_feed_raises_alerts_within_a_minute() -> None:
    lines = _first_minutes(3)
    ts = [t for line in lines if (t := item_ts(parse_line(line))) is not None]
    assert min(ts) >= NOW - 60_000 and max(ts) <= NOW + 180_000  # event time = wall time
    zones = ZoneCatalogue.from_geojson((ROOT / "config/demo-zones.geojson").read_bytes())
    orders = parse_orders((ROOT / "config/demo-orders.json").read_bytes())
    alerts, _ = replay_lines(lines, zones, orders)
    early = [a for a in alerts if parse_ts(a.opened_at) <= NOW + 60_000]
    kinds = {a.kind for a in early}
    assert len(early) >= 4, [a.kind for a in alerts]
    assert {"tamper", "sos"} <= kinds
    assert kinds & {"exclusion_entered", "inclusion_left", "exclusion_approach"}


def test_live_feed_refuses_files_it_did_not_generate(tmp_path: Path) -> None:
    zones = json.loads((ROOT / "config/demo-zones.geojson").read_text())
    orders = parse_orders((ROOT / "config/demo-orders.json").read_bytes())
    with pytest.raises(LiveFeedError):
        next(iter(live_items({k: v for k, v in zones.items() if k != "wardstream_simulation"}, orders)))
    changed = [msgspec.structs.replace(orders[0], jurisdiction="320999"), *orders[1:]]
    with pytest.raises(LiveFeedError):
        next(itertools.islice(live_items(zones, changed), 1))


def test_demo_feed_keeps_raising_new_incidents_after_the_first_minute() -> None:
    """What the demo shows: its wristbands report over OsmAnd, which carries positions
    only, so the replay takes the fixes alone."""
    fixes = []
    for line in _first_minutes(10):
        item = parse_line(line)
        msgs = item.messages or []
        fixes += [msgspec.json.encode(m) for m in msgs if m.get("kind") == "fix"]
    zones = ZoneCatalogue.from_geojson((ROOT / "config/demo-zones.geojson").read_bytes())
    orders = parse_orders((ROOT / "config/demo-orders.json").read_bytes())
    alerts, _ = replay_lines(fixes, zones, orders)
    # curfews are left out: whether they fire depends on the local time the demo runs at
    alerts = [a for a in alerts if a.kind != "curfew_violated"]
    later = [a for a in alerts if parse_ts(a.opened_at) > NOW + 60_000]
    assert len(later) >= 5 and len({a.kind for a in later}) >= 3, [a.kind for a in later]
    minutes = sorted({(parse_ts(a.opened_at) - NOW) // 60_000 for a in alerts})
    assert minutes[0] == 0 and minutes[-1] >= 8
    assert max(b - a for a, b in itertools.pairwise(minutes)) <= 3, minutes  # never quiet for long


_MIDNIGHT = NOW - (NOW + 8 * 3_600_000) % 86_400_000  # a midnight in Asia/Shanghai (UTC+8)


@pytest.mark.parametrize("hour", range(0, 24, 3))
def test_demo_started_at_any_hour_tells_a_story_without_a_wall_of_curfews(hour: int) -> None:
    """The demo stages its breaches at the local time it starts: whatever the hour, its
    first ten minutes (the fixes its OsmAnd wristbands deliver) raise alerts of several
    kinds, and people not staged to breach are at home in their curfew hours."""
    from simulators.caseload import SILENT_KINDS, generate
    from simulators.live import demo_config, local_time_of_day

    now = _MIDNIGHT + hour * 3_600_000 + 40 * 60_000
    assert local_time_of_day(now) == hour * 3600 + 40 * 60
    caseload = generate(demo_config(front_load_s=local_time_of_day(now)))
    orders = parse_orders(json.dumps(caseload.orders))
    fixes = []
    for item in live_items(caseload.zones, orders, now_ms=now, loops=2):  # 21:40 runs past midnight
        t = item_ts(item)
        if t is not None and t > now + 600_000:
            break
        fixes += [msgspec.json.encode(m) for m in item.messages or [] if m.get("kind") == "fix"]
    zones = ZoneCatalogue.from_geojson(json.dumps(caseload.zones).encode())
    alerts, _ = replay_lines(fixes, zones, orders)
    kinds = {a.kind for a in alerts}
    assert len(alerts) >= 5 and len(kinds) >= 3, [a.kind for a in alerts]
    assert min(parse_ts(a.opened_at) for a in alerts) <= now + 60_000  # within the first minute
    staged = {p.person_id for p in caseload.persons
              if p.scenario is not None and p.scenario not in SILENT_KINDS}
    stray = [a.person_id for a in alerts if a.kind == "curfew_violated" and a.person_id not in staged]
    assert len(stray) <= 2, stray
    if 7 <= hour <= 20:  # daytime: nobody is out in a curfew
        assert "curfew_violated" not in kinds
