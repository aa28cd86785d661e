"""Supervision orders compiled for evaluation.

An :class:`~geofence.model.Order` is compiled once into a :class:`PersonSpec`:
zone rules resolved to catalogue indices (so a batch can ask the catalogue for
all signed distances in one vectorised call), severities and dwell times
resolved against the defaults of the contract, and curfew windows turned into
a :class:`~geofence.curfew.CurfewCalendar`.

Severity defaults (contract, issue 3): exclusion, inclusion, curfew, contact,
tamper, removed, sos, device_separation red; approach, signal_lost and
power_off orange; battery_low yellow; facility video events red for
``perimeter_breach`` and ``fight``, orange otherwise. A rule's ``severity``
overrides the default of its main kind; the approach warning of an exclusion
rule with ``buffer_m`` is always one level lower than the rule's severity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from geofence.curfew import CurfewCalendar, calendar_for
from geofence.model import Order, Rule

SEVERITY_ORDER = ("red", "orange", "yellow", "blue")

DEFAULT_SEVERITY: dict[str, str] = {
    "exclusion_entered": "red",
    "exclusion_approach": "orange",
    "inclusion_left": "red",
    "curfew_violated": "red",
    "contact": "red",
    "signal_lost": "orange",
    "tamper": "red",
    "removed": "red",
    "sos": "red",
    "power_off": "orange",
    "battery_low": "yellow",
    "device_separation": "red",
    "video_perimeter_breach": "red",
    "video_fight": "red",
    "video_crowd": "orange",
    "video_fall": "orange",
    "video_loitering": "orange",
}

BUILTIN_DEVICE_RULES: tuple[str, ...] = ("tamper", "removed", "sos", "power_off", "battery_low")
"""Device events that open an alert for every person (``rule_id`` = event name)."""

STICKY_DEVICE_RULES: frozenset[str] = frozenset({"tamper", "removed", "sos"})
"""Device alerts that never clear by themselves (an operator resolves them)."""

FACILITY_VIDEO_EVENTS: frozenset[str] = frozenset(
    {"perimeter_breach", "fight", "crowd", "fall", "loitering"}
)

# zone-condition kinds (int codes used in numpy arrays)
EXCLUSION = 0
INCLUSION = 1
CURFEW = 2


class ZoneIndex(Protocol):
    """What the engine needs from a zone catalogue (see geofence/zones.py)."""

    def index_of(self, zone_id: str) -> int: ...

    def __contains__(self, zone_id: object) -> bool: ...

    def signed_distance_m(
        self,
        zone_idx: NDArray[np.int64],
        lon: NDArray[np.float64],
        lat: NDArray[np.float64],
        within_m: NDArray[np.float64],
    ) -> NDArray[np.float64]: ...


def lower(severity: str) -> str:
    """One warning level lower (``red`` -> ``orange``; ``blue`` stays ``blue``)."""
    i = SEVERITY_ORDER.index(severity)
    return SEVERITY_ORDER[min(i + 1, len(SEVERITY_ORDER) - 1)]


@dataclass(slots=True)
class ZoneRule:
    """A rule evaluated against one zone: exclusion, inclusion or curfew."""

    rule_id: str
    kind: int  # EXCLUSION / INCLUSION / CURFEW
    zone_id: str
    zone_idx: int  # -1 when the zone is missing from the catalogue
    buffer_m: float
    dwell_ms: int
    severity: str
    approach_severity: str
    calendar: CurfewCalendar | None


@dataclass(slots=True)
class ContactRule:
    """A no_contact rule: this person and ``other`` must stay ``distance_m`` apart."""

    rule_id: str
    other: str
    distance_m: float
    dwell_ms: int
    severity: str


@dataclass(slots=True)
class PersonSpec:
    """An order compiled for evaluation."""

    order: Order
    person_id: str
    jurisdiction: str
    valid_from: int
    valid_until: int
    zone_rules: list[ZoneRule]
    contact_rules: list[ContactRule]
    signal_after_ms: int | None
    signal_rule_id: str | None
    signal_severity: str
    zone_idx: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    buffer_m: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0, np.float64))
    kinds: NDArray[np.int8] = field(default_factory=lambda: np.zeros(0, np.int8))
    exclusion_rules: list[ZoneRule] = field(default_factory=list)
    missing_zones: list[str] = field(default_factory=list)
    curfew_idx: list[int] = field(default_factory=list)

    @property
    def has_curfew(self) -> bool:
        """Whether any curfew rule applies."""
        return bool(self.curfew_idx)

    def active_at(self, ts_ms: int) -> bool:
        """Whether the order is in force at ``ts_ms``."""
        return self.valid_from <= ts_ms < self.valid_until


def _severity(rule: Rule, kind: str) -> str:
    return rule.severity or DEFAULT_SEVERITY[kind]


def compile_order(order: Order, zones: ZoneIndex, default_dwell_s: float) -> PersonSpec:
    """Compile one order against a zone catalogue.

    A rule naming a zone the catalogue does not hold is kept with
    ``zone_idx = -1`` and never evaluated (listed in ``missing_zones`` so the
    caller can report it); the rest of the order still applies.
    """
    zone_rules: list[ZoneRule] = []
    contact_rules: list[ContactRule] = []
    signal_after: int | None = None
    signal_rule: str | None = None
    signal_sev = DEFAULT_SEVERITY["signal_lost"]
    missing: list[str] = []
    for rule in order.rules:
        dwell_ms = round((rule.dwell_s if rule.dwell_s is not None else default_dwell_s) * 1000)
        if rule.type in ("exclusion", "inclusion", "curfew"):
            zone_id = rule.zone or ""
            idx = zones.index_of(zone_id) if zone_id in zones else -1
            if idx < 0:
                missing.append(zone_id)
            if rule.type == "exclusion":
                sev = _severity(rule, "exclusion_entered")
                zone_rules.append(
                    ZoneRule(rule.id, EXCLUSION, zone_id, idx, float(rule.buffer_m), dwell_ms,
                             sev, lower(sev) if rule.severity else DEFAULT_SEVERITY["exclusion_approach"],
                             None)
                )
            elif rule.type == "inclusion":
                zone_rules.append(
                    ZoneRule(rule.id, INCLUSION, zone_id, idx, 0.0, dwell_ms,
                             _severity(rule, "inclusion_left"), "", None)
                )
            else:
                zone_rules.append(
                    ZoneRule(rule.id, CURFEW, zone_id, idx, 0.0, dwell_ms,
                             _severity(rule, "curfew_violated"), "",
                             calendar_for(rule.windows, order.timezone))
                )
        elif rule.type == "no_contact":
            contact_rules.append(
                ContactRule(rule.id, rule.person or "", float(rule.distance_m), dwell_ms,
                            _severity(rule, "contact"))
            )
        elif rule.type == "signal_loss":
            # several signal_loss rules: the shortest delay wins
            after = int(rule.after_s) * 1000
            if signal_after is None or after < signal_after:
                signal_after, signal_rule = after, rule.id
                signal_sev = _severity(rule, "signal_lost")
    live = [z for z in zone_rules if z.zone_idx >= 0]
    spec = PersonSpec(
        order=order,
        person_id=order.person_id,
        jurisdiction=order.jurisdiction,
        valid_from=order.valid_from_ms(),
        valid_until=order.valid_until_ms(),
        zone_rules=live,
        contact_rules=contact_rules,
        signal_after_ms=signal_after,
        signal_rule_id=signal_rule,
        signal_severity=signal_sev,
        zone_idx=np.array([z.zone_idx for z in live], dtype=np.int64),
        buffer_m=np.array([z.buffer_m for z in live], dtype=np.float64),
        kinds=np.array([z.kind for z in live], dtype=np.int8),
        exclusion_rules=[z for z in live if z.kind == EXCLUSION],
        missing_zones=missing,
        curfew_idx=[i for i, z in enumerate(live) if z.kind == CURFEW],
    )
    return spec


def contact_groups(orders: Sequence[Order]) -> dict[str, str]:
    """person_id -> smallest person_id of its no_contact group (union-find)."""
    parent: dict[str, str] = {o.person_id: o.person_id for o in orders}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for o in orders:
        for r in o.rules:
            if r.type == "no_contact" and r.person:
                a, b = find(o.person_id), find(r.person)
                if a != b:
                    if b < a:
                        a, b = b, a
                    parent[b] = a
    return {p: find(p) for p in list(parent)}


def describe(spec: PersonSpec) -> Mapping[str, Any]:
    """A small summary of a compiled order (for logs and tests)."""
    return {
        "person_id": spec.person_id,
        "zone_rules": [z.rule_id for z in spec.zone_rules],
        "contact_rules": [c.rule_id for c in spec.contact_rules],
        "signal_after_ms": spec.signal_after_ms,
        "missing_zones": list(spec.missing_zones),
    }
