"""Operator workflow: open -> acknowledged -> resolved.

Each step runs in one transaction that locks the alert row (after checking
the caller's jurisdiction in SQL), applies the new lifecycle record through
the same idempotent function the sink uses (so it becomes an
``alert_events`` row with operator and time), queues the record in the
outbox for ``wardstream.alerts`` and writes the audit row. Resolving a
``tamper`` or ``removed`` alert needs a note: those never clear by
themselves and the note is the officer's account of what was found.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import asyncpg
import msgspec

from alerts.errors import ForbiddenError, WorkflowError
from alerts.store import (
    Principal,
    apply_records,
    audit,
    get_alert_row,
    record_json,
    row_to_alert,
    row_to_json,
)
from geofence.model import AlertRecord, format_ts
from stream.topics import ALERTS as ALERTS_TOPIC

NOTE_REQUIRED = frozenset({"tamper", "removed", "device_conflict", "spoofing_suspected"})
"""Alert kinds resolved only with a note: a device was interfered with or impersonated."""
MAX_NOTE = 2000
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Cc", "Cs", "Mn", "Me", "Zs", "Zl", "Zp"})
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")  # fillers that render as nothing


def has_visible_text(note: str) -> bool:
    """Whether a note has something a reader can see.

    Whitespace, format characters (zero-width space, word joiner, byte
    order mark, direction marks, ...), control characters, lone combining
    marks and the blank filler letters do not count.

    Examples
    --------
    >>> has_visible_text("\u200b\u2060\ufeff "), has_visible_text("strap cut, replaced")
    (False, True)
    """
    return any(not c.isspace() and c not in _BLANK_LETTERS
               and unicodedata.category(c) not in _INVISIBLE_CATEGORIES for c in note)


async def queue_outbox(conn: asyncpg.Connection, topic: str, key: str, value: Any) -> None:
    """Queue one message for publication after the transaction commits."""
    await conn.execute(
        "INSERT INTO outbox (topic, key, value) VALUES ($1, $2, $3::jsonb)",
        topic, key, None if value is None else json.dumps(value),
    )


async def _step(
    conn: asyncpg.Connection, who: Principal, alert_id: str, event: str, now_ms: int,
    note: str | None, remote: str | None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    if not who.can("operator"):
        raise ForbiddenError(f"role {who.role!r} cannot {event[:-1] if event.endswith('d') else event} alerts")
    async with conn.transaction():
        row = await get_alert_row(conn, who, alert_id, for_update=True)
        if row["status"] == "resolved":
            raise WorkflowError("already_resolved", f"alert {alert_id!r} is resolved")
        if event == "acknowledged" and row["status"] == "acknowledged":
            await audit(conn, now_ms, who.username, "alert.ack", alert_id,
                        {"result": "already_acknowledged"}, remote)
            return row_to_json(row), None
        if event == "resolved":
            text = (note or "").strip()
            if len(text) > MAX_NOTE:
                raise WorkflowError("note_too_long", f"a note is at most {MAX_NOTE} characters", 422)
            if not has_visible_text(text):
                text = ""
            if not text and (row["kind"] in NOTE_REQUIRED or row["rule_id"] in NOTE_REQUIRED):
                raise WorkflowError(
                    "note_required", f"resolving a {row['kind']} alert needs a note with"
                    " visible text", 422)
            if not text and row["severity"] == "red" and row["cleared_at"] is None:
                raise WorkflowError(
                    "note_required", "resolving a red alert that has not cleared needs a note"
                    " saying what was done", 422)
            note = text or None
        alert = row_to_alert(row)
        alert = msgspec.structs.replace(alert, status=event)  # type: ignore[arg-type]
        record = AlertRecord(event=event, alert=alert, at=format_ts(now_ms),  # type: ignore[arg-type]
                             operator=who.username, note=note)
        data = record_json(record)
        await apply_records(conn, [data], now_ms)
        await queue_outbox(conn, ALERTS_TOPIC, alert_id, data)
        await audit(conn, now_ms, who.username, "alert.ack" if event == "acknowledged" else
                    "alert.resolve", alert_id, {"note": note} if note else None, remote)
        updated = await get_alert_row(conn, who, alert_id)
    return row_to_json(updated), data


async def acknowledge(
    conn: asyncpg.Connection, who: Principal, alert_id: str, now_ms: int, remote: str | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Acknowledge an alert; returns ``(alert, record or None if nothing changed)``."""
    return await _step(conn, who, alert_id, "acknowledged", now_ms, None, remote)


async def resolve(
    conn: asyncpg.Connection, who: Principal, alert_id: str, note: str | None, now_ms: int,
    remote: str | None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Resolve an alert (note required for tamper/removed); returns ``(alert, record)``."""
    return await _step(conn, who, alert_id, "resolved", now_ms, note, remote)
