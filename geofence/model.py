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
"""

from __future__ import annotations

import gc
import json
import operator
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from geofence.errors import OrderError, ValidationError

MAX_STRING = 256
"""Longest string accepted in any telemetry field."""

DEVICE_EVENTS: tuple[str, ...] = (
    "tamper", "removed", "sos", "fall", "battery_low",
    "power_off", "power_on", "charging", "vibration", "heartbeat", "device_conflict",
)
VIDEO_EVENTS: tuple[str, ...] = (
    "face_match", "perimeter_breach", "fight", "loitering", "crowd", "fall",
)
SEVERITIES: tuple[str, ...] = ("red", "orange", "yellow", "blue")
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
Severity = Literal["red", "orange", "yellow", "blue"]

# On the wire a timestamp is an int (epoch ms) or an RFC 3339 string; after
# ``__post_init__`` it is always an int. msgspec reads the runtime annotation,
# type checkers see the normalised one.
if TYPE_CHECKING:
    WireTs = int
else:
    WireTs = Union[int, str]

_MAX_EPOCH_MS = 253402300799999  # 9999-12-31T23:59:59.999Z


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a bulk load allocates.

    Loading creates hundreds of thousands of long-lived objects and no
    reference cycles; each collection it triggers would traverse the young
    heap (the decoded JSON) for nothing. Reference counting still frees
    everything; the collector's previous state is restored on exit.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def parse_ts(value: object, field: str = "ts") -> int:
    """Turn an RFC 3339 string or integer epoch milliseconds into epoch ms.

    Parameters
    ----------
    value : int or str
        ``1763820210000`` or ``"2026-11-22T22:03:30+08:00"``.
    field : str
        Field name used in the error message.

    Returns
    -------
    int
        Milliseconds since 1970-01-01T00:00:00Z.

    Raises
    ------
    ValidationError
        ``invalid_timestamp`` for anything else (no zone, not a date,
        a bool, out of range).

    Examples
    --------
    >>> parse_ts("2026-11-22T22:03:30+08:00") == parse_ts(1795356210000)
    True
    """
    if isinstance(value, bool):
        raise ValidationError("invalid_timestamp", f"`{field}` is a boolean")
    if isinstance(value, int):
        if not 0 <= value <= _MAX_EPOCH_MS:
            raise ValidationError("invalid_timestamp", f"`{field}` epoch ms {value} out of range")
        return value
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(
                "invalid_timestamp", f"`{field}` {value[:40]!r} is not RFC 3339"
            ) from None
        if dt.tzinfo is None:
            raise ValidationError(
                "invalid_timestamp", f"`{field}` {value[:40]!r} has no `Z` or UTC offset"
            )
        ms = int(dt.timestamp() * 1000 + (0.5 if dt.timestamp() >= 0 else -0.5))
        if not 0 <= ms <= _MAX_EPOCH_MS:
            raise ValidationError("invalid_timestamp", f"`{field}` {value[:40]!r} out of range")
        return ms
    raise ValidationError("invalid_timestamp", f"`{field}` must be RFC 3339 text or epoch ms")


def format_ts(ms: int) -> str:
    """Format epoch milliseconds as RFC 3339 UTC with ``Z``.

    Whole seconds print without a fraction; otherwise milliseconds are kept.

    Examples
    --------
    >>> format_ts(1795356210000)
    '2026-11-22T14:03:30Z'
    >>> format_ts(1795356210250)
    '2026-11-22T14:03:30.250Z'
    """
    secs, rem = divmod(ms, 1000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return f"{base}Z" if rem == 0 else f"{base}.{rem:03d}Z"


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


Telemetry = Union[Fix, DeviceEvent, VideoHit]
"""One canonical telemetry message."""


def telemetry_key(msg: Telemetry) -> str:
    """The device or camera a message came from (``device_id`` or ``camera_id``)."""
    return msg.camera_id if isinstance(msg, VideoHit) else msg.device_id


class Rejected(msgspec.Struct, frozen=True):
    """One message of a batch that failed validation.

    ``index`` is its position in the batch (0 for a single message, -1 when
    the whole payload was rejected), ``raw`` the offending text.
    """

    index: int
    reason: str
    detail: str
    raw: str


class DecodedBatch(msgspec.Struct):
    """What :meth:`TelemetryDecoder.decode` returns: good messages and rejects."""

    messages: list[Telemetry]
    rejected: list[Rejected]


_ENCODER = msgspec.json.Encoder()
_TS = operator.attrgetter("ts")
_WIRE = Union[Fix, DeviceEvent, VideoHit, list[Union[Fix, DeviceEvent, VideoHit]]]
_REASON_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"missing required field"), "missing_field"),
    (re.compile(r"Invalid value .* at `\$(\[\d+\])?\.kind`"), "unknown_kind"),
    (re.compile(r"at `\$(\[\d+\])?\.event`"), "unknown_event"),
    (re.compile(r"of length <="), "string_too_long"),
    (re.compile(r"of length >="), "empty_string"),
    (re.compile(r"Number out of range|Expected `(float|int)` [<>]=?"), "out_of_range"),
    (re.compile(r"`ts`|timestamp"), "invalid_timestamp"),
    (re.compile(r"Expected `"), "wrong_type"),
    (re.compile(r"Invalid (enum )?value"), "invalid_value"),
)
_NON_FINITE = re.compile(rb"\b(NaN|-?Infinity)\b")
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")

MAX_DEPTH = 32
"""Deepest nesting of arrays and objects accepted in a telemetry payload."""


def json_depth_exceeds(raw: bytes, limit: int) -> bool:
    """Whether JSON text nests arrays and objects more than ``limit`` deep.

    Works on the bytes without parsing them, so it is safe on any input:
    brackets inside strings do not count, and text that is not JSON at all
    is left for the parser to reject. Text with no more than ``limit``
    opening brackets is answered by counting alone.

    Parameters
    ----------
    raw : bytes
        The text, as received.
    limit : int
        Deepest nesting allowed (``[[1]]`` nests 2 deep).

    Returns
    -------
    bool
        True if some value lies deeper than ``limit``.

    Examples
    --------
    >>> json_depth_exceeds(b'[[1]]', 2), json_depth_exceeds(b'[[[1]]]', 2)
    (False, True)
    >>> json_depth_exceeds(b'["[[[[[[[["]', 2)
    False
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    s = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    # each pass removes the innermost pairs only: after `limit` passes a pair
    # is left exactly when some value nests deeper than `limit`
    for _ in range(limit):
        t = s.replace(b"[]", b"\0").replace(b"{}", b"\0").replace(b"\0", b"")
        if len(t) == len(s) or not t:
            return False
        s = t
    return b"[]" in s or b"{}" in s


