"""Who is paged for one lifecycle step of one alert (pure: no I/O).

A :class:`Policy` names alerts by jurisdiction prefix, severity, kind,
escalation tier and lifecycle event, and a recipient on a channel; the
recipient ``duty`` is the officer on the duty roster (:class:`Shift`) of the
tier's jurisdiction at the alert's time. Quiet hours hold back a policy's
pages during a daily local-time window, except for red alerts, which are
always paged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from alerts.errors import BadRequestError
from geofence.errors import ValidationError
from geofence.model import SEVERITIES, parse_ts

CHANNELS = ("webhook", "email", "sms", "dingtalk", "wecom", "mqtt")
TIERS = ("county", "city", "province")
EVENTS = ("opened", "updated", "cleared", "acknowledged", "resolved", "escalated")
DUTY = "duty"
DELIVERY_STATUSES = ("sending", "sent", "failed")
"""States of a page in the delivery log: being sent, sent, or given up after
its retries (a page that may have arrived twice is ``sent`` with ``resent``)."""


@dataclass(frozen=True)
class Policy:
    """One notification rule."""

    policy_id: int
    jurisdiction_prefix: str
    channel: str
    recipient: str
    tier: str = "county"
    events: tuple[str, ...] = ("opened", "escalated")
    severities: tuple[str, ...] | None = None
    kinds: tuple[str, ...] | None = None
    quiet_start: time | None = None
    quiet_end: time | None = None
    quiet_tz: str = "Asia/Shanghai"


@dataclass(frozen=True)
class Shift:
    """One officer on duty for a jurisdiction from ``starts_at`` to ``ends_at`` (epoch s)."""

    jurisdiction: str
    officer: str
    starts_at: float
    ends_at: float
    contacts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """One page to send: idempotent by ``(alert_id, step, recipient, channel)``."""

    alert_id: str
    step: str
    recipient: str
    channel: str
    address: str
    policy_id: int

    @property
    def delivery_id(self) -> str:
        """The page's identity as its receiver sees it (``X-Wardstream-Delivery``)."""
        return f"{self.alert_id}/{self.step}/{self.recipient}/{self.channel}"


def tier_jurisdiction(jurisdiction: str, tier: str) -> str:
    """The command centre of ``tier`` above a county code (``320102`` -> city ``320100``)."""
    if tier == "county" or len(jurisdiction) != 6 or not jurisdiction.isdigit():
        return jurisdiction
    keep = 4 if tier == "city" else 2
    return jurisdiction[:keep] + "0" * (6 - keep)


def step_of(event: str, alert: Mapping[str, Any]) -> str:
    """The lifecycle step an event is for; ``escalated`` steps are per tier."""
    if event == "escalated":
        return f"escalated:{alert.get('tier') or 'city'}"
    if event == "updated":
        return f"updated:{alert.get('severity', '')}"
    return event


def in_quiet_hours(policy: Policy, at: float) -> bool:
    """Whether epoch second ``at`` falls in the policy's daily quiet window (local time)."""
    if policy.quiet_start is None or policy.quiet_end is None:
        return False
    local = datetime.fromtimestamp(at, UTC).astimezone(ZoneInfo(policy.quiet_tz)).time()
    start, end = policy.quiet_start, policy.quiet_end
    if start <= end:
        return start <= local < end
    return local >= start or local < end  # the window crosses midnight


def on_duty(shifts: Iterable[Shift], jurisdiction: str, at: float) -> list[Shift]:
    """Shifts of exactly ``jurisdiction`` that cover epoch second ``at``."""
    return [s for s in shifts if s.jurisdiction == jurisdiction and s.starts_at <= at < s.ends_at]


def matches(policy: Policy, event: str, alert: Mapping[str, Any]) -> bool:
    """Whether ``policy`` is about this event of this alert (quiet hours aside)."""
    if event not in policy.events:
        return False
    if not str(alert.get("jurisdiction") or "").startswith(policy.jurisdiction_prefix):
        return False
    if policy.severities is not None and alert.get("severity") not in policy.severities:
        return False
    if policy.kinds is not None and alert.get("kind") not in policy.kinds:
        return False
    alert_tier = alert.get("tier") or "county"
    if event == "escalated":
        return bool(policy.tier == alert_tier)
    return policy.tier == "county" or TIERS.index(policy.tier) <= TIERS.index(alert_tier)


def targets(
    event: str, alert: Mapping[str, Any], at: float, policies: Sequence[Policy],
    shifts: Sequence[Shift],
) -> list[Target]:
    """Every page one lifecycle step asks for, without duplicates.

    Parameters
    ----------
    event : str
        Lifecycle event (``opened``, ``escalated``, ...).
    alert : mapping
        The alert as carried by the lifecycle record.
    at : float
        The alert's time (epoch seconds): picks the officer on duty and the
        quiet-hours window.
    policies, shifts : sequence
        Candidate policies and duty shifts.
    """
    step = step_of(event, alert)
    alert_id = str(alert.get("alert_id") or "")
    red = alert.get("severity") == "red"
    out: dict[tuple[str, str], Target] = {}
    for p in policies:
        if not matches(p, event, alert):
            continue
        if not red and in_quiet_hours(p, at):
            continue
        if p.recipient == DUTY:
            where = tier_jurisdiction(str(alert.get("jurisdiction") or ""), p.tier)
            for s in on_duty(shifts, where, at):
                address = s.contacts.get(p.channel)
                if address:
                    out.setdefault((s.officer, p.channel),
                                   Target(alert_id, step, s.officer, p.channel, address, p.policy_id))
        else:
            out.setdefault((p.recipient, p.channel),
                           Target(alert_id, step, p.recipient, p.channel, p.recipient, p.policy_id))
    return list(out.values())


