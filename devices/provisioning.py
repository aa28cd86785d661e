"""Provisioned devices: who may connect, with which identity and from where.

Pure (no sockets, no Kafka): a :class:`Provisioning` is built from a parsed
file (a JSON array or the same structure in YAML) and answers the
gateway's questions -- is this device provisioned, for this protocol, from
this source address, with this secret or with these JT/T 808 registration
fields? The only I/O is :func:`load` / :func:`save`, which read and write
the file (written owner-only, 0600).

One entry::

    {"device_id": "WB-1042", "protocol": "jt808", "model": "WB-1",
     "secret_hash": "sha256:<salt hex>:<digest hex>",
     "jt808": {"province": 32, "city": 100, "manufacturer": "WSTRM",
               "terminal_model": "WB-1", "terminal_id": "0000001", "plate": ""},
     "networks": ["10.20.0.0/16"]}

``secret_hash`` is an HMAC-SHA256 of the device's secret keyed by a random
per-device salt; secrets are generated (32 random bytes, URL-safe base64),
so a salted hash cannot be reversed by guessing, and a secret is verified
in constant time. The secret itself is never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from devices.errors import DeviceError

PROTOCOLS: tuple[str, ...] = ("jt808", "watch", "gt06", "h02", "osmand", "mqtt", "checkin")
"""Protocols a device can be provisioned for."""

HASH_SCHEME = "sha256"
_FIELDS = frozenset({"device_id", "protocol", "model", "secret_hash", "jt808", "networks"})
_JT808_FIELDS = ("province", "city", "manufacturer", "terminal_model", "terminal_id", "plate")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProvisioningError(DeviceError):
    """A provisioning file or entry is unusable; the message says which entry and why."""


def hash_secret(secret: str, salt: bytes | None = None) -> str:
    """The stored form of ``secret``: ``sha256:<salt hex>:<HMAC-SHA256(salt, secret) hex>``."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hmac.new(salt, secret.encode(), hashlib.sha256).hexdigest()
    return f"{HASH_SCHEME}:{salt.hex()}:{digest}"


def verify_secret(secret: str, stored: str) -> bool:
    """Whether ``secret`` matches the stored hash (constant-time comparison)."""
    try:
        scheme, salt_hex, digest = stored.split(":")
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    if scheme != HASH_SCHEME:
        return False
    mine = hmac.new(salt, secret.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(mine, digest)


def new_secret() -> str:
    """A fresh device secret: 32 random bytes, URL-safe base64."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Jt808Identity:
    """JT/T 808 registration fields (0x0100) a terminal must present; ``None`` = not checked."""

    province: int | None = None
    city: int | None = None
    manufacturer: str | None = None
    terminal_model: str | None = None
    terminal_id: str | None = None
    plate: str | None = None

    def mismatches(self, province: int, city: int, manufacturer: str, terminal_model: str,
                   terminal_id: str, plate: str) -> list[str]:
        """Names of the provisioned fields the presented registration does not match."""
        given = {"province": province, "city": city, "manufacturer": manufacturer,
                 "terminal_model": terminal_model, "terminal_id": terminal_id, "plate": plate}
        out = []
        for name in _JT808_FIELDS:
            want = getattr(self, name)
            if want is None:
                continue
            have = given[name]
            if isinstance(want, str):
                if not isinstance(have, str) or have.strip() != want.strip():
                    out.append(name)
            elif have != want:
                out.append(name)
        return out

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _JT808_FIELDS if getattr(self, k) is not None}


@dataclass(frozen=True, slots=True)
class ProvisionedDevice:
    """One provisioned device."""

    device_id: str
    protocol: str
    model: str | None = None
    secret_hash: str | None = None
    jt808: Jt808Identity | None = None
    networks: tuple[Network, ...] = ()

    def allows_source(self, address: str) -> bool:
        """Whether ``address`` is inside the device's networks (no networks: any source)."""
        if not self.networks:
            return True
        return in_networks(address, self.networks)

    def check_secret(self, secret: str) -> bool:
        """Whether ``secret`` is the device's secret (``False`` when it has none)."""
        return self.secret_hash is not None and verify_secret(secret, self.secret_hash)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"device_id": self.device_id, "protocol": self.protocol}
        if self.model is not None:
            out["model"] = self.model
        if self.secret_hash is not None:
            out["secret_hash"] = self.secret_hash
        if self.jt808 is not None:
            out["jt808"] = self.jt808.to_json()
        if self.networks:
            out["networks"] = [str(n) for n in self.networks]
        return out


