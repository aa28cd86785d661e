"""Random worlds for the differential test of the engine's two paths.

A *world* is drawn from one integer seed: a zone catalogue (circles,
polygons with holes, multipolygons), a set of orders (persons with any
subset of the rule types, with none, with only no_contact, with several
devices, curfews on chosen days, orders that start or end mid-stream), an
engine configuration, a stream of telemetry over up to a day (fixes near
every boundary, invalid fixes, device events, video hits, out-of-order and
late data, duplicates) and a way to cut it into batches (one message at a
time up to the whole stream at once). About half the worlds have persons
under checkin rules too, with phones that check in on time, late, at the
deadline, from near every boundary, failing, naming requests or not
and persons who never send anything (:func:`_checkins`, drawn from a
generator of their own so that the other worlds stay as they were), and
about half have zones in categories and jurisdictions with persons under
category rules (:func:`_categories`, a generator of their own as well).
:func:`run_world` drives an engine
on the fast paths and one on the reference path with the same batches and
reports the first difference in their output.

Positions are metres east/north of the centre of ``engine_world``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from engine_world import MIN, SEC, T0, pt, square

from geofence.checkin import owed_between
from geofence.engine import Engine, EngineConfig, batch_watermark
from geofence.model import (
    CheckIn,
    DeviceEvent,
    Fix,
    Order,
    Telemetry,
    VideoHit,
    encode,
    format_ts,
    parse_orders,
)
from geofence.zones import ZoneCatalogue

HOUR = 60 * MIN
_DEVICE_EVENTS = ("tamper", "removed", "sos", "battery_low", "charging", "power_off", "power_on",
                  "heartbeat", "vibration", "fall")
_FACILITY = ("perimeter_breach", "fight", "crowd", "fall", "loitering")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass
class World:
    """Everything one seed draws."""

    seed: int
    zones: ZoneCatalogue
    orders: list[Order]
    orders_json: list[dict[str, Any]]
    config: dict[str, Any]
    messages: list[Telemetry]
    batches: list[list[Telemetry]]
    advance_after: list[bool]
    snapshot_after: list[bool]
    places: list[tuple[float, float]] = field(default_factory=list)

    def describe(self) -> str:
        return (f"world seed {self.seed}: {len(self.orders)} orders, {len(self.messages)} messages"
                f" in {len(self.batches)} batches, config {self.config}\n"
                f"orders: {json.dumps(self.orders_json)}")


def _zones(rng: random.Random) -> tuple[dict[str, Any], list[tuple[str, str]], list[tuple[float, float]]]:
    """GeoJSON, (zone id, shape) and places near every boundary."""
    feats: list[dict[str, Any]] = [
        {"type": "Feature", "id": "district", "properties": {},
         "geometry": {"type": "Polygon", "coordinates": [square(0, 0, 4000)]}}]
    kinds = [("district", "poly")]
    places: list[tuple[float, float]] = [(0.0, 0.0), (3990.0, 0.0), (4010.0, 0.0), (6000.0, 0.0)]
    offsets = (-60.0, -12.0, -3.0, 3.0, 12.0, 40.0, 90.0, 160.0)
    for k in range(rng.randint(2, 6)):
        zid = f"z{k}"
        cx, cy = rng.uniform(-3000, 3000), rng.uniform(-3000, 3000)
        shape = rng.choice(("circle", "circle", "poly", "hole", "multi"))
        if shape == "circle":
            r = rng.choice((40.0, 100.0, 250.0, 600.0))
            geom = {"type": "Point", "coordinates": list(pt(cx, cy))}
            feats.append({"type": "Feature", "id": zid, "properties": {"radius_m": r},
                          "geometry": geom})
            edges = [(cx + r, cy), (cx, cy - r)]
        else:
            half = rng.choice((80.0, 200.0, 500.0, 1200.0))
            if shape == "poly":
                geom = {"type": "Polygon", "coordinates": [square(cx, cy, half)]}
                edges = [(cx + half, cy)]
            elif shape == "hole":
                inner = list(reversed(square(cx, cy, half * 0.4)))
                geom = {"type": "Polygon", "coordinates": [square(cx, cy, half), inner]}
                edges = [(cx + half, cy), (cx + half * 0.4, cy)]
            else:
                geom = {"type": "MultiPolygon", "coordinates": [
                    [square(cx, cy, half)], [square(cx + 3 * half, cy, half / 2)]]}
                edges = [(cx + half, cy), (cx + 2.5 * half, cy)]
            feats.append({"type": "Feature", "id": zid, "properties": {}, "geometry": geom})
        kinds.append((zid, shape))
        places.append((cx, cy))
        for ex, ey in edges:
            places.extend((ex + d, ey) for d in offsets)
    return {"type": "FeatureCollection", "features": feats}, kinds, places


def _hhmm(minutes: int) -> str:
    minutes %= 24 * 60
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _windows(rng: random.Random) -> list[dict[str, str]]:
    out = []
    for _ in range(rng.choice((1, 1, 2))):
        # local time of the stream: it starts 20:00 on a Sunday and lasts up to a day
        start = rng.choice((20 * 60 + 10, 21 * 60, 22 * 60, 23 * 60 + 30, 0, 2 * 60, 6 * 60,
                            13 * 60, rng.randrange(0, 24 * 60, 5)))
        length = rng.choice((30, 60, 240, 480, 600))
        w = {"start": _hhmm(start), "end": _hhmm(start + length)}
        if rng.random() < 0.4:
            w["days"] = ",".join(sorted(rng.sample(_DAYS, rng.randint(1, 4)), key=_DAYS.index))
        out.append(w)
    return out


def _orders(rng: random.Random, kinds: list[tuple[str, str]], t_end: int) -> list[dict[str, Any]]:
    """Orders; most persons live in a zone that is their curfew zone, inside
    the district (quiet lanes), some anywhere under any rules."""
    n = rng.randint(2, 6)
    pids = [f"P{i}" for i in range(n)]
    zone_ids = [z for z, _ in kinds]
    out = []
    for i, pid in enumerate(pids):
        rules: list[dict[str, Any]] = []
        style = rng.random()
        others = [p for p in pids if p != pid]
        home = rng.choice([z for z, shape in kinds[1:] if shape != "hole"] or ["district"])
        if style < 0.12:
            pass  # no rules: device events only
        elif style < 0.22:
            rules.append({"type": "no_contact", "person": rng.choice(others),
                          "distance_m": rng.choice((50, 200, 800))})
        else:
            for _ in range(rng.choice((0, 1, 1, 2))):
                r: dict[str, Any] = {"type": "exclusion", "zone": rng.choice(zone_ids[1:] or zone_ids)}
                if rng.random() < 0.5:
                    r["buffer_m"] = rng.choice((20, 100, 300))
                rules.append(r)
            if rng.random() < 0.5:
                rules.append({"type": "inclusion",
                              "zone": rng.choice(("district",) * 4 + tuple(zone_ids))})
            for _ in range(rng.choice((0, 0, 1, 1, 1, 2))):
                rules.append({"type": "curfew", "zone": rng.choice((home, home, *zone_ids)),
                              "windows": _windows(rng)})
            if rng.random() < 0.15:
                rules.append({"type": "no_contact", "person": rng.choice(others),
                              "distance_m": rng.choice((50, 200, 800))})
            if rng.random() < 0.5:
                rules.append({"type": "signal_loss", "after_s": rng.choice((300, 900, 1800, 7200))})
            if rng.random() < 0.05:
                rules.append({"type": "exclusion", "zone": "nowhere"})  # not in the catalogue
        for k, r in enumerate(rules):
            r["id"] = f"{pid}-r{k}"
            if r["type"] != "signal_loss" and rng.random() < 0.3:
                r["dwell_s"] = rng.choice((0, 10, 60, 300))
            if rng.random() < 0.15:
                r["severity"] = rng.choice(("red", "orange", "yellow", "blue"))
        o: dict[str, Any] = {"person_id": pid, "jurisdiction": "320102",
                             "devices": [f"W{i}a"] + ([f"W{i}b"] if rng.random() < 0.3 else []),
                             "rules": rules, "home": home}
        vf = T0 + rng.randrange(0, t_end - T0) if rng.random() < 0.1 else None
        if vf is not None:
            o["valid_from"] = format_ts(vf)
        if rng.random() < 0.1:
            o["valid_until"] = format_ts((vf or T0) + rng.randrange(HOUR, t_end - T0 + 2 * HOUR))
        out.append(o)
    return out


def _stream(rng: random.Random, orders: list[dict[str, Any]], places: list[tuple[float, float]],
            centres: dict[str, tuple[float, float]], t_end: int,
            lateness_ms: int) -> list[Telemetry]:
    msgs: list[tuple[int, Telemetry]] = []  # (arrival order key, message)
    event_p = rng.choice((0.0, 0.002, 0.02))
    steps = (5 * SEC, 30 * SEC, MIN, MIN, 2 * MIN, 5 * MIN, 20 * MIN, 2 * HOUR)
    # forged positions: a second stream one second after some real fixes, from
    # the person's own or another of their devices; and now and then a
    # person who really travels far (a flight)
    spoof_p = rng.choice((0.0, 0.0, 0.3, 0.9))
    travel_p = rng.choice((0.0, 0.0, 0.002))
    for o in orders:
        home = rng.choice(places) if rng.random() < 0.2 else centres[o.pop("home")]
        o.pop("home", None)
        for dev in o["devices"]:
            t = T0 + rng.randrange(0, 5 * MIN)
            x, y = home
            step = rng.choice(steps[:6])
            restless = rng.choice((0.01, 0.03, 0.25))  # calm persons make quiet lanes
            fake = rng.choice(places)
            while t < t_end:
                if rng.random() < restless:
                    x, y = rng.choice(places)
                x2, y2 = x + rng.uniform(-3, 3), y + rng.uniform(-3, 3)
                lon, lat = pt(x2, y2)
                extra: dict[str, Any] = {}
                if rng.random() < 0.1:
                    extra["battery_pct"] = rng.choice((10.0, 50.0))
                m: Telemetry = Fix(device_id=dev, ts=t, lat=lat, lon=lon,
                                   accuracy_m=rng.choice((3.0, 10.0, 10.0, 10.0, 30.0, 120.0)),
                                   valid=rng.random() > 0.05, **extra)
                msgs.append((t, m))
                if spoof_p and rng.random() < spoof_p and dev == o["devices"][0]:
                    fx, fy = fake
                    flon, flat = pt(fx + rng.uniform(-3, 3), fy)
                    msgs.append((t + SEC, Fix(device_id=rng.choice(o["devices"]), ts=t + SEC,
                                              lat=flat, lon=flon, accuracy_m=10.0)))
                if travel_p and rng.random() < travel_p:
                    x, y = x + rng.choice((-1, 1)) * 400_000.0, y
                if rng.random() < event_p:
                    msgs.append((t + SEC, DeviceEvent(device_id=dev, ts=t + SEC,
                                                      event=rng.choice(_DEVICE_EVENTS))))  # type: ignore[arg-type]
                if rng.random() < 0.1:
                    step = rng.choice(steps)
                t += step + rng.randrange(0, SEC)
    pids = [o["person_id"] for o in orders]
    for _ in range(rng.choice((0, 0, 1, 3))):
        t = rng.randrange(T0, t_end)
        lon, lat = pt(*rng.choice(places))
        if rng.random() < 0.6:
            hit = VideoHit(camera_id=f"CAM-{rng.randint(1, 3)}", ts=t, event="face_match",
                           lat=lat, lon=lon, person_id=rng.choice((*pids, "P-unknown")),
                           confidence=rng.choice((0.5, 0.9, 0.99, None)))
        else:
            hit = VideoHit(camera_id=f"CAM-{rng.randint(1, 3)}", ts=t, event=rng.choice(_FACILITY),  # type: ignore[arg-type]
                           lat=lat, lon=lon)
        msgs.append((t, hit))
    if rng.random() < 0.1:  # a device that nobody wears
        msgs.append((T0 + MIN, Fix(device_id="W-stray", ts=T0 + MIN, lat=pt(0, 0)[1], lon=pt(0, 0)[0])))
    # arrival order: mostly in order, some delayed (a few past the lateness horizon), duplicates
    late_p = rng.choice((0.0, 0.05, 0.2))
    keyed = []
    for k, (t, m) in enumerate(msgs):
        delay = 0
        if rng.random() < late_p:
            delay = rng.choice((10 * SEC, lateness_ms // 2, 2 * lateness_ms, 30 * MIN))
        keyed.append((t + delay, k, m))
        if rng.random() < 0.02:
            keyed.append((t + delay + rng.randrange(0, 3 * MIN), k, m))
    keyed.sort(key=lambda x: (x[0], x[1]))
    return [m for _, _, m in keyed]


def _checkins(crng: random.Random, orders: list[dict[str, Any]],
              places: list[tuple[float, float]], t_end: int, lateness_ms: int,
              msgs: list[Telemetry]) -> list[Telemetry]:
    """Put some persons under a checkin rule with a phone and merge their
    check-ins (and a few of persons under no such rule) into ``msgs``. A
    few of them never send anything at all under an order with a
    ``valid_from`` (their devices' messages are dropped): their missed
    check-ins come from the deadline timers alone."""
    extra: list[tuple[int, int, Telemetry]] = []  # (arrival, seq, message)
    silent: set[str] = set()

    def send(m: CheckIn) -> None:
        delay = 0
        if crng.random() < 0.15:
            delay = crng.choice((10 * SEC, lateness_ms // 2, 2 * lateness_ms, 30 * MIN))
        extra.append((m.ts + delay, len(extra), m))
        if crng.random() < 0.04:  # delivered twice
            extra.append((m.ts + delay + crng.randrange(0, 3 * MIN), len(extra), m))

    def checkin(dev: str, t: int, request_id: str | None = None) -> CheckIn:
        lon, lat = pt(*crng.choice(places))
        face = crng.choice((0.99, 0.9, 0.8, 0.79, 0.3, None))
        action = crng.choice((True, True, None, False)) if face is not None else crng.choice(
            (True, False))
        return CheckIn(device_id=dev, ts=t, lat=lat, lon=lon,
                       accuracy_m=crng.choice((5.0, 10.0, 30.0, 120.0)), face_score=face,
                       action_ok=action, method="face_action", request_id=request_id)

    for i, o in enumerate(orders):
        if crng.random() < 0.3:  # a check-in where no checkin rule asks for one
            send(checkin(o["devices"][0], crng.randrange(T0, t_end)))
        if crng.random() < 0.5:
            continue
        rule: dict[str, Any] = {"id": f"{o['person_id']}-c", "type": "checkin"}
        if crng.random() < 0.7:
            rule["windows"] = _windows(crng)
        if "windows" not in rule or crng.random() < 0.5:
            start = crng.choice((0, 8 * 60, 20 * 60, 21 * 60))
            rule["random"] = {"per_day": crng.randint(1, 4), "start": _hhmm(start),
                              "end": _hhmm(min(start + crng.choice((60, 180, 600)), 24 * 60 - 1)),
                              "answer_within_s": crng.choice((60, 300, 900))}
        if crng.random() < 0.3:
            rule["min_score"] = crng.choice((0.5, 0.95))
        if crng.random() < 0.15:
            rule["severity"] = crng.choice(("red", "yellow"))
        phone = f"Ph{i}"
        o["rules"].append(rule)
        o["devices"].append(phone)
        if crng.random() < 0.15:  # the phone thrown away, the wristband too
            o.setdefault("valid_from", format_ts(T0 - crng.randrange(0, 6 * HOUR)))
            silent.update(o["devices"])
            continue
        parsed = parse_orders(json.dumps([o]))[0]
        owed = owed_between(parsed.person_id, parsed.rules[-1], parsed.timezone, T0, t_end)
        send(checkin(phone, T0 + crng.randrange(0, 10 * MIN)))  # the phone is on
        for w in owed:
            r = crng.random()
            if r < 0.35:
                continue  # missed
            if r < 0.45:
                t = crng.choice((w.opens_ms, w.due_ms, w.due_ms + 1))
            else:
                t = crng.randrange(w.opens_ms, w.due_ms + 1)
            rid = w.key if w.requested and crng.random() < 0.5 else None
            if crng.random() < 0.1:
                rid = crng.choice([x.key for x in owed])  # perhaps another request's
            send(checkin(phone, t, rid))
        for _ in range(crng.choice((0, 2, 6))):
            send(checkin(phone, crng.randrange(T0, t_end)))
    if silent:
        msgs = [m for m in msgs if getattr(m, "device_id", None) not in silent]
        extra = [x for x in extra if x[2].device_id not in silent]
    if not extra:
        return msgs
    extra.sort(key=lambda x: (x[0], x[1]))
    out: list[Telemetry] = []
    k = 0
    for m in msgs:  # the stream's own arrival order is kept
        while k < len(extra) and extra[k][0] <= m.ts:
            out.append(extra[k][2])
            k += 1
        out.append(m)
    out.extend(x[2] for x in extra[k:])
    return out


_CATEGORIES = ("school", "bar")


def _categories(grng: random.Random, gj: dict[str, Any], orders: list[dict[str, Any]]) -> None:
    """Put zones in categories and jurisdictions and give some persons rules
    over every zone of a category (perhaps within their county, city or
    province), on top of their other rules."""
    for f in gj["features"]:
        if grng.random() < 0.7:
            f["properties"]["category"] = grng.choice(_CATEGORIES)
        if grng.random() < 0.8:
            f["properties"]["jurisdiction"] = grng.choice(("320102", "320102", "320104", "3201",
                                                           "32", "110101"))
    for o in orders:
        if grng.random() < 0.4:
            continue
        o["jurisdiction"] = grng.choice(("320102", "320102", "320104", "320201"))
        for k in range(grng.choice((1, 1, 2))):
            r: dict[str, Any] = {"id": f"{o['person_id']}-g{k}",
                                 "type": grng.choice(("exclusion", "exclusion", "inclusion")),
                                 "category": grng.choice((*_CATEGORIES, *_CATEGORIES, "clinic"))}
            area = grng.choice((None, None, "county", "city", "province"))
            if area is not None:
                r["area"] = area
            if r["type"] == "exclusion" and grng.random() < 0.5:
                r["buffer_m"] = grng.choice((20, 100, 300))
            if grng.random() < 0.3:
                r["dwell_s"] = grng.choice((0, 10, 60))
            o["rules"].append(r)


def _batches(rng: random.Random, msgs: list[Telemetry]) -> list[list[Telemetry]]:
    mode = rng.choice(("one", "small", "mixed", "big", "whole"))
    if mode == "whole":
        return [msgs] if msgs else []
    out, i = [], 0
    while i < len(msgs):
        if mode == "one":
            n = 1
        elif mode == "small":
            n = rng.randint(1, 8)
        elif mode == "mixed":
            n = rng.choice((1, 1, 3, 20, 100))
        else:
            n = rng.randint(50, 600)
        out.append(msgs[i:i + n])
        i += n
    return out


def _centre(feature: dict[str, Any]) -> tuple[float, float]:
    g = feature["geometry"]
    if g["type"] == "Point":
        return _metres(*g["coordinates"])
    ring = g["coordinates"][0] if g["type"] == "Polygon" else g["coordinates"][0][0]
    xs, ys = zip(*(_metres(*c) for c in ring[:-1]), strict=True)
    return sum(xs) / len(xs), sum(ys) / len(ys)


def _metres(lon: float, lat: float) -> tuple[float, float]:
    x0, y0 = pt(0, 0)
    x1, y1 = pt(1, 1)
    return (lon - x0) / (x1 - x0), (lat - y0) / (y1 - y0)


def _casework(rng: random.Random, orders: list[dict[str, Any]], zone_ids: list[str],
              t_end: int) -> None:
    """Windows on exclusion and inclusion rules, leave (exemptions, with
    temporary rules) and positioning terms on some orders (their own random
    generator: the worlds without them stay as they were)."""
    for o in orders:
        if rng.random() < 0.5:
            continue
        zone_rules = [r for r in o["rules"] if r["type"] in ("exclusion", "inclusion", "curfew")]
        for r in zone_rules:
            if r["type"] != "curfew" and rng.random() < 0.4:
                r["windows"] = _windows(rng)
        if rng.random() < 0.5:
            start = T0 + rng.randrange(-2 * HOUR, t_end - T0)
            names = [r["id"] for r in zone_rules]
            suspended = (["*"] if names and rng.random() < 0.3
                         else rng.sample(names, rng.randint(0, len(names))))
            temp = []
            if rng.random() < 0.5 or not suspended:
                kind = rng.choice(("exclusion", "inclusion"))
                temp.append({"id": f"{o['person_id']}-L1/t1", "type": kind,
                             "zone": rng.choice(zone_ids)})
            o["exemptions"] = [{"id": f"{o['person_id']}-L1", "from": format_ts(start),
                                "until": format_ts(start + rng.randrange(10 * MIN, 8 * HOUR)),
                                "rules": suspended, "temporary_rules": temp, "reason": "work",
                                "requested_by": "officer", "approved_by": "chief",
                                "level": "office"}]
        if rng.random() < 0.4:
            end = T0 + rng.randrange(10 * MIN, t_end - T0 + 2 * HOUR)
            o["positioning"] = {"grounds": "failed_to_report",
                                "from": format_ts(T0 - rng.randrange(0, 30 * 24 * HOUR)),
                                "until": format_ts(end), "approved_by": "chief",
                                "remind_days": rng.choice((0, 0, 1, 7))}


def make_world(seed: int) -> World:
    rng = random.Random(seed)
    gj, kinds, places = _zones(rng)
    centres = {f["id"]: _centre(f) for f in gj["features"]}
    t_end = T0 + rng.choice((2 * HOUR, 6 * HOUR, 12 * HOUR, 26 * HOUR))
    oj = _orders(rng, kinds, t_end)
    config = {"confirm_fixes": rng.choice((1, 2, 2, 3)),
              "lateness_ms": rng.choice((30 * SEC, 120 * SEC, 120 * SEC, 10 * MIN)),
              "default_dwell_s": rng.choice((0.0, 30.0, 30.0, 120.0))}
    msgs = _stream(rng, oj, places, centres, t_end, int(config["lateness_ms"]))
    crng = random.Random(f"checkins {seed}")
    if crng.random() < 0.5:
        msgs = _checkins(crng, oj, places, t_end, int(config["lateness_ms"]), msgs)
    grng = random.Random(f"categories {seed}")
    if grng.random() < 0.5:
        _categories(grng, gj, oj)
    krng = random.Random(f"casework {seed}")
    if krng.random() < 0.5:
        _casework(krng, oj, [f["id"] for f in gj["features"]], t_end)
    batches = _batches(rng, msgs)
    adv_p = rng.choice((0.0, 0.5, 1.0))
    snap_p = rng.choice((0.0, 0.0, 0.02))
    return World(seed, ZoneCatalogue.from_geojson(gj), parse_orders(json.dumps(oj)), oj, config,
                 msgs, batches, [rng.random() < adv_p for _ in batches],
                 [rng.random() < snap_p for _ in batches], places)


def _by_alert(records: list[Any]) -> list[bytes]:
    """Timer records grouped by alert: lanes fire in the order of their heap
    entries, which the fast path may hold in another order (see test_bulk)."""
    return [encode(r) for r in sorted(records, key=lambda r: r.alert.alert_id)]


def run_world(w: World) -> str | None:
    """Drive both paths over the world; the first difference, or ``None``."""
    fast = Engine(w.zones, w.orders, EngineConfig(paths="fast", **w.config))
    ref = Engine(w.zones, w.orders, EngineConfig(paths="reference", **w.config))
    top = -1
    for i, batch in enumerate(w.batches):
        a, b = fast.process(batch), ref.process(batch)
        ra, rb = [encode(r) for r in a.records], [encode(r) for r in b.records]
        if ra != rb:
            return f"batch {i} ({len(batch)} messages): records differ\nfast: {ra}\nref:  {rb}"
        ca = (a.duplicates, a.late, a.too_late, a.ignored, len(a.unknown))
        cb = (b.duplicates, b.late, b.too_late, b.ignored, len(b.unknown))
        if ca != cb:
            return f"batch {i}: counts differ: fast {ca}, ref {cb}"
        if w.advance_after[i]:
            top = max(top, batch_watermark(batch))
            if top >= 0:
                xa, xb = _by_alert(fast.advance(top)), _by_alert(ref.advance(top))
                if xa != xb:
                    return f"advance({top}) after batch {i}: records differ\nfast: {xa}\nref:  {xb}"
        if w.snapshot_after[i]:
            data = fast.snapshot()
            fast = Engine(w.zones, w.orders, EngineConfig(paths="fast", **w.config))
            fast.restore(data)
    xa, xb = _by_alert(fast.flush()), _by_alert(ref.flush())
    if xa != xb:
        return f"flush: records differ\nfast: {xa}\nref:  {xb}"
    oa = [encode(x) for x in fast.open_alerts()]
    ob = [encode(x) for x in ref.open_alerts()]
    if oa != ob:
        return f"open alerts differ\nfast: {oa}\nref:  {ob}"
    return None