def _classify(exc: Exception) -> str:
    text = str(exc)
    for pattern, code in _REASON_PATTERNS:
        if pattern.search(text):
            return code
    return "invalid_message"


def _raw_text(raw: bytes) -> str:
    return raw[:4096].decode("utf-8", errors="replace")


class TelemetryDecoder:
    """Decode telemetry payloads (one object or a batched JSON array).

    Parameters
    ----------
    max_batch : int
        Largest number of messages in one envelope; a larger batch is
        rejected whole with reason ``batch_too_large``.
    max_bytes : int
        Largest payload in bytes (``payload_too_large`` beyond it).
    max_future_ms : int
        How far a timestamp may lie ahead of its arrival (default 24 h);
        further is ``future_timestamp``. The arrival is the ``arrival_ms``
        given to :meth:`decode`, else ``now_ms()``.
    now_ms : callable, optional
        Wall clock in epoch ms; injectable for tests and replay.
    max_depth : int
        Deepest nesting of arrays and objects; deeper payloads are rejected
        whole with reason ``too_deep`` before they are parsed.
    """

    def __init__(
        self,
        max_batch: int = 10_000,
        max_bytes: int = 8 * 1024 * 1024,
        max_future_ms: int = 24 * 3600 * 1000,
        now_ms: Callable[[], int] | None = None,
        max_depth: int = MAX_DEPTH,
    ) -> None:
        self.max_batch = max_batch
        self.max_depth = max_depth
        self.max_bytes = max_bytes
        self.max_future_ms = max_future_ms
        self._now_ms = now_ms or (lambda: int(time.time() * 1000))
        self._whole = msgspec.json.Decoder(_WIRE)
        self._one = msgspec.json.Decoder(Telemetry)
        self._items = msgspec.json.Decoder(list[msgspec.Raw])

    def decode(self, payload: bytes | str, arrival_ms: int | None = None) -> DecodedBatch:
        """Decode one payload; never raises for bad input, returns rejects instead.

        ``arrival_ms`` is when the payload arrived (a Kafka record's
        timestamp, say); messages dated more than ``max_future_ms`` after it
        are rejected as ``future_timestamp``. Without it the wall clock
        (``now_ms``) stands in.
        """
        raw = payload.encode() if isinstance(payload, str) else payload
        if len(raw) > self.max_bytes:
            return self._reject_all(
                raw, "payload_too_large", f"{len(raw)} bytes > limit {self.max_bytes}"
            )
        try:
            # the contract's types nest two deep and fail at the first deeper
            # value; only a skipped unknown field can recurse, and msgspec
            # bounds that with RecursionError, so the hot path needs no scan
            decoded = self._whole.decode(raw)
        except msgspec.DecodeError as exc:
            return self._slow_path(raw, exc, arrival_ms)
        except RecursionError:
            return self._too_deep(raw)
        messages = decoded if isinstance(decoded, list) else [decoded]
        if len(messages) > self.max_batch:
            return self._reject_all(
                raw, "batch_too_large", f"{len(messages)} messages > limit {self.max_batch}"
            )
        limit = (self._now_ms() if arrival_ms is None else arrival_ms) + self.max_future_ms
        if not messages or max(map(_TS, messages)) <= limit:
            return DecodedBatch(messages, [])
        good: list[Telemetry] = []
        rejected: list[Rejected] = []
        for i, m in enumerate(messages):
            if m.ts <= limit:
                good.append(m)
            else:
                rejected.append(self._future(i, m, limit))
        return DecodedBatch(good, rejected)

    def decode_one(self, payload: bytes | str) -> Telemetry:
        """Decode exactly one message or raise :class:`ValidationError`."""
        batch = self.decode(payload)
        if batch.rejected:
            r = batch.rejected[0]
            raise ValidationError(r.reason, r.detail)
        if len(batch.messages) != 1:
            raise ValidationError("not_single", f"expected one message, got {len(batch.messages)}")
        return batch.messages[0]

    def _future(self, index: int, msg: Telemetry, limit: int) -> Rejected:
        ahead_s = (msg.ts - (limit - self.max_future_ms)) / 1000
        return Rejected(
            index,
            "future_timestamp",
            f"`ts` {format_ts(msg.ts)} is {ahead_s:.0f} s ahead of its arrival"
            f" (at most {self.max_future_ms // 1000} s allowed)",
            _ENCODER.encode(msg).decode(),
        )

    def _reject_all(self, raw: bytes, reason: str, detail: str) -> DecodedBatch:
        return DecodedBatch([], [Rejected(-1, reason, detail, _raw_text(raw))])

    def _too_deep(self, raw: bytes) -> DecodedBatch:
        return self._reject_all(
            raw, "too_deep", f"arrays and objects nest more than {self.max_depth} levels deep"
        )

    def _slow_path(self, raw: bytes, first: msgspec.DecodeError,
                   arrival_ms: int | None = None) -> DecodedBatch:
        """Find out which messages are bad and why, keeping the good ones."""
        if json_depth_exceeds(raw, self.max_depth):
            return self._too_deep(raw)
        try:
            items: list[bytes] | None = [bytes(x) for x in self._items.decode(raw)]
        except msgspec.DecodeError:
            items = None
        except RecursionError:  # bounded above; kept for text the scan cannot read
            return self._too_deep(raw)
        tail: Rejected | None = None
        if items is None:
            split = _split_members(raw)
            if split is None:
                return self._reject_all(raw, *self._whole_reason(raw, first))
            items, tail = split
        if len(items) > self.max_batch:
            return self._reject_all(
                raw, "batch_too_large", f"{len(items)} messages > limit {self.max_batch}"
            )
        limit = (self._now_ms() if arrival_ms is None else arrival_ms) + self.max_future_ms
        good: list[Telemetry] = []
        rejected: list[Rejected] = []
        for i, item in enumerate(items):
            try:
                msg = self._one.decode(item)
            except msgspec.DecodeError as exc:
                reason, detail = self._whole_reason(item, exc)
                if reason == "wrong_type":
                    reason, detail = _classify(exc), str(exc)
                rejected.append(Rejected(i, reason, f"[{i}] {detail}", _raw_text(item)))
                continue
            except RecursionError:
                rejected.append(Rejected(i, "too_deep", f"[{i}] nests too deep",
                                         _raw_text(item)))
                continue
            if msg.ts > limit:
                rejected.append(self._future(i, msg, limit))
            else:
                good.append(msg)
        if tail is not None:
            rejected.append(tail)
        return DecodedBatch(good, rejected)

    @staticmethod
    def _whole_reason(raw: bytes, exc: msgspec.DecodeError) -> tuple[str, str]:
        text = str(exc)
        if text.startswith("JSON is malformed") or text.startswith("Input data was truncated"):
            if _NON_FINITE.search(raw):
                try:
                    json.loads(raw)
                except ValueError:
                    pass
                else:
                    return "non_finite_number", "NaN and Infinity are not valid numbers"
            return "malformed_json", text
        if "Expected `object | array`" in text:
            return "wrong_type", "telemetry must be a JSON object or an array of objects"
        return _classify(exc), text


