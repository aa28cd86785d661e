"""Vendor alarm maps of JT/T 808 wristbands: which flag in which report field is which event.

Pure: tables and bytes in, event names out. No sockets, no files (the
gateway and ``wardstream decode`` read the configuration file and hand the
parsed document to :func:`parse_models`).

Many wristbands do not report strap removal (人机分离), vibration or tamper
in the alarm dword of the 0x0200 location report but in vendor
additional-information items, often as active-low flags (the bit is *clear*
while the condition holds). A :class:`Profile` says, for one device model,
how the alarm dword's bits map to device events and which item flags do.

Built-in profiles (:data:`MODELS`); the default one applies to any model not
listed, and to devices whose model is not known:

======================  ====================================  ========  ==============
item                    flag                                  polarity  event
======================  ====================================  ========  ==============
``0xEB`` sub ``0x0089`` extended alarm DWORD, bit 12          low       ``removed``
``0xEB`` sub ``0x0089`` extended alarm DWORD, bit 0           low       ``power_off``
``0xEB`` sub ``0x00C5`` extended status DWORD, bit 6          low       ``vibration``
``0xD0``                user status DWORD, bit 3              high      ``vibration``
======================  ====================================  ========  ==============

These are the items Traccar's ``Jt808ProtocolDecoder`` reads as removing,
power cut and vibration, confirmed by captured frames in its tests. Item
``0xEB`` is a container: sub-items of ``WORD length`` (counting the type and
the data), ``WORD type``, data. Some vendors put cell towers or a time-zone
text in ``0xEB`` instead; such an item does not parse as sub-items whose
lengths add up exactly and yields no events.

Models ``G-360P`` and ``G-508P`` use the alarm dword differently: bits 0 and
4 are strap removal, bit 1 is tamper (and bit 0 is *not* SOS).

Every report that carries an active flag gives the event again: the decoder
keeps no state between reports. The ``removed`` and ``tamper`` alerts open
one episode and never clear by themselves, so a repeat adds nothing there.

A configuration file (JSON) adds models or replaces built-in ones::

    {"models": {
        "WB-9": {
            "alarm_bits": {"0": "sos", "16": "removed"},
            "items": [
                {"item": "0xEB", "sub": "0x0089", "bit": 12, "event": "removed",
                 "active_low": true},
                {"item": "0xE8", "bit": 2, "event": "tamper"}
            ],
            "inherit_items": true
        }
    }}

``alarm_bits`` omitted: the gateway's alarm-bit map applies. ``inherit_items``
(default ``true``) keeps the default profile's item flags and adds these.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from devices.errors import GatewayConfigError
from geofence.model import DEVICE_EVENTS

CONTAINER_ITEMS = frozenset({0xEB})
"""Additional-information items that hold vendor sub-items (WORD length, WORD type, data)."""


_Check = tuple[int, int, str, str]


class VendorMapError(GatewayConfigError):
    """A vendor alarm map (configuration file or table entry) is unusable."""


@dataclass(frozen=True, slots=True)
class ItemFlag:
    """One flag of an additional-information item that means a device event.

    Parameters
    ----------
    item : int
        Item id (``0x00``-``0xFF``) in the location report.
    bit : int
        Bit of the item's value (or sub-item's value), read as a big-endian
        unsigned integer; bit 0 is the least significant.
    event : str
        Device event the flag raises (one of ``geofence.model.DEVICE_EVENTS``).
    sub : int or None
        Sub-item type inside a container item (``0xEB``); ``None`` for a plain item.
    active_low : bool
        The condition holds while the bit is clear.
    """

    item: int
    bit: int
    event: str
    sub: int | None = None
    active_low: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.item <= 0xFF:
            raise VendorMapError(f"item 0x{self.item:X} is not a one-byte item id")
        if self.sub is not None and not 0 <= self.sub <= 0xFFFF:
            raise VendorMapError(f"sub-item 0x{self.sub:X} is not a WORD")
        if not 0 <= self.bit < 256:
            raise VendorMapError(f"bit {self.bit} is out of range")
        if self.event not in DEVICE_EVENTS:
            raise VendorMapError(f"{self.event!r} is not a device event "
                                 f"(one of {', '.join(DEVICE_EVENTS)})")

    @property
    def name(self) -> str:
        """Where the flag sits, as the event's ``detail`` names it."""
        where = f"0x{self.item:02X}" if self.sub is None else f"0x{self.item:02X}/0x{self.sub:04X}"
        return f"jt808 item {where} bit {self.bit} {'clear' if self.active_low else 'set'}"


