"""Supervision orders: the order, its rules and their time windows, as typed structs.

:data:`RULE_FIELDS` says which fields each rule type uses. Checking an
order beyond its types is :mod:`geofence.model.order_checks`' part; reading
an orders file is :mod:`geofence.model.order_parsing`'s.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

import msgspec

from geofence.model.timestamps import _MAX_EPOCH_MS
from geofence.model.vocabulary import Severity

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RuleType = Literal["exclusion", "inclusion", "curfew", "no_contact", "signal_loss", "checkin"]


class Window(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A window in local time (a curfew, or a scheduled check-in); ``end``
    before ``start`` crosses midnight."""

    start: str
    end: str
    days: str = "daily"

    def weekdays(self) -> frozenset[int]:
        """Days the window starts on, Monday = 0."""
        if self.days == "daily":
            return frozenset(range(7))
        return frozenset(_DAY_NAMES.index(d.strip()) for d in self.days.split(","))

    def minutes(self) -> tuple[int, int]:
        """``(start, end)`` as minutes after local midnight."""
        sh, sm = self.start.split(":")
        eh, em = self.end.split(":")
        return int(sh) * 60 + int(sm), int(eh) * 60 + int(em)


class RandomCheckins(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Random check-in requests of a check-in rule.

    ``per_day`` requests on each local day (of ``days``, as for windows),
    at times drawn between ``start`` and ``end`` (local ``HH:MM``, not
    crossing midnight), each to be answered within ``answer_within_s``.
    The times are derived from the person, the rule and the date
    (:func:`geofence.checkin.requests_on`), so every replay draws the same.
    """

    per_day: Annotated[int, msgspec.Meta(ge=1, le=24)]
    start: str
    end: str
    answer_within_s: Annotated[int, msgspec.Meta(ge=60, le=86_400)] = 900
    days: str = "daily"


Area = Literal["county", "city", "province"]
"""Where a category rule's zones are taken from: zones whose
``properties.jurisdiction`` shares the order's county (6 digits), city (4)
or province (2) prefix."""


class Rule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One rule of an order; which fields apply depends on ``type``
    (:data:`RULE_FIELDS`; validation refuses the others).

    A field left out is ``None``; the ``effective_*`` methods give the value
    the engine uses (the default when left out).
    """

    id: str
    type: RuleType
    zone: Union[str, None] = None
    buffer_m: Union[Annotated[float, msgspec.Meta(ge=0.0, le=100_000.0)], None] = None
    windows: tuple[Window, ...] = ()
    person: Union[str, None] = None
    distance_m: Union[Annotated[float, msgspec.Meta(gt=0.0, le=100_000.0)], None] = None
    after_s: Union[Annotated[int, msgspec.Meta(gt=0)], None] = None
    severity: Union[Severity, None] = None
    dwell_s: Union[Annotated[float, msgspec.Meta(ge=0.0)], None] = None
    random: Union[RandomCheckins, None] = None
    min_score: Union[Annotated[float, msgspec.Meta(ge=0.0, le=1.0)], None] = None
    category: Union[Annotated[str, msgspec.Meta(min_length=1, max_length=256)], None] = None
    area: Union[Area, None] = None

    def effective_buffer_m(self) -> float:
        """``buffer_m`` of an exclusion rule (0: no approach warning)."""
        return 0.0 if self.buffer_m is None else float(self.buffer_m)

    def effective_distance_m(self) -> float:
        """``distance_m`` of a no_contact rule (default 200 m)."""
        return DEFAULT_DISTANCE_M if self.distance_m is None else float(self.distance_m)

    def effective_min_score(self) -> float:
        """``min_score`` of a check-in rule (default 0.8)."""
        return DEFAULT_MIN_SCORE if self.min_score is None else float(self.min_score)

    def effective_after_s(self) -> int:
        """``after_s`` of a signal_loss rule (default 900 s)."""
        return DEFAULT_AFTER_S if self.after_s is None else int(self.after_s)


DEFAULT_DISTANCE_M = 200.0
"""``distance_m`` of a no_contact rule that sets none."""
DEFAULT_AFTER_S = 900
"""``after_s`` of a signal_loss rule that sets none."""
DEFAULT_MIN_SCORE = 0.8
"""``min_score`` of a check-in rule that sets none: a lower face score fails."""

RULE_FIELDS: dict[str, frozenset[str]] = {
    "exclusion": frozenset({"zone", "category", "area", "buffer_m", "windows", "severity",
                            "dwell_s"}),
    "inclusion": frozenset({"zone", "category", "area", "windows", "severity", "dwell_s"}),
    "curfew": frozenset({"zone", "windows", "severity", "dwell_s"}),
    "no_contact": frozenset({"person", "distance_m", "severity", "dwell_s"}),
    "signal_loss": frozenset({"after_s", "severity"}),
    "checkin": frozenset({"windows", "random", "min_score", "severity"}),
}
"""The fields each rule type uses besides ``id`` and ``type``. Any other field
set on a rule would be ignored by the engine, so validation refuses it."""


class TemplateRef(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The order template an order was issued from (:mod:`geofence.templates`)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    version: Annotated[int, msgspec.Meta(ge=1)]


Grounds = Literal[
    "violated_prohibition_order", "left_without_approval", "failed_to_report",
    "public_security_penalty", "revocation_pending",
]
"""The grounds on which electronic positioning may be ordered (Community
Corrections Law of the PRC, art. 29): a court prohibition order violated
(违反人民法院禁止令); leaving the city or county without approval
(无正当理由未经批准离开所居住的市、县); a warning for refusing to report
(拒不按照规定报告自己的活动情况，被给予警告); a public-security penalty for
breaking supervision rules (违反监督管理规定，被给予治安管理处罚); revocation
of probation, parole or medical parole about to be sought
(拟提请撤销缓刑、假释或者暂予监外执行)."""

MAX_POSITIONING_DAYS = 92
"""Longest approved term of electronic positioning (three months); a longer
one is a renewal: a new order version with a new approved term."""


class Positioning(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The approved term of electronic positioning under an order.

    Outside ``[from, until)`` the person's positioning data raises no
    geofence alert; ``remind_days`` before ``until`` a blue reminder opens.
    ``from``/``until`` are parsed to epoch ms by :func:`parse_orders`.
    """

    grounds: Grounds
    until: Union[int, str]
    approved_by: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    from_: Union[int, str] = msgspec.field(name="from")
    remind_days: Annotated[int, msgspec.Meta(ge=0, le=30)] = 7


class Exemption(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An approved leave (请假外出) or other time-boxed suspension of rules.

    During ``[from, until)`` the named rules (``["*"]``: every exclusion,
    inclusion and curfew rule) raise nothing, and ``temporary_rules`` apply
    instead. ``from``/``until`` are parsed to epoch ms by :func:`parse_orders`.
    """

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    until: Union[int, str]
    rules: tuple[str, ...]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    requested_by: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    approved_by: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    level: Literal["office", "county"]
    from_: Union[int, str] = msgspec.field(name="from")
    temporary_rules: tuple[Rule, ...] = ()

    def from_ms(self) -> int:
        """Start of the suspension, epoch ms (after :func:`parse_orders`)."""
        assert isinstance(self.from_, int)
        return self.from_

    def until_ms(self) -> int:
        """End of the suspension, epoch ms (after :func:`parse_orders`)."""
        assert isinstance(self.until, int)
        return self.until


class Order(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A supervision order: one person, their devices, their rules.

    ``valid_from``/``valid_until`` are parsed to epoch ms by :func:`parse_orders`.
    ``template`` records which order template the order was issued from; it is
    provenance for the people reading the order, and the engine never looks at it.
    """

    person_id: str
    devices: tuple[str, ...]
    jurisdiction: str
    rules: tuple[Rule, ...]
    valid_from: Union[int, str, None] = None
    valid_until: Union[int, str, None] = None
    timezone: str = "Asia/Shanghai"
    template: Union[TemplateRef, None] = None
    exemptions: tuple[Exemption, ...] = ()
    positioning: Union[Positioning, None] = None

    def valid_from_ms(self) -> int:
        """Start of validity in epoch ms (0 when open-ended)."""
        return self.valid_from if isinstance(self.valid_from, int) else 0

    def valid_until_ms(self) -> int:
        """End of validity in epoch ms (far future when open-ended)."""
        return self.valid_until if isinstance(self.valid_until, int) else _MAX_EPOCH_MS

    def active_at(self, ts_ms: int) -> bool:
        """Whether the order is in force at ``ts_ms``."""
        return self.valid_from_ms() <= ts_ms < self.valid_until_ms()
