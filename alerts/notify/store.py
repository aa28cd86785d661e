"""PostgreSQL side of notifications: policies, duty rosters, the delivery log.

Every read and write that an operator makes is limited in SQL to the
caller's jurisdiction prefix (``LIKE scope || '%'``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from alerts.notify.policy import Policy, Shift, Target
from geofence.model import format_ts

# ------------------------------------------------------------------ notifier side


async def candidate_policies(conn: asyncpg.Connection, jurisdiction: str) -> list[Policy]:
    """Enabled policies whose prefix covers ``jurisdiction``."""
    rows = await conn.fetch(
        "SELECT * FROM notify_policies WHERE enabled AND $1 LIKE jurisdiction_prefix || '%'"
        " ORDER BY policy_id", jurisdiction)
    return [Policy(policy_id=r["policy_id"], jurisdiction_prefix=r["jurisdiction_prefix"],
                   channel=r["channel"], recipient=r["recipient"], tier=r["tier"],
                   events=tuple(r["events"]),
                   severities=None if r["severities"] is None else tuple(r["severities"]),
                   kinds=None if r["kinds"] is None else tuple(r["kinds"]),
                   quiet_start=r["quiet_start"], quiet_end=r["quiet_end"],
                   quiet_tz=r["quiet_tz"]) for r in rows]


async def shifts_at(conn: asyncpg.Connection, jurisdictions: Sequence[str], at: datetime) -> list[Shift]:
    """Duty shifts of these jurisdictions covering ``at``."""
    rows = await conn.fetch(
        "SELECT * FROM duty_rosters WHERE jurisdiction = ANY($1::text[])"
        " AND starts_at <= $2 AND ends_at > $2 ORDER BY starts_at, shift_id", list(jurisdictions), at)
    return [Shift(r["jurisdiction"], r["officer"], r["starts_at"].timestamp(),
                  r["ends_at"].timestamp(), dict(r["contacts"])) for r in rows]


_PAGE = "alert_id = $1 AND step = $2 AND recipient = $3 AND channel = $4"
"""The delivery log's key, parameters ``$1``-``$4`` (see :func:`_page`)."""


def _page(t: Target) -> tuple[str, str, str, str]:
    return t.alert_id, t.step, t.recipient, t.channel


async def claim(conn: asyncpg.Connection, t: Target, jurisdiction: str,
                severity: str) -> str | None:
    """Take a page before sending it; None when the log says it is done already.

    Otherwise the page is to be sent now, and the row is marked as being
    handed to the channel. A row left ``sending`` by a notifier that stopped
    is taken again: between attempts (``handed_at`` empty) it is simply the
    retry; in the middle of an attempt (``handed_at`` set) the page may have
    arrived already, so the row is marked ``resent``. Returns ``"resend"``
    when the page may reach its receiver twice, else ``"send"``.
    """
    row = await conn.fetchrow(
        "INSERT INTO notify_deliveries AS d (alert_id, step, recipient, channel, jurisdiction,"
        " severity, status, handed_at) VALUES ($1, $2, $3, $4, $5, $6, 'sending', now())"
        " ON CONFLICT (alert_id, step, recipient, channel) DO UPDATE SET last_at = now(),"
        " resent = d.resent OR d.handed_at IS NOT NULL, handed_at = now()"
        " WHERE d.status = 'sending' RETURNING resent",
        *_page(t), jurisdiction, severity)
    return None if row is None else "resend" if row["resent"] else "send"


async def handing(conn: asyncpg.Connection, t: Target, handed: bool, *,
                  repeat: bool = False) -> None:
    """Mark a page as being handed to its channel (before an attempt) or not (after one).

    ``repeat``: the attempt follows one that got no answer in time and may
    have arrived, so the row is marked ``resent``.
    """
    await conn.execute(
        "UPDATE notify_deliveries SET handed_at = CASE WHEN $5 THEN now() END,"
        f" resent = resent OR $6, last_at = now() WHERE {_PAGE} AND status = 'sending'",
        *_page(t), handed, repeat)