@dataclass(frozen=True, slots=True)
class Profile:
    """How one device model reports events.

    Parameters
    ----------
    alarm_bits : mapping of int to str, or None
        Alarm-dword bit -> device event; ``None`` keeps the caller's map
        (``devices.jt808.ALARM_EVENTS`` unless configured otherwise).
    items : tuple of ItemFlag
        Flags of additional-information items.
    """

    alarm_bits: Mapping[int, str] | None = None
    items: tuple[ItemFlag, ...] = ()
    item_ids: frozenset[int] = field(init=False, default=frozenset())
    """Ids of the items :attr:`items` reads (a report without them raises nothing)."""
    _plain: dict[int, tuple[_Check, ...]] = field(init=False, repr=False, compare=False,
                                                  default_factory=dict)
    _nested: dict[int, dict[int, tuple[_Check, ...]]] = field(
        init=False, repr=False, compare=False, default_factory=dict)
    _memo: dict[tuple[int, bytes], list[tuple[str, str]]] = field(
        init=False, repr=False, compare=False, default_factory=dict)
    """Events of recently seen item values (a wristband repeats its items report after report)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "item_ids", frozenset(f.item for f in self.items))
        for f in self.items:  # per item (and sub-item): (bit, bit value that raises, event, detail)
            check = (f.bit, 0 if f.active_low else 1, f.event, f.name)
            if f.sub is None:
                self._plain[f.item] = (*self._plain.get(f.item, ()), check)
            else:
                subs = self._nested.setdefault(f.item, {})
                subs[f.sub] = (*subs.get(f.sub, ()), check)
        for bit, name in (self.alarm_bits or {}).items():
            if not 0 <= bit < 32:
                raise VendorMapError(f"alarm bit {bit} is not a bit of the alarm DWORD")
            if name not in DEVICE_EVENTS:
                raise VendorMapError(f"{name!r} is not a device event")


DEFAULT_ITEMS: tuple[ItemFlag, ...] = (
    ItemFlag(0xEB, 12, "removed", sub=0x0089, active_low=True),
    ItemFlag(0xEB, 0, "power_off", sub=0x0089, active_low=True),
    ItemFlag(0xEB, 6, "vibration", sub=0x00C5, active_low=True),
    ItemFlag(0xD0, 3, "vibration"),
)
"""Item flags of the default profile (see the module docstring)."""

DEFAULT = Profile(items=DEFAULT_ITEMS)
"""The profile of a device whose model is unknown or not listed."""

_STRAP_DWORD = Profile(alarm_bits={0: "removed", 4: "removed", 1: "tamper"}, items=DEFAULT_ITEMS)

MODELS: Mapping[str, Profile] = {"G-360P": _STRAP_DWORD, "G-508P": _STRAP_DWORD}
"""Built-in profiles by device model (as provisioned); others use :data:`DEFAULT`."""


def profile_of(model: str | None, models: Mapping[str, Profile] = MODELS) -> Profile:
    """The profile of ``model``: its entry in ``models``, else :data:`DEFAULT` (or ``models[""]``)."""
    if model is not None:
        found = models.get(model)
        if found is not None:
            return found
    return models.get("", DEFAULT)


def sub_items(value: bytes) -> dict[int, bytes] | None:
    """Sub-items of a container item, or ``None`` when ``value`` is not laid out as sub-items.

    Each sub-item is ``WORD length, WORD type, data`` with ``length`` counting
    the type and the data; the sub-items must fill ``value`` exactly.

    Examples
    --------
    >>> sub_items(bytes.fromhex("00060089ffffefff0004002d0fa5"))
    {137: b'\\xff\\xff\\xef\\xff', 45: b'\\x0f\\xa5'}
    >>> sub_items(bytes.fromhex("5554432b30383a3030")) is None  # a time-zone text
    True
    """
    out: dict[int, bytes] = {}
    pos, n = 0, len(value)
    while pos < n:
        if pos + 4 > n:
            return None
        size = value[pos] << 8 | value[pos + 1]
        if size < 2 or pos + 2 + size > n:
            return None
        out.setdefault(value[pos + 2] << 8 | value[pos + 3], value[pos + 4:pos + 2 + size])
        pos += 2 + size
    return out


def item_events(items: Iterable[tuple[int, bytes]], profile: Profile = DEFAULT
                ) -> list[tuple[str, str]]:
    """Device events raised by a report's additional-information items.

    Parameters
    ----------
    items : iterable of (int, bytes)
        ``(item id, value)`` pairs as they appear in the report.
    profile : Profile
        The device model's profile.

    Returns
    -------
    list of (str, str)
        ``(event, detail)``, each event once (its first flag in report order).
        A flag whose value is shorter than its bit is not read; of an item
        repeated in one report, the first counts.

    Examples
    --------
    >>> item_events([(0xEB, bytes.fromhex("00060089ffffefff"))])
    [('removed', 'jt808 item 0xEB/0x0089 bit 12 clear')]
    """
    wanted = profile.item_ids
    if not wanted:
        return []
    memo = profile._memo
    out: list[tuple[str, str]] = []
    seen: list[int] = []
    for tid, value in items:
        if tid not in wanted or tid in seen:  # the first of a repeated item counts
            continue
        seen.append(tid)
        key = (tid, value)
        found = memo.get(key)
        if found is None:
            found = _item_events(profile, tid, value)
            if len(memo) >= 4096:
                memo.clear()
            memo[key] = found
        for event, detail in found:
            if all(e != event for e, _ in out):
                out.append((event, detail))
    return out


def _item_events(profile: Profile, tid: int, value: bytes) -> list[tuple[str, str]]:
    """Events of one item's value under ``profile``, each once."""
    out: list[tuple[str, str]] = []
    checks = profile._plain.get(tid)
    if checks is not None:
        _check(value, checks, out)
    subs = profile._nested.get(tid)
    if subs is not None:
        parsed = sub_items(value)
        if parsed:
            for sub, sub_checks in subs.items():
                raw = parsed.get(sub)
                if raw is not None:
                    _check(raw, sub_checks, out)
    return out