def parse_networks(items: Iterable[str], where: str = "networks") -> tuple[Network, ...]:
    """CIDR strings to networks; raises :class:`ProvisioningError` naming the bad one."""
    out = []
    for item in items:
        if not isinstance(item, str):
            raise ProvisioningError(f"{where}: {item!r} is not a CIDR string")
        try:
            out.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ProvisioningError(f"{where}: {item!r} is not a network (e.g. 10.0.0.0/8)") from None
    return tuple(out)


def in_networks(address: str, networks: Sequence[Network]) -> bool:
    """Whether the IP ``address`` (an IPv4-mapped IPv6 counts as IPv4) is in ``networks``."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == n.version and ip in n for n in networks)


def _opt_str(entry: Mapping[str, Any], name: str, where: str) -> str | None:
    value = entry.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProvisioningError(f"{where}: `{name}` must be a string")
    return value


def parse_entry(entry: Any, where: str) -> ProvisionedDevice:
    """Validate one entry (already parsed JSON/YAML)."""
    if not isinstance(entry, dict):
        raise ProvisioningError(f"{where}: an entry is an object with device_id and protocol")
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise ProvisioningError(f"{where}: unknown field `{unknown[0]}`")
    dev = entry.get("device_id")
    if not isinstance(dev, str) or not dev.strip():
        raise ProvisioningError(f"{where}: `device_id` must be a non-empty string")
    proto = entry.get("protocol")
    if proto not in PROTOCOLS:
        raise ProvisioningError(f"{where} ({dev}): `protocol` must be one of "
                                f"{', '.join(PROTOCOLS)}, not {proto!r}")
    secret_hash = _opt_str(entry, "secret_hash", where)
    if secret_hash is not None:
        parts = secret_hash.split(":")
        if len(parts) != 3 or parts[0] != HASH_SCHEME or len(parts[2]) != 64:
            raise ProvisioningError(f"{where} ({dev}): `secret_hash` is not "
                                    f"{HASH_SCHEME}:<salt hex>:<digest hex>")
    ident = None
    raw808 = entry.get("jt808")
    if raw808 is not None:
        if proto != "jt808":
            raise ProvisioningError(f"{where} ({dev}): `jt808` fields on a {proto} device")
        if not isinstance(raw808, dict):
            raise ProvisioningError(f"{where} ({dev}): `jt808` must be an object")
        bad = sorted(set(raw808) - set(_JT808_FIELDS))
        if bad:
            raise ProvisioningError(f"{where} ({dev}): unknown jt808 field `{bad[0]}`")
        kw: dict[str, Any] = {}
        for name in ("province", "city"):
            v = raw808.get(name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)
                                  or not 0 <= v <= 0xFFFF):
                raise ProvisioningError(f"{where} ({dev}): jt808 `{name}` must be 0..65535")
            kw[name] = v
        for name in ("manufacturer", "terminal_model", "terminal_id", "plate"):
            kw[name] = _opt_str(raw808, name, f"{where} ({dev}) jt808")
        ident = Jt808Identity(**kw)
    nets = entry.get("networks", [])
    if not isinstance(nets, list):
        raise ProvisioningError(f"{where} ({dev}): `networks` must be a list of CIDRs")
    return ProvisionedDevice(device_id=dev.strip(), protocol=proto,
                             model=_opt_str(entry, "model", where), secret_hash=secret_hash,
                             jt808=ident, networks=parse_networks(nets, f"{where} ({dev})"))


@dataclass
class Provisioning:
    """Provisioned devices by id."""

    devices: dict[str, ProvisionedDevice] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Any, source: str = "provisioning") -> Provisioning:
        """From parsed JSON/YAML (a list of entries)."""
        if data is None:
            data = []
        if not isinstance(data, list):
            raise ProvisioningError(f"{source}: a provisioning file is a list of devices")
        out: dict[str, ProvisionedDevice] = {}
        for i, entry in enumerate(data):
            dev = parse_entry(entry, f"{source}: entry {i}")
            if dev.device_id in out:
                raise ProvisioningError(f"{source}: entry {i}: device {dev.device_id!r} "
                                        "is provisioned twice")
            out[dev.device_id] = dev
        return cls(out)

    @classmethod
    def parse_bytes(cls, raw: bytes, source: str = "provisioning") -> Provisioning:
        """From the bytes of a file (JSON, else YAML)."""
        try:
            data = json.loads(raw) if raw.strip() else []
        except ValueError:
            try:
                import yaml
            except ImportError:  # pragma: no cover - pyyaml is a dependency
                raise ProvisioningError(f"{source}: not valid JSON") from None
            try:
                data = yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                first = str(exc).splitlines()[0] if str(exc) else "syntax error"
                raise ProvisioningError(f"{source}: neither JSON nor YAML: {first}") from None
        return cls.parse(data, source)

    def get(self, device_id: str) -> ProvisionedDevice | None:
        """The device's entry, if provisioned."""
        return self.devices.get(device_id)

    def for_protocol(self, device_id: str, protocol: str) -> ProvisionedDevice | None:
        """The device's entry when it is provisioned for ``protocol``."""
        dev = self.devices.get(device_id)
        return dev if dev is not None and dev.protocol == protocol else None

    def add(self, device: ProvisionedDevice) -> None:
        """Add or replace one device."""
        self.devices[device.device_id] = device

    def remove(self, device_id: str) -> bool:
        """Drop a device; whether it was there."""
        return self.devices.pop(device_id, None) is not None

    def to_json(self) -> list[dict[str, Any]]:
        return [d.to_json() for d in self.devices.values()]

    def __len__(self) -> int:
        return len(self.devices)

    def __iter__(self) -> Iterator[ProvisionedDevice]:
        return iter(self.devices.values())

    def __contains__(self, device_id: object) -> bool:
        return device_id in self.devices


