"""Alert episodes, their lifecycle records, and dead letters."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal, Union

import msgspec

from geofence.model.decoding import Rejected
from geofence.model.timestamps import format_ts
from geofence.model.vocabulary import Severity


class Alert(msgspec.Struct, omit_defaults=False, gc=False):
    """One alert episode as published and stored (see docs/contract.md)."""

    alert_id: str
    person_id: Union[str, None]
    rule_id: str
    kind: str
    severity: Severity
    opened_at: str
    lat: Union[float, None]
    lon: Union[float, None]
    jurisdiction: Union[str, None]
    cleared_at: Union[str, None] = None
    late: bool = False
    status: Literal["open", "cleared", "acknowledged", "resolved"] = "open"
    device_id: Union[str, None] = None
    zone: Union[str, None] = None
    evidence: Union[str, None] = None
    updated_at: Union[str, None] = None
    reason: Union[str, None] = None
    camera_id: Union[str, None] = None


class AlertRecord(msgspec.Struct, gc=False):
    """A lifecycle record on ``wardstream.alerts``, keyed by ``alert.alert_id``."""

    event: Literal["opened", "updated", "cleared", "acknowledged", "resolved", "escalated"]
    alert: Alert
    at: Union[str, None] = None
    operator: Union[str, None] = None
    note: Union[str, None] = None
    tier: Union[str, None] = None


class DeadLetter(msgspec.Struct):
    """A rejected input on ``wardstream.deadletter``.

    ``reason`` is the code, ``detail`` the precise explanation, ``raw`` the
    offending text (cut at 4 KiB), ``source`` where it came from
    (``telemetry:3@1042`` for topic partition 3 offset 1042, ``jt808:1.2.3.4``,
    ``file:day.jsonl:17``, ...).
    """

    reason: str
    raw: str
    source: str
    detail: str = ""
    at: Union[str, None] = None


def dead_letters(rejected: Sequence[Rejected], source: str) -> list[DeadLetter]:
    """Dead-letter records for the rejects of one payload."""
    at = format_ts(int(time.time() * 1000))
    return [
        DeadLetter(reason=r.reason, raw=r.raw, source=source if r.index < 0 else f"{source}[{r.index}]",
                   detail=r.detail, at=at)
        for r in rejected
    ]
