"""Mosquitto password file and ACL for the provisioned MQTT devices.

``wardstream devices mosquitto-config`` writes the production broker's
``passwd`` and ``acl`` from the provisioning file, so the broker admits only
the gateway (read on the telemetry prefix) and each device provisioned for
``mqtt`` (write on its own topic ``<prefix>/<device_id>`` only), and the
gateway's ``device_mismatch`` check has an authenticated topic to bind to.

Passwords are stored in Mosquitto's own format (``$7$``: PBKDF2-HMAC-SHA512,
101 iterations, 12-byte salt), which ``mosquitto_passwd`` also writes. A
device that has no broker entry yet is issued a new secret: its provisioning
hash is replaced so the gateway and the broker agree, and the secret is
printed once.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import Mapping

from devices import provisioning as prov

ITERATIONS = 101
TOPIC_PREFIX = "wardstream/telemetry"


def mosquitto_hash(password: str, salt: bytes | None = None) -> str:
    """A Mosquitto ``$7$`` password hash of ``password``."""
    salt = secrets.token_bytes(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS)
    return (f"$7${ITERATIONS}${base64.b64encode(salt).decode()}"
            f"${base64.b64encode(digest).decode()}")


def parse_passwd(text: str) -> dict[str, str]:
    """``user -> hash`` of a Mosquitto password file."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        user, sep, stored = line.strip().partition(":")
        if sep and user and not user.startswith("#"):
            out[user] = stored
    return out


def render_passwd(entries: Mapping[str, str]) -> str:
    return "".join(f"{user}:{stored}\n" for user, stored in sorted(entries.items()))


def render_acl(gateway_user: str, devices: list[str], prefix: str = TOPIC_PREFIX) -> str:
    """The ACL: the gateway reads ``prefix/#``; each device writes only ``prefix/<id>``."""
    lines = ["# written by wardstream devices mosquitto-config; do not edit",
             f"user {gateway_user}", f"topic read {prefix}/#", ""]
    for dev in sorted(devices):
        lines += [f"user {dev}", f"topic write {prefix}/{dev}", ""]
    return "\n".join(lines)


def build(book: prov.Provisioning, existing: Mapping[str, str], gateway_user: str,
          gateway_password: str, prefix: str = TOPIC_PREFIX
          ) -> tuple[str, str, dict[str, str]]:
    """(passwd text, acl text, newly issued secrets by device); updates ``book`` in place.

    Devices already in ``existing`` keep their broker entry; devices no longer
    provisioned for ``mqtt`` are dropped; the gateway's entry is rewritten.
    """
    devices = sorted(d.device_id for d in book if d.protocol == "mqtt")
    if gateway_user in devices:
        raise prov.ProvisioningError(f"device {gateway_user!r} has the gateway's MQTT user name")
    bad = [d for d in devices if any(c in d for c in "/#+: \t")]
    if bad:
        raise prov.ProvisioningError(f"device ids {bad} cannot be MQTT users or topic levels")
    entries = {gateway_user: mosquitto_hash(gateway_password)}
    issued: dict[str, str] = {}
    for dev in devices:
        if dev in existing:
            entries[dev] = existing[dev]
            continue
        device = book.get(dev)
        assert device is not None
        device, secret = prov.with_secret(device)
        book.add(device)
        entries[dev] = mosquitto_hash(secret)
        issued[dev] = secret
    return render_passwd(entries), render_acl(gateway_user, devices, prefix), issued


def write_private(path: str, text: str) -> None:
    """Write ``text`` owner-only (0600), atomically."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