def load(path: str) -> Provisioning:
    """Read a provisioning file; :class:`ProvisioningError` with a one-line reason if unusable."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ProvisioningError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return Provisioning.parse_bytes(raw, path)


def exposed(path: str) -> int | None:
    """The file's mode when group or others may read or write it (else None)."""
    try:
        mode = os.stat(path).st_mode & 0o777
    except OSError:
        return None
    return mode if mode & 0o077 else None


def save(prov: Provisioning, path: str) -> None:
    """Write the file owner-only (0600), atomically (a temporary file renamed over it)."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(prov.to_json(), fh, indent=2)
            fh.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def with_secret(device: ProvisionedDevice, secret: str | None = None) -> tuple[ProvisionedDevice, str]:
    """``device`` with a (new, unless given) secret's hash, and the secret itself."""
    secret = new_secret() if secret is None else secret
    return replace(device, secret_hash=hash_secret(secret)), secret


def for_devices(devices: Mapping[str, str] | Iterable[tuple[str, str]]) -> Provisioning:
    """Provisioning of ``device_id -> protocol`` pairs without secrets or networks.

    For simulators and test rigs, whose devices present no secret; a real
    deployment provisions each device with ``wardstream devices add``.
    """
    pairs = devices.items() if isinstance(devices, Mapping) else devices
    return Provisioning.parse([{"device_id": d, "protocol": p} for d, p in pairs])
