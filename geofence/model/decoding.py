"""Decoding telemetry payloads into messages, with a precise reason for every reject.

A payload is one message or a batched JSON array of them.
:class:`TelemetryDecoder` takes the fast path (one typed decode of the whole
payload) when the payload is good, and otherwise finds out which members
are bad and why, keeping the good ones.
"""

from __future__ import annotations

import json
import operator
import re
import time
from collections.abc import Callable
from typing import Union

import msgspec

from geofence.errors import ValidationError
from geofence.model.telemetry import (
    _ENCODER,
    CHECKIN_NO_RESULT,
    CheckIn,
    DeviceEvent,
    Fix,
    Telemetry,
    VideoHit,
)
from geofence.model.timestamps import format_ts


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


_TS = operator.attrgetter("ts")
_WIRE = Union[Fix, DeviceEvent, VideoHit, CheckIn,
              list[Union[Fix, DeviceEvent, VideoHit, CheckIn]]]
_REASON_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"missing required field"), "missing_field"),
    (re.compile(re.escape(CHECKIN_NO_RESULT)), "missing_field"),
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
