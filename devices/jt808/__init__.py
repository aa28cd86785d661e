"""JT/T 808 (China's road-transport terminal protocol): decoder and encoder.

Pure: bytes in, typed objects out, and the reverse. No sockets, no Kafka.
Used by the gateway's JT/T 808 server, ``wardstream decode --protocol jt808``,
the simulators (which build real terminal traffic with the ``encode_*``
functions) and the pursuit-mode downlink (:func:`encode_report_interval`).

Frame layout (JT/T 808-2013 section 4.4, 2019 section 4.4)::

    7E | header | body | check code | 7E

- Inside the flags ``0x7E`` is escaped as ``7D 02`` and ``0x7D`` as ``7D 01``.
- The check code is the XOR of header and body bytes.
- Header 2013: message id (WORD), properties (WORD: bits 0-9 body length,
  10-12 encryption, 13 sub-package, 14 reserved), terminal phone number
  (6 BCD bytes), serial number (WORD), optional packet total/index.
- Header 2019: property bit 14 set, then a protocol-version BYTE and a
  10-byte BCD terminal phone number.

Device ids: the phone number's BCD digits. A 2019 number (20 digits) has its
leading zeros dropped down to 12 digits, so one terminal gets the same id
whichever header version it speaks (``00000000013912344329`` and
``013912344329`` are both ``"013912344329"``).

Times in location reports are BCD ``YYMMDDhhmmss`` in Beijing time (UTC+8)
unless configured otherwise (``WARDSTREAM_JT808_TZ_OFFSET_H``).

Alarm bits -> device events (:data:`ALARM_EVENTS`, overridable per call):

====  ============================================  ===============
bit   meaning (standard / vendor)                   event
====  ============================================  ===============
0     emergency alarm (SOS button), standard        ``sos``
7     terminal main power under-voltage, standard   ``battery_low``
8     terminal main power cut, standard             ``power_off``
15    vendor: vibration (reserved in 2013)          ``vibration``
16    vendor: wristband strap off the body          ``removed``
17    vendor: case opened / strap cut               ``tamper``
18    vendor: low battery                           ``battery_low``
29    collision warning, standard; wearables: fall  ``fall``
30    rollover warning, standard; wearables: fall   ``fall``
====  ============================================  ===============

Bits 15-18 are reserved in the 2013 standard; wristband vendors use them for
the events above (Traccar's Huabao decoder reads 15 as vibration, 16-17 as
tampering and 18 as low battery; bit 17 as tamper is confirmed by a capture
in its tests). A deployment whose devices differ passes its own mapping.

Status bits read: 1 = positioned (fix valid), 2 = south latitude, 3 = west
longitude. Additional-information items read: 0x01 mileage (1/10 km), 0x30
signal strength, 0x31 GNSS satellites, 0xFE battery percent (vendor item,
as in Traccar's captures); the rest are kept raw in :attr:`Location.extras`.

Vendor items -> device events: wristbands that report strap removal,
vibration or tamper in vendor additional-information items (``0xEB``
sub-items, ``0xD0``) get those events beside the fix, as the device model's
profile in :mod:`devices.vendor` says (``model`` and ``models`` arguments);
a model's profile may also replace the alarm-bit map above.

Modules
-------
:mod:`~devices.jt808.codes`
    Message ids, parameter ids and result codes.
:mod:`~devices.jt808.framing`
    Flags, escaping, check code, the header; :func:`parse_frame` and :func:`frame`.
:mod:`~devices.jt808.packets`
    :class:`Reassembler` for sub-packaged messages.
:mod:`~devices.jt808.location`
    Location reports and batches with their additional-information items,
    and the gateway's fast path :func:`decode_report`.
:mod:`~devices.jt808.bodies`
    Registration, authentication, responses and terminal parameters.
:mod:`~devices.jt808.decoder`
    :func:`decode`: a frame to canonical telemetry.
"""

from __future__ import annotations

from devices.jt808.bodies import (
    Registration,
    decode_auth,
    decode_general_response,
    decode_register,
    decode_register_response,
    decode_set_params,
    encode_auth,
    encode_general_response,
    encode_heartbeat,
    encode_register,
    encode_register_response,
    encode_report_interval,
    encode_set_params,
    encode_terminal_response,
    register_body,
)
from devices.jt808.codes import (
    MSG_AUTH,
    MSG_BATCH,
    MSG_HEARTBEAT,
    MSG_LOCATION,
    MSG_LOGOUT,
    MSG_PLATFORM_RESPONSE,
    MSG_REGISTER,
    MSG_REGISTER_RESPONSE,
    MSG_SET_PARAMS,
    MSG_TERMINAL_RESPONSE,
    PARAM_REPORT_INTERVAL,
    REGISTER_NO_SUCH_TERMINAL,
    RESULT_BAD_MESSAGE,
    RESULT_FAILURE,
    RESULT_OK,
    RESULT_UNSUPPORTED,
)
from devices.jt808.decoder import (
    Decoded,
    decode,
    decode_message,
)
from devices.jt808.framing import (
    ESC,
    FLAG,
    Header,
    Message,
    device_id_of,
    encode_packets,
    escape,
    frame,
    parse_content,
    parse_frame,
    response_head,
    unescape,
)
from devices.jt808.location import (
    ALARM_EVENTS,
    DEFAULT_TZ_OFFSET_H,
    STATUS_FIX,
    STATUS_SOUTH,
    STATUS_WEST,
    TLV_BATTERY,
    TLV_MILEAGE,
    TLV_SATELLITES,
    TLV_SIGNAL,
    Location,
    decode_batch,
    decode_location,
    decode_report,
    encode_batch,
    encode_location,
    location_body,
)
from devices.jt808.packets import (
    Joined,
    Reassembler,
)

__all__ = [
    "ALARM_EVENTS",
    "DEFAULT_TZ_OFFSET_H",
    "ESC",
    "FLAG",
    "MSG_AUTH",
    "MSG_BATCH",
    "MSG_HEARTBEAT",
    "MSG_LOCATION",
    "MSG_LOGOUT",
    "MSG_PLATFORM_RESPONSE",
    "MSG_REGISTER",
    "MSG_REGISTER_RESPONSE",
    "MSG_SET_PARAMS",
    "MSG_TERMINAL_RESPONSE",
    "PARAM_REPORT_INTERVAL",
    "REGISTER_NO_SUCH_TERMINAL",
    "RESULT_BAD_MESSAGE",
    "RESULT_FAILURE",
    "RESULT_OK",
    "RESULT_UNSUPPORTED",
    "STATUS_FIX",
    "STATUS_SOUTH",
    "STATUS_WEST",
    "TLV_BATTERY",
    "TLV_MILEAGE",
    "TLV_SATELLITES",
    "TLV_SIGNAL",
    "Decoded",
    "Header",
    "Joined",
    "Location",
    "Message",
    "Reassembler",
    "Registration",
    "decode",
    "decode_auth",
    "decode_batch",
    "decode_general_response",
    "decode_location",
    "decode_message",
    "decode_register",
    "decode_register_response",
    "decode_report",
    "decode_set_params",
    "device_id_of",
    "encode_auth",
    "encode_batch",
    "encode_general_response",
    "encode_heartbeat",
    "encode_location",
    "encode_packets",
    "encode_register",
    "encode_register_response",
    "encode_report_interval",
    "encode_set_params",
    "encode_terminal_response",
    "escape",
    "frame",
    "location_body",
    "parse_content",
    "parse_frame",
    "register_body",
    "response_head",
    "unescape",
]