_MEMBER_SCANNER = json.JSONDecoder()


def _split_members(raw: bytes) -> tuple[list[bytes], Rejected | None] | None:
    """Cut an array that is not valid JSON into the text of its members.

    For a producer that writes ``NaN`` or ``Infinity`` (Python's ``json``
    does by default) or breaks one member: the members are read one after
    another with a reader that accepts the non-finite literals, so each
    member is judged on its own. If a member cannot be read at all, its
    end cannot be found: it and everything after it are returned as one
    reject naming the member and the byte offset. ``None`` when the text is
    not an array, is not UTF-8, or not even its first member can be read.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    pos = 0
    n = len(text)
    while pos < n and text[pos] in " \t\r\n":
        pos += 1
    if pos >= n or text[pos] != "[":
        return None
    pos += 1
    members: list[bytes] = []
    while True:
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        if pos < n and text[pos] == "]" and not members:
            return None  # `[]` is valid JSON: not this function's case
        try:
            _, end = _MEMBER_SCANNER.raw_decode(text, pos)
        except (ValueError, RecursionError) as exc:
            if not members:
                return None
            i = len(members)
            reason = "malformed_json"
            detail = (f"[{i}] not JSON from byte {len(text[:pos].encode())}"
                      f" ({str(exc).split(':')[0]}): this member and the rest of the"
                      f" array cannot be separated")
            return members, Rejected(i, reason, detail, _raw_text(text[pos:].encode()))
        members.append(text[pos:end].encode())
        pos = end
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        if pos < n and text[pos] == ",":
            pos += 1
            continue
        if pos < n and text[pos] == "]":
            rest = text[pos + 1:].strip(" \t\r\n")
            if rest:
                return members, Rejected(len(members), "malformed_json",
                                         f"text after the array's end: {rest[:40]!r}",
                                         _raw_text(rest.encode()))
            return members, None
        i = len(members)
        return members, Rejected(i, "malformed_json",
                                 f"[{i}] expected `,` or `]` at byte {len(text[:pos].encode())}:"
                                 f" the rest of the array cannot be separated",
                                 _raw_text(text[pos:].encode()))


def encode(obj: Any) -> bytes:
    """Encode a contract object (or plain data) as compact JSON bytes."""
    return _ENCODER.encode(obj)


# --------------------------------------------------------------------------- orders

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RuleType = Literal["exclusion", "inclusion", "curfew", "no_contact", "signal_loss"]


class Window(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A curfew window in local time; ``end`` before ``start`` crosses midnight."""

    start: str
    end: str
    days: str = "daily"

    def weekdays(self) -> frozenset[int]:
        """Days the window starts on, Monday = 0."""
        if self.days == "daily":
            return frozenset(range(7))
        return frozenset(_DAY_NAMES.index(d.strip()) for d in self.days.split(","))

    def minutes(self) -> tuple[int, int]:
        """``(start, end)`` as minutes after local midnight."""
        sh, sm = self.start.split(":")
        eh, em = self.end.split(":")
        return int(sh) * 60 + int(sm), int(eh) * 60 + int(em)


