"""What a simulated caseload is made of: the scenario kinds, their default
shares of persons, and the settings of one generated day."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

BREACH_KINDS: tuple[str, ...] = (
    "exclusion", "approach", "inclusion", "curfew", "curfew_late", "contact",
    "signal_loss", "tamper", "removed", "sos", "battery_low", "backfill",
)
ADVERSARIAL_KINDS: tuple[str, ...] = ("jitter", "teleport", "expired")
VIDEO_KINDS: tuple[str, ...] = ("video_exclusion", "video_opens", "video_separation", "video_low_conf")
DUAL_KINDS: tuple[str, ...] = ("dual_breach", "dual_outage")
EXTRA_KINDS: tuple[str, ...] = VIDEO_KINDS + DUAL_KINDS
"""Video and dual-evidence scenarios; assigned after the others, so adding them leaves
the persons of every other scenario as they were for a given seed."""
SILENT_KINDS = (*ADVERSARIAL_KINDS, "video_low_conf")
ALL_KINDS: tuple[str, ...] = BREACH_KINDS + ADVERSARIAL_KINDS + EXTRA_KINDS
FACILITY_EVENTS: tuple[str, ...] = ("perimeter_breach", "fight", "crowd", "fall", "loitering")
FACE_MATCH_MIN_CONFIDENCE = 0.8   # contract default: below it a face match raises nothing
SEPARATION_M = 500.0              # contract: camera this far from the wristband's fix
CAMERA_QUIET_S = 300.0            # engine default: a facility alert clears after this quiet

DEFAULT_SHARES: dict[str, float] = {
    **{k: 0.02 for k in BREACH_KINDS},
    "contact": 0.04,  # pairs: 2 % of persons are in a meeting pair
    "jitter": 0.03,
    "teleport": 0.01,
    "expired": 0.005,
    **{k: 0.005 for k in VIDEO_KINDS},
    **{k: 0.01 for k in DUAL_KINDS},
}

CURFEWS: tuple[tuple[str, str], ...] = (("22:00", "06:00"), ("23:00", "05:00"), ("21:30", "06:30"))
VIOLATION_INTERVAL_S = 15.0


@dataclass(frozen=True)
class SimConfig:
    """What to simulate (see ``wardstream simulate generate --help``)."""

    persons: int = 1000
    seed: int = 1
    lat: float = 32.06
    lon: float = 118.79
    day: str = "2026-11-22"
    timezone: str = "Asia/Shanghai"
    interval_s: float = 60.0
    city_radius_m: float = 15_000.0
    district_detail_m: float = 12.0
    shares: tuple[tuple[str, float], ...] = tuple(DEFAULT_SHARES.items())
    outlier_rate: float = 0.01
    invalid_indoor_rate: float = 0.04
    offline_person_rate: float = 0.04
    duplicate_rate: float = 0.003
    reorder_person_rate: float = 0.05
    malformed_lines: int | None = None   # default: max(8, persons // 100)
    admin_prefix: str = "3201"
    front_load_s: float | None = None    # live demo: one of each breach starts right after this
    incident_window_s: float | None = None  # live demo: the other breaches start within this long after
    open_validity: bool = False          # demo: orders valid 2024..2100 instead of around the day
    fixed_accuracy_m: float | None = None  # profile jt808: every valid fix reports this accuracy
    whole_seconds: bool = False          # profile jt808: BCD times carry whole seconds only
    facility_cameras: int | None = None  # cameras with facility incidents (default persons // 250, >= 2)
    phone_share: float = 0.0             # phone-supervised persons added, as a fraction of `persons`

    def phone_count(self) -> int:
        """How many phone-supervised persons the day adds to ``persons`` (at least one for a share > 0)."""
        if self.phone_share <= 0:
            return 0
        return max(1, round(self.phone_share * self.persons))

    @classmethod
    def for_profile(cls, profile: str, **kw: Any) -> SimConfig:
        """``full`` (OsmAnd, Kafka, files) or ``jt808`` (what JT/T 808 can carry)."""
        if profile == "jt808":
            # JT/T 808 has no accuracy field: the gateway assumes the contract default
            # (10 m), so errors stay below 9.5 m and urban-canyon outliers are left out.
            kw.setdefault("fixed_accuracy_m", 10.0)
            kw.setdefault("whole_seconds", True)
            kw.setdefault("outlier_rate", 0.0)
            # JT/T 808 carries no video analytics: no video scenarios, no facility cameras
            shares = dict(kw.get("shares", tuple(DEFAULT_SHARES.items())))
            shares.update({k: 0.0 for k in VIDEO_KINDS})
            kw["shares"] = tuple(shares.items())
            kw.setdefault("facility_cameras", 0)
            # nor identity check-ins: phones check in over HTTPS, not through a JT/T 808 terminal
            kw["phone_share"] = 0.0
        elif profile != "full":
            raise ValueError(f"unknown profile {profile!r}")
        return cls(**kw)


def _day_start_ms(cfg: SimConfig) -> int:
    d = dt.date.fromisoformat(cfg.day)
    start = dt.datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(cfg.timezone))
    return int(start.timestamp() * 1000)


def _hhmm_s(text: str) -> float:
    h, m = text.split(":")
    return int(h) * 3600.0 + int(m) * 60.0


def _config_dict(cfg: SimConfig) -> dict[str, Any]:
    """The generator settings, kept with the zones so `live` can rebuild the same caseload."""
    d = dataclasses.asdict(cfg)
    d["shares"] = dict(cfg.shares)
    if not cfg.phone_share:
        del d["phone_share"]  # a day without phones is written as it was before phones existed
    return d


def config_from_dict(d: dict[str, Any]) -> SimConfig:
    """Inverse of :func:`_config_dict`."""
    d = dict(d)
    d["shares"] = tuple(d.get("shares", DEFAULT_SHARES).items())
    return SimConfig(**d)
