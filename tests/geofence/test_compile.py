"""geofence.rules.compile_orders: the batch compiler equals the per-order reference."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geofence.curfew import calendar_for
from geofence.model import Order, Rule, parse_orders
from geofence.rules import (
    CURFEW,
    DEFAULT_SEVERITY,
    EXCLUSION,
    INCLUSION,
    CheckinRule,
    ContactRule,
    PersonSpec,
    ZoneRule,
    compile_order,
    compile_orders,
    lower,
)
from geofence.zones import ZoneCatalogue


def reference(order: Order, zones: ZoneCatalogue, default_dwell_s: float) -> dict[str, Any]:
    """The compiler as it was before batching (one order, no sharing), as plain data.

    (It built lists; PersonSpec now holds tuples, so the lists become tuples.)
    """
    zone_rules: list[ZoneRule] = []
    contact_rules: list[ContactRule] = []
    signal_after: int | None = None
    signal_rule: str | None = None
    signal_sev = DEFAULT_SEVERITY["signal_lost"]
    checkin: CheckinRule | None = None
    missing: list[str] = []

    def sev_of(rule: Rule, kind: str) -> str:
        return rule.severity or DEFAULT_SEVERITY[kind]

    for rule in order.rules:
        dwell_ms = round((rule.dwell_s if rule.dwell_s is not None else default_dwell_s) * 1000)
        if rule.type in ("exclusion", "inclusion", "curfew"):
            zone_id = rule.zone or ""
            idx = zones.index_of(zone_id) if zone_id in zones else -1
            if idx < 0:
                missing.append(zone_id)
            if rule.type == "exclusion":
                sev = sev_of(rule, "exclusion_entered")
                zone_rules.append(ZoneRule(rule.id, EXCLUSION, zone_id, idx, rule.effective_buffer_m(), dwell_ms, sev,
                                           lower(sev) if rule.severity else DEFAULT_SEVERITY["exclusion_approach"],
                                           None))
            elif rule.type == "inclusion":
                zone_rules.append(ZoneRule(rule.id, INCLUSION, zone_id, idx, 0.0, dwell_ms,
                                           sev_of(rule, "inclusion_left"), "", None))
            else:
                zone_rules.append(ZoneRule(rule.id, CURFEW, zone_id, idx, 0.0, dwell_ms,
                                           sev_of(rule, "curfew_violated"), "",
                                           calendar_for(rule.windows, order.timezone)))
        elif rule.type == "no_contact":
            contact_rules.append(ContactRule(rule.id, rule.person or "", rule.effective_distance_m(), dwell_ms,
                                             sev_of(rule, "contact")))
        elif rule.type == "signal_loss":
            after = rule.effective_after_s() * 1000
            if signal_after is None or after < signal_after:
                signal_after, signal_rule = after, rule.id
                signal_sev = sev_of(rule, "signal_lost")
        elif rule.type == "checkin":
            checkin = CheckinRule(rule, rule.id, order.timezone, rule.effective_min_score(),
                                  sev_of(rule, "checkin_missed"), sev_of(rule, "checkin_failed"),
                                  sev_of(rule, "checkin_outside"))
    live = [z for z in zone_rules if z.zone_idx >= 0]
    return {
        "order": order, "person_id": order.person_id, "jurisdiction": order.jurisdiction,
        "valid_from": order.valid_from_ms(), "valid_until": order.valid_until_ms(),
        "zone_rules": tuple(live), "contact_rules": tuple(contact_rules), "signal_after_ms": signal_after,
        "signal_rule_id": signal_rule, "signal_severity": signal_sev,
        "zone_idx": ("int64", [z.zone_idx for z in live]),
        "buffer_m": ("float64", [z.buffer_m for z in live]),
        "kinds": ("int8", [z.kind for z in live]),
        "exclusion_rules": tuple(z for z in live if z.kind == EXCLUSION), "missing_zones": tuple(missing),
        "curfew_idx": tuple(i for i, z in enumerate(live) if z.kind == CURFEW),
        "checkin": checkin,
    }


def plain(spec: PersonSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in PersonSpec.__struct_fields__:
        v = getattr(spec, name)
        if isinstance(v, np.ndarray):
            assert not v.flags.writeable, f"{name} must be read-only (it may be shared)"
            v = (str(v.dtype), v.tolist())
        out[name] = v
    return out


ZONES = ZoneCatalogue.from_geojson({"type": "FeatureCollection", "features": [
    {"type": "Feature", "id": f"Z{i}", "properties": {"radius_m": 100 + i},
     "geometry": {"type": "Point", "coordinates": [118.79 + 0.01 * i, 32.05]}} for i in range(4)]})

_rule = st.one_of(
    st.fixed_dictionaries({"type": st.just("exclusion"),
                           "zone": st.sampled_from(["Z0", "Z1", "Z3", "gone"])},
                          optional={"buffer_m": st.sampled_from([0, 50, 120.5]),
                                    "severity": st.sampled_from(["red", "orange", "blue"]),
                                    "dwell_s": st.sampled_from([0, 30, 90.4])}),
    st.fixed_dictionaries({"type": st.just("inclusion"),
                           "zone": st.sampled_from(["Z0", "Z1", "Z3", "gone"])},
                          optional={"severity": st.sampled_from(["red", "orange", "blue"]),
                                    "dwell_s": st.sampled_from([0, 30, 90.4])}),
    st.fixed_dictionaries({"type": st.just("curfew"), "zone": st.sampled_from(["Z2", "Z0", "nowhere"]),
                           "windows": st.sampled_from([
                               [{"start": "22:00", "end": "06:00"}],
                               [{"days": "mon,fri", "start": "21:30", "end": "23:00"},
                                {"start": "01:00", "end": "05:00"}]])},
                          optional={"severity": st.sampled_from(["yellow"]), "dwell_s": st.just(10)}),
    st.fixed_dictionaries({"type": st.just("no_contact"), "person": st.sampled_from(["P-0", "P-1", "X"])},
                          optional={"distance_m": st.sampled_from([50, 200.5])}),
    st.fixed_dictionaries({"type": st.just("signal_loss")},
                          optional={"after_s": st.sampled_from([60, 900, 600]),
                                    "severity": st.sampled_from(["red", "blue"])}),
)
_checkin = st.fixed_dictionaries(
    {"type": st.just("checkin"),
     "windows": st.sampled_from([[{"start": "08:00", "end": "10:00"}], []])},
    optional={"random": st.just({"per_day": 2, "start": "09:00", "end": "20:00"}),
              "min_score": st.sampled_from([0.5, 0.9]), "severity": st.sampled_from(["red"])},
).filter(lambda r: r["windows"] or "random" in r)
_order = st.fixed_dictionaries({
    "rules": st.lists(_rule, max_size=7),
    "timezone": st.sampled_from(["Asia/Shanghai", "Asia/Urumqi", "Europe/London"]),
    "valid_from": st.sampled_from([None, 1_700_000_000_000]),
}, optional={"checkin": _checkin})  # at most one checkin rule per order


def _orders(raw: list[dict[str, Any]]) -> list[Order]:
    docs = []
    for i, o in enumerate(raw):
        o = dict(o)
        extra = [o.pop("checkin")] if "checkin" in o else []
        rules = [{"id": f"r{j % 5}" if j < 5 else f"x{j}", **r}
                 for j, r in enumerate([*o["rules"], *extra])]
        docs.append({"person_id": f"P-{i}", "devices": [f"D-{i}"], "jurisdiction": "320102", **o,
                     "rules": rules})
    return parse_orders(json.dumps(docs))


@settings(max_examples=200, deadline=None)
@given(raw=st.lists(_order, max_size=8), dwell=st.sampled_from([0.0, 45.0, 12.3456]))
def test_batch_equals_reference(raw: list[dict[str, Any]], dwell: float) -> None:
    orders = _orders(raw)
    batch = compile_orders(orders, ZONES, dwell)
    assert [plain(s) for s in batch] == [reference(o, ZONES, dwell) for o in orders]
    assert [plain(compile_order(o, ZONES, dwell)) for o in orders] == [plain(s) for s in batch]


def test_identical_rules_share_frozen_pieces() -> None:
    orders = _orders([{"rules": [{"type": "inclusion", "zone": "Z0"}, {"type": "exclusion", "zone": "Z1"},
                                 {"type": "curfew", "zone": "Z2", "windows": [{"start": "22:00", "end": "06:00"}]},
                                 {"type": "no_contact", "person": "P-9"}]}] * 3)
    a, b, c = compile_orders(orders, ZONES, 0.0)
    for i in range(3):
        assert a.zone_rules[i] is b.zone_rules[i] is c.zone_rules[i]
    assert a.contact_rules[0] is c.contact_rules[0]
    assert a.zone_rules[2].calendar is c.zone_rules[2].calendar
    with pytest.raises(AttributeError):
        a.zone_rules[0].zone_idx = 5  # type: ignore[misc]
    with pytest.raises(ValueError):
        a.zone_idx[0] = 5
    # the arrays are views of one array each, but every spec sees only its own rows
    assert b.zone_idx.tolist() == [0, 1, 2] and b.kinds.tolist() == [INCLUSION, EXCLUSION, CURFEW]


def test_empty_and_all_missing_orders() -> None:
    orders = _orders([{"rules": []}, {"rules": [{"type": "exclusion", "zone": "gone"}]},
                      {"rules": [{"type": "inclusion", "zone": "Z3"}]}])
    specs = compile_orders(orders, ZONES, 0.0)
    assert [plain(s) for s in specs] == [reference(o, ZONES, 0.0) for o in orders]
    assert specs[1].missing_zones == ("gone",) and specs[1].zone_idx.shape == (0,)
    assert specs[2].zone_idx.tolist() == [3]
    assert compile_orders([], ZONES, 0.0) == []
