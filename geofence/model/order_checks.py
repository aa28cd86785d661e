"""Checks of a supervision order beyond its types.

Rule fields (a field the engine would ignore for a rule's type is refused,
not silently dropped), curfew windows, jurisdiction codes, time zones, the
validity interval, and the checks across the orders of one file.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from geofence.errors import OrderError, ValidationError
from geofence.model.orders import (
    _DAY_NAMES,
    MAX_POSITIONING_DAYS,
    RULE_FIELDS,
    Exemption,
    Order,
    Positioning,
    Rule,
    Window,
)
from geofence.model.timestamps import parse_ts
from geofence.model.vocabulary import MAX_STRING

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_OPTIONAL_RULE_FIELDS = ("zone", "buffer_m", "windows", "person", "distance_m", "after_s",
                         "dwell_s", "random", "min_score", "category", "area")
_WHERE_USED: dict[str, str] = {
    "zone": "exclusion, inclusion and curfew rules",
    "buffer_m": "exclusion rules",
    "windows": "exclusion, inclusion, curfew and checkin rules",
    "category": "exclusion and inclusion rules",
    "area": "exclusion and inclusion rules naming a `category`",
    "random": "checkin rules",
    "min_score": "checkin rules",
    "person": "no_contact rules",
    "distance_m": "no_contact rules",
    "after_s": "signal_loss rules",
    "dwell_s": "exclusion, inclusion, curfew and no_contact rules",
}


def _check_fields(where: str, rule: Rule) -> None:
    """Refuse a field the engine would ignore for this rule type."""
    used = RULE_FIELDS[rule.type]
    for name in _OPTIONAL_RULE_FIELDS:
        if name in used:
            continue
        value = getattr(rule, name)
        if value is None or value == ():
            continue
        why = f"`{name}` applies only to {_WHERE_USED[name]} and would be ignored here"
        raise OrderError("unsupported_field", f"{where}: rule {rule.id!r} ({rule.type}): {why}")


def _check_rule(where: str, rule: Rule) -> None:
    if rule.type == "curfew" and not rule.zone:
        raise OrderError("missing_field", f"{where}: rule {rule.id!r} (curfew) needs `zone`")
    if rule.type in ("exclusion", "inclusion"):
        if not rule.zone and rule.category is None:
            raise OrderError("missing_field", f"{where}: rule {rule.id!r} ({rule.type}) needs"
                             " `zone` (or a zone `category`)")
        if rule.zone is not None and rule.category is not None:
            raise OrderError("invalid_value", f"{where}: rule {rule.id!r} ({rule.type}) names"
                             " both `zone` and `category`; give one")
        if rule.area is not None and rule.category is None:
            raise OrderError("unsupported_field", f"{where}: rule {rule.id!r} ({rule.type}):"
                             " `area` applies only to a rule naming a `category`")
    if rule.type == "curfew" and not rule.windows:
        raise OrderError("missing_field", f"{where}: curfew rule {rule.id!r} needs `windows`")
    if rule.type == "checkin" and not rule.windows and rule.random is None:
        raise OrderError("missing_field",
                         f"{where}: checkin rule {rule.id!r} needs `windows`, `random` or both")
    for w in rule.windows:
        if w in _GOOD_WINDOWS:
            continue
        _check_times(where, rule, "window", w.start, w.end, w.days)
        if len(_GOOD_WINDOWS) < 4096:
            _GOOD_WINDOWS.add(w)
    if rule.random is not None:
        r = rule.random
        _check_times(where, rule, "random", r.start, r.end, r.days)
        if r.end < r.start:
            raise OrderError("invalid_value", f"{where}: rule {rule.id!r} random requests"
                             f" {r.start}-{r.end} must not cross midnight")
        sh, sm = r.start.split(":")
        eh, em = r.end.split(":")
        if (int(eh) - int(sh)) * 60 + int(em) - int(sm) < r.per_day:
            raise OrderError("invalid_value", f"{where}: rule {rule.id!r} asks for {r.per_day}"
                             f" random requests between {r.start} and {r.end}, more than one a"
                             " minute")
    if rule.type == "no_contact" and not rule.person:
        raise OrderError("missing_field", f"{where}: no_contact rule {rule.id!r} needs `person`")


def _check_times(where: str, rule: Rule, what: str, start: str, end: str, days: str) -> None:
    """Local ``HH:MM`` times of a window (or of random requests) and its days."""
    for name, value in (("start", start), ("end", end)):
        if not _HHMM.match(value):
            raise OrderError(
                "invalid_value", f"{where}: rule {rule.id!r} {what} {name} {value!r} is not HH:MM"
            )
    if start == end:
        raise OrderError("invalid_value", f"{where}: rule {rule.id!r} {what} start equals end")
    if days != "daily":
        bad = [d for d in days.split(",") if d.strip() not in _DAY_NAMES]
        if bad or not days.strip():
            raise OrderError(
                "invalid_value", f"{where}: rule {rule.id!r} days {days!r}: use 'daily' or mon..sun"
            )


_JURISDICTION = re.compile(r"[0-9]{6}")
#: Time zone names already known to load (ZoneInfo costs about 1 us even cached).
_KNOWN_TZ: set[str] = set()
#: Curfew windows already checked (orders of a city mostly share one).
_GOOD_WINDOWS: set[Window] = set()


def _check_order(index: int, order: Order) -> Order:
    where = f"order {index} ({order.person_id!r})"
    if not order.person_id or len(order.person_id) > MAX_STRING:
        raise OrderError("invalid_value", f"order {index}: `person_id` must be 1..256 chars")
    if not _JURISDICTION.fullmatch(order.jurisdiction):
        raise OrderError(
            "invalid_value",
            f"{where}: jurisdiction {order.jurisdiction!r} is not a 6-digit GB/T 2260 code",
        )
    if not order.devices or any(not d for d in order.devices):
        raise OrderError("missing_field", f"{where}: `devices` must name at least one device")
    if order.timezone not in _KNOWN_TZ:
        try:
            ZoneInfo(order.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise OrderError("invalid_value", f"{where}: unknown timezone {order.timezone!r}") from None
        if len(_KNOWN_TZ) < 1024:
            _KNOWN_TZ.add(order.timezone)
    ids = [r.id for r in order.rules]
    if len(set(ids)) != len(ids):
        raise OrderError("duplicate_id", f"{where}: rule ids repeat: {sorted(ids)}")
    checkins = [r.id for r in order.rules if r.type == "checkin"]
    if len(checkins) > 1:
        raise OrderError("invalid_value", f"{where}: at most one checkin rule per order, got"
                         f" {len(checkins)} ({', '.join(map(repr, checkins))}); put its"
                         " windows and random requests in one rule")
    for rule in order.rules:
        t = rule.type
        if (t == "exclusion" and rule.zone and not rule.windows and rule.person is None
                and rule.distance_m is None and rule.after_s is None and rule.category is None
                and rule.area is None):
            continue  # the common case: nothing more to check
        _check_fields(where, rule)
        if (rule.zone and t == "inclusion" and not rule.windows and rule.category is None
                and rule.area is None) or t == "signal_loss":
            continue  # nothing more to check (see _check_rule)
        _check_rule(where, rule)
    extra: dict[str, object] = {}
    if order.exemptions:
        ex_ids = [e.id for e in order.exemptions]
        temp_ids = [r.id for e in order.exemptions for r in e.temporary_rules]
        if len(set(ex_ids)) != len(ex_ids) or len(set(temp_ids)) != len(temp_ids):
            raise OrderError("duplicate_id", f"{where}: exemption ids or their temporary rule"
                             " ids repeat")
        extra["exemptions"] = tuple(_check_exemption(where, order, e) for e in order.exemptions)
    if order.positioning is not None:
        extra["positioning"] = _check_positioning(where, order.positioning)
    try:
        vf = None if order.valid_from is None else parse_ts(order.valid_from, "valid_from")
        vu = None if order.valid_until is None else parse_ts(order.valid_until, "valid_until")
    except ValidationError as exc:
        raise OrderError(exc.reason, f"{where}: {exc.detail}") from None
    if vf is not None and vu is not None and vu <= vf:
        raise OrderError("invalid_value", f"{where}: valid_until is not after valid_from")
    if vf is order.valid_from and vu is order.valid_until and not extra:
        return order  # already normalised (frozen: sharing it is safe)
    return msgspec.structs.replace(order, valid_from=vf, valid_until=vu, **extra)


def _interval(where: str, what: str, start: int | str, end: int | str) -> tuple[int, int]:
    """``from``/``until`` of an exemption or a positioning term, as epoch ms."""
    try:
        s, e = parse_ts(start, f"{what} from"), parse_ts(end, f"{what} until")
    except ValidationError as exc:
        raise OrderError(exc.reason, f"{where}: {exc.detail}") from None
    if e <= s:
        raise OrderError("invalid_value", f"{where}: {what} `until` is not after `from`")
    return s, e


_SUSPENDABLE = ("exclusion", "inclusion", "curfew")


def _check_exemption(where: str, order: Order, ex: Exemption) -> Exemption:
    """An exemption names zone rules of its order and brings temporary zone rules."""
    what = f"exemption {ex.id!r}"
    s, e = _interval(where, what, ex.from_, ex.until)
    types = {r.id: r.type for r in order.rules}
    if not ex.rules and not ex.temporary_rules:
        raise OrderError("missing_field", f"{where}: {what} suspends no rule and brings none")
    for rid in ex.rules:
        if rid == "*" and len(ex.rules) == 1:
            continue
        if rid not in types:
            raise OrderError("invalid_value", f"{where}: {what} names rule {rid!r}, which the"
                             " order does not have (use [\"*\"] alone for every zone rule)")
        if types[rid] not in _SUSPENDABLE:
            raise OrderError("invalid_value", f"{where}: {what} names {types[rid]} rule {rid!r};"
                             " only exclusion, inclusion and curfew rules can be suspended")
    for rule in ex.temporary_rules:
        if rule.type not in _SUSPENDABLE:
            raise OrderError("invalid_value", f"{where}: {what}: temporary rule {rule.id!r} is"
                             f" a {rule.type} rule; only exclusion, inclusion and curfew")
        if rule.id in types:
            raise OrderError("duplicate_id", f"{where}: {what}: temporary rule id {rule.id!r}"
                             " is already a rule of the order")
        _check_fields(f"{where}: {what}", rule)
        _check_rule(f"{where}: {what}", rule)
    ids = [r.id for r in ex.temporary_rules]
    if len(set(ids)) != len(ids):
        raise OrderError("duplicate_id", f"{where}: {what}: temporary rule ids repeat")
    return msgspec.structs.replace(ex, from_=s, until=e)


def _check_positioning(where: str, term: Positioning) -> Positioning:
    """A term of electronic positioning: at most three months."""
    s, e = _interval(where, "positioning", term.from_, term.until)
    if e - s > MAX_POSITIONING_DAYS * 86_400_000:
        raise OrderError("invalid_value", f"{where}: positioning term of {(e - s) / 86_400_000:.1f}"
                         f" days is longer than {MAX_POSITIONING_DAYS}: a longer term needs a"
                         " renewal (a new order version with a new approved term)")
    return msgspec.structs.replace(term, from_=s, until=e)


def _check_all(orders: list[Order]) -> list[Order]:
    """The checks across orders: one order per person, one person per device."""
    seen: dict[str, int] = {}
    devices: dict[str, str] = {}
    for i, o in enumerate(orders):
        if o.person_id in seen:
            raise OrderError("duplicate_id", f"order {i}: person {o.person_id!r} repeats order {seen[o.person_id]}")
        seen[o.person_id] = i
        for d in o.devices:
            if d in devices and devices[d] != o.person_id:
                raise OrderError(
                    "duplicate_id",
                    f"order {i}: device {d!r} is already worn by {devices[d]!r}",
                )
            devices[d] = o.person_id
    return orders
