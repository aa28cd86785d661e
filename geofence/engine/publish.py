"""Publishing: releasing a lane's records, and only the difference after a rewind."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from geofence.engine.state import (
    Hist,
    Lane,
    LogItem,
)
from geofence.model import (
    AlertRecord,
    format_ts,
    parse_ts,
)

if TYPE_CHECKING:
    from geofence.engine.core import Engine


def publish(eng: Engine, lane: Lane, items: list[LogItem], out: list[AlertRecord]) -> None:
    lane.log.extend(items)
    if lane.late:
        items = eng._suppress(lane, items)
    for it in items:
        r = it.rec
        lane.emitted[r.alert.alert_id] = r.alert
        out.append(r)
        if not lane.late:
            eng._track(lane, r)


def track(eng: Engine, lane: Lane, r: AlertRecord) -> None:
    a = r.alert
    if lane.hist is None:
        lane.hist = []
    if r.event == "opened":
        lane.hist.append(Hist(a.alert_id, a.kind, a.rule_id, parse_ts(a.opened_at)))
        return
    for h in reversed(lane.hist):
        if h.alert_id == a.alert_id:
            if a.reason == "retracted":
                lane.hist.remove(h)
            elif a.status == "cleared" and a.cleared_at:
                h.cleared = parse_ts(a.cleared_at)
            else:
                h.cleared = -1
            break


def suppress(eng: Engine, lane: Lane, items: list[LogItem]) -> list[LogItem]:
    live = eng._lanes.get(lane.key)
    keep: list[LogItem] = []
    for it in items:
        a = it.rec.alert
        if lane.suppressed is not None and a.alert_id in lane.suppressed:
            continue
        if it.rec.event == "opened" and live is not None:
            t = parse_ts(a.opened_at)
            if any(
                h.kind == a.kind and h.rule_id == a.rule_id and h.opened <= t
                and (h.cleared < 0 or h.cleared >= t)
                for h in (live.hist or ())
            ):
                if lane.suppressed is None:
                    lane.suppressed = []
                lane.suppressed.append(a.alert_id)
                continue
        keep.append(it)
    return keep


def publish_diff(
    eng: Engine, lane: Lane, old: list[LogItem], new: list[LogItem], out: list[AlertRecord], at_ms: int
) -> None:
    lane.log.extend(new)
    if lane.late:
        new = eng._suppress(lane, new)
    at = format_ts(at_ms)
    by_id: dict[str, list[AlertRecord]] = {}
    for it in new:
        by_id.setdefault(it.rec.alert.alert_id, []).append(it.rec)
    emitted = lane.emitted
    released: list[AlertRecord] = []
    for aid, recs in by_id.items():
        seen = emitted.get(aid)
        if seen is None:
            released.extend(recs)
            emitted[aid] = recs[-1].alert
            continue
        target = recs[-1].alert
        if target != seen:
            ev = "cleared" if target.status == "cleared" else "updated"
            released.append(AlertRecord(ev, target, at=at))  # type: ignore[arg-type]
            emitted[aid] = target
    gone = {it.rec.alert.alert_id for it in old} - set(by_id)
    if gone:
        now_open = {a.alert_id: a for a in lane.state.open_alerts()}
        for aid in sorted(gone):
            seen = emitted.get(aid)
            cur = now_open.get(aid)
            if cur is not None:
                if cur != seen:
                    released.append(AlertRecord("updated", cur, at=at))
                    emitted[aid] = cur
            elif seen is not None and seen.reason != "retracted":
                gone_alert = msgspec.structs.replace(
                    seen, status="cleared", cleared_at=seen.opened_at, reason="retracted"
                )
                released.append(AlertRecord("cleared", gone_alert, at=at))
                emitted[aid] = gone_alert
    for r in released:
        out.append(r)
        if not lane.late:
            eng._track(lane, r)
