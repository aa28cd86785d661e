"""The store on the real PostgreSQL: migrations, idempotent records, append-only tables."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from alerts_testkit import T0, FakeClock, record

from alerts.db import load_migrations, migrate
from alerts.escalation import Escalator, Step
from alerts.metrics import Metrics
from alerts.store import apply_records


async def snapshot(conn: asyncpg.Connection) -> tuple[list[tuple], list[tuple]]:
    alerts = await conn.fetch("SELECT * FROM alerts ORDER BY alert_id")
    events = await conn.fetch("SELECT alert_id, event, at, operator, record FROM alert_events ORDER BY id")
    return [tuple(r) for r in alerts], [tuple(r) for r in events]


async def test_migrations_are_versioned_and_applied_once(pool: asyncpg.Pool, schema: str) -> None:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == [m.version for m in load_migrations()]
        assert await migrate(conn, schema) == []  # second start applies nothing
        tables = {r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)}
    assert {"persons", "devices", "orders", "zones", "alerts", "alert_events", "operators",
            "sessions", "audit_log"} <= tables


async def test_replaying_records_changes_nothing(pool: asyncpg.Pool) -> None:
    recs = [record("opened", alert_id="A-1"),
            record("updated", alert_id="A-1", at=T0 + 30_000, updated_at="2026-11-22T14:04:00Z", lat=32.06),
            record("cleared", alert_id="A-1", at=T0 + 90_000, cleared_at="2026-11-22T14:05:00Z",
                   updated_at="2026-11-22T14:05:00Z", status="cleared", lat=32.07),
            record("opened", alert_id="A-2", kind="tamper", rule_id="tamper")]
    async with pool.acquire() as conn:
        assert await apply_records(conn, recs, T0) == [0, 1, 2, 3]
        first = await snapshot(conn)
        assert await apply_records(conn, recs, T0 + 999_000) == []
        assert await apply_records(conn, list(reversed(recs)), T0 + 999_000) == []
        assert await snapshot(conn) == first
        row = await conn.fetchrow("SELECT status, lat, cleared_at FROM alerts WHERE alert_id = 'A-1'")
    assert row["status"] == "cleared" and row["lat"] == 32.07 and row["cleared_at"] is not None


async def test_out_of_order_snapshot_keeps_newest(pool: asyncpg.Pool) -> None:
    newer = record("updated", alert_id="A-9", at=T0 + 60_000, updated_at="2026-11-22T14:04:30Z", lat=1.0)
    older = record("opened", alert_id="A-9", lat=2.0)
    async with pool.acquire() as conn:
        await apply_records(conn, [newer, older], T0)
        assert await conn.fetchval("SELECT lat FROM alerts WHERE alert_id = 'A-9'") == 1.0


async def test_audit_log_and_events_are_append_only(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await apply_records(conn, [record()], T0)
        await conn.execute("INSERT INTO audit_log (at, operator, action) VALUES (now(), 'x', 'y')")
        for sql in ("UPDATE audit_log SET action = 'z'", "DELETE FROM audit_log",
                    "TRUNCATE audit_log", "UPDATE alert_events SET note = 'forged'",
                    "DELETE FROM alert_events"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(sql)
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 1


async def test_escalation_timing_with_controllable_clock(pool: asyncpg.Pool) -> None:
    clock = FakeClock()
    esc = Escalator(pool, clock, Metrics(), {"red": Step(120, 300), "orange": Step(600, 900)})
    async with pool.acquire() as conn:
        await apply_records(conn, [record(alert_id="R1"), record(alert_id="R2"),
                                   record(alert_id="O1", severity="orange"),
                                   record(alert_id="Y1", severity="yellow")], clock())
    clock.advance(119)
    assert await esc.tick() == []
    clock.advance(1)
    first = await esc.tick()
    assert sorted((r["alert"]["alert_id"], r["tier"]) for r in first) == [("R1", "city"), ("R2", "city")]
    assert all(r["event"] == "escalated" and r["at"] == "2026-11-22T14:05:30Z" for r in first)
    assert await esc.tick() == []  # nothing twice
    # acknowledgement stops escalation of R2
    from alerts.store import Principal
    from alerts.workflow import acknowledge

    async with pool.acquire() as conn:
        await acknowledge(conn, Principal(1, "op", "operator", "3201"), "R2", clock(), "test")
    clock.advance(179)
    assert await esc.tick() == []
    clock.advance(1)  # 300 s after first seen
    second = await esc.tick()
    assert [(r["alert"]["alert_id"], r["tier"]) for r in second] == [("R1", "province")]
    clock.advance(300)  # orange reaches 600 s: city; then province at 900
    assert [(r["alert"]["alert_id"], r["tier"]) for r in await esc.tick()] == [("O1", "city")]
    clock.advance(300)
    assert [(r["alert"]["alert_id"], r["tier"]) for r in await esc.tick()] == [("O1", "province")]
    async with pool.acquire() as conn:
        tiers = dict(await conn.fetch("SELECT alert_id, tier FROM alerts"))
        events = await conn.fetchval("SELECT count(*) FROM alert_events WHERE event = 'escalated'")
        outbox = await conn.fetchval("SELECT count(*) FROM outbox")
    assert tiers == {"R1": "province", "R2": "city", "O1": "province", "Y1": "county"}
    assert events == 5 and outbox == 5 + 1  # 5 escalations + the acknowledgement


async def test_escalation_after_downtime_emits_both_steps(pool: asyncpg.Pool) -> None:
    clock = FakeClock()
    esc = Escalator(pool, clock, Metrics(), {"red": Step(120, 300)})
    async with pool.acquire() as conn:
        await apply_records(conn, [record(alert_id="R1")], clock())
    clock.advance(3600)
    assert [r["tier"] for r in await esc.tick()] == ["city", "province"]


def test_escalation_policy_parsing() -> None:
    from alerts.errors import AlertsError
    from alerts.escalation import parse_policy

    assert parse_policy("") == {"red": Step(120, 300)}
    assert parse_policy("red=60/120, orange=600/900") == {"red": Step(60, 120),
                                                           "orange": Step(600, 900)}
    for bad in ("red=300/120", "purple=1/2", "red=1", "red=a/b"):
        with pytest.raises(AlertsError):
            parse_policy(bad)


def test_login_limiter_window() -> None:
    from alerts.auth import LoginLimiter
    from alerts.errors import RateLimitedError

    now = [0.0]
    limiter = LoginLimiter(max_failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        limiter.check("10.0.0.1", "u")
        limiter.failed("10.0.0.1", "u")
    with pytest.raises(RateLimitedError) as info:
        limiter.check("10.0.0.1", "v")  # the address is limited whatever the username
    assert 1 <= info.value.retry_after_s <= 61
    with pytest.raises(RateLimitedError):
        limiter.check("10.0.0.2", "u")  # and the username whatever the address
    now[0] = 61.0
    limiter.check("10.0.0.1", "u")  # the window has passed


async def test_import_files_is_idempotent(database_url: str, tmp_path: Any) -> None:
    import json
    import uuid

    from alerts.cli import import_files
    from stream.settings import Settings

    orders = [{"person_id": "P-0001", "devices": ["WB-000123"], "jurisdiction": "320102",
               "valid_from": "2026-11-01T00:00:00+08:00", "valid_until": "2027-02-01T00:00:00+08:00",
               "rules": [{"id": "r1", "type": "exclusion", "zone": "Z-school-17", "buffer_m": 100}]}]
    zones = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "Z-school-17", "properties": {"radius_m": 150},
         "geometry": {"type": "Point", "coordinates": [118.79, 32.05]}}]}
    (tmp_path / "orders.json").write_text(json.dumps(orders))
    (tmp_path / "zones.geojson").write_text(json.dumps(zones))
    schema = "t_" + uuid.uuid4().hex[:12]
    settings = Settings(database_url=database_url, database_schema=schema)
    try:
        first = await import_files(settings, str(tmp_path / "orders.json"), str(tmp_path / "zones.geojson"))
        again = await import_files(settings, str(tmp_path / "orders.json"), str(tmp_path / "zones.geojson"))
        assert first == (1, 1) and again == (0, 0)
        conn = await asyncpg.connect(database_url, server_settings={"search_path": schema})
        try:
            dev = await conn.fetchrow("SELECT * FROM devices")
            assert dev["person_id"] == "P-0001" and dev["valid_from"].isoformat() == "2026-10-31T16:00:00+00:00"
        finally:
            await conn.close()
    finally:
        conn = await asyncpg.connect(database_url)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