class Rule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One rule of an order; which fields apply depends on ``type``
    (:data:`RULE_FIELDS`; validation refuses the others).

    A field left out is ``None``; the ``effective_*`` methods give the value
    the engine uses (the default when left out).
    """

    id: str
    type: RuleType
    zone: Union[str, None] = None
    buffer_m: Union[Annotated[float, msgspec.Meta(ge=0.0, le=100_000.0)], None] = None
    windows: tuple[Window, ...] = ()
    person: Union[str, None] = None
    distance_m: Union[Annotated[float, msgspec.Meta(gt=0.0, le=100_000.0)], None] = None
    after_s: Union[Annotated[int, msgspec.Meta(gt=0)], None] = None
    severity: Union[Severity, None] = None
    dwell_s: Union[Annotated[float, msgspec.Meta(ge=0.0)], None] = None

    def effective_buffer_m(self) -> float:
        """``buffer_m`` of an exclusion rule (0: no approach warning)."""
        return 0.0 if self.buffer_m is None else float(self.buffer_m)

    def effective_distance_m(self) -> float:
        """``distance_m`` of a no_contact rule (default 200 m)."""
        return DEFAULT_DISTANCE_M if self.distance_m is None else float(self.distance_m)

    def effective_after_s(self) -> int:
        """``after_s`` of a signal_loss rule (default 900 s)."""
        return DEFAULT_AFTER_S if self.after_s is None else int(self.after_s)


DEFAULT_DISTANCE_M = 200.0
"""``distance_m`` of a no_contact rule that sets none."""
DEFAULT_AFTER_S = 900
"""``after_s`` of a signal_loss rule that sets none."""

RULE_FIELDS: dict[str, frozenset[str]] = {
    "exclusion": frozenset({"zone", "buffer_m", "severity", "dwell_s"}),
    "inclusion": frozenset({"zone", "severity", "dwell_s"}),
    "curfew": frozenset({"zone", "windows", "severity", "dwell_s"}),
    "no_contact": frozenset({"person", "distance_m", "severity", "dwell_s"}),
    "signal_loss": frozenset({"after_s", "severity"}),
}
"""The fields each rule type uses besides ``id`` and ``type``. Any other field
set on a rule would be ignored by the engine, so validation refuses it."""

_OPTIONAL_RULE_FIELDS = ("zone", "buffer_m", "windows", "person", "distance_m", "after_s",
                         "dwell_s")
_WHERE_USED: dict[str, str] = {
    "zone": "exclusion, inclusion and curfew rules",
    "buffer_m": "exclusion rules",
    "windows": "curfew rules",
    "person": "no_contact rules",
    "distance_m": "no_contact rules",
    "after_s": "signal_loss rules",
    "dwell_s": "exclusion, inclusion, curfew and no_contact rules",
}


class Order(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A supervision order: one person, their devices, their rules.

    ``valid_from``/``valid_until`` are parsed to epoch ms by :func:`parse_orders`.
    """

    person_id: str
    devices: tuple[str, ...]
    jurisdiction: str
    rules: tuple[Rule, ...]
    valid_from: Union[int, str, None] = None
    valid_until: Union[int, str, None] = None
    timezone: str = "Asia/Shanghai"

    def valid_from_ms(self) -> int:
        """Start of validity in epoch ms (0 when open-ended)."""
        return self.valid_from if isinstance(self.valid_from, int) else 0

    def valid_until_ms(self) -> int:
        """End of validity in epoch ms (far future when open-ended)."""
        return self.valid_until if isinstance(self.valid_until, int) else _MAX_EPOCH_MS

    def active_at(self, ts_ms: int) -> bool:
        """Whether the order is in force at ``ts_ms``."""
        return self.valid_from_ms() <= ts_ms < self.valid_until_ms()


