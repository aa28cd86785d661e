"""Daily report, track export and district names: figures, scope in SQL, audit, streaming."""

from __future__ import annotations

import csv
import io
import tracemalloc
from typing import Any

from alerts_testkit import T0, record

from alerts.db import utc
from alerts.tracks import TrackStore
from geofence.model import Fix, format_ts

ORDER = {"person_id": "P-1", "devices": ["WB-1"], "jurisdiction": "320102",
         "rules": [{"id": "r1", "type": "exclusion", "zone": "Z-1"}]}
ORDER_QUIET = {"person_id": "P-3", "devices": ["WB-3"], "jurisdiction": "320102",
               "rules": [{"id": "r1", "type": "signal_loss", "after_s": 900}]}
ORDER_OTHER = {"person_id": "P-2", "devices": ["WB-2"], "jurisdiction": "320104",
               "rules": [{"id": "r1", "type": "signal_loss", "after_s": 900}]}
DAY_MS = 86_400_000


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def seeded(make_api: Any) -> tuple[Any, dict[str, str]]:
    api = await make_api()
    tokens = {"admin": await api.user("admin", "admin", ""),
              "county": await api.user("county", "operator", "320102"),
              "city": await api.user("city", "supervisor", "3201")}
    for order in (ORDER, ORDER_QUIET, ORDER_OTHER):
        resp = await api.client.put(f"/api/orders/{order['person_id']}", json=order,
                                    headers=bearer(tokens["admin"]))
        assert resp.status == 201, await resp.text()
    # T0 is 22:03 in Shanghai on 2026-11-22; T0 - 23 h is the day before there
    await api.apply(
        record(alert_id="A-1", person_id="P-1", jurisdiction="320102"),
        record(alert_id="A-2", person_id="P-1", jurisdiction="320102", kind="curfew_violated",
               rule_id="r2", severity="orange", opened_at=T0 - 3_600_000),
        record(alert_id="A-3", person_id="P-1", jurisdiction="320102", kind="exclusion_entered",
               severity="yellow", opened_at=T0 - 7_200_000),
        record(alert_id="A-old", person_id="P-1", jurisdiction="320102", opened_at=T0 - 23 * 3_600_000),
        record(alert_id="B-1", person_id="P-2", jurisdiction="320104", kind="signal_lost",
               rule_id="r1"))
    async with api.pool.acquire() as conn:
        await TrackStore().write(conn, [Fix(device_id="WB-1", ts=T0 - 60_000, lat=32.05, lon=118.79),
                                        Fix(device_id="WB-3", ts=T0 - 3_600_000, lat=32.05, lon=118.79)],
                                 api.clock())
    h = bearer(tokens["county"])
    assert (await api.client.post("/api/alerts/A-2/ack", headers=h)).status == 200
    api.clock.advance(120)
    assert (await api.client.post("/api/alerts/A-2/resolve", json={"note": "home"}, headers=h)).status == 200
    return api, tokens


async def test_daily_report_counts_one_local_day_of_one_jurisdiction(make_api: Any) -> None:
    api, tok = await seeded(make_api)
    resp = await api.client.get("/api/reports/daily?date=2026-11-22", headers=bearer(tok["county"]))
    assert resp.status == 200, await resp.text()
    r = await resp.json()
    assert (r["jurisdiction"], r["jurisdiction_name"], r["timezone"]) == ("320102", "玄武区", "Asia/Shanghai")
    assert r["from"] == "2026-11-22T00:00:00+08:00"
    kinds = {k["kind"]: k for k in r["by_kind"]}
    # A-old opened on the 21st in Shanghai, B-1 lies in another district
    assert set(kinds) == {"exclusion_entered", "curfew_violated"}
    assert (kinds["exclusion_entered"]["red"], kinds["exclusion_entered"]["yellow"],
            kinds["exclusion_entered"]["total"]) == (1, 1, 2)
    orange = next(x for x in r["response"] if x["severity"] == "orange")
    assert orange["alerts"] == 1 and orange["to_resolve_s"] is not None
    assert orange["to_resolve_s"] - orange["to_acknowledge_s"] == 120.0
    assert r["persons_by_risk"] == {"red": 1, "orange": 0, "yellow": 0, "blue": 1}
    # WB-3 last reported an hour before now, WB-1 a minute before: only WB-3 is offline
    assert [d["device_id"] for d in r["devices_offline"]] == ["WB-3"]
    assert r["devices_offline"][0]["last_seen"] == format_ts(T0 - 3_600_000)

    # the previous day holds only A-old
    prev = await (await api.client.get("/api/reports/daily?date=2026-11-21",
                                       headers=bearer(tok["county"]))).json()
    assert [(k["kind"], k["total"]) for k in prev["by_kind"]] == [("exclusion_entered", 1)]


