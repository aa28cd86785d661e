"""Phone check-ins over HTTP: the request body and who may send it.

A supervision app posts ``POST /checkin`` to the gateway's OsmAnd HTTP
server with ``Authorization: Bearer <device key>`` and a JSON body: one
check-in object with the fields of the contract's ``checkin`` kind
(``kind`` may be left out), or an array of them (a phone that was offline
sends what it kept)::

    {"device_id": "PH-0900", "ts": "2026-11-22T08:31:05+08:00", "lat": 32.05,
     "lon": 118.79, "accuracy_m": 25, "face_score": 0.93, "action_ok": true,
     "method": "face_action", "request_id": null}

Pure: no sockets, no Kafka. The body is bounded (size and nesting) before
it is parsed, and each check-in is validated by the contract's own decoder
(:class:`geofence.model.TelemetryDecoder`), so a check-in is refused here
for exactly the reasons the stream would refuse it.

A phone is provisioned like an OsmAnd device (``protocol`` ``checkin``,
or ``osmand`` for an app that also reports positions over OsmAnd) with a
generated key whose salted hash is all the gateway keeps.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from devices.bounds import json_bounds
from devices.errors import FrameError
from devices.provisioning import Provisioning
from geofence.model import CheckIn, TelemetryDecoder, encode

MAX_BODY = 64 * 1024
"""Largest check-in request body."""
MAX_CHECKINS = 100
"""Most check-ins in one request (a phone sending what it kept while offline)."""
PROTOCOLS = ("checkin", "osmand")
"""Provisioned protocols whose devices may post check-ins with their key."""


@dataclass(frozen=True, slots=True)
class Refused:
    """A check-in (or a whole request) that is not accepted: why, and which member."""

    reason: str
    detail: str
    raw: str
    index: int = -1
    """Position in the request's array (-1: the whole request)."""


@dataclass(slots=True)
class Body:
    """A decoded request body: the good check-ins and the refused members."""

    checkins: list[CheckIn]
    refused: list[Refused]


_DECODER = TelemetryDecoder(max_batch=MAX_CHECKINS, max_bytes=MAX_BODY,
                            max_future_ms=10 * 365 * 86_400_000)
"""The contract's decoder; the future bound is the gateway's own (applied by the caller)."""


def decode_body(raw: bytes) -> Body:
    """Decode a ``POST /checkin`` body.

    Raises :class:`FrameError` when the body as a whole is unusable
    (``payload_too_large``, ``too_deep``, ``malformed_json``,
    ``wrong_type``, ``empty``, ``batch_too_large``); a member that is not
    a valid check-in is returned in ``refused`` with the contract's reason.

    Examples
    --------
    >>> b = decode_body(b'{"device_id": "PH-1", "ts": 1795305600000, "lat": 32.0, '
    ...                 b'"lon": 118.8, "face_score": 0.9}')
    >>> (b.checkins[0].device_id, b.checkins[0].face_score, b.refused)
    ('PH-1', 0.9, [])
    >>> decode_body(b'[{"kind": "fix", "device_id": "PH-1", "ts": 0, "lat": 0, "lon": 0}]'
    ...             ).refused[0].reason
    'wrong_kind'
    """
    json_bounds(raw, MAX_BODY)
    try:
        data = json.loads(raw)
    except ValueError as exc:  # also bytes that are not UTF-8
        raise FrameError("malformed_json", f"body is not JSON: {str(exc)[:200]}") from None
    except RecursionError:  # pragma: no cover - json_bounds keeps nesting shallow
        raise FrameError("too_deep", "body nests arrays or objects too deeply") from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise FrameError("empty", "the check-in list is empty")
    if len(items) > MAX_CHECKINS:
        raise FrameError("batch_too_large", f"{len(items)} check-ins > limit {MAX_CHECKINS}")
    if not isinstance(data, (list, dict)):
        raise FrameError("wrong_type", "the body must be a check-in object or an array of them")
    out = Body([], [])
    for i, item in enumerate(items):
        text = _text(item)
        if not isinstance(item, dict):
            out.refused.append(Refused("wrong_type", f"[{i}] a check-in is a JSON object", text, i))
            continue
        kind = item.get("kind", "checkin")
        if kind != "checkin":
            out.refused.append(Refused("wrong_kind", f"[{i}] only check-ins are accepted here, "
                                       f"not kind {str(kind)[:40]!r}", text, i))
            continue
        batch = _DECODER.decode(_text({**item, "kind": "checkin"}).encode())
        if batch.rejected:
            r = batch.rejected[0]
            detail = r.detail if r.detail.startswith("[") else f"[{i}] {r.detail}"
            out.refused.append(Refused(r.reason, detail, text, i))
            continue
        msg = batch.messages[0]
        assert isinstance(msg, CheckIn)
        out.checkins.append(msg)
    return out


