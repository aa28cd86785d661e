"""Who gets paged: policies, duty rosters, tiers and quiet hours, as plain data."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from alerts.errors import BadRequestError
from alerts.notify.policy import (
    Policy,
    Shift,
    check_policy_body,
    in_quiet_hours,
    step_of,
    targets,
    tier_jurisdiction,
)

NOON_UTC = datetime(2026, 11, 22, 12, 0, tzinfo=UTC).timestamp()  # 20:00 in Asia/Shanghai
HOUR = 3600.0


def alert(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"alert_id": "A-1", "severity": "red", "kind": "exclusion_entered",
                               "jurisdiction": "320102", "tier": "county"}
    base.update(kw)
    return base


ROSTER = [
    Shift("320102", "li", NOON_UTC - 4 * HOUR, NOON_UTC + 4 * HOUR, {"email": "li@x", "sms": "1"}),
    Shift("320102", "zhao", NOON_UTC + 4 * HOUR, NOON_UTC + 12 * HOUR, {"email": "zhao@x"}),
    Shift("320100", "wang", NOON_UTC - 12 * HOUR, NOON_UTC + 12 * HOUR, {"email": "wang@x"}),
]


def test_tier_jurisdiction_walks_up_the_administrative_code() -> None:
    assert tier_jurisdiction("320102", "county") == "320102"
    assert tier_jurisdiction("320102", "city") == "320100"
    assert tier_jurisdiction("320102", "province") == "320000"
    assert tier_jurisdiction("x", "city") == "x"


def test_the_officer_on_duty_at_the_alerts_time_is_paged() -> None:
    p = Policy(1, "3201", "email", "duty")
    got = targets("opened", alert(), NOON_UTC, [p], ROSTER)
    assert [(t.recipient, t.address, t.step) for t in got] == [("li", "li@x", "opened")]
    later = targets("opened", alert(), NOON_UTC + 5 * HOUR, [p], ROSTER)
    assert [t.recipient for t in later] == ["zhao"]


def test_an_officer_without_an_address_on_the_channel_is_not_paged_there() -> None:
    p = Policy(1, "", "sms", "duty")
    assert [t.recipient for t in targets("opened", alert(), NOON_UTC, [p], ROSTER)] == ["li"]
    assert targets("opened", alert(), NOON_UTC + 5 * HOUR, [p], ROSTER) == []


def test_escalation_pages_the_tier_it_reaches_only() -> None:
    county = Policy(1, "32", "email", "duty", tier="county")
    city = Policy(2, "32", "email", "duty", tier="city")
    esc = targets("escalated", alert(tier="city"), NOON_UTC, [county, city], ROSTER)
    assert [(t.recipient, t.step) for t in esc] == [("wang", "escalated:city")]
    opened = targets("opened", alert(), NOON_UTC, [county, city], ROSTER)
    assert [t.recipient for t in opened] == ["li"]


def test_filters_on_prefix_severity_kind_and_event() -> None:
    p = Policy(1, "3202", "webhook", "https://h", severities=("red",), kinds=("tamper",))
    assert targets("opened", alert(), NOON_UTC, [p], ROSTER) == []  # prefix
    p = Policy(1, "32", "webhook", "https://h", severities=("red",), kinds=("tamper",))
    assert targets("opened", alert(kind="tamper", severity="blue"), NOON_UTC, [p], []) == []
    assert targets("opened", alert(kind="removed"), NOON_UTC, [p], []) == []
    assert targets("cleared", alert(kind="tamper"), NOON_UTC, [p], []) == []
    got = targets("opened", alert(kind="tamper"), NOON_UTC, [p], [])
    assert [(t.recipient, t.channel) for t in got] == [("https://h", "webhook")]


def test_quiet_hours_hold_back_everything_but_red() -> None:
    quiet = Policy(1, "", "email", "boss@x", quiet_start=time(19, 0), quiet_end=time(7, 0))
    assert in_quiet_hours(quiet, NOON_UTC)  # 20:00 local, window crosses midnight
    assert not in_quiet_hours(quiet, NOON_UTC - 10 * HOUR)  # 10:00 local
    assert targets("opened", alert(severity="orange"), NOON_UTC, [quiet], []) == []
    assert len(targets("opened", alert(severity="red"), NOON_UTC, [quiet], [])) == 1
    assert len(targets("opened", alert(severity="orange"), NOON_UTC - 10 * HOUR, [quiet], [])) == 1


def test_two_policies_naming_one_page_give_one_target() -> None:
    ps = [Policy(1, "", "email", "duty"), Policy(2, "3201", "email", "duty")]
    assert len(targets("opened", alert(), NOON_UTC, ps, ROSTER)) == 1


def test_steps_of_updates_and_escalations_are_distinct() -> None:
    assert step_of("escalated", alert(tier="province")) == "escalated:province"
    assert step_of("updated", alert(severity="orange")) == "updated:orange"
    assert step_of("opened", alert()) == "opened"


@pytest.mark.parametrize(("body", "reason"), [
    ({"channel": "fax", "recipient": "x"}, "channel"),
    ({"channel": "email", "recipient": ""}, "recipient"),
    ({"channel": "email", "recipient": "a", "tier": "nation"}, "tier"),
    ({"channel": "email", "recipient": "a", "events": ["opened", "paged"]}, "events"),
    ({"channel": "email", "recipient": "a", "quiet_start": "22:00"}, "go together"),
    ({"channel": "email", "recipient": "a", "quiet_start": "25h", "quiet_end": "1:00"}, "HH:MM"),
    ({"channel": "email", "recipient": "a", "quiet_tz": "Mars/Base"}, "time zone"),
    ({"channel": "email", "recipient": "a", "jurisdiction_prefix": "32%"}, "digits"),
    ({"channel": "email", "recipient": "a", "colour": "red"}, "unknown"),
])
def test_a_bad_policy_is_refused_with_its_reason(body: dict[str, object], reason: str) -> None:
    with pytest.raises(BadRequestError, match=reason):
        check_policy_body(body)


def test_a_good_policy_gets_its_defaults() -> None:
    got = check_policy_body({"channel": "sms", "recipient": "duty", "quiet_start": "22:00",
                             "quiet_end": "06:30"})
    assert got["tier"] == "county" and got["events"] == ["opened", "escalated"]
    assert got["quiet_start"] == time(22, 0) and got["quiet_end"] == time(6, 30)
