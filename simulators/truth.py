"""The ground truth: the alert windows a correct engine must open for a
person's rendered fixes."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from geofence.model import format_ts
from simulators import casework
from simulators.caseconfig import SILENT_KINDS, _hhmm_s
from simulators.casework import CASEWORK_KINDS
from simulators.people import Person


def _confirm_window(ts: list[int], dwell_s: float) -> tuple[int, int]:
    """(first certain fix, fix completing 2 consecutive certain fixes spanning the dwell)."""
    first = ts[0]
    for t in ts[1:]:
        if t - first >= dwell_s * 1000:
            return first, t
    raise AssertionError("segment too short to confirm")  # pragma: no cover


def _exp(p: Person, rule: str, kind: str, lo: int, hi: int, scenario: str,
         late: bool = False) -> dict[str, Any]:
    return {"person_id": p.person_id, "rule_id": rule, "kind": kind,
            "opened_at": [format_ts(lo), format_ts(hi)], "late": late, "scenario": scenario}


def _truth_for(
    p: Person, ms: NDArray[np.int64], s_all: NDArray[np.int64], day0: int,
    expected: list[dict[str, Any]], offline: tuple[float, float] | None, whole: bool = False,
    phone: tuple[NDArray[np.int64], NDArray[np.int64]] | None = None,
) -> None:
    sc = p.scenario
    if sc is None or sc in SILENT_KINDS:
        return
    if sc in CASEWORK_KINDS:
        expected.extend(casework.truth_for(p, ms, s_all, day0, whole))
        return

    def at_ms(t: float) -> int:
        return round(t) * 1000 if whole else round(t * 1000)

    if sc in ("video_opens", "video_separation"):
        t = day0 + at_ms(p.faces[0][0])
        if sc == "video_opens":
            expected.append({**_exp(p, "excl-1", "exclusion_entered", t, t, sc), "evidence": "video"})
        expected.append({**_exp(p, "device_separation", "device_separation", t, t, sc), "evidence": "video"})
        return
    if sc == "dual_breach":
        assert phone is not None
        seg_ms = sorted({int(v) for v in ms[s_all == 0]} | {int(v) for v in phone[0][phone[1] == 0]})
        lo, hi = _confirm_window(seg_ms, 30.0)
        expected.append(_exp(p, "excl-1", "exclusion_entered", day0 + lo, day0 + hi, sc))
        return
    if sc == "dual_outage":
        assert phone is not None and p.outage is not None
        both_dark = at_ms(p.phone_outages[-1][0])
        last = max(int(v) for v in np.concatenate([ms, phone[0]]) if v < both_dark)
        t = day0 + last + p.after_s * 1000
        expected.append(_exp(p, "signal", "signal_lost", t, t, sc))
        return
    if sc == "signal_loss":
        assert p.outage is not None
        before = ms[ms < p.outage[0] * 1000]
        last = int(before[-1])
        for t_ev, name in p.events:
            ev = round(t_ev) * 1000 if whole else round(t_ev * 1000)
            if name == "power_off" and ev >= last:
                last = ev
        t = day0 + last + p.after_s * 1000
        expected.append(_exp(p, "signal", "signal_lost", t, t, sc))
        return
    if sc in ("exclusion", "approach", "backfill", "video_exclusion"):
        seg_ms = [int(v) for v in ms[s_all == 0]]
        lo, hi = _confirm_window(seg_ms, 30.0)
        kind = "exclusion_approach" if sc == "approach" else "exclusion_entered"
        e = _exp(p, "excl-1", kind, day0 + lo, day0 + hi, sc, late=sc == "backfill")
        if sc == "video_exclusion":
            e["evidence"] = "gps+video"  # the face match corroborates the open GPS alert
        expected.append(e)
        return
    if sc == "inclusion":
        seg_ms = [int(v) for v in ms[s_all == 0]]
        lo, hi = _confirm_window(seg_ms, p.dwell.get("incl", 30.0))
        expected.append(_exp(p, "incl", "inclusion_left", day0 + lo, day0 + hi, sc))
        return
    if sc == "curfew":
        seg_ms = [int(v) for v in ms[s_all == 0]]
        lo, hi = _confirm_window(seg_ms, 30.0)
        expected.append(_exp(p, "curfew", "curfew_violated", day0 + lo, day0 + hi, sc))
        return
    if sc == "curfew_late":
        ws = int(_hhmm_s(p.curfew[0]) * 1000)
        in_window = [int(v) for v in ms[(s_all >= 0) & (ms >= ws)]]
        _, hi = _confirm_window(in_window, 30.0)
        expected.append(_exp(p, "curfew", "curfew_violated", day0 + ws, day0 + hi, sc))
        return
    if sc == "contact":
        return  # needs both persons: see contact_truth
    if sc in ("tamper", "removed", "sos", "battery_low"):
        return  # device events: added where the event is emitted
    raise AssertionError(sc)  # pragma: no cover


def contact_truth(persons: list[Person], fix_ts: dict[str, list[int]], day0: int) -> list[dict[str, Any]]:
    """Expected contact alerts: the moment both partners' fresh fixes are at the meeting."""
    out: list[dict[str, Any]] = []
    by_id = {p.person_id: p for p in persons}
    for p in persons:
        if p.scenario != "contact" or p.partner is None:
            continue
        q = by_id[p.partner]
        first = max(fix_ts[p.person_id][0], fix_ts[q.person_id][0])
        out.append(_exp(p, f"contact-{q.person_id}", "contact", day0 + first, day0 + first + 60_000,
                        "contact"))
    return out
