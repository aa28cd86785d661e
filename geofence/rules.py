"""Supervision orders compiled for evaluation.

An :class:`~geofence.model.Order` is compiled once into a :class:`PersonSpec`:
zone rules resolved to catalogue indices (so a batch can ask the catalogue for
all signed distances in one vectorised call), severities and dwell times
resolved against the defaults of the contract, and each zone rule's activity
(its windows, the leave that suspends it, the positioning term) turned into a
calendar (:class:`~geofence.curfew.CurfewCalendar`, or
:class:`~geofence.curfew.ActivityCalendar` when an exemption or a term takes
part; ``None`` for a rule that always applies).

Severity defaults (contract): exclusion, inclusion, curfew, contact,
tamper, removed, sos, device_separation red; approach, signal_lost and
power_off orange; battery_low yellow; facility video events red for
``perimeter_breach`` and ``fight``, orange otherwise; check-ins:
``checkin_failed`` red, ``checkin_missed`` and ``checkin_outside`` orange;
casework: ``leave_overdue`` orange, ``positioning_term_ending`` blue.
A rule's ``severity`` overrides the default of its main kind (of all three
kinds for a checkin rule); the approach warning of an exclusion rule with
``buffer_m`` is always one level lower than the rule's severity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import attrgetter
from typing import Any, Protocol, Union, cast

import msgspec
import numpy as np
from numpy.typing import NDArray

from geofence.curfew import (
    POSITIONING_ENDED,
    WINDOW_ENDED,
    ActivityCalendar,
    CurfewCalendar,
    calendar_for,
)
from geofence.gc_pause import gc_paused
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
    "device_conflict": "red",
    "device_separation": "red",
    "spoofing_suspected": "red",
    "video_perimeter_breach": "red",
    "video_fight": "red",
    "video_crowd": "orange",
    "video_fall": "orange",
    "video_loitering": "orange",
    "checkin_missed": "orange",
    "checkin_failed": "red",
    "checkin_outside": "orange",
    "leave_overdue": "orange",
    "positioning_term_ending": "blue",
}

CHECKIN_KINDS: tuple[str, ...] = ("checkin_missed", "checkin_failed", "checkin_outside")
"""Alert kinds of a checkin rule (``rule_id`` = the rule's id)."""

BUILTIN_DEVICE_RULES: tuple[str, ...] = ("tamper", "removed", "sos", "power_off", "battery_low",
                                         "device_conflict")
"""Device events that open an alert for every person (``rule_id`` = event name)."""

STICKY_DEVICE_RULES: frozenset[str] = frozenset({"tamper", "removed", "sos", "device_conflict"})
"""Device alerts that never clear by themselves (an operator resolves them)."""

SPOOF_RULE = "spoofing"
"""``rule_id`` of the built-in spoofing rule (every person, docs/rules.md)."""
SPOOF_KIND = "spoofing_suspected"
"""Its alert ``kind``: red, and only an operator resolves it."""

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

    @property
    def ids(self) -> tuple[str, ...]: ...

    def zones_of(self, category: str, area: str = "") -> NDArray[np.int64]: ...

    def scope_of(self, category: str, area: str = "") -> int: ...

    def scope_zones(self, scope: int) -> NDArray[np.int64]: ...

    def scope_distance_m(
        self,
        scope: NDArray[np.int64],
        lon: NDArray[np.float64],
        lat: NDArray[np.float64],
        within_m: NDArray[np.float64],
    ) -> tuple[NDArray[np.float64], NDArray[np.int64]]: ...


def lower(severity: str) -> str:
    """One warning level lower (``red`` -> ``orange``; ``blue`` stays ``blue``)."""
    i = SEVERITY_ORDER.index(severity)
    return SEVERITY_ORDER[min(i + 1, len(SEVERITY_ORDER) - 1)]


class ZoneRule(msgspec.Struct, frozen=True, gc=False):
    """A rule evaluated against one zone: exclusion, inclusion or curfew.

    Frozen: :func:`compile_orders` shares one object between the persons
    whose orders have the same rule.
    """

    rule_id: str
    kind: int  # EXCLUSION / INCLUSION / CURFEW
    zone_id: str  # a category rule: its scope's label (category_label)
    zone_idx: int  # -1 when the zone is missing; a category rule: scope_index(scope)
    buffer_m: float
    dwell_ms: int
    severity: str
    approach_severity: str
    calendar: CurfewCalendar | ActivityCalendar | None
    # the activity (docs/rules.md, "Schedules on any rule"): None = always


class CheckinRule(msgspec.Struct, frozen=True, gc=False):
    """A checkin rule compiled: what is owed comes from :mod:`geofence.checkin`
    (frozen, shared between the persons whose orders have the same rule).

    Attributes
    ----------
    rule : Rule
        The order's ``checkin`` rule (its windows and random requests).
    rule_id : str
        Its id, the ``rule_id`` of all its alerts.
    timezone : str
        The order's time zone (windows and requests are local times).
    min_score : float
        A ``face_score`` below this fails the check-in.
    missed, failed, outside : str
        Severities of ``checkin_missed``, ``checkin_failed`` and
        ``checkin_outside`` (the rule's ``severity`` or the defaults).
    """

    rule: Rule
    rule_id: str
    timezone: str
    min_score: float
    missed: str
    failed: str
    outside: str


class ContactRule(msgspec.Struct, frozen=True, gc=False):
    """A no_contact rule: this person and ``other`` must stay ``distance_m`` apart (frozen, shared)."""

    rule_id: str
    other: str
    distance_m: float
    dwell_ms: int
    severity: str


_EMPTY_I64: NDArray[np.int64] = np.zeros(0, np.int64)
_EMPTY_F64: NDArray[np.float64] = np.zeros(0, np.float64)
_EMPTY_I8: NDArray[np.int8] = np.zeros(0, np.int8)
for _a in (_EMPTY_I64, _EMPTY_F64, _EMPTY_I8):
    _a.setflags(write=False)


class Leave(msgspec.Struct, frozen=True, gc=False):
    """An exemption of an order, as ``leave_overdue`` needs it.

    Attributes
    ----------
    leave_id : str
        The exemption's id (the ``rule_id`` of its ``leave_overdue``).
    until : int
        End of the exemption (epoch ms).
    rules : tuple of int
        Positions in ``PersonSpec.zone_rules`` of the rules it suspends.
    """

    leave_id: str
    until: int
    rules: tuple[int, ...]


LEAVE_KIND = "leave_overdue"
"""Alert kind of a person not back when a leave ends (``rule_id``: the exemption's id)."""
TERM_KIND = "positioning_term_ending"
"""Alert kind of the reminder before a positioning term ends (``rule_id``: ``positioning``)."""
TERM_RULE = "positioning"
"""``rule_id`` of :data:`TERM_KIND`."""


def in_term(spec: PersonSpec, ts_ms: int) -> bool:
    """Whether ``ts_ms`` lies in the person's positioning term (always, without one)."""
    return spec.term is None or spec.term[0] <= ts_ms < spec.term[1]


class PersonSpec(msgspec.Struct, gc=False):
    """An order compiled for evaluation.

    A struct the cyclic GC does not track (it holds no cycles): the engine
    keeps one per person for its whole life. The sequences are tuples; the
    arrays are read-only; :func:`compile_orders` shares rule objects and
    empty tuples between persons.

    ``term`` is the positioning term (from, until, reminder lead, epoch
    ms; ``None``: unlimited), ``leaves`` the order's exemptions and
    ``casework`` whether the order has exemptions, a term or windows on a
    rule other than a curfew (such persons never go quiet in bulk).
    """

    order: Order
    person_id: str
    jurisdiction: str
    valid_from: int
    valid_until: int
    zone_rules: tuple[ZoneRule, ...]
    contact_rules: tuple[ContactRule, ...]
    signal_after_ms: int | None
    signal_rule_id: str | None
    signal_severity: str
    zone_idx: NDArray[np.int64] = msgspec.field(default_factory=lambda: _EMPTY_I64)
    buffer_m: NDArray[np.float64] = msgspec.field(default_factory=lambda: _EMPTY_F64)
    kinds: NDArray[np.int8] = msgspec.field(default_factory=lambda: _EMPTY_I8)
    exclusion_rules: tuple[ZoneRule, ...] = ()
    missing_zones: tuple[str, ...] = ()
    curfew_idx: tuple[int, ...] = ()
    checkin: CheckinRule | None = None
    term: tuple[int, int, int] | None = None
    leaves: tuple[Leave, ...] = ()
    casework: bool = False

    @property
    def has_curfew(self) -> bool:
        """Whether any curfew rule applies."""
        return bool(self.curfew_idx)

    def active_at(self, ts_ms: int) -> bool:
        """Whether the order is in force at ``ts_ms``."""
        return self.valid_from <= ts_ms < self.valid_until


def _severity(rule: Rule, kind: str) -> str:
    return rule.severity or DEFAULT_SEVERITY[kind]


# what one rule compiles to, tagged: (LIVE, ZoneRule) for a zone rule whose
# zone the catalogue holds, (MISSING, ZoneRule) otherwise, (CONTACT,
# ContactRule), (SIGNAL, (after_ms, rule_id, severity)) for signal_loss, or
# (CHECKIN, CheckinRule)
_LIVE, _MISSING, _CONTACT, _SIGNAL, _CHECKIN = 0, 1, 2, 3, 4
_Piece = tuple[int, Union[ZoneRule, ContactRule, CheckinRule, tuple[int, str, str]]]


_AREA_DIGITS = {"county": 6, "city": 4, "province": 2}


def category_label(category: str, area: str) -> str:
    """What a category rule names where a zone rule names its zone (``zone_id``)."""
    return f"category:{category}@{area}" if area else f"category:{category}"


def scope_index(scope: int) -> int:
    """The ``zone_idx`` of a category rule over scope ``scope`` (and back: its own inverse)."""
    return -2 - scope


def _compile_rule(rule: Rule, timezone: str, zones: ZoneIndex, default_dwell_s: float,
                  jurisdiction: str = "") -> _Piece:
    dwell_ms = round((rule.dwell_s if rule.dwell_s is not None else default_dwell_s) * 1000)
    if rule.type in ("exclusion", "inclusion", "curfew"):
        if rule.category is not None:  # every zone of the category in the area
            area = jurisdiction[:_AREA_DIGITS[rule.area]] if rule.area is not None else ""
            zone_id = category_label(rule.category, area)
            idx = scope_index(zones.scope_of(rule.category, area)) if len(
                zones.zones_of(rule.category, area)) else -1
        else:
            zone_id = rule.zone or ""
            idx = zones.index_of(zone_id) if zone_id in zones else -1
        if rule.type == "exclusion":
            sev = _severity(rule, "exclusion_entered")
            zr = ZoneRule(rule.id, EXCLUSION, zone_id, idx, rule.effective_buffer_m(), dwell_ms,
                          sev, lower(sev) if rule.severity else DEFAULT_SEVERITY["exclusion_approach"],
                          calendar_for(rule.windows, timezone) if rule.windows else None)
        elif rule.type == "inclusion":
            zr = ZoneRule(rule.id, INCLUSION, zone_id, idx, 0.0, dwell_ms,
                          _severity(rule, "inclusion_left"), "",
                          calendar_for(rule.windows, timezone) if rule.windows else None)
        else:
            zr = ZoneRule(rule.id, CURFEW, zone_id, idx, 0.0, dwell_ms,
                          _severity(rule, "curfew_violated"), "",
                          calendar_for(rule.windows, timezone))
        return (_MISSING if idx == -1 else _LIVE), zr
    if rule.type == "no_contact":
        return _CONTACT, ContactRule(rule.id, rule.person or "", rule.effective_distance_m(), dwell_ms,
                                     _severity(rule, "contact"))
    if rule.type == "checkin":
        return _CHECKIN, CheckinRule(rule, rule.id, timezone, rule.effective_min_score(),
                                     _severity(rule, "checkin_missed"),
                                     _severity(rule, "checkin_failed"),
                                     _severity(rule, "checkin_outside"))
    return _SIGNAL, (rule.effective_after_s() * 1000, rule.id, _severity(rule, "signal_lost"))


def compile_order(order: Order, zones: ZoneIndex, default_dwell_s: float) -> PersonSpec:
    """Compile one order against a zone catalogue.

    A rule naming a zone the catalogue does not hold is kept with
    ``zone_idx = -1`` and never evaluated (listed in ``missing_zones`` so the
    caller can report it); the rest of the order still applies.

    Parameters
    ----------
    order : Order
        A parsed order (:func:`geofence.model.parse_orders`).
    zones : ZoneIndex
        The zone catalogue the rules refer to.
    default_dwell_s : float
        Dwell time of rules without ``dwell_s``.

    Returns
    -------
    PersonSpec
        Its arrays are read-only. To compile many orders use
        :func:`compile_orders` (the same result, faster).
    """
    return _compile_orders([order], zones, default_dwell_s)[0]


def compile_orders(
    orders: Sequence[Order], zones: ZoneIndex, default_dwell_s: float,
) -> list[PersonSpec]:
    """Compile many orders at once: ``[compile_order(o, ...) for o in orders]``, faster.

    Orders are highly repetitive (one inclusion zone per county, one curfew
    calendar per city, the same exclusion zones for many persons), so each
    distinct rule (per time zone) is compiled once per call and the persons
    whose orders have it share the result: :class:`ZoneRule` and
    :class:`ContactRule` objects are frozen, curfew calendars are shared
    anyway (:func:`geofence.curfew.calendar_for`). The ``zone_idx``,
    ``buffer_m`` and ``kinds`` arrays of all specs are read-only views of
    three arrays built in one pass.

    Parameters
    ----------
    orders : sequence of Order
        Parsed orders (:func:`geofence.model.parse_orders`).
    zones : ZoneIndex
        The zone catalogue the rules refer to.
    default_dwell_s : float
        Dwell time of rules without ``dwell_s``.

    Returns
    -------
    list of PersonSpec
        One per order, in order.

    Examples
    --------
    >>> from geofence.model import parse_orders
    >>> from geofence.zones import ZoneCatalogue
    >>> zones = ZoneCatalogue.from_geojson({"type": "FeatureCollection", "features": [
    ...     {"type": "Feature", "id": "school", "properties": {"radius_m": 100},
    ...      "geometry": {"type": "Point", "coordinates": [118.79, 32.05]}}]})
    >>> orders = parse_orders('[' + ','.join(
    ...     '{"person_id": "P-%d", "devices": ["WB-%d"], "jurisdiction": "320102", '
    ...     '"rules": [{"id": "r1", "type": "exclusion", "zone": "school", "buffer_m": 50}]}'
    ...     % (i, i) for i in range(2)) + ']')
    >>> a, b = compile_orders(orders, zones, 0.0)
    >>> a.zone_rules[0] is b.zone_rules[0], a.buffer_m.tolist(), b.zone_idx.tolist()
    (True, [50.0], [0])
    """
    with gc_paused():  # many long-lived objects, no cycles
        return _compile_orders(orders, zones, default_dwell_s)


def _compile_orders(
    orders: Sequence[Order], zones: ZoneIndex, default_dwell_s: float,
) -> list[PersonSpec]:
    by_tz: dict[str, dict[Rule, _Piece]] = {}
    area_pieces: dict[tuple[Rule, str], _Piece] = {}
    shapes: dict[tuple[int, ...], tuple[tuple[int, ...], tuple[int, ...]]] = {}
    all_live: list[ZoneRule] = []
    ends: list[int] = []
    specs: list[PersonSpec] = []
    for order in orders:
        tz = order.timezone
        pieces = by_tz.get(tz)
        if pieces is None:
            pieces = by_tz[tz] = {}
        got: list[_Piece] = list(map(pieces.get, order.rules))  # type: ignore[arg-type]
        if None in got:
            for j, rule in enumerate(order.rules):
                if got[j] is None:
                    if rule.area is not None:  # its zones depend on the order's jurisdiction
                        ak = (rule, order.jurisdiction)
                        p = area_pieces.get(ak)
                        if p is None:
                            p = area_pieces[ak] = _compile_rule(rule, tz, zones, default_dwell_s,
                                                                order.jurisdiction)
                        got[j] = p
                    else:
                        got[j] = pieces[rule] = _compile_rule(rule, tz, zones, default_dwell_s)
        if order.exemptions or order.positioning is not None:
            got = _with_casework(order, got, tz, zones, default_dwell_s)
        spec = _assemble(order, got, shapes)
        specs.append(spec)
        all_live.extend(spec.zone_rules)
        ends.append(len(all_live))
    n = len(all_live)
    zone_idx = np.fromiter(map(_ZONE_IDX, all_live), np.int64, n)
    buffer_m = np.fromiter(map(_BUFFER, all_live), np.float64, n)
    kinds = np.fromiter(map(_KIND, all_live), np.int8, n)
    for a in (zone_idx, buffer_m, kinds):
        a.setflags(write=False)
    start = 0
    for spec, end in zip(specs, ends, strict=True):
        if end > start:
            spec.zone_idx = zone_idx[start:end]
            spec.buffer_m = buffer_m[start:end]
            spec.kinds = kinds[start:end]
            start = end
    return specs


_UNBOUNDED = 1 << 61


def _with_casework(order: Order, got: list[_Piece], tz: str, zones: ZoneIndex,
                   default_dwell_s: float) -> list[_Piece]:
    """The zone rules of an order with exemptions or a positioning term, their
    activity composed (:class:`~geofence.curfew.ActivityCalendar`), and the
    temporary rules of its exemptions after them. Per order: not shared."""
    term = order.positioning
    lo, hi = -_UNBOUNDED, _UNBOUNDED
    if term is not None:
        lo, hi = cast(int, term.from_), cast(int, term.until)
    out: list[_Piece] = []
    for tag, obj in got:
        if tag in (_LIVE, _MISSING):
            zr = cast(ZoneRule, obj)
            susp = [(e.from_ms(), e.until_ms()) for e in order.exemptions
                    if "*" in e.rules or zr.rule_id in e.rules]
            if susp or term is not None:
                obj = msgspec.structs.replace(zr, calendar=ActivityCalendar(
                    cast(CurfewCalendar | None, zr.calendar), lo, hi, POSITIONING_ENDED, susp))
        out.append((tag, obj))
    for ex in order.exemptions:
        for rule in ex.temporary_rules:
            tag, obj = _compile_rule(rule, tz, zones, default_dwell_s)
            zr = cast(ZoneRule, obj)
            t_lo, t_hi = max(lo, ex.from_ms()), min(hi, ex.until_ms())
            why = POSITIONING_ENDED if term is not None and t_hi == hi else WINDOW_ENDED
            out.append((tag, msgspec.structs.replace(
                zr, calendar=ActivityCalendar(cast(CurfewCalendar | None, zr.calendar),
                                              t_lo, t_hi, why))))
    return out


def _assemble(
    order: Order, got: list[_Piece],
    shapes: dict[tuple[int, ...], tuple[tuple[int, ...], tuple[int, ...]]],
) -> PersonSpec:
    """The spec of one order from its compiled rules (arrays left empty: the caller sets them)."""
    live = cast(tuple[ZoneRule, ...], tuple([p[1] for p in got if p[0] == _LIVE]))
    contact: tuple[ContactRule, ...] = ()
    missing: tuple[str, ...] = ()
    signal_after: int | None = None
    signal_rule: str | None = None
    signal_sev = DEFAULT_SEVERITY["signal_lost"]
    checkin: CheckinRule | None = None
    if len(live) < len(got):
        contacts: list[ContactRule] = []
        gone: list[str] = []
        for tag, obj in got:
            if tag == _SIGNAL:
                sig = cast(tuple[int, str, str], obj)
                # several signal_loss rules: the shortest delay wins
                if signal_after is None or sig[0] < signal_after:
                    signal_after, signal_rule, signal_sev = sig
            elif tag == _MISSING:
                gone.append(cast(ZoneRule, obj).zone_id)
            elif tag == _CONTACT:
                contacts.append(cast(ContactRule, obj))
            elif tag == _CHECKIN:
                checkin = cast(CheckinRule, obj)  # at most one (order checks)
        contact, missing = tuple(contacts), tuple(gone)
    kt = tuple([z.kind for z in live])
    shape = shapes.get(kt)
    if shape is None:
        shape = shapes[kt] = (tuple([i for i, k in enumerate(kt) if k == EXCLUSION]),
                              tuple([i for i, k in enumerate(kt) if k == CURFEW]))
    excl_pos, curf = shape
    term: tuple[int, int, int] | None = None
    leaves: tuple[Leave, ...] = ()
    casework = False
    if order.exemptions or order.positioning is not None:
        casework = True
        p = order.positioning
        if p is not None:
            term = (cast(int, p.from_), cast(int, p.until), p.remind_days * 86_400_000)
        own = {r.id for r in order.rules}
        leaves = tuple(Leave(e.id, e.until_ms(), tuple(
            i for i, z in enumerate(live)
            if z.rule_id in own and ("*" in e.rules or z.rule_id in e.rules)))
            for e in order.exemptions)
    elif any(z.calendar is not None and z.kind != CURFEW for z in live):
        casework = True
    return PersonSpec(  # positional: faster than keywords
        order, order.person_id, order.jurisdiction, order.valid_from_ms(),
        order.valid_until_ms(), live, contact, signal_after, signal_rule, signal_sev,
        _EMPTY_I64, _EMPTY_F64, _EMPTY_I8,
        tuple([live[i] for i in excl_pos]) if excl_pos else (),
        missing,
        curf,
        checkin,
        term,
        leaves,
        casework,
    )


_ZONE_IDX = attrgetter("zone_idx")
_BUFFER = attrgetter("buffer_m")
_KIND = attrgetter("kind")


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
        "checkin_rule": None if spec.checkin is None else spec.checkin.rule_id,
        "missing_zones": list(spec.missing_zones),
    }
