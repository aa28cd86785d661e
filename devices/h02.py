"""H02 text protocol (``*HQ,...#``, also ``*TH``/``*hq`` makers): decoder.

Position message ``V1``::

    *HQ,ID,V1,hhmmss,A|V,DDMM.MMMM,N|S,DDDMM.MMMM,E|W,speed(knots),course,ddmmyy,STATUS[,...]#

Times are UTC. ``STATUS`` is a 32-bit hex word whose alarm bits are active
low (0 = alarm): bit 0 vibration -> ``vibration``, bits 1 and 18 SOS ->
``sos``, bit 19 power cut -> ``power_off`` (the H02 sheet; Traccar's H02
decoder reads the same bits). ``LINK`` is a keep-alive (``heartbeat`` event
at receive time). H02 devices expect no reply. The binary ``$`` frames of
some H02 firmware are not decoded (they arrive as garbage and are counted).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from devices.codec import epoch_ms
from devices.errors import FrameError
from geofence.model import DeviceEvent, Fix, Telemetry

ACTIVE_LOW_EVENTS: Mapping[int, str] = {0: "vibration", 1: "sos", 18: "sos", 19: "power_off"}
KNOT_MPS = 1852.0 / 3600.0


@dataclass(slots=True)
class Decoded:
    """What one H02 frame means."""

    maker: str
    device_id: str
    kind: str
    telemetry: list[Telemetry] = field(default_factory=list)


def _coord(value: str, hemi: str, what: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise FrameError("malformed", f"{what} {value[:40]!r} is not DDMM.MMMM") from None
    if not math.isfinite(v):
        raise FrameError("malformed", f"{what} {value[:40]!r} is not DDMM.MMMM")
    if v < 0:
        raise FrameError("malformed", f"{what} {value!r} is negative")
    deg = int(v // 100)
    result = deg + (v - deg * 100) / 60.0
    if hemi in ("S", "W"):
        result = -result
    return round(result, 7)


def decode(frame: bytes, *, now_ms: int | None = None,
           alarm_map: Mapping[int, str] = ACTIVE_LOW_EVENTS) -> Decoded:
    """Decode one ``*XX,...#`` frame.

    Raises
    ------
    FrameError
        ``malformed``, ``truncated``, ``invalid_time``, ``out_of_range``.
    """
    text = frame.decode("latin-1").strip()
    if len(text) < 4 or text[0] != "*" or text[-1] != "#":
        raise FrameError("malformed", "an H02 frame is *...#")
    f = text[1:-1].split(",")
    if len(f) < 3 or not f[1] or not f[1].isascii() or not f[1].isalnum() or len(f[1]) > 32:
        raise FrameError("malformed", f"no device id in {text[:40]!r}")
    out = Decoded(f[0].upper(), f[1], f[2])
    if f[2] == "V1":
        if len(f) < 13:
            raise FrameError("truncated", f"V1 message has {len(f)} fields, needs 13")
        t, d = f[3], f[11]
        if len(t) != 6 or len(d) != 6 or not (t + d).isascii() or not (t + d).isdigit():
            raise FrameError("invalid_time", f"time {t!r} date {d!r} are not hhmmss ddmmyy")
        ts = epoch_ms(2000 + int(d[4:6]), int(d[2:4]), int(d[0:2]),
                      int(t[0:2]), int(t[2:4]), int(t[4:6]), 0.0, "H02 time")
        lat = _coord(f[5], f[6], "latitude")
        lon = _coord(f[7], f[8], "longitude")
        if abs(lat) > 90 or abs(lon) > 180:
            raise FrameError("out_of_range", f"latitude {lat} or longitude {lon} out of range")
        try:
            speed = float(f[9] or 0) * KNOT_MPS
            course = float(f[10] or 0)
            status = int(f[12], 16)
        except ValueError:
            raise FrameError("malformed", f"speed/course/status unreadable in {text[:60]!r}") from None
        valid = f[4] == "A"
        out.telemetry.append(Fix(
            device_id=f[1], ts=ts, lat=lat, lon=lon, valid=valid,
            speed_mps=round(speed, 3) if 0 <= speed <= 1000 else None,
            heading_deg=course if 0 <= course <= 360 else None,
            source="gnss" if valid else None))
        seen: list[str] = []
        for bit, name in sorted(alarm_map.items()):
            if not status >> bit & 1 and name not in seen:
                seen.append(name)
                out.telemetry.append(DeviceEvent(device_id=f[1], ts=ts, event=name,  # type: ignore[arg-type]
                                                 detail=f"h02 status {f[12]}"))
    elif f[2] == "LINK" and now_ms is not None:
        out.telemetry.append(DeviceEvent(device_id=f[1], ts=now_ms, event="heartbeat"))
    return out


def encode_position(device_id: str, ts_ms: int, lat: float, lon: float, *, valid: bool = True,
                    speed_knots: float = 0.0, course: float = 0.0,
                    status: str = "FFFFFBFF") -> bytes:
    """A V1 position frame (for tests and simulators)."""
    import time as _time

    t = _time.gmtime(ts_ms // 1000)
    alat, alon = abs(lat), abs(lon)
    dlat, dlon = int(alat), int(alon)
    return (
        f"*HQ,{device_id},V1,{t.tm_hour:02d}{t.tm_min:02d}{t.tm_sec:02d},{'A' if valid else 'V'},"
        f"{dlat * 100 + (alat - dlat) * 60:09.4f},{'N' if lat >= 0 else 'S'},"
        f"{dlon * 100 + (alon - dlon) * 60:010.4f},{'E' if lon >= 0 else 'W'},"
        f"{speed_knots:.2f},{course:.0f},{t.tm_mday:02d}{t.tm_mon:02d}{t.tm_year % 100:02d},{status}#"
    ).encode()
