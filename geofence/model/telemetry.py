"""Telemetry messages: fixes, device events, video hits and check-ins, and their JSON encoding.

The structs validate their fields as msgspec decodes them; turning payloads
into messages (batches, rejects and their reasons) is
:mod:`geofence.model.decoding`'s part.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

import msgspec

from geofence.errors import ValidationError
from geofence.model.timestamps import _MAX_EPOCH_MS, parse_ts
from geofence.model.vocabulary import (
    CheckinMethod,
    DeviceEventName,
    Lat,
    Lon,
    Metres,
    OptStr,
    Str,
    VideoEventName,
    WireTs,
)

_ENCODER = msgspec.json.Encoder()


class _Message(msgspec.Struct, tag_field="kind", gc=False, omit_defaults=True):
    """Base of the telemetry kinds: normalises ``ts`` on construction."""

    def __post_init__(self) -> None:
        # runs for every decoded message: the common case (epoch ms) first, cheaply
        ts: object = self.ts  # type: ignore[attr-defined,has-type]
        if type(ts) is int and -1 < ts <= _MAX_EPOCH_MS:
            return
        try:
            self.ts = parse_ts(ts)  # type: ignore[attr-defined]
        except ValidationError as exc:  # msgspec turns ValueError into its own error
            raise ValueError(exc.detail) from None


class Fix(_Message, tag="fix"):
    """A position report from a wristband."""

    device_id: Str
    ts: WireTs
    lat: Lat
    lon: Lon
    accuracy_m: Metres = 10.0
    valid: bool = True
    speed_mps: Union[Annotated[float, msgspec.Meta(ge=0.0, le=1000.0)], None] = None
    heading_deg: Union[Annotated[float, msgspec.Meta(ge=0.0, le=360.0)], None] = None
    altitude_m: Union[Annotated[float, msgspec.Meta(ge=-1000.0, le=20000.0)], None] = None
    battery_pct: Union[Annotated[float, msgspec.Meta(ge=0.0, le=100.0)], None] = None
    source: Union[Literal["gnss", "cell", "wifi"], None] = None


class DeviceEvent(_Message, tag="device_event"):
    """A device-side event: tamper, removed (人机分离), sos, heartbeat, ..."""

    device_id: Str
    ts: WireTs
    event: DeviceEventName
    detail: OptStr = None


class VideoHit(_Message, tag="video_hit"):
    """A video-analytics detection from a camera."""

    camera_id: Str
    ts: WireTs
    event: VideoEventName
    lat: Lat
    lon: Lon
    person_id: Union[Str, None] = None
    confidence: Union[Annotated[float, msgspec.Meta(ge=0.0, le=1.0)], None] = None
    jurisdiction: Union[Annotated[str, msgspec.Meta(pattern=r"^[0-9]{2,6}$")], None] = None
    detail: OptStr = None


class CheckIn(_Message, tag="checkin"):
    """An identity check-in from a supervised person's phone.

    ``device_id`` is the phone, named in the person's order like a
    wristband; the check-in is bound to it, never to a person id a sender
    could claim. ``face_score`` (0..1) is the face-match score the phone or
    the verification service produced, ``action_ok`` the result of the
    liveness or action check (``None`` when none was asked), ``method`` how
    the person was verified. ``request_id`` names the random check-in
    request this one answers (see :mod:`geofence.checkin`).
    """

    device_id: Str
    ts: WireTs
    lat: Lat
    lon: Lon
    accuracy_m: Metres = 10.0
    face_score: Union[Annotated[float, msgspec.Meta(ge=0.0, le=1.0)], None] = None
    action_ok: Union[bool, None] = None
    method: Union[CheckinMethod, None] = None
    request_id: OptStr = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.face_score is None and self.action_ok is None:
            # a check-in with no result would be neither verified nor failed
            raise ValueError(CHECKIN_NO_RESULT)


CHECKIN_NO_RESULT = "a check-in needs `face_score` or `action_ok` (it carries no result)"
"""Detail of the ``missing_field`` reject of a check-in that carries no result."""


Telemetry = Union[Fix, DeviceEvent, VideoHit, CheckIn]
"""One canonical telemetry message."""


def telemetry_key(msg: Telemetry) -> str:
    """The device or camera a message came from (``device_id`` or ``camera_id``)."""
    return msg.camera_id if isinstance(msg, VideoHit) else msg.device_id


def encode(obj: Any) -> bytes:
    """Encode a contract object (or plain data) as compact JSON bytes."""
    return _ENCODER.encode(obj)


