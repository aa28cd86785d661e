"""The contract's closed vocabularies and the field types of its messages.

Event names, severities and lifecycle events as the contract lists them,
and the constrained field types (strings of bounded length, latitude,
longitude, metres, wire timestamps) that the message structs of
:mod:`geofence.model.telemetry` are declared with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal, Union, get_args

import msgspec

MAX_STRING = 256
"""Longest string accepted in any telemetry field."""

LIFECYCLE_EVENTS: tuple[str, ...] = (
    "opened", "updated", "cleared", "acknowledged", "resolved", "escalated",
)

Str = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_STRING)]
OptStr = Union[Annotated[str, msgspec.Meta(max_length=MAX_STRING)], None]
Lat = Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)]
Lon = Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)]
Metres = Annotated[float, msgspec.Meta(ge=0.0, le=1_000_000.0)]
DeviceEventName = Literal[
    "tamper", "removed", "sos", "fall", "battery_low",
    "power_off", "power_on", "charging", "vibration", "heartbeat", "device_conflict",
]
VideoEventName = Literal["face_match", "perimeter_breach", "fight", "loitering", "crowd", "fall"]
CheckinMethod = Literal["face", "face_action", "action"]
Severity = Literal["red", "orange", "yellow", "blue"]

# the closed vocabularies as tuples: one definition each, the Literal above
DEVICE_EVENTS: tuple[str, ...] = get_args(DeviceEventName)
VIDEO_EVENTS: tuple[str, ...] = get_args(VideoEventName)
CHECKIN_METHODS: tuple[str, ...] = get_args(CheckinMethod)
"""How a check-in verified the person: a face match, a face match with a
liveness action (blink, turn the head, read digits), or the action alone."""
SEVERITIES: tuple[str, ...] = get_args(Severity)

# On the wire a timestamp is an int (epoch ms) or an RFC 3339 string; after
# ``__post_init__`` it is always an int. msgspec reads the runtime annotation,
# type checkers see the normalised one.
if TYPE_CHECKING:
    WireTs = int
else:
    WireTs = Union[int, str]