def _text(value: Any) -> str:
    """``value`` as JSON text for a dead letter (non-finite numbers kept as written)."""
    return json.dumps(value, separators=(",", ":"))[:4096]


def decode(frame: str | bytes, now_ms: int) -> list[CheckIn]:
    """``wardstream decode --protocol checkin``: the check-ins of a request body.

    ``now_ms`` is not needed (a check-in always carries its time); the
    first refused member raises :class:`FrameError`.
    """
    del now_ms
    body = decode_body(frame.encode() if isinstance(frame, str) else frame)
    if body.refused:
        raise FrameError(body.refused[0].reason, body.refused[0].detail)
    return body.checkins


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None when absent or another scheme)."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class KeyOwners:
    """Which phone each recently verified key belongs to (fingerprints only).

    Keys are stored as salted hashes, so a key cannot be looked up by
    value; a key that has verified for its phone is remembered (as a
    SHA-256 fingerprint, never the key) so that the same key presented
    for another device is recognised as that phone speaking for someone
    else (403) rather than as an unknown key (401).
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._owner: OrderedDict[bytes, str] = OrderedDict()

    @staticmethod
    def _fingerprint(key: str) -> bytes:
        return hashlib.sha256(key.encode()).digest()

    def note(self, key: str, device_id: str) -> None:
        """Remember that ``key`` verified for ``device_id``."""
        fp = self._fingerprint(key)
        self._owner[fp] = device_id
        self._owner.move_to_end(fp)
        while len(self._owner) > self.capacity:
            self._owner.popitem(last=False)

    def owner(self, key: str) -> str | None:
        """The phone ``key`` last verified for, if remembered."""
        return self._owner.get(self._fingerprint(key))


@dataclass(frozen=True, slots=True)
class AuthRefusal:
    """Why a check-in request is not authenticated: HTTP status, reason, detail."""

    status: int
    reason: str
    detail: str


def refusal(provisioning: Provisioning | None, owners: KeyOwners,
            checkins: Sequence[CheckIn], key: str | None) -> AuthRefusal | None:
    """Whether the request's key may send every one of ``checkins`` (None: it may).

    401 ``missing_key``: no bearer key. 403 ``not_provisioned``: a device
    that is provisioned for neither ``checkin`` nor ``osmand``. 403
    ``device_mismatch``: the key is known to belong to another phone.
    401 ``bad_key``: the key is not the device's. Without provisioning
    (a gateway started with ``--allow-unprovisioned``) any key, or none,
    is accepted.

    Examples
    --------
    >>> from devices.provisioning import ProvisionedDevice, hash_secret
    >>> prov = Provisioning({"PH-1": ProvisionedDevice("PH-1", "checkin", secret_hash=hash_secret("k1")),
    ...                      "PH-2": ProvisionedDevice("PH-2", "osmand", secret_hash=hash_secret("k2"))})
    >>> ci = CheckIn(device_id="PH-1", ts=0, lat=0.0, lon=0.0, face_score=0.9)
    >>> owners = KeyOwners()
    >>> refusal(prov, owners, [ci], "k1") is None
    True
    >>> refusal(prov, owners, [ci], None).reason, refusal(prov, owners, [ci], "k9").reason
    ('missing_key', 'bad_key')
    >>> ph2 = CheckIn(device_id="PH-2", ts=0, lat=0.0, lon=0.0, face_score=0.9)
    >>> refusal(prov, owners, [ph2], "k1").status
    403
    """
    if provisioning is None:
        return None
    if key is None:
        return AuthRefusal(401, "missing_key", "no device key (Authorization: Bearer <key>)")
    verified: set[str] = set()
    for msg in checkins:
        dev = msg.device_id
        if dev in verified:
            continue
        device = provisioning.get(dev)
        if device is None or device.protocol not in PROTOCOLS:
            return AuthRefusal(403, "not_provisioned",
                               f"device {dev!r} is not provisioned for check-ins")
        if device.check_secret(key):
            owners.note(key, dev)
            verified.add(dev)
            continue
        owner = owners.owner(key)
        if owner is not None and owner != dev:
            return AuthRefusal(403, "device_mismatch",
                               f"the key belongs to device {owner!r}, not {dev!r}")
        return AuthRefusal(401, "bad_key", f"the key does not match device {dev!r}")
    return None


def accepted_body(n: int, refused: Sequence[Refused]) -> bytes:
    """The JSON answer: how many check-ins were accepted, and why the others were not."""
    out: dict[str, Any] = {"accepted": n}
    if refused:
        out["rejected"] = [{"index": r.index, "reason": r.reason, "detail": r.detail}
                           for r in refused]
    return encode(out)
