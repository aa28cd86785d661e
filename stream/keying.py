"""How telemetry is keyed and routed to partitions.

A person's data must reach one partition, in order, so that one worker owns
that person's state. The Kafka key of a telemetry message is
``geofence.engine.partition_keys(orders)[device_id]``: every device of a
person maps to the same key, and persons linked by a ``no_contact`` rule form
a group that shares one key (the group's smallest person_id), so the two
persons' latest fixes meet in one engine. The partition is Kafka's default
for a key: ``murmur2(key) & 0x7fffffff % partitions`` (the Java client's and
aiokafka's default partitioner), so any producer that keys the same way lands
on the same partition.

An envelope (a JSON array) may carry messages of several keys when they hash
to the same partition; :class:`Router` groups messages that way and the
publisher produces each envelope to its partition explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from aiokafka.partitioner import murmur2

from geofence.model import Order, Telemetry


def partition_of(key: str, partitions: int) -> int:
    """Kafka's default partition for a string key (murmur2, as the Java client)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def _partition_keys(orders: Sequence[Order]) -> tuple[dict[str, str], dict[str, str]]:
    from geofence.engine import partition_keys, person_partition_keys

    return partition_keys(orders), person_partition_keys(orders)


@dataclass(frozen=True)
class Router:
    """Key and partition of every device and person under the current orders.

    Parameters
    ----------
    orders : sequence of Order
        All active orders (the whole caseload, not one partition's share).
    partitions : int
        Partition count of ``wardstream.telemetry``.
    """

    orders: tuple[Order, ...]
    partitions: int
    device_key: dict[str, str]
    person_key: dict[str, str]
    device_person: dict[str, str]
    device_home: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    """Partition of each known device, filled as devices are seen."""

    @classmethod
    def build(cls, orders: Iterable[Order], partitions: int) -> Router:
        """Compute keys for ``orders`` with the engine's grouping."""
        tup = tuple(orders)
        device_key, person_key = _partition_keys(tup)
        device_person = {d: o.person_id for o in tup for d in o.devices}
        return cls(tup, partitions, device_key, person_key, device_person)

    def key_of(self, msg: Telemetry) -> str:
        """The Kafka key of one message: :func:`geofence.engine.message_key`
        (unknown devices are keyed by device id, facility video hits by camera)."""
        from geofence.engine import message_key

        return message_key(msg, self.device_key, self.person_key)

    def home_of_device(self, device_id: str) -> int | None:
        """Partition owning a device's person (``None``: no order names it); cached."""
        home = self.device_home.get(device_id)
        if home is None:
            key = self.device_key.get(device_id)
            if key is None:
                return None
            home = self.device_home[device_id] = partition_of(key, self.partitions)
        return home

    def partition_of_person(self, person_id: str) -> int:
        """Partition that owns a person's state."""
        return partition_of(self.person_key.get(person_id, person_id), self.partitions)

    def orders_for(self, partition: int) -> list[Order]:
        """The orders whose persons live on ``partition``."""
        return [o for o in self.orders if self.partition_of_person(o.person_id) == partition]

    def partition_of_message(self, msg: Telemetry) -> int:
        """Partition a message must be produced to."""
        return partition_of(self.key_of(msg), self.partitions)

    def group(self, messages: Iterable[Telemetry]) -> dict[int, list[Telemetry]]:
        """Messages grouped by target partition, each group in input order."""
        out: dict[int, list[Telemetry]] = {}
        for m in messages:
            out.setdefault(self.partition_of_message(m), []).append(m)
        return out
