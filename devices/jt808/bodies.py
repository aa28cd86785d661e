"""JT/T 808 message bodies other than location: registration, authentication,
general responses and terminal parameters, decoded and encoded."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devices.errors import FrameError
from devices.jt808.codes import (
    MSG_AUTH,
    MSG_HEARTBEAT,
    MSG_PLATFORM_RESPONSE,
    MSG_REGISTER,
    MSG_REGISTER_RESPONSE,
    MSG_SET_PARAMS,
    MSG_TERMINAL_RESPONSE,
    PARAM_REPORT_INTERVAL,
    RESULT_OK,
)
from devices.jt808.framing import frame


@dataclass(frozen=True, slots=True)
class Registration:
    """A 0x0100 terminal registration body."""

    province: int
    city: int
    maker: str
    model: str
    terminal_id: str
    plate_color: int
    plate: str


def _text(raw: bytes) -> str:
    raw = raw.rstrip(b"\x00")
    try:
        return raw.decode("gbk")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def decode_register(body: bytes, version: int) -> Registration:
    """Decode a registration body (2013 and 2019 field widths; 2011's short model too)."""
    if version == 2019:
        widths = (11, 30, 30)
    elif len(body) >= 37:
        widths = (5, 20, 7)
    else:
        widths = (5, 8, 7)  # 2011
    need = 4 + sum(widths) + 1
    if len(body) < need:
        raise FrameError("truncated", f"registration body of {len(body)} bytes < {need}")
    province, city = struct.unpack_from(">HH", body, 0)
    pos = 4
    parts = []
    for w in widths:
        parts.append(_text(body[pos:pos + w]))
        pos += w
    return Registration(province, city, parts[0], parts[1], parts[2], body[pos], _text(body[pos + 1:]))


def decode_auth(body: bytes, version: int) -> str:
    """The authentication code of a 0x0102 body (2019: length-prefixed, then IMEI and version)."""
    if version == 2019 and body:
        n = body[0]
        if len(body) < 1 + n:
            raise FrameError("truncated", f"auth code of {n} bytes, body holds {len(body) - 1}")
        return _text(body[1:1 + n])
    return _text(body)


def decode_general_response(body: bytes) -> tuple[int, int, int]:
    """``(ack_serial, ack_msg_id, result)`` of a 0x8001 or 0x0001 body."""
    if len(body) < 5:
        raise FrameError("truncated", f"general response body of {len(body)} bytes < 5")
    serial, msg_id, result = struct.unpack_from(">HHB", body, 0)
    return serial, msg_id, result


def decode_register_response(body: bytes) -> tuple[int, int, str]:
    """``(ack_serial, result, auth_code)`` of a 0x8100 body."""
    if len(body) < 3:
        raise FrameError("truncated", f"register response body of {len(body)} bytes < 3")
    serial, result = struct.unpack_from(">HB", body, 0)
    return serial, result, _text(body[3:])


def decode_set_params(body: bytes) -> dict[int, bytes]:
    """Parameters of a 0x8103 body as ``{param_id: raw value}``."""
    if not body:
        raise FrameError("truncated", "empty parameter body")
    count, pos, out = body[0], 1, {}
    for _ in range(count):
        if pos + 5 > len(body):
            raise FrameError("truncated", "parameter list ends early")
        pid, plen = struct.unpack_from(">IB", body, pos)
        out[pid] = body[pos + 5:pos + 5 + plen]
        pos += 5 + plen
    return out


def register_body(*, province: int = 32, city: int = 100, maker: str = "WSTRM",
                  model: str = "WB-1", terminal_id: str = "0000001", plate_color: int = 0,
                  plate: str = "", version: int = 2013) -> bytes:
    """A 0x0100 body with the field widths of ``version``."""
    widths = (11, 30, 30) if version == 2019 else (5, 20, 7)
    parts = [s.encode("gbk")[:w].ljust(w, b"\x00") for s, w in zip((maker, model, terminal_id), widths, strict=True)]
    return struct.pack(">HH", province, city) + b"".join(parts) + bytes((plate_color,)) + plate.encode("gbk")


def encode_register(phone: str, serial: int, *, version: int = 2013, **fields: Any) -> bytes:
    """Terminal registration frame (0x0100); ``fields`` as in :func:`register_body`."""
    return frame(MSG_REGISTER, phone, serial, register_body(version=version, **fields), version)


def encode_auth(phone: str, serial: int, code: str, *, version: int = 2013,
                imei: str = "", software: str = "") -> bytes:
    """Terminal authentication frame (0x0102) carrying the code from 0x8100."""
    raw = code.encode("gbk")
    if version == 2019:
        body = (bytes((len(raw),)) + raw + imei.encode()[:15].ljust(15, b"\x00")
                + software.encode()[:20].ljust(20, b"\x00"))
    else:
        body = raw
    return frame(MSG_AUTH, phone, serial, body, version)


def encode_heartbeat(phone: str, serial: int, *, version: int = 2013) -> bytes:
    """Terminal heartbeat frame (0x0002, empty body)."""
    return frame(MSG_HEARTBEAT, phone, serial, b"", version)


def encode_general_response(phone: str, serial: int, ack_serial: int, ack_msg_id: int,
                            result: int = RESULT_OK, *, version: int = 2013) -> bytes:
    """Platform general response (0x8001)."""
    body = struct.pack(">HHB", ack_serial & 0xFFFF, ack_msg_id, result)
    return frame(MSG_PLATFORM_RESPONSE, phone, serial, body, version)


def encode_terminal_response(phone: str, serial: int, ack_serial: int, ack_msg_id: int,
                             result: int = RESULT_OK, *, version: int = 2013) -> bytes:
    """Terminal general response (0x0001), e.g. to a 0x8103."""
    body = struct.pack(">HHB", ack_serial & 0xFFFF, ack_msg_id, result)
    return frame(MSG_TERMINAL_RESPONSE, phone, serial, body, version)


def encode_register_response(phone: str, serial: int, ack_serial: int, result: int,
                             auth_code: str = "", *, version: int = 2013) -> bytes:
    """Registration response (0x8100); the auth code only with result 0."""
    body = struct.pack(">HB", ack_serial & 0xFFFF, result)
    if result == RESULT_OK:
        body += auth_code.encode("gbk")
    return frame(MSG_REGISTER_RESPONSE, phone, serial, body, version)


def encode_set_params(phone: str, serial: int, params: Mapping[int, int | bytes], *,
                      version: int = 2013) -> bytes:
    """Set terminal parameters (0x8103); an int value is sent as a DWORD."""
    body = bytearray((len(params),))
    for pid, value in params.items():
        raw = struct.pack(">I", value) if isinstance(value, int) else value
        body += struct.pack(">IB", pid, len(raw)) + raw
    return frame(MSG_SET_PARAMS, phone, serial, bytes(body), version)


def encode_report_interval(phone: str, serial: int, interval_s: int, *,
                           version: int = 2013) -> bytes:
    """0x8103 setting parameter 0x0029 (default time-based reporting interval)."""
    return encode_set_params(phone, serial, {PARAM_REPORT_INTERVAL: int(interval_s)},
                             version=version)