_ORDERS = msgspec.json.Decoder(list[Order])
_ORDER_ONE = msgspec.json.Decoder(Order)
_ORDER_CONVERT = msgspec.convert


def _check_fields(where: str, rule: Rule) -> None:
    """Refuse a field the engine would ignore for this rule type."""
    used = RULE_FIELDS[rule.type]
    for name in _OPTIONAL_RULE_FIELDS:
        if name in used:
            continue
        value = getattr(rule, name)
        if value is None or value == ():
            continue
        if name == "windows" and rule.type in ("exclusion", "inclusion"):
            why = (f"time windows on {rule.type} rules are not supported (the rule applies at"
                   " all times); remove `windows`, or use a curfew rule for a time-bound zone")
        else:
            why = f"`{name}` applies only to {_WHERE_USED[name]} and would be ignored here"
        raise OrderError("unsupported_field", f"{where}: rule {rule.id!r} ({rule.type}): {why}")


def _check_rule(where: str, rule: Rule) -> None:
    needs_zone = rule.type in ("exclusion", "inclusion", "curfew")
    if needs_zone and not rule.zone:
        raise OrderError("missing_field", f"{where}: rule {rule.id!r} ({rule.type}) needs `zone`")
    if rule.type == "curfew":
        if not rule.windows:
            raise OrderError("missing_field", f"{where}: curfew rule {rule.id!r} needs `windows`")
        for w in rule.windows:
            if w in _GOOD_WINDOWS:
                continue
            for name, value in (("start", w.start), ("end", w.end)):
                if not _HHMM.match(value):
                    raise OrderError(
                        "invalid_value",
                        f"{where}: rule {rule.id!r} window {name} {value!r} is not HH:MM",
                    )
            if w.start == w.end:
                raise OrderError(
                    "invalid_value", f"{where}: rule {rule.id!r} window start equals end"
                )
            if w.days != "daily":
                bad = [d for d in w.days.split(",") if d.strip() not in _DAY_NAMES]
                if bad or not w.days.strip():
                    raise OrderError(
                        "invalid_value",
                        f"{where}: rule {rule.id!r} days {w.days!r}: use 'daily' or mon..sun",
                    )
            if len(_GOOD_WINDOWS) < 4096:
                _GOOD_WINDOWS.add(w)
    if rule.type == "no_contact" and not rule.person:
        raise OrderError("missing_field", f"{where}: no_contact rule {rule.id!r} needs `person`")


