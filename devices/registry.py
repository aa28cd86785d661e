"""Device registry: which devices may send, under which partition key.

Pure (no I/O). A device is accepted only while an active supervision order
names it (or an explicit registry entry does). JT/T 808 authentication codes
are an HMAC of the device id under the gateway secret, so a terminal that
registered once authenticates again after a reconnect or a gateway restart
without a database, and a code cannot be guessed for another device.

The Kafka message key of a device's telemetry comes from :func:`partition_keys`
in one place: it uses ``geofence.engine.partition_keys`` (persons linked by
no_contact rules share a key) when that module is present, and otherwise the
person id of the order naming the device.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence

from devices.provisioning import ProvisionedDevice, Provisioning
from geofence.model import Order


def _engine_partition_keys() -> Callable[[Sequence[Order]], dict[str, str]] | None:
    try:
        from geofence.engine import partition_keys  # type: ignore[attr-defined]
    except ImportError:
        return None
    return partition_keys  # type: ignore[no-any-return]


def partition_keys(orders: Sequence[Order]) -> dict[str, str]:
    """``device_id -> Kafka key``: the engine's grouping when available, else person_id."""
    engine = _engine_partition_keys()
    if engine is not None:
        return dict(engine(orders))
    return {d: o.person_id for o in orders for d in o.devices}


class Registry:
    """Devices the gateway accepts, built from orders (and optional extra ids).

    Parameters
    ----------
    orders : sequence of Order
        Parsed orders (``geofence.model.parse_orders``).
    secret : bytes
        Key of the JT/T 808 authentication-code HMAC.
    extra_devices : iterable of (device_id, key)
        Registry entries accepted without an order (test rigs, spare units);
        their telemetry is keyed by ``key``.
    provisioning : Provisioning or None
        The provisioned devices: when given, a device must also be
        provisioned for the protocol it speaks (and connect from one of its
        networks); ``None`` accepts any device an order names (a gateway
        started with ``--allow-unprovisioned``).
    """

    def __init__(self, orders: Sequence[Order], secret: bytes,
                 extra_devices: Iterable[tuple[str, str]] = (),
                 provisioning: Provisioning | None = None) -> None:
        self._secret = secret
        self.provisioning = provisioning
        self._extra = dict(extra_devices)
        self._models: dict[str, str] = {}
        """device_id -> device model, for devices provisioned with one."""
        self.version = 0
        """Bumped whenever the orders change (lets callers cache keys)."""
        self._orders: dict[str, Order] = {}
        self.set_orders(orders)

    # -- orders
    def set_orders(self, orders: Sequence[Order]) -> None:
        """Replace every order."""
        self._orders = {o.person_id: o for o in orders}
        self._rebuild()

    def upsert_order(self, order: Order) -> None:
        """Add or replace one order (hot reload from ``wardstream.orders``)."""
        self._orders[order.person_id] = order
        self._rebuild()

    def remove_person(self, person_id: str) -> None:
        """Drop a person's order (a tombstone on ``wardstream.orders``)."""
        if self._orders.pop(person_id, None) is not None:
            self._rebuild()

    def _rebuild(self) -> None:
        self.version += 1
        orders = list(self._orders.values())
        self._by_device = {d: o for o in orders for d in o.devices}
        self._windows = {d: (o.valid_from_ms(), o.valid_until_ms())
                         for o in orders for d in o.devices}
        self._keys = partition_keys(orders)

    # -- lookups
    def is_accepted(self, device_id: str, now_ms: int) -> bool:
        """Whether ``device_id`` may send now (an active order or a registry entry)."""
        window = self._windows.get(device_id)  # checked once per frame: keep it a lookup
        if window is not None and window[0] <= now_ms < window[1]:
            return True
        return device_id in self._extra

    def person_of(self, device_id: str) -> str | None:
        """The person wearing ``device_id``, if an order names it."""
        order = self._by_device.get(device_id)
        return order.person_id if order is not None else None

    def model_of(self, device_id: str) -> str | None:
        """The device model provisioned for ``device_id`` (picks its vendor alarm map), if any."""
        return self._models.get(device_id)

    def key_of(self, device_id: str) -> str:
        """Kafka key for the device's telemetry."""
        key = self._keys.get(device_id)
        if key is not None:
            return key
        return self._extra.get(device_id, device_id)

    def __len__(self) -> int:
        return len(self._by_device) + len(self._extra)

    # -- provisioning
    def refusal(self, device_id: str, protocol: str, source_ip: str) -> tuple[str, str] | None:
        """Why ``device_id`` may not speak ``protocol`` from ``source_ip``: (reason, detail), or None.

        Reasons: ``not_provisioned`` (no entry for this protocol) and
        ``source_refused`` (the source is outside the device's networks).
        """
        prov = self.provisioning
        if prov is None:
            return None
        dev = prov.for_protocol(device_id, protocol)
        if dev is None:
            return ("not_provisioned",
                    f"{protocol} device {device_id!r} is not provisioned for {protocol}")
        if not dev.allows_source(source_ip):
            return ("source_refused", f"{protocol} device {device_id!r} connected from "
                    f"{source_ip or 'an unknown address'}, outside its provisioned networks")
        return None

    def provisioned(self, device_id: str) -> ProvisionedDevice | None:
        """The device's provisioning entry (None without provisioning or entry)."""
        return self.provisioning.get(device_id) if self.provisioning is not None else None

    # -- JT/T 808 authentication
    def auth_code(self, device_id: str) -> str:
        """The authentication code handed out in 0x8100 for ``device_id``."""
        return hmac.new(self._secret, device_id.encode(), hashlib.sha256).hexdigest()[:16]

    def check_auth(self, device_id: str, code: str) -> bool:
        """Whether ``code`` is the device's authentication code."""
        return hmac.compare_digest(self.auth_code(device_id), code.strip())