async def test_daily_report_csv_scope_and_audit(make_api: Any) -> None:
    api, tok = await seeded(make_api)
    resp = await api.client.get("/api/reports/daily?date=2026-11-22&jurisdiction=3201&format=csv",
                                headers=bearer(tok["city"]))
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert 'filename="report-3201-2026-11-22.csv"' in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(await resp.text())))
    assert rows[0] == ["section", "item", "severity", "value"]
    assert ["report", "jurisdiction_name", "", "南京市"] in rows
    assert ["alerts_by_kind", "signal_lost", "red", "1"] in rows  # the city sees 320104 too
    assert ["alerts_by_kind", "exclusion_entered", "red", "1"] in rows
    # outside the caller's scope: refused, and the refusal is audited
    resp = await api.client.get("/api/reports/daily?jurisdiction=320104", headers=bearer(tok["county"]))
    assert resp.status == 403
    for bad in ("date=2026-02-30", "date=yesterday", "tz=Mars/Olympus", "tz=../../etc/passwd",
                "tz=" + "A" * 300, "tz=%C3%AD%F0%98%A2%BF", "format=pdf", "jurisdiction=32%25"):
        resp = await api.client.get(f"/api/reports/daily?{bad}", headers=bearer(tok["county"]))
        assert resp.status == 400, bad
    assert (await api.client.get("/api/reports/daily")).status == 401
    async with api.pool.acquire() as conn:
        actions = [(r["operator"], r["action"], r["target"]) for r in await conn.fetch(
            "SELECT operator, action, target FROM audit_log ORDER BY id")]
    assert ("city", "report.daily", "3201") in actions
    assert ("county", "access.denied", None) in actions


async def test_district_names_come_from_the_builtin_table_and_imported_zones(make_api: Any) -> None:
    api, tok = await seeded(make_api)
    body = await (await api.client.get("/api/districts", headers=bearer(tok["city"]))).json()
    assert body["names"]["3201"] == "南京市" and body["names"]["320102"] == "玄武区"
    assert "32" not in body["names"]  # above the caller's scope
    district = {"type": "Feature", "properties": {"name": "测试区", "code": "320199",
                                                  "category": "district", "jurisdiction": "320199"},
                "geometry": {"type": "Polygon", "coordinates": [[[118.7, 32.0], [118.8, 32.0],
                                                                 [118.8, 32.1], [118.7, 32.0]]]}}
    resp = await api.client.put("/api/zones/district-320199", json=district, headers=bearer(tok["admin"]))
    assert resp.status == 201, await resp.text()
    body = await (await api.client.get("/api/districts", headers=bearer(tok["city"]))).json()
    assert body["names"]["320199"] == "测试区"
    county = await (await api.client.get("/api/districts", headers=bearer(tok["county"]))).json()
    assert county["names"] == {"320102": "玄武区"}  # scoped: neither 320199 nor the city
    assert (await api.client.get("/api/districts?prefix=3202", headers=bearer(tok["county"]))).status == 403


