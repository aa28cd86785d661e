"""Partition keys: which worker evaluates a message."""

from __future__ import annotations

from collections.abc import Sequence

from geofence.model import (
    Order,
    Telemetry,
    VideoHit,
)
from geofence.rules import (
    contact_groups,
)


def partition_keys(orders: Sequence[Order]) -> dict[str, str]:
    """device_id -> partition key.

    Persons linked by no_contact rules form a group (a connected component)
    and share one key, the smallest person_id of the group, so that the
    pair's latest fixes meet in one worker.

    Examples
    --------
    >>> from geofence.model import parse_orders
    >>> o = parse_orders('[{"person_id": "B", "devices": ["d2"], "jurisdiction": "320102",'
    ...   ' "rules": [{"id": "r", "type": "no_contact", "person": "A"}]},'
    ...   ' {"person_id": "A", "devices": ["d1"], "jurisdiction": "320102", "rules": []}]')
    >>> partition_keys(o)
    {'d2': 'A', 'd1': 'A'}
    """
    groups = contact_groups(orders)
    return {d: groups[o.person_id] for o in orders for d in o.devices}


def message_key(msg: Telemetry, device_keys: dict[str, str], person_keys: dict[str, str]) -> str:
    """The partition key of one telemetry message.

    ``device_keys`` is :func:`partition_keys`, ``person_keys`` maps a person
    to the same group key (``{p: k for p, k in contact_groups(orders).items()}``,
    see :func:`person_partition_keys`). Fixes and device events go by device
    (an unknown device keys by its own id, so it is dead-lettered once),
    face matches by their person's key, facility video hits by camera id.
    """
    if isinstance(msg, VideoHit):
        if msg.event == "face_match" and msg.person_id is not None:
            return person_keys.get(msg.person_id, msg.person_id)
        return "camera:" + msg.camera_id
    return device_keys.get(msg.device_id, msg.device_id)


def person_partition_keys(orders: Sequence[Order]) -> dict[str, str]:
    """person_id -> partition key (the group key of :func:`partition_keys`)."""
    return contact_groups(orders)
