"""A simulated day of a supervision caseload, with its ground truth.

:func:`generate` builds a city (:mod:`simulators.city`), gives every person
an order and a daily routine (:mod:`simulators.routine`), injects breach
scenarios into a chosen share of persons and adversarial cases into others,
and renders the telemetry in delivery order together with the alerts a
correct engine must raise.

The generator reads in the order it runs:

* :mod:`simulators.caseconfig` - the scenario kinds, their default shares
  and :class:`SimConfig`, the settings of one day;
* :mod:`simulators.people` - the persons, their routines and the segments
  that override them, and where each truly is at any moment;
* :mod:`simulators.staging` - which persons breach which rule, where and
  when, and the exclusion zones each order names;
* :mod:`simulators.rendering` - every device's reports, events, video hits
  and malformed lines as telemetry in delivery order;
* :mod:`simulators.truth` - the alert windows those reports must open;
* :mod:`simulators.phones` - phone-supervised persons (``phone_share``),
  their check-ins and the check-in alerts they must open, drawn from a
  random stream of their own after everything above;
* this module - :func:`generate`, which runs the steps above, the orders,
  and :func:`write`, which puts the day into files.

How the scenarios stay unambiguous under the contract
-----------------------------------------------------
* Position error never exceeds the reported ``accuracy_m`` (the error is
  drawn as a fraction of the accuracy, capped at 0.95). So a fix whose true
  position is on the permitted side of a boundary can never be *certainly*
  on the wrong side, whatever the noise: ordinary people, urban-canyon
  outliers (error up to hundreds of metres, reported with an even larger
  accuracy) and indoor fixes raise nothing.
* Routines keep every true position at least 250 m inside the person's
  district and more than ``buffer_m`` + 60 m from their exclusion zones,
  and no-contact partners more than ``distance_m`` + 60 m apart at any two
  times within 150 s of each other.
* A breach puts the true position deep in the violating region (at least
  45 m past the boundary with accuracy 4-10 m, or in the middle of the
  approach band), the device reports every 15 s while in violation, and the
  person arrives and leaves between two fixes, so the fixes are either
  certainly violating or certainly not and no fix lands in an approach band
  on the way in or out.
* The expected ``opened_at`` window runs from the first certainly violating
  fix (the window start for a person who is out when a curfew starts, the
  second person's arrival for a contact) to the first fix that completes
  two consecutive certain fixes spanning the rule's dwell (contract default:
  at most 60 s later). Signal loss, tamper, removed, sos, battery_low and
  power_off are exact instants.
* Boundary-jitter persons stand within 3 m of a boundary with 15-30 m
  accuracy and errors of at most half of it, so every fix is uncertain:
  they must raise nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import numpy as np
import shapely

from geofence.model import format_ts
from simulators.caseconfig import (
    ADVERSARIAL_KINDS,
    ALL_KINDS,
    BREACH_KINDS,
    CAMERA_QUIET_S,
    CURFEWS,
    DEFAULT_SHARES,
    DUAL_KINDS,
    EXTRA_KINDS,
    FACE_MATCH_MIN_CONFIDENCE,
    FACILITY_EVENTS,
    SEPARATION_M,
    SILENT_KINDS,
    VIDEO_KINDS,
    VIOLATION_INTERVAL_S,
    SimConfig,
    _config_dict,
    _day_start_ms,
    config_from_dict,
)
from simulators.city import (
    NANJING_DISTRICTS,
    City,
    build_districts,
    circle_feature,
    district_features,
    exclusion_features,
    place_zones,
)
from simulators.frame import LocalFrame
from simulators.people import Person, Segment, _pair_contacts, _persons
from simulators.phones import (
    PHONE_BEHAVIOURS,
    PhonePerson,
    checkin_lines,
    phone_orders,
    phone_persons,
    phone_rng,
)
from simulators.rendering import Messages, _render
from simulators.staging import _TAKEN, _assign_scenarios, _choose_exclusions
from simulators.truth import contact_truth

__all__ = [
    "ADVERSARIAL_KINDS", "ALL_KINDS", "BREACH_KINDS", "CAMERA_QUIET_S", "CURFEWS", "DEFAULT_SHARES",
    "DUAL_KINDS", "EXTRA_KINDS", "FACE_MATCH_MIN_CONFIDENCE", "FACILITY_EVENTS", "SEPARATION_M",
    "SILENT_KINDS", "VIDEO_KINDS", "VIOLATION_INTERVAL_S", "Caseload", "Messages", "Person", "Segment",
    "SimConfig", "config_from_dict", "contact_truth", "dumps", "generate", "write",
]


@dataclass
class Caseload:
    """The generated day: zones, orders, telemetry lines and ground truth."""

    config: SimConfig
    city: City
    persons: list[Person]
    zones: dict[str, Any]
    orders: list[dict[str, Any]]
    truth: dict[str, Any]
    day_start_ms: int
    messages: Messages
    phones: list[PhonePerson] = field(default_factory=list)

    def lines(self) -> Iterator[bytes]:
        """Telemetry JSONL lines in delivery order."""
        return self.messages.lines()


# --------------------------------------------------------------------------- helpers


# --------------------------------------------------------------------------- generation


def generate(cfg: SimConfig) -> Caseload:
    """Generate a caseload deterministically from ``cfg`` (same config, same bytes)."""
    rng = np.random.default_rng(cfg.seed)
    _TAKEN.clear()
    frame = LocalFrame(cfg.lat, cfg.lon)
    if (cfg.lat, cfg.lon) == (32.06, 118.79) and cfg.admin_prefix == "3201":
        codes = NANJING_DISTRICTS
    else:
        codes = tuple((f"{cfg.admin_prefix}{i:02d}", f"District {i:02d}") for i in range(2, 13))
    districts = build_districts(rng, frame, cfg.city_radius_m, codes, cfg.district_detail_m, 800.0)
    city = City(frame, cfg.city_radius_m, districts)
    n = cfg.persons
    place_zones(rng, city, max(20, int(n * 0.3)), max(20, int(n * 0.2)), max(10, int(n * 0.25)))
    safe = {d.code: d.geom.buffer(-250.0) for d in districts}
    for g in safe.values():
        shapely.prepare(g)
    persons = _persons(rng, cfg, city, safe)
    shares = dict(cfg.shares)
    _assign_scenarios(rng, cfg, city, persons, shares, safe)
    _choose_exclusions(rng, city, persons)
    _pair_contacts(rng, persons)
    day0 = _day_start_ms(cfg)
    messages, expected = _render(rng, cfg, city, persons, day0)
    orders = _orders(cfg, persons, day0)
    phones: list[PhonePerson] = []
    if cfg.phone_count():
        prng = phone_rng(cfg)
        phones = phone_persons(prng, cfg, city, day0, n, cfg.phone_count())
        orders += phone_orders(cfg, phones, day0)
        lines = checkin_lines(prng, city, phones)
        messages.extra.extend(lines)
        messages.count += len(lines)
        messages.line_count += len(lines)
        expected += [e for p in phones for e in p.expected]
    used = {z for p in persons for _, z, _ in p.exclusions}
    features = district_features(city) + exclusion_features(city, used)
    features += [
        circle_feature(frame, f"home-{p.person_id}", p.home[0], p.home[1], p.home_r,
                       {"name": f"home of {p.person_id}", "category": "home", "jurisdiction": p.district})
        for p in persons
    ]
    zones = {"type": "FeatureCollection", "features": features,
             "wardstream_simulation": _config_dict(cfg)}
    silent = {k: sorted(p.person_id for p in persons if p.scenario == k) for k in SILENT_KINDS}
    if phones:
        # phone persons who answered everything from inside their district raise nothing
        silent["checkin_answered"] = sorted(p.person_id for p in phones if not p.expected)
    truth: dict[str, Any] = {
        "meta": {
            "seed": cfg.seed, "persons": n, "day": cfg.day, "timezone": cfg.timezone,
            "center": [cfg.lat, cfg.lon],
            "day_start": format_ts(day0), "engine_assumptions": {
                "lateness_s": 120, "dwell_s": 30, "confirm_fixes": 2, "contact_max_age_s": 120},
            "scenarios": {k: sum(1 for p in persons if p.scenario == k) for k in ALL_KINDS},
            "two_device_persons": sum(1 for p in persons if p.phone_id is not None),
            "facility_alerts": sum(1 for e in expected if e["scenario"] == "facility"),
            "messages": messages.count, "lines": messages.line_count,
        },
        "expected": sorted(expected, key=lambda e: (e["opened_at"][0], e["person_id"], e["rule_id"])),
        "silent_persons": silent,
        "rejected": messages.malformed_reasons,
    }
    if phones:
        truth["meta"]["phone_persons"] = len(phones)
        truth["meta"]["phone_behaviours"] = {
            b: sum(1 for p in phones if p.behaviour == b) for b in PHONE_BEHAVIOURS}
        truth["meta"]["checkins"] = sum(1 for p in phones for _ in p.checkins)
    return Caseload(cfg, city, persons, zones, orders, truth, day0, messages, phones)


def _orders(cfg: SimConfig, persons: list[Person], day0: int) -> list[dict[str, Any]]:
    tz = ZoneInfo(cfg.timezone)

    def iso(ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, tz).isoformat()

    out: list[dict[str, Any]] = []
    for p in persons:
        rules: list[dict[str, Any]] = []
        for rid, zone, buffer in p.exclusions:
            r: dict[str, Any] = {"id": rid, "type": "exclusion", "zone": zone}
            if buffer > 0:
                r["buffer_m"] = buffer
            rules.append(r)
        incl: dict[str, Any] = {"id": "incl", "type": "inclusion", "zone": p.district}
        if "incl" in p.dwell:
            incl["dwell_s"] = p.dwell["incl"]
        rules.append(incl)
        rules.append({"id": "curfew", "type": "curfew", "zone": f"home-{p.person_id}",
                      "windows": [{"days": p.curfew_days, "start": p.curfew[0], "end": p.curfew[1]}]})
        if p.partner is not None:
            rules.append({"id": f"contact-{p.partner}", "type": "no_contact", "person": p.partner,
                          "distance_m": p.contact_distance})
        rules.append({"id": "signal", "type": "signal_loss", "after_s": p.after_s})
        until = day0 + 90 * 86_400_000 if p.valid_until_s is None else day0 + int(p.valid_until_s * 1000)
        since = day0 - 21 * 86_400_000
        if cfg.open_validity and p.valid_until_s is None:
            since, until = 1_704_038_400_000, 4_102_416_000_000  # 2024-01-01 .. 2100-01-01 (+08:00)
        out.append({
            "person_id": p.person_id,
            "devices": [p.device_id] if p.phone_id is None else [p.device_id, p.phone_id],
            "jurisdiction": p.district,
            "timezone": cfg.timezone, "valid_from": iso(since),
            "valid_until": iso(until), "rules": rules,
        })
    return out


def dumps(obj: Any) -> bytes:
    """Stable, readable JSON for the files the generator writes."""
    return msgspec.json.format(msgspec.json.encode(obj), indent=1)


def write(caseload: Caseload, out_dir: str, progress: bool = False) -> dict[str, str]:
    """Write zones.geojson, orders.json, telemetry.jsonl and truth.json into ``out_dir``."""
    import os

    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, name) for name in
             ("zones.geojson", "orders.json", "telemetry.jsonl", "truth.json")}
    with open(paths["zones.geojson"], "wb") as f:
        f.write(msgspec.json.encode(caseload.zones))
        f.write(b"\n")
    with open(paths["orders.json"], "wb") as f:
        f.write(dumps(caseload.orders))
        f.write(b"\n")
    with open(paths["truth.json"], "wb") as f:
        f.write(dumps(caseload.truth))
        f.write(b"\n")
    bar = _progress(caseload.messages.line_count, "telemetry lines", progress)
    with open(paths["telemetry.jsonl"], "wb", buffering=4 << 20) as f:
        buf: list[bytes] = []
        for line in caseload.lines():
            buf.append(line)
            if len(buf) >= 50_000:
                f.write(b"\n".join(buf) + b"\n")
                bar.update(len(buf))
                buf.clear()
        if buf:
            f.write(b"\n".join(buf) + b"\n")
            bar.update(len(buf))
    bar.close()
    return paths


def _progress(total: int, unit: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit=" " + unit.split()[-1], desc=unit, disable=not enabled,
                unit_scale=True, smoothing=0.1)
