"""Contract types shared by every package: telemetry, orders, alerts, dead letters.

These are the messages of ``docs/contract.md`` as typed objects. Parsing
returns typed objects or raises :class:`geofence.errors.ValidationError`
(or :class:`~geofence.errors.OrderError`) whose ``reason`` is a short code
and whose ``detail`` says precisely what is wrong. Nothing here does I/O.

Timestamps are held as integer epoch milliseconds (UTC) once parsed; input
accepts RFC 3339 strings (``Z`` or an offset) or integer epoch milliseconds,
and output is RFC 3339 in UTC with ``Z`` (:func:`format_ts`).

Examples
--------
>>> batch = TelemetryDecoder(now_ms=lambda: 1_800_000_000_000).decode(
...     b'{"kind": "fix", "device_id": "WB-1", "ts": "2026-11-22T14:03:30Z",'
...     b' "lat": 32.05, "lon": 118.79}')
>>> batch.messages[0].ts, batch.messages[0].accuracy_m
(1795356210000, 10.0)

Modules
-------
:mod:`~geofence.model.vocabulary`
    Event names, severities and the constrained field types.
:mod:`~geofence.model.timestamps`
    :func:`parse_ts`, :func:`format_ts` and the clock.
:mod:`~geofence.model.telemetry`
    :class:`Fix`, :class:`DeviceEvent`, :class:`VideoHit`, :class:`CheckIn`
    and :func:`encode`.
:mod:`~geofence.model.decoding`
    :class:`TelemetryDecoder`: payloads to messages and rejects.
:mod:`~geofence.model.orders`
    :class:`Order`, :class:`Rule`, :class:`Window`, :class:`TemplateRef` and
    :data:`RULE_FIELDS`.
:mod:`~geofence.model.order_checks`
    What an order must satisfy beyond its types.
:mod:`~geofence.model.order_parsing`
    :func:`parse_order` and :func:`parse_orders`.
:mod:`~geofence.model.alerts`
    :class:`Alert`, :class:`AlertRecord` and :class:`DeadLetter`.
"""

from __future__ import annotations

# the stream engine imports the loaders' collector pause from here
from geofence.model.alerts import (
    Alert,
    AlertRecord,
    DeadLetter,
    dead_letters,
)
from geofence.model.decoding import (
    MAX_DEPTH,
    DecodedBatch,
    Rejected,
    TelemetryDecoder,
    json_depth_exceeds,
)
from geofence.model.order_parsing import (
    parse_order,
    parse_orders,
)
from geofence.model.orders import (
    DEFAULT_AFTER_S,
    DEFAULT_DISTANCE_M,
    DEFAULT_MIN_SCORE,
    MAX_POSITIONING_DAYS,
    RULE_FIELDS,
    Area,
    Exemption,
    Grounds,
    Order,
    Positioning,
    RandomCheckins,
    Rule,
    RuleType,
    TemplateRef,
    Window,
)
from geofence.model.telemetry import (
    CheckIn,
    DeviceEvent,
    Fix,
    Telemetry,
    VideoHit,
    encode,
    telemetry_key,
)
from geofence.model.timestamps import (
    format_ts,
    parse_ts,
    utc_now_ms,
)
from geofence.model.vocabulary import (
    CHECKIN_METHODS,
    DEVICE_EVENTS,
    LIFECYCLE_EVENTS,
    MAX_STRING,
    SEVERITIES,
    VIDEO_EVENTS,
    CheckinMethod,
    DeviceEventName,
    Lat,
    Lon,
    Metres,
    OptStr,
    Severity,
    Str,
    VideoEventName,
    WireTs,
)

__all__ = [
    "CHECKIN_METHODS",
    "DEFAULT_AFTER_S",
    "DEFAULT_DISTANCE_M",
    "DEFAULT_MIN_SCORE",
    "DEVICE_EVENTS",
    "LIFECYCLE_EVENTS",
    "MAX_DEPTH",
    "MAX_POSITIONING_DAYS",
    "MAX_STRING",
    "RULE_FIELDS",
    "SEVERITIES",
    "VIDEO_EVENTS",
    "Alert",
    "AlertRecord",
    "Area",
    "CheckIn",
    "CheckinMethod",
    "DeadLetter",
    "DecodedBatch",
    "DeviceEvent",
    "DeviceEventName",
    "Exemption",
    "Fix",
    "Grounds",
    "Lat",
    "Lon",
    "Metres",
    "OptStr",
    "Order",
    "Positioning",
    "RandomCheckins",
    "Rejected",
    "Rule",
    "RuleType",
    "Severity",
    "Str",
    "Telemetry",
    "TelemetryDecoder",
    "TemplateRef",
    "VideoEventName",
    "VideoHit",
    "Window",
    "WireTs",
    "dead_letters",
    "encode",
    "format_ts",
    "json_depth_exceeds",
    "parse_order",
    "parse_orders",
    "parse_ts",
    "telemetry_key",
    "utc_now_ms",
]