def check_policy_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a policy as given to the API or CLI; :class:`BadRequestError` says what is wrong."""
    allowed = {"jurisdiction_prefix", "channel", "recipient", "tier", "events", "severities",
               "kinds", "quiet_start", "quiet_end", "quiet_tz"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequestError(f"unknown policy field(s): {', '.join(unknown)}")
    out: dict[str, Any] = {}
    prefix = body.get("jurisdiction_prefix", "")
    if not isinstance(prefix, str) or not (prefix == "" or prefix.isdigit()) or len(prefix) > 12:
        raise BadRequestError("jurisdiction_prefix must be up to 12 digits")
    out["jurisdiction_prefix"] = prefix
    channel = body.get("channel")
    if channel not in CHANNELS:
        raise BadRequestError(f"channel must be one of {', '.join(CHANNELS)}")
    out["channel"] = channel
    recipient = body.get("recipient")
    if not isinstance(recipient, str) or not recipient.strip() or len(recipient) > 500:
        raise BadRequestError("recipient must be 'duty' or an address (1-500 characters)")
    out["recipient"] = recipient.strip()
    tier = body.get("tier", "county")
    if tier not in TIERS:
        raise BadRequestError(f"tier must be one of {', '.join(TIERS)}")
    out["tier"] = tier
    out["events"] = _choices(body.get("events", ["opened", "escalated"]), EVENTS, "events")
    out["severities"] = (None if body.get("severities") is None
                         else _choices(body["severities"], SEVERITIES, "severities"))
    kinds = body.get("kinds")
    if kinds is not None and (not isinstance(kinds, list)
                              or not all(isinstance(k, str) and 0 < len(k) <= 64 for k in kinds)):
        raise BadRequestError("kinds must be a list of alert kinds")
    out["kinds"] = kinds
    for key in ("quiet_start", "quiet_end"):
        value = body.get(key)
        out[key] = None if value is None else _clock_time(value, key)
    if (out["quiet_start"] is None) != (out["quiet_end"] is None):
        raise BadRequestError("quiet_start and quiet_end go together")
    tz = body.get("quiet_tz", "Asia/Shanghai")
    try:
        ZoneInfo(str(tz))
    except Exception:
        raise BadRequestError(f"quiet_tz {tz!r} is not a time zone name") from None
    out["quiet_tz"] = str(tz)
    return out


def check_shift_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a duty shift as given to the API or CLI; :class:`BadRequestError` says what is wrong.

    Returns the shift with ``starts_at`` and ``ends_at`` as epoch milliseconds.
    """
    unknown = sorted(set(body) - {"jurisdiction", "officer", "starts_at", "ends_at", "contacts"})
    if unknown:
        raise BadRequestError(f"unknown shift field(s): {', '.join(unknown)}")
    jurisdiction, officer = body.get("jurisdiction"), body.get("officer")
    if not isinstance(jurisdiction, str) or not jurisdiction.isdigit() or len(jurisdiction) > 12:
        raise BadRequestError("jurisdiction must be 1-12 digits")
    if not isinstance(officer, str) or not officer.strip() or len(officer) > 100:
        raise BadRequestError("officer must be 1-100 characters")
    try:
        starts, ends = parse_ts(body.get("starts_at"), "starts_at"), parse_ts(body.get("ends_at"),
                                                                              "ends_at")
    except ValidationError as exc:
        raise BadRequestError(exc.detail or str(exc)) from None
    if ends <= starts:
        raise BadRequestError("ends_at must be after starts_at")
    contacts = body.get("contacts", {})
    if (not isinstance(contacts, dict) or not set(contacts) <= set(CHANNELS)
            or not all(isinstance(v, str) and 0 < len(v) <= 500 for v in contacts.values())):
        raise BadRequestError(f"contacts maps channels ({', '.join(CHANNELS)}) to addresses")
    return {"jurisdiction": jurisdiction, "officer": officer.strip(), "starts_at": starts,
            "ends_at": ends, "contacts": dict(contacts)}


def _choices(value: Any, allowed: Sequence[str], name: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(v in allowed for v in value):
        raise BadRequestError(f"{name} must be a non-empty list of {', '.join(allowed)}")
    return list(dict.fromkeys(value))


def _clock_time(value: Any, name: str) -> time:
    try:
        hh, mm = str(value).split(":")
        return time(int(hh), int(mm))
    except ValueError:
        raise BadRequestError(f"{name} must be HH:MM") from None
