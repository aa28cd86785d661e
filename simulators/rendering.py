"""Rendering the day as telemetry: every device's fixes, device events,
video hits and malformed lines, in delivery order, with the expected alerts."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from geofence.model import format_ts
from simulators.caseconfig import CAMERA_QUIET_S, FACILITY_EVENTS, SimConfig
from simulators.city import City
from simulators.people import Person, _true_track, sample_in
from simulators.truth import _exp, _truth_for, contact_truth


class Messages:
    """All telemetry of the day as columns, plus the few irregular lines.

    Fix columns hold delivery time, event time, position and quality;
    ``group`` ties the fixes of one backfill batch into one JSON-array line.
    """

    def __init__(self) -> None:
        self.fix_cols: dict[str, NDArray[Any]] = {}
        self.extra: list[tuple[int, int, bytes]] = []   # (deliver_ms, seq, line)
        self.device_ids: list[str] = []
        self.malformed_reasons: dict[str, int] = {}
        self.count = 0
        self.line_count = 0

    def lines(self, chunk: int = 400_000) -> Iterator[bytes]:
        """JSONL lines in delivery order (ties broken deterministically).

        Fixes of one backfill batch share a delivery time and become one
        JSON-array line; device events and malformed lines are merged in by
        delivery time. Rendered in chunks so a day of 5,000 persons never
        holds a gigabyte of text at once.
        """
        c = self.fix_cols
        order = np.lexsort((c["seq"], c["group"], c["deliver"]))
        deliver = c["deliver"][order]
        group = c["group"][order]
        extra = sorted(self.extra)
        extra_at = np.array([e[0] for e in extra], dtype=np.int64)
        n = len(order)
        # a line starts where a fix is single or opens a new backfill group
        starts = np.ones(n, dtype=bool)
        if n:
            starts[1:] = (group[1:] < 0) | (group[1:] != group[:-1])
        ei = 0
        lo = 0
        while lo < n:
            hi = min(n, lo + chunk)
            while hi < n and not starts[hi]:
                hi += 1
            texts = _fix_texts(c, order[lo:hi], self.device_ids)
            st = np.flatnonzero(starts[lo:hi])
            if len(st) == hi - lo:
                lines = texts
            else:
                bounds = [*st.tolist(), hi - lo]
                lines = [
                    texts[a] if b - a == 1 else b"[" + b",".join(texts[a:b]) + b"]"
                    for a, b in itertools.pairwise(bounds)
                ]
            line_deliver = deliver[lo:hi][st]
            # extras delivered no later than a line go before it
            pos = np.searchsorted(line_deliver, extra_at[ei:], side="left")
            k = 0
            prev = 0
            for p_ in pos.tolist():
                if p_ >= len(lines) and hi < n:
                    break
                yield from lines[prev:p_]
                yield extra[ei + k][2]
                prev = max(prev, p_)
                k += 1
            ei += k
            yield from lines[prev:]
            lo = hi
        for e in extra[ei:]:
            yield e[2]


def _fix_texts(c: dict[str, NDArray[Any]], order: NDArray[np.int64], device_ids: list[str]) -> list[bytes]:
    dev = c["dev"][order].tolist()
    ts = c["ts"][order].tolist()
    lat = np.round(c["lat"][order], 6).tolist()
    lon = np.round(c["lon"][order], 6).tolist()
    acc = np.round(c["acc"][order], 1).tolist()
    valid = c["valid"][order].tolist()
    speed = np.round(c["speed"][order], 1).tolist()
    batt = c["batt"][order].tolist()
    ids = [d.encode() for d in device_ids]
    out: list[bytes] = []
    for dv, t, la, lo, a, v, s, b in zip(dev, ts, lat, lon, acc, valid, speed, batt, strict=True):
        if v:
            out.append(b'{"kind":"fix","device_id":"%s","ts":%d,"lat":%r,"lon":%r,"accuracy_m":%r,'
                       b'"speed_mps":%r,"battery_pct":%d}' % (ids[dv], t, la, lo, a, s, b))
        else:
            out.append(b'{"kind":"fix","device_id":"%s","ts":%d,"lat":%r,"lon":%r,"accuracy_m":%r,'
                       b'"valid":false,"source":"cell","battery_pct":%d}' % (ids[dv], t, la, lo, a, b))
    return out


def _report_times(p: Any, cfg: Any, base: NDArray[np.float64], shift: float,
                  outages: Any) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
    """One device's report times: the regular ``base`` schedule, replaced inside
    each scenario segment by the segment's own (``shift`` seconds later), as
    millisecond event times unique per device, minus the ``outages``
    (``(start, end)`` seconds). Returns (ms, seconds, segment index or -1).
    """
    keep = np.ones(len(base), dtype=bool)
    seg_ts: list[NDArray[np.float64]] = []
    seg_of: list[NDArray[np.int64]] = []
    for si, sg in enumerate(p.segments):
        keep &= ~((base >= sg.t0) & (base < sg.t1))
        sts = np.arange(sg.t0 + sg.start_offset + shift, sg.t1, sg.interval)
        seg_ts.append(sts)
        seg_of.append(np.full(len(sts), si))
    t_all = np.concatenate([base[keep], *seg_ts])
    s_all = np.concatenate([np.full(int(keep.sum()), -1), *seg_of]).astype(np.int64)
    ms = (np.round(t_all) * 1000 if cfg.whole_seconds else np.round(t_all * 1000)).astype(np.int64)
    o = np.argsort(ms, kind="stable")
    ms, t_all, s_all = ms[o], t_all[o], s_all[o]
    u = np.concatenate([[True], np.diff(ms) > 0])
    ms, t_all, s_all = ms[u], t_all[u], s_all[u]
    for a, b in outages:
        m = (t_all >= a) & (t_all < b)
        ms, t_all, s_all = ms[~m], t_all[~m], s_all[~m]
    return ms, t_all, s_all


def _render(
    rng: np.random.Generator, cfg: SimConfig, city: City, persons: list[Person], day0: int,
) -> tuple[Messages, list[dict[str, Any]]]:
    msgs = Messages()
    cols: dict[str, list[NDArray[Any]]] = {k: [] for k in (
        "dev", "ts", "deliver", "x", "y", "acc", "valid", "speed", "batt", "group", "seq")}
    expected: list[dict[str, Any]] = []
    group_id = 0
    seq0 = 0
    contact_ts: dict[str, list[int]] = {}
    day_s = 86400.0
    for p in persons:
        dev = len(msgs.device_ids)
        msgs.device_ids.append(p.device_id)
        phase = float(rng.uniform(0, cfg.interval_s))
        base = np.arange(phase, day_s, cfg.interval_s)
        ms, t_all, s_all = _report_times(p, cfg, base, 0.0,
                                         [p.outage] if p.outage is not None else [])
        n = len(ms)
        x, y = _true_track(p, t_all)
        speed = p.traj.speed_at(t_all)
        in_seg = s_all >= 0
        speed[in_seg] = 0.0
        # accuracy by situation: indoors at home/work, moving, outdoors
        stay_indoor = np.zeros(n, dtype=bool)
        for st in p.traj.stays:
            if st.indoor:
                stay_indoor |= (t_all >= st.t0) & (t_all < st.t1)
        stay_indoor &= ~in_seg
        acc = np.where(stay_indoor, rng.lognormal(math.log(16), 0.35, n), rng.lognormal(math.log(7), 0.35, n))
        acc = np.clip(acc, 3.0, 60.0)
        cap = np.full(n, 0.95)
        wander = np.zeros(n)
        valid = np.ones(n, dtype=bool)
        for si, s in enumerate(p.segments):
            m = s_all == si
            acc[m] = rng.uniform(s.acc_lo, s.acc_hi, int(m.sum()))
            cap[m] = s.noise_cap
            wander[m] = s.wander_m
        # quiet time around scenario segments: no outliers, no invalid fixes
        quiet = np.zeros(n, dtype=bool)
        for s in p.segments:
            quiet |= (t_all >= s.t0 - 600) & (t_all < s.t1 + 600)
        ordinary = p.scenario is None
        if ordinary or p.scenario in ("tamper", "removed", "sos", "battery_low", "signal_loss", "teleport"):
            inval = stay_indoor & (rng.random(n) < cfg.invalid_indoor_rate) & ~quiet
            valid &= ~inval
            acc[inval] = rng.uniform(150, 1500, int(inval.sum()))
            outl = ~stay_indoor & ~in_seg & (rng.random(n) < cfg.outlier_rate) & ~quiet
            err = rng.uniform(50, 300, int(outl.sum()))
            acc[outl] = err * rng.uniform(1.1, 2.0, len(err))
            # the outlier error replaces the ordinary one (see below)
        else:
            outl = np.zeros(n, dtype=bool)
        if cfg.fixed_accuracy_m is not None:  # the protocol reports one accuracy for all
            acc = np.where(valid, np.minimum(acc, cfg.fixed_accuracy_m), acc)
        # true wander within segments (standing, small steps)
        if wander.any():
            wa = rng.uniform(0, 2 * math.pi, n)
            wr = rng.uniform(0, 1, n) * wander
            x = x + wr * np.cos(wa)
            y = y + wr * np.sin(wa)
        # position error: a fraction of the reported accuracy, never more than it
        frac = np.minimum(rng.rayleigh(0.45, n), cap)
        frac[outl] = 1.0 / rng.uniform(1.1, 2.0, int(outl.sum()))
        ang = rng.uniform(0, 2 * math.pi, n)
        ex = acc * frac * np.cos(ang)
        ey = acc * frac * np.sin(ang)
        rx, ry = x + ex, y + ey
        if cfg.fixed_accuracy_m is not None:
            acc = np.where(valid, cfg.fixed_accuracy_m, acc)
        if p.teleports:
            used_k: list[int] = []
            for tt in p.teleports:
                k = int(np.searchsorted(t_all, tt))
                if k < n and not quiet[k] and all(abs(k - j) > 2 for j in used_k):
                    used_k.append(k)
                    far = float(rng.uniform(25_000, 40_000))
                    a = float(rng.uniform(0, 2 * math.pi))
                    rx[k] = far * math.cos(a)
                    ry[k] = far * math.sin(a)
                    acc[k] = float(rng.uniform(5, 12))
                    if cfg.fixed_accuracy_m is not None:
                        acc[k] = cfg.fixed_accuracy_m
                    valid[k] = True
        # battery: drains by day, charges from about 22:00
        charge_at = float(rng.uniform(21.7, 22.5)) * 3600
        hours = t_all / 3600.0
        batt = p.battery0 - p.drain_per_h * hours
        after = t_all >= charge_at
        low_at_charge = p.battery0 - p.drain_per_h * charge_at / 3600
        batt = np.where(after, np.minimum(100.0, low_at_charge + 40.0 * (t_all - charge_at) / 3600), batt)
        batt = np.clip(batt, 1.0, 100.0)
        p.events.append((charge_at + 5.0, "charging"))
        if p.scenario == "battery_low":
            t_low = (p.battery0 - 15.0) / p.drain_per_h * 3600
            if t_low < charge_at:
                p.events.append((t_low, "battery_low"))
        # delivery: network delay, out-of-order persons, backfill
        deliver = ms + rng.integers(200, 2500, n)
        p.reorder = ordinary and rng.random() < cfg.reorder_person_rate
        if p.reorder:
            deliver = ms + rng.integers(200, 75_000, n)
        group = np.full(n, -1, dtype=np.int64)
        offline = p.offline
        if offline is None and ordinary and rng.random() < cfg.offline_person_rate:
            t_o = float(rng.uniform(9, 19)) * 3600
            offline = (t_o, t_o + float(rng.uniform(5, 12)) * 60)
            p.offline = offline
        if offline is not None:
            m = (t_all >= offline[0]) & (t_all < offline[1])
            reconnect = int(offline[1] * 1000) + 3000  # relative to day0, like ms
            deliver[m] = reconnect
            group[m] = group_id
            group_id += 1
        lon, lat = city.frame.to_lonlat(rx, ry)
        valid_until_ms = None if p.valid_until_s is None else day0 + int(p.valid_until_s * 1000)
        cols["dev"].append(np.full(n, dev, dtype=np.int64))
        cols["ts"].append(day0 + ms)
        cols["deliver"].append(day0 + deliver)
        cols["x"].append(lon)
        cols["y"].append(lat)
        cols["acc"].append(acc)
        cols["valid"].append(valid)
        cols["speed"].append(speed)
        cols["batt"].append(np.round(batt).astype(np.int64))
        cols["group"].append(group)
        cols["seq"].append(np.arange(seq0, seq0 + n))
        seq0 += n
        # duplicates: the same fix delivered again a little later
        if ordinary and cfg.duplicate_rate > 0:
            dup = np.flatnonzero((rng.random(n) < cfg.duplicate_rate) & (group < 0))
            if len(dup):
                for name, arr in (("dev", np.full(len(dup), dev, dtype=np.int64)), ("ts", day0 + ms[dup]),
                                  ("deliver", day0 + deliver[dup] + rng.integers(1000, 30_000, len(dup))),
                                  ("x", lon[dup]), ("y", lat[dup]), ("acc", acc[dup]), ("valid", valid[dup]),
                                  ("speed", speed[dup]), ("batt", np.round(batt[dup]).astype(np.int64)),
                                  ("group", np.full(len(dup), -1, dtype=np.int64)),
                                  ("seq", np.arange(seq0, seq0 + len(dup)))):
                    cols[name].append(arr)
                seq0 += len(dup)
        # device events (heartbeats for some, scenario events, charging)
        for t_ev, name in sorted(p.events):
            if p.outage is not None and p.outage[0] < t_ev < p.outage[1]:
                continue
            ev_ms = day0 + (round(t_ev) * 1000 if cfg.whole_seconds else round(t_ev * 1000))
            line = b'{"kind":"device_event","device_id":"%s","ts":%d,"event":"%s"}' % (
                p.device_id.encode(), ev_ms, name.encode())
            msgs.extra.append((ev_ms + 800, seq0, line))
            seq0 += 1
            if name in ("tamper", "removed", "sos", "battery_low", "power_off") and (
                    valid_until_ms is None or ev_ms < valid_until_ms):
                expected.append(_exp(p, name, name, ev_ms, ev_ms, "device"))
        phone: tuple[NDArray[np.int64], NDArray[np.int64]] | None = None
        if p.phone_id is not None:
            pdev = len(msgs.device_ids)
            msgs.device_ids.append(p.phone_id)
            pcols, phone = _render_phone(rng, cfg, city, p, pdev, phase, day0, seq0, ms)
            seq0 += len(phone[0])
            for name, arr in pcols.items():
                cols[name].append(arr)
        # video analytics: face matches of this person
        for k, (t_f, fx_, fy_, conf) in enumerate(p.faces):
            f_ms = day0 + (round(t_f) * 1000 if cfg.whole_seconds else round(t_f * 1000))
            flon, flat = city.frame.to_lonlat(np.array([fx_]), np.array([fy_]))
            line = (b'{"kind":"video_hit","camera_id":"CAM-%05d-%d","ts":%d,"event":"face_match",'
                    b'"lat":%r,"lon":%r,"person_id":"%s","confidence":%r,"jurisdiction":"%s"}' % (
                        p.idx + 1, k, f_ms, round(float(flat[0]), 6), round(float(flon[0]), 6),
                        p.person_id.encode(), conf, p.district.encode()))
            msgs.extra.append((f_ms + int(rng.integers(500, 3000)), seq0, line))
            seq0 += 1
        # ground truth of geofence scenarios from the emitted fixes
        _truth_for(p, ms, s_all, day0, expected, offline, cfg.whole_seconds, phone)
        if p.scenario == "contact":
            contact_ts[p.person_id] = [int(v) for v in ms[s_all == 0]]
        msgs.count += n
    expected.extend(contact_truth(persons, contact_ts, day0))
    seq0 = _facility(rng, cfg, city, day0, msgs, expected, seq0)
    for col, arrs in cols.items():
        msgs.fix_cols[col] = np.concatenate(arrs) if arrs else np.zeros(0)
    msgs.fix_cols["lat"] = msgs.fix_cols.pop("y")
    msgs.fix_cols["lon"] = msgs.fix_cols.pop("x")
    msgs.count = len(msgs.fix_cols["ts"]) + len(msgs.extra)
    _malformed(rng, cfg, persons, day0, msgs)
    groups = msgs.fix_cols["group"]
    singles = int(np.sum(groups < 0))
    msgs.line_count = singles + len(set(groups[groups >= 0].tolist())) + len(msgs.extra)
    return msgs, expected


def _render_phone(
    rng: np.random.Generator, cfg: SimConfig, city: City, p: Person, pdev: int, phase: float,
    day0: int, seq0: int, wristband_ms: NDArray[np.int64],
) -> tuple[dict[str, NDArray[Any]], tuple[NDArray[np.int64], NDArray[np.int64]]]:
    """Fix columns of a person's second device (a phone carried with the wristband).

    Same true track, its own phase (10-50 s after the wristband's), 7 s after
    the wristband inside scenario segments, always valid, error below the
    reported accuracy. A phone fix in the same second as a wristband fix is
    dropped: with whole-second times (JT/T 808) a phone fix just before a
    breach starts would otherwise share its timestamp with the wristband's
    first fix inside, and the order of two fixes with one timestamp is the
    engine's choice, not the contract's. Returns the columns and (event-time
    ms relative to day0, segment index).
    """
    day_s = 86400.0
    pphase = (phase + float(rng.uniform(10.0, 50.0))) % cfg.interval_s
    base = np.arange(pphase, day_s, cfg.interval_s)
    ms, t_all, s_all = _report_times(p, cfg, base, 7.0, p.phone_outages)
    n = len(ms)
    x, y = _true_track(p, t_all)
    speed = p.traj.speed_at(t_all)
    speed[s_all >= 0] = 0.0
    acc = np.clip(rng.lognormal(math.log(9), 0.35, n), 3.0, 40.0)
    for si, sg in enumerate(p.segments):
        m = s_all == si
        acc[m] = rng.uniform(sg.acc_lo, sg.acc_hi, int(m.sum()))
    if cfg.fixed_accuracy_m is not None:
        acc = np.minimum(acc, cfg.fixed_accuracy_m)
    frac = np.minimum(rng.rayleigh(0.45, n), 0.95)
    ang = rng.uniform(0, 2 * math.pi, n)
    rx, ry = x + acc * frac * np.cos(ang), y + acc * frac * np.sin(ang)
    if cfg.fixed_accuracy_m is not None:
        acc = np.full(n, cfg.fixed_accuracy_m)
    lon, lat = city.frame.to_lonlat(rx, ry)
    batt = np.clip(np.round(95.0 - 2.0 * t_all / 3600.0), 30, 100).astype(np.int64)
    deliver = day0 + ms + rng.integers(200, 2500, n)
    ok = ~np.isin(ms // 1000, wristband_ms // 1000)  # after every draw: the rest of the day is unchanged
    m_ = int(ok.sum())
    cols: dict[str, NDArray[Any]] = {
        "dev": np.full(m_, pdev, dtype=np.int64), "ts": day0 + ms[ok], "deliver": deliver[ok],
        "x": lon[ok], "y": lat[ok], "acc": acc[ok], "valid": np.ones(m_, dtype=bool),
        "speed": speed[ok], "batt": batt[ok], "group": np.full(m_, -1, dtype=np.int64),
        "seq": np.arange(seq0, seq0 + m_),
    }
    return cols, (ms[ok], s_all[ok])


def _facility(rng: np.random.Generator, cfg: SimConfig, city: City, day0: int, msgs: Messages,
              expected: list[dict[str, Any]], seq0: int) -> int:
    """Facility cameras (no person): bursts of perimeter_breach, fight, crowd, fall, loitering.

    Hits of one camera and event less than ``CAMERA_QUIET_S`` apart are one
    incident (one alert, opened at its first hit); the next burst of the same
    event starts 6-60 min after the last hit, when the engine has cleared the
    alert, and opens a new one. Half the cameras also see a second event
    during the first burst: a separate alert.
    """
    count = cfg.facility_cameras if cfg.facility_cameras is not None else max(2, cfg.persons // 250)
    for k in range(count):
        d = city.districts[int(rng.integers(len(city.districts)))]
        pos = sample_in(rng, d.core, 1)[0]
        lon, lat = city.frame.to_lonlat(np.array([pos[0]]), np.array([pos[1]]))
        cam = f"CAM-F{k + 1:04d}"
        ev = FACILITY_EVENTS[k % len(FACILITY_EVENTS)]
        t = float(rng.uniform(1.0, 18.0)) * 3600
        bursts: list[tuple[str, list[float]]] = []
        for _b in range(2):
            hits = [t]
            for _ in range(int(rng.integers(0, 4))):
                hits.append(hits[-1] + float(rng.uniform(15.0, CAMERA_QUIET_S - 60.0)))
            bursts.append((ev, hits))
            t = hits[-1] + float(rng.uniform(CAMERA_QUIET_S + 60.0, 3600.0))
        if rng.random() < 0.5:
            other = FACILITY_EVENTS[(k + 1 + int(rng.integers(len(FACILITY_EVENTS) - 1))) % len(FACILITY_EVENTS)]
            first = bursts[0][1]
            bursts.append((other, [first[0] + 2.0, first[0] + 2.0 + float(rng.uniform(15.0, 200.0))]))
        for event, hits in bursts:
            hit_ms = [day0 + (round(h) * 1000 if cfg.whole_seconds else round(h * 1000)) for h in hits]
            for h in hit_ms:
                line = (b'{"kind":"video_hit","camera_id":"%s","ts":%d,"event":"%s","lat":%r,"lon":%r,'
                        b'"confidence":%r,"jurisdiction":"%s"}' % (
                            cam.encode(), h, event.encode(), round(float(lat[0]), 6),
                            round(float(lon[0]), 6), round(float(rng.uniform(0.6, 0.99)), 2),
                            d.code.encode()))
                msgs.extra.append((h + int(rng.integers(500, 3000)), seq0, line))
                seq0 += 1
            expected.append({"person_id": None, "rule_id": f"video:{event}", "kind": f"video_{event}",
                             "opened_at": [format_ts(hit_ms[0]), format_ts(hit_ms[0])], "late": False,
                             "scenario": "facility", "camera_id": cam, "jurisdiction": d.code})
    return seq0


def _malformed(rng: np.random.Generator, cfg: SimConfig, persons: list[Person], day0: int,
               msgs: Messages) -> None:
    """Lines a correct consumer rejects with a reason (and never alerts on)."""
    count = cfg.malformed_lines if cfg.malformed_lines is not None else max(8, cfg.persons // 100)
    dev = persons[0].device_id.encode()
    kinds: list[tuple[str, bytes]] = [
        ("malformed_json", b'{"kind":"fix","device_id":"%s","ts":%d,"lat":32.0,' % (dev, day0)),
        ("out_of_range", b'{"kind":"fix","device_id":"%s","ts":%d,"lat":95.5,"lon":118.8}' % (dev, day0)),
        ("missing_field", b'{"kind":"fix","device_id":"%s","lat":32.0,"lon":118.8}' % dev),
        ("unknown_kind", b'{"kind":"teleport","device_id":"%s","ts":%d}' % (dev, day0)),
        ("non_finite_number", b'{"kind":"fix","device_id":"%s","ts":%d,"lat":NaN,"lon":118.8}' % (dev, day0)),
        ("unknown_event", b'{"kind":"device_event","device_id":"%s","ts":%d,"event":"explode"}' % (dev, day0)),
        ("unknown_device", b'{"kind":"fix","device_id":"099999999999","ts":%d,"lat":32.06,"lon":118.79}' % day0),
        ("wrong_type", b'"just a string"'),
    ]
    reasons: dict[str, int] = {}
    for i in range(count):
        reason, line = kinds[i % len(kinds)]
        t = day0 + int(rng.uniform(0, 86_000_000))
        msgs.extra.append((t, -1 - i, line))
        reasons[reason] = reasons.get(reason, 0) + 1
    msgs.malformed_reasons = reasons


# --------------------------------------------------------------------------- orders