_JURISDICTION = re.compile(r"[0-9]{6}")
#: Time zone names already known to load (ZoneInfo costs about 1 us even cached).
_KNOWN_TZ: set[str] = set()
#: Curfew windows already checked (orders of a city mostly share one).
_GOOD_WINDOWS: set[Window] = set()


def _check_order(index: int, order: Order) -> Order:
    where = f"order {index} ({order.person_id!r})"
    if not order.person_id or len(order.person_id) > MAX_STRING:
        raise OrderError("invalid_value", f"order {index}: `person_id` must be 1..256 chars")
    if not _JURISDICTION.fullmatch(order.jurisdiction):
        raise OrderError(
            "invalid_value",
            f"{where}: jurisdiction {order.jurisdiction!r} is not a 6-digit GB/T 2260 code",
        )
    if not order.devices or any(not d for d in order.devices):
        raise OrderError("missing_field", f"{where}: `devices` must name at least one device")
    if order.timezone not in _KNOWN_TZ:
        try:
            ZoneInfo(order.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise OrderError("invalid_value", f"{where}: unknown timezone {order.timezone!r}") from None
        if len(_KNOWN_TZ) < 1024:
            _KNOWN_TZ.add(order.timezone)
    ids = [r.id for r in order.rules]
    if len(set(ids)) != len(ids):
        raise OrderError("duplicate_id", f"{where}: rule ids repeat: {sorted(ids)}")
    for rule in order.rules:
        t = rule.type
        if (t == "exclusion" and rule.zone and not rule.windows and rule.person is None
                and rule.distance_m is None and rule.after_s is None):
            continue  # the common case: nothing more to check
        _check_fields(where, rule)
        if (rule.zone and t == "inclusion") or t == "signal_loss":
            continue  # nothing more to check (see _check_rule)
        _check_rule(where, rule)
    try:
        vf = None if order.valid_from is None else parse_ts(order.valid_from, "valid_from")
        vu = None if order.valid_until is None else parse_ts(order.valid_until, "valid_until")
    except ValidationError as exc:
        raise OrderError(exc.reason, f"{where}: {exc.detail}") from None
    if vf is not None and vu is not None and vu <= vf:
        raise OrderError("invalid_value", f"{where}: valid_until is not after valid_from")
    if vf is order.valid_from and vu is order.valid_until:
        return order  # already normalised (frozen: sharing it is safe)
    return msgspec.structs.replace(order, valid_from=vf, valid_until=vu)


_RULE_AT = re.compile(r"`\$\.rules\[(\d+)\]")


def _rule_named(data: Any, error: str) -> str:
    """`` rule 'r1'`` when a decoding error lies inside a rule that has an id."""
    m = _RULE_AT.search(error)
    if m is None or not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        return ""
    k = int(m.group(1))
    rules = data["rules"]
    rid = rules[k].get("id") if k < len(rules) and isinstance(rules[k], dict) else None
    return f" rule {rid!r}" if isinstance(rid, str) else f" rule #{k}"


def parse_order(data: Any, index: int = 0) -> Order:
    """Validate one order given as a mapping (already parsed JSON/YAML)."""
    try:
        order = _ORDER_CONVERT(data, Order)
    except msgspec.ValidationError as exc:
        text = str(exc)
        reason = "unknown_field" if "unknown field" in text else _classify(exc)
        raise OrderError(reason, f"order {index}{_rule_named(data, text)}: {text}") from None
    return _check_order(index, order)


def parse_orders(text: str | bytes) -> list[Order]:
    """Parse an orders file: a JSON array, or YAML with the same structure.

    Raises
    ------
    OrderError
        With the order's index and person, the rule id and the reason.
    """
    raw = text.encode() if isinstance(text, str) else text
    # fast path: a plain JSON array of well-typed orders decodes straight into
    # Order structs (no intermediate dicts); anything else (YAML, the
    # {"orders": [...]} form, a type error) takes the path below, which
    # reports exactly which order is wrong and why
    with _gc_paused():
        try:
            typed: list[Order] | None = _ORDERS.decode(raw)
        except Exception:  # any failure: the reference path below decides
            typed = None
        if typed is not None:
            return _check_all([_check_order(i, o) for i, o in enumerate(typed)])
    try:
        data: Any = json.loads(raw)
    except ValueError as json_exc:
        if raw.lstrip()[:1] in (b"[", b"{"):  # meant as JSON: its error is the useful one
            raise OrderError("malformed", f"orders are not valid JSON: {json_exc}") from None
        try:
            import yaml
        except ImportError:  # pragma: no cover - pyyaml is a dependency
            raise OrderError("malformed", "orders are not valid JSON and PyYAML is missing") from None
        try:
            data = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise OrderError("malformed", f"orders are neither JSON nor YAML: {problem}{at}") from None
    if isinstance(data, dict) and "orders" in data:
        data = data["orders"]
    if not isinstance(data, list):
        raise OrderError("wrong_type", "an orders file is a JSON (or YAML) array of orders")
    return _check_all([parse_order(item, i) for i, item in enumerate(data)])


def _check_all(orders: list[Order]) -> list[Order]:
    """The checks across orders: one order per person, one person per device."""
    seen: dict[str, int] = {}
    devices: dict[str, str] = {}
    for i, o in enumerate(orders):
        if o.person_id in seen:
            raise OrderError("duplicate_id", f"order {i}: person {o.person_id!r} repeats order {seen[o.person_id]}")
        seen[o.person_id] = i
        for d in o.devices:
            if d in devices and devices[d] != o.person_id:
                raise OrderError(
                    "duplicate_id",
                    f"order {i}: device {d!r} is already worn by {devices[d]!r}",
                )
            devices[d] = o.person_id
    return orders


# --------------------------------------------------------------------------- alerts


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


def utc_now_ms() -> int:
    """Wall-clock now in epoch ms (the one place the pure core reads the clock)."""
    return int(datetime.now(UTC).timestamp() * 1000)
