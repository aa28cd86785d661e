"""The dashboard's message catalogue covers every text the page shows, in both languages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

from alerts.checkins import Failure, Placement
from alerts.leaves import STATES as LEAVE_STATES
from alerts.notify.policy import CHANNELS, TIERS
from alerts.store import SEVERITY_ORDER, STATUSES
from geofence.model import CHECKIN_METHODS, AlertRecord

STATIC = Path(__file__).resolve().parents[2] / "alerts" / "static"
ALERTS = STATIC.parent
KINDS = ("exclusion_entered", "exclusion_approach", "inclusion_left", "curfew_violated", "contact",
         "signal_lost", "tamper", "removed", "sos", "power_off", "battery_low", "device_conflict",
         "spoofing_suspected", "device_separation", "video_perimeter_breach", "video_fight",
         "video_crowd", "video_fall", "video_loitering", "checkin_missed", "checkin_failed",
         "checkin_outside", "leave_overdue", "positioning_term_ending")
"""Every alert kind of docs/contract.md."""


def catalogue() -> dict[str, set[str]]:
    text = (STATIC / "i18n.js").read_text(encoding="utf-8")
    zh = text.index('"zh-CN": {')
    en = text.index("en: {", zh)
    end = text.index("const LANGS", en)
    keys = re.compile(r'"([A-Za-z0-9_.+]+)":')
    return {"zh-CN": set(keys.findall(text[zh + 10:en])), "en": set(keys.findall(text[en:end]))}


def test_both_languages_have_the_same_keys() -> None:
    cat = catalogue()
    assert cat["zh-CN"] == cat["en"], cat["zh-CN"] ^ cat["en"]
    assert len(cat["en"]) > 200


def test_every_key_the_page_uses_is_catalogued() -> None:
    keys = catalogue()["en"]
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    used = set(re.findall(r'data-i18n(?:-[a-z]+)?="([^"]+)"', html))
    js = (STATIC / "app.js").read_text(encoding="utf-8")
    used |= set(re.findall(r'\bt\("([A-Za-z0-9_.]+)"', js))
    used |= {f"err.{c}" for c in re.findall(r'ApiError\("([a-z_]+)"', js)}
    assert used and used <= keys, used - keys


def test_every_code_from_the_api_has_words() -> None:
    keys = catalogue()["en"]
    wanted = {f"kind.{k}" for k in KINDS} | {f"status.{s}" for s in STATUSES}
    wanted |= {f"sev.{s}" for s in SEVERITY_ORDER} | {f"tier.{t}" for t in TIERS}
    wanted |= {f"event.{e}" for e in get_args(AlertRecord.__annotations__["event"])}
    wanted |= {f"channel.{c}" for c in CHANNELS}
    wanted |= {f"evidence.{e}" for e in ("gps", "video", "gps+video", "checkin")}  # what the engine writes
    wanted |= {f"dispatch.status.{s}" for s in ("dispatched", "en_route", "on_scene", "resolved")}
    # what a check-in carries and how the store judged and placed it
    wanted |= {f"checkins.method.{m}" for m in CHECKIN_METHODS}
    wanted |= {f"checkins.why.{f}" for f in get_args(Failure)}
    wanted |= {f"checkins.where.{w}" for w in get_args(Placement)}
    # what a leave is in and who approves it
    wanted |= {f"leave.state.{s}" for s in LEAVE_STATES} | {"leave.level.office", "leave.level.county"}
    # error codes the API answers with: fixed ones and those raised by the alerts package
    codes = {"unauthorized", "forbidden", "not_found", "bad_request", "rate_limited", "unavailable"}
    for path in ALERTS.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        codes |= set(re.findall(r'WorkflowError\(\s*"([a-z_]+)"', source))
        codes |= set(re.findall(r'BadRequestError\([^()]*(?:\([^()]*\)[^()]*)*,\s*"([a-z_]+)"\)', source))
    wanted |= {f"err.{c}" for c in codes}
    assert wanted <= keys, sorted(wanted - keys)