async def test_track_export_is_scoped_audited_and_takes_dates(make_api: Any) -> None:
    api, tok = await seeded(make_api)
    h = bearer(tok["county"])
    resp = await api.client.get("/api/persons/P-1/track/export?from=2026-11-22&to=2026-11-22", headers=h)
    assert resp.status == 200, await resp.text()
    assert 'filename="track-P-1.csv"' in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [(r["device_id"], r["ts"], r["valid"]) for r in rows] == [
        ("WB-1", format_ts(T0 - 60_000), "True")]
    # a day without fixes gives the header alone
    resp = await api.client.get("/api/persons/P-1/track/export?from=2026-11-20&to=2026-11-20", headers=h)
    assert (await resp.text()).splitlines() == [
        "ts,device_id,lat,lon,accuracy_m,valid,speed_mps,heading_deg,battery_pct"]
    assert (await api.client.get("/api/persons/P-2/track/export", headers=h)).status == 403
    assert (await api.client.get("/api/persons/P-9/track/export", headers=h)).status == 404
    resp = await api.client.get("/api/persons/P-1/track/export?from=2026-11-22&to=2026-11-01", headers=h)
    assert resp.status == 400
    async with api.pool.acquire() as conn:
        rows = await conn.fetch("SELECT action, target, detail FROM audit_log"
                                " WHERE action LIKE 'track.export%' ORDER BY id")
    assert [(r["action"], r["target"]) for r in rows] == [
        ("track.export", "P-1"), ("track.export", "P-1"), ("track.export_denied", "P-2")]
    assert rows[0]["detail"] == {"from": "2026-11-21T16:00:00Z", "to": "2026-11-22T16:00:00Z"}


async def test_a_90_day_export_streams_without_holding_the_history(make_api: Any) -> None:
    """A whole 90-day history comes out complete, in time order, chunked, and the server
    never holds more than a batch: its peak memory is a fraction of what reading the same
    history at once takes (measured in the same run)."""
    api, tok = await seeded(make_api)
    step = 180_000  # a fix every 3 minutes: 480 a day, 43 200 in 90 days
    start = T0 - 90 * DAY_MS
    store = TrackStore(retention_days=120)
    async with api.pool.acquire() as conn:
        batch: list[Fix] = []
        for i in range(90 * DAY_MS // step):
            batch.append(Fix(device_id="WB-1", ts=start + i * step, lat=32.0 + (i % 100) * 1e-4,
                             lon=118.7, accuracy_m=8.0))
            if len(batch) == 10_000:
                await store.write(conn, batch, api.clock())
                batch = []
        await store.write(conn, batch, api.clock())
    total = 90 * DAY_MS // step + 1  # and the seeded fix a minute before now

    async with api.pool.acquire() as conn:
        tracemalloc.start()
        fixes = await TrackStore.read(conn, "P-1", "320102", utc(start), utc(T0), limit=100_000)
        _, baseline_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert len(fixes) == total
    del fixes

    tracemalloc.start()
    resp = await api.client.get(f"/api/persons/P-1/track/export?from={start}&to={T0}",
                                headers=bearer(tok["county"]))
    assert resp.status == 200
    lines, first, last, tail = 0, b"", b"", b""
    async for chunk in resp.content.iter_chunked(64 * 1024):
        data = tail + chunk
        parts = data.split(b"\r\n")
        tail = parts.pop()
        for line in parts:
            lines += 1
            if lines == 2:
                first = line
            last = line
    _, export_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert resp.headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in resp.headers
    assert lines == total + 1  # the header and every fix, once
    assert first.startswith(format_ts(start).encode()) and last.startswith(format_ts(T0 - 60_000).encode())
    ratio = export_peak / baseline_peak
    print(f"90-day export: {total} fixes; peak {export_peak / 1e6:.1f} MB streamed vs"
          f" {baseline_peak / 1e6:.1f} MB read at once (ratio {ratio:.2f})")
    assert ratio < 0.25