def _check(raw: bytes, checks: tuple[_Check, ...], out: list[tuple[str, str]]) -> None:
    """Append the events of ``checks`` that ``raw`` (big-endian flags) raises, each event once."""
    value, nbits = int.from_bytes(raw, "big"), len(raw) * 8
    for bit, when, event, detail in checks:
        if bit < nbits and value >> bit & 1 == when and all(e != event for e, _ in out):
            out.append((event, detail))


# --------------------------------------------------------------------------- configuration

_HEX_OR_INT = re.compile(r"^(0[xX][0-9a-fA-F]+|[0-9]+)$")


def _number(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise VendorMapError(f"{what}: {value!r} is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _HEX_OR_INT.match(value.strip()):
        return int(value.strip(), 0)
    raise VendorMapError(f"{what}: {value!r} is not a number (decimal or 0x hex)")


def _flag(spec: Any, where: str) -> ItemFlag:
    if not isinstance(spec, dict):
        raise VendorMapError(f"{where}: an item flag is an object")
    unknown = set(spec) - {"item", "sub", "bit", "event", "active_low"}
    if unknown:
        raise VendorMapError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    for key in ("item", "bit", "event"):
        if key not in spec:
            raise VendorMapError(f"{where}: {key!r} is missing")
    active_low = spec.get("active_low", False)
    if not isinstance(active_low, bool):
        raise VendorMapError(f"{where}: active_low is true or false")
    if not isinstance(spec["event"], str):
        raise VendorMapError(f"{where}: event is a device event name")
    sub = spec.get("sub")
    try:
        return ItemFlag(_number(spec["item"], f"{where} item"), _number(spec["bit"], f"{where} bit"),
                        spec["event"],
                        sub=None if sub is None else _number(sub, f"{where} sub"),
                        active_low=active_low)
    except VendorMapError as exc:
        raise VendorMapError(f"{where}: {exc}") from None


def parse_models(doc: Any, base: Mapping[str, Profile] = MODELS) -> dict[str, Profile]:
    """Profiles of a parsed configuration document, on top of ``base``.

    Raises
    ------
    VendorMapError
        With the model and field that is wrong.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), dict):
        raise VendorMapError('a vendor map file is an object {"models": {MODEL: {...}}}')
    out = dict(base)
    default_items = profile_of(None, base).items
    for model, spec in doc["models"].items():
        where = f"model {model!r}"
        if not isinstance(spec, dict):
            raise VendorMapError(f"{where}: a model entry is an object")
        unknown = set(spec) - {"alarm_bits", "items", "inherit_items"}
        if unknown:
            raise VendorMapError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        alarm_bits: dict[int, str] | None = None
        if spec.get("alarm_bits") is not None:
            if not isinstance(spec["alarm_bits"], dict):
                raise VendorMapError(f"{where}: alarm_bits is an object {{bit: event}}")
            alarm_bits = {}
            for bit, name in spec["alarm_bits"].items():
                if not isinstance(name, str):
                    raise VendorMapError(f"{where}: alarm bit {bit}: event is a name")
                alarm_bits[_number(bit, f"{where} alarm bit")] = name
        flags = spec.get("items", [])
        if not isinstance(flags, list):
            raise VendorMapError(f"{where}: items is a list")
        inherit = spec.get("inherit_items", True)
        if not isinstance(inherit, bool):
            raise VendorMapError(f"{where}: inherit_items is true or false")
        items: Sequence[ItemFlag] = [_flag(f, f"{where} item {i}") for i, f in enumerate(flags)]
        try:
            out[str(model)] = Profile(alarm_bits, (*(default_items if inherit else ()), *items))
        except VendorMapError as exc:
            raise VendorMapError(f"{where}: {exc}") from None
    return out