async def finish(conn: asyncpg.Connection, t: Target, ok: bool, attempts: int,
                 latency_ms: float, error: str | None) -> None:
    """Record the outcome of a page."""
    await conn.execute(
        "UPDATE notify_deliveries SET status = $5, attempts = attempts + $6, latency_ms = $7,"
        f" error = $8, handed_at = NULL, last_at = now() WHERE {_PAGE}",
        *_page(t), "sent" if ok else "failed", attempts, latency_ms, error)


# ------------------------------------------------------------------ operator side

_POLICY_COLS = ("policy_id, jurisdiction_prefix, severities, kinds, tier, events, channel,"
                " recipient, to_char(quiet_start, 'HH24:MI') AS quiet_start,"
                " to_char(quiet_end, 'HH24:MI') AS quiet_end, quiet_tz, enabled, created_by,"
                " created_at")


def json_row(row: asyncpg.Record) -> dict[str, Any]:
    """A row as JSON data, its times formatted as every API answer formats them."""
    out = dict(row)
    for k, v in out.items():
        if isinstance(v, datetime):
            out[k] = format_ts(int(v.timestamp() * 1000))
    return out


async def list_policies(conn: asyncpg.Connection, scope: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(f"SELECT {_POLICY_COLS} FROM notify_policies"
                            " WHERE jurisdiction_prefix LIKE $1 || '%' ORDER BY policy_id", scope)
    return [json_row(r) for r in rows]


async def add_policy(conn: asyncpg.Connection, body: dict[str, Any], by: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        "INSERT INTO notify_policies (jurisdiction_prefix, severities, kinds, tier, events, channel,"
        " recipient, quiet_start, quiet_end, quiet_tz, created_by)"
        f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {_POLICY_COLS}",
        body["jurisdiction_prefix"], body["severities"], body["kinds"], body["tier"],
        body["events"], body["channel"], body["recipient"], body["quiet_start"],
        body["quiet_end"], body["quiet_tz"], by)
    assert row is not None
    return json_row(row)


async def _delete_in_scope(conn: asyncpg.Connection, table: str, key: str, scoped_by: str,
                           row_id: int, scope: str) -> bool:
    done = await conn.execute(f"DELETE FROM {table} WHERE {key} = $1"
                              f" AND {scoped_by} LIKE $2 || '%'", row_id, scope)
    return bool(done.endswith(" 1"))


async def delete_policy(conn: asyncpg.Connection, policy_id: int, scope: str) -> bool:
    return await _delete_in_scope(conn, "notify_policies", "policy_id", "jurisdiction_prefix",
                                  policy_id, scope)


async def list_shifts(conn: asyncpg.Connection, scope: str, since: datetime | None,
                      until: datetime | None) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM duty_rosters WHERE jurisdiction LIKE $1 || '%'"
        " AND ($2::timestamptz IS NULL OR ends_at > $2) AND ($3::timestamptz IS NULL OR starts_at < $3)"
        " ORDER BY starts_at, shift_id LIMIT 1000", scope, since, until)
    return [json_row(r) for r in rows]


async def add_shift(conn: asyncpg.Connection, jurisdiction: str, officer: str, starts_at: datetime,
                    ends_at: datetime, contacts: dict[str, str], by: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        "INSERT INTO duty_rosters (jurisdiction, officer, starts_at, ends_at, contacts, created_by)"
        " VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
        jurisdiction, officer, starts_at, ends_at, contacts, by)
    assert row is not None
    return json_row(row)


async def delete_shift(conn: asyncpg.Connection, shift_id: int, scope: str) -> bool:
    return await _delete_in_scope(conn, "duty_rosters", "shift_id", "jurisdiction", shift_id,
                                  scope)


async def list_deliveries(conn: asyncpg.Connection, scope: str, alert_id: str | None,
                          status: str | None, limit: int, *,
                          resent: bool | None = None) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM notify_deliveries WHERE jurisdiction LIKE $1 || '%'"
        " AND ($2::text IS NULL OR alert_id = $2) AND ($3::text IS NULL OR status = $3)"
        " AND ($5::boolean IS NULL OR resent = $5)"
        " ORDER BY last_at DESC LIMIT $4", scope, alert_id, status, limit, resent)
    return [json_row(r) for r in rows]
