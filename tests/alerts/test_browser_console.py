"""The operator's console in headless Chromium: language, map by risk, alert detail,
a confirmed resolution, drill-down, a phone-supervised person's check-ins, the daily
report and a track export; leave requests decided in the console and persons on
leave marked.

Screenshots of each step are kept in the test's tmp directory. The page may
request nothing but the server it came from.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alerts_testkit import record

from alerts.checkins import CheckinStore
from alerts.db import system_clock
from alerts.tracks import TrackStore
from geofence.model import CheckIn, Fix, format_ts

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
PARK = [[118.785, 32.068], [118.805, 32.068], [118.805, 32.082], [118.785, 32.082], [118.785, 32.068]]
XUANWU = [[118.76, 32.03], [118.86, 32.03], [118.86, 32.10], [118.76, 32.10], [118.76, 32.03]]
HERE = (32.075, 118.795)  # inside the park; the red person and three blue ones stand here


async def _world(api: Any) -> None:
    admin = await api.user("admin", "admin", "")
    await api.user("duty", "operator", "3201")
    h = {"Authorization": f"Bearer {admin}"}
    orders = [("P-red", "320102", "WB-R"), ("P-b1", "320102", "WB-1"), ("P-b2", "320102", "WB-2"),
              ("P-b3", "320102", "WB-3"), ("P-far", "320104", "WB-F")]
    for pid, jur, dev in orders:
        body = {"person_id": pid, "devices": [dev], "jurisdiction": jur,
                "rules": [{"id": "r1", "type": "exclusion", "zone": "Z-park"}]}
        assert (await api.client.put(f"/api/orders/{pid}", json=body, headers=h)).status == 201
    zones = {
        "Z-park": {"name": "玄武湖公园", "category": "exclusion", "jurisdiction": "320102"},
        "district-320102": {"name": "玄武区", "code": "320102", "category": "district",
                            "jurisdiction": "320102"},
    }
    for zid, props in zones.items():
        ring = PARK if zid == "Z-park" else XUANWU
        feature = {"type": "Feature", "properties": props,
                   "geometry": {"type": "Polygon", "coordinates": [ring]}}
        assert (await api.client.put(f"/api/zones/{zid}", json=feature, headers=h)).status == 201
    now = api.clock.now
    fixes = [Fix(device_id=dev, ts=now - 30_000, lat=HERE[0], lon=HERE[1])
             for dev in ("WB-1", "WB-2", "WB-R", "WB-3")]
    fixes.append(Fix(device_id="WB-F", ts=now - 30_000, lat=31.93, lon=118.62))
    fixes += [Fix(device_id="WB-R", ts=now - 600_000 + i * 60_000, lat=32.064 + i * 0.0012,
                  lon=118.79 + i * 0.0005) for i in range(9)]
    async with api.pool.acquire() as conn:
        await TrackStore().write(conn, fixes, now)
    await api.apply(record("opened", alert_id="A-red", person_id="P-red", jurisdiction="320102",
                           kind="exclusion_entered", rule_id="r1", zone="Z-park", device_id="WB-R",
                           evidence="gps", opened_at=now - 240_000, lat=32.0748, lon=118.7946))
    # a phone-supervised person: three check-ins and the three check-in alert kinds
    phone = {"person_id": "P-phone", "devices": ["PH-1"], "jurisdiction": "320102",
             "rules": [{"id": "r1", "type": "inclusion", "zone": "district-320102"},
                       {"id": "c1", "type": "checkin",
                        "windows": [{"days": "daily", "start": "08:00", "end": "10:00"}]}]}
    assert (await api.client.put("/api/orders/P-phone", json=phone, headers=h)).status == 201
    async with api.pool.acquire() as conn:
        await CheckinStore().write(conn, [
            CheckIn(device_id="PH-1", ts=now - 7_200_000, lat=32.05, lon=118.80, accuracy_m=20,
                    face_score=0.93, action_ok=True, method="face_action"),
            CheckIn(device_id="PH-1", ts=now - 3_600_000, lat=32.05, lon=118.80, accuracy_m=20,
                    face_score=0.41, method="face", request_id="P-phone/c1/20261122/0"),
            CheckIn(device_id="PH-1", ts=now - 1_800_000, lat=31.93, lon=118.62, accuracy_m=20,
                    face_score=0.88, action_ok=True, method="face_action"),
        ], now)
    # evidence as the engine writes it for each kind
    failed = {"face_score": 0.41, "action_ok": None, "method": "face", "min_score": 0.8}
    for aid, kind, at, evidence in (
            ("C-missed", "checkin_missed", now - 5_400_000, {"missed": ["P-phone/c1/20261122/0"]}),
            ("C-failed", "checkin_failed", now - 3_600_000, failed),
            ("C-outside", "checkin_outside", now - 1_800_000, "checkin")):
        await api.apply(record("opened", alert_id=aid, person_id="P-phone", jurisdiction="320102",
                               kind=kind, rule_id="c1", severity="orange", device_id="PH-1",
                               opened_at=at, lat=None, lon=None,
                               evidence=evidence if isinstance(evidence, str) else json.dumps(evidence)))


async def test_console_language_map_detail_drilldown_reports(make_api: Any, tmp_path: Path) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: apt-get install -y chromium chromium-driver")
    api = await make_api()
    api.clock.now = system_clock()
    await _world(api)
    base = str(api.client.make_url("/"))
    card = '#alerts li[data-alert-id="A-red"]'
    shots: list[Path] = []

    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1600, "height": 1000}, accept_downloads=True)
            outside: list[str] = []
            page.on("request", lambda r: None if r.url.startswith(base.rstrip("/")) or r.url.startswith(
                ("blob:", "data:")) else outside.append(r.url))
            failed: list[str] = []
            page.on("requestfailed", lambda r: failed.append(r.url))

            async def shot(name: str) -> None:
                path = tmp_path / f"{len(shots) + 1:02d}-{name}.png"
                await page.screenshot(path=str(path))
                shots.append(path)

            # Chinese first: the sign-in form and, after it, the alert card
            await page.goto(base)
            assert await page.get_attribute("html", "lang") == "zh-CN"
            assert await page.text_content("#login-button") == "登录"
            await page.fill("#username", "duty")
            await page.fill("#password", "wrong horse")
            await page.click("#login-button")
            await page.wait_for_function("() => document.getElementById('login-error').textContent !== ''")
            assert await page.text_content("#login-error") == "用户名或密码错误"  # errors in words too
            await page.fill("#password", "correct horse battery")
            await page.click("#login-button")
            await page.wait_for_selector(card)
            assert await page.text_content(f"{card} .kind") == "进入禁入区"
            assert await page.text_content(f"{card} .badge") == "红色"
            assert "玄武湖公园" in (await page.text_content(f"{card} .meta") or "")
            await page.wait_for_selector('#counts tr[data-code="320102"]')
            assert "玄武区" in (await page.text_content('#counts tr[data-code="320102"]') or "")
            await shot("zh-queue-and-map")

            # English and back; the choice survives a reload
            await page.click("#lang")
            await page.wait_for_function("() => document.documentElement.lang === 'en'")
            assert await page.text_content(f"{card} .kind") == "entered an exclusion zone"
            assert await page.text_content(f"{card} .status") == "open"
            await page.reload()
            await page.wait_for_selector(card)
            failed.clear()  # the reload cancels what the page still had in flight
            assert await page.text_content(f"{card} .status") == "open"
            assert await page.text_content("#lang") == "中文"
            await shot("en")
            await page.click("#lang")
            await page.wait_for_function("() => document.documentElement.lang === 'zh-CN'")
            assert await page.text_content(f"{card} .status") == "未处理"

            # times follow the operator's time zone (Asia/Shanghai unless another is chosen)
            opened = await page.text_content(f"{card} .meta") or ""
            await page.select_option("#tz", "UTC")
            await page.wait_for_function(
                f"""() => !document.querySelector('{card} .meta').textContent.includes({opened[-19:]!r})""")
            utc_text = await page.text_content(f"{card} .meta") or ""
            assert utc_text[-19:] == format_ts(api.clock.now - 240_000).replace("T", " ")[:19]
            await page.select_option("#tz", "Asia/Shanghai")

            # red above blue: painted last, and what the pointer finds at the shared spot
            await page.wait_for_function("() => document.querySelectorAll('#positions circle').length === 5")
            risks = await page.eval_on_selector_all("#positions circle", "cs => cs.map(c => c.dataset.risk)")
            assert risks[-1] == "red" and risks.count("blue") == 4
            top = await page.evaluate(
                """() => { const c = document.querySelector('#positions circle[data-person-id="P-red"]');
                           const b = c.getBoundingClientRect();
                           const hit = document.elementFromPoint(b.x + b.width / 2, b.y + b.height / 2);
                           return hit && hit.dataset.risk; }""")
            assert top == "red"
            assert await page.locator("#scale-text").text_content()
            # zero counts are muted, real ones are not
            assert await page.locator('#counts tr[data-code="320104"] .mini.red.zero').count() == 2
            assert await page.locator('#counts tr[data-code="320102"] .mini.red.zero').count() == 0

            # the alert explains itself: zone in Chinese, distance, track and highlighted zone
            await page.click(f"{card} button.open-detail")
            await page.wait_for_selector("#alert-detail:not([hidden]) .zone-name")
            zone_text = await page.text_content("#alert-detail .zone-name") or ""
            assert "玄武湖公园" in zone_text and "禁入区" in zone_text
            assert "在区域边界内" in (await page.text_content("#alert-detail .distance") or "")
            assert "WB-R" in (await page.text_content("#alert-detail") or "")
            assert "卫星定位" in (await page.text_content("#alert-detail") or "")  # evidence in words
            assert await page.locator("#alert-detail .lifecycle li[data-event='opened']").count() == 1
            await page.wait_for_selector("#track path.track-line")
            assert await page.locator('#zones path.highlight[data-zone-id="Z-park"]').count() == 1
            await page.wait_for_selector('#labels text[data-zone-id="Z-park"]')
            await shot("alert-detail")

            # the person's timeline names the zone their fixes lie in
            await page.click('#persons li[data-person-id="P-red"]')
            await page.wait_for_selector("#timeline:not([hidden]) li.alert-ev")
            timeline = await page.text_content("#timeline-items") or ""
            assert "位于玄武湖公园内" in timeline and "进入禁入区 · 玄武湖公园" in timeline
            assert await page.locator("#checkin-history").is_hidden()  # a wristband: no check-ins
            await page.click("#timeline-close")

            # a phone-supervised person: the check-in alerts in words, the check-in history
            kinds = {aid: await page.text_content(f'#alerts li[data-alert-id="{aid}"] .kind')
                     for aid in ("C-missed", "C-failed", "C-outside")}
            assert kinds == {"C-missed": "未按时签到", "C-failed": "签到身份核验未通过",
                             "C-outside": "签到位置越界"}
            await page.click('#persons li[data-person-id="P-phone"]')
            await page.wait_for_selector("#checkin-history:not([hidden]) tr.checkin")
            rows = await page.eval_on_selector_all(
                "#checkins tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")
            assert [r[1:] for r in rows] == [
                ["核验通过", "0.88（阈值 0.80）", "人脸识别 + 动作活体", "—（非随机抽查）",
                 "在限定区域外 · 精度 ±20 米"],
                ["核验未通过：人脸比对分数 0.41 低于阈值 0.80", "0.41（阈值 0.80）", "人脸识别",
                 "P-phone/c1/20261122/0", "在限定区域内 · 精度 ±20 米"],
                ["核验通过", "0.93（阈值 0.80）", "人脸识别 + 动作活体", "—（非随机抽查）",
                 "在限定区域内 · 精度 ±20 米"]]
            newest = datetime.fromtimestamp((api.clock.now - 1_800_000) / 1000, ZoneInfo("Asia/Shanghai"))
            assert rows[0][0] == newest.strftime("%Y-%m-%d %H:%M:%S")  # the operator's time zone
            assert await page.locator("#track circle.checkin-mark.failed").count() == 1
            assert await page.locator("#track circle.checkin-mark.verified").count() == 2
            timeline = await page.text_content("#timeline-items") or ""
            assert "签到身份核验未通过" in timeline and "签到位置越界" in timeline
            await page.click('#alerts li[data-alert-id="C-failed"] button.open-detail')
            await page.wait_for_selector('#alert-detail[data-alert-id="C-failed"]')
            assert await page.text_content("#alert-detail .evidence .v") == "0.41（阈值 0.80） · 人脸识别"
            await page.click('#alerts li[data-alert-id="C-missed"] button.open-detail')
            await page.wait_for_selector('#alert-detail[data-alert-id="C-missed"]')
            assert await page.text_content("#alert-detail .evidence .v") == \
                "未完成的签到：P-phone/c1/20261122/0"
            await shot("checkins-zh")
            await page.click("#lang")
            await page.wait_for_function("() => document.documentElement.lang === 'en'")
            await page.wait_for_function(
                "() => document.querySelector('#checkins tbody tr td.result').textContent === 'verified'")
            failed_row = await page.text_content("#checkins tbody tr.failed") or ""
            assert "not verified: face score 0.41 below the threshold 0.80" in failed_row
            assert "outside the permitted area" in (await page.text_content("#checkins tbody tr") or "")
            assert await page.text_content('#alerts li[data-alert-id="C-missed"] .kind') == "check-in missed"
            assert await page.text_content('#alerts li[data-alert-id="C-failed"] .kind') == \
                "check-in identity not verified"
            assert await page.text_content('#alerts li[data-alert-id="C-outside"] .kind') == \
                "checked in outside the permitted area"
            await shot("checkins-en")
            await page.click("#lang")
            await page.wait_for_function("() => document.documentElement.lang === 'zh-CN'")
            await page.click("#timeline-close")

            # the Resolve button stays inside its card
            inside = await page.evaluate(
                f"""() => {{ const li = document.querySelector('{card}').getBoundingClientRect();
                            const b = document.querySelector('{card} button.resolve').getBoundingClientRect();
                            return b.right <= li.right + 0.5 && b.left >= li.left; }}""")
            assert inside

            # drill down to the district: the map zooms in on it
            await page.click("#detail-close")
            await page.click("#zoom-reset")
            before = float(await page.get_attribute("#map", "data-scale") or 0)
            await page.click('#counts tr[data-code="320102"]')
            await page.wait_for_function("() => document.getElementById('map').dataset.fitted === '320102'")
            after = float(await page.get_attribute("#map", "data-scale") or 0)
            assert after > before * 1.5, (before, after)
            await page.wait_for_selector('#labels text.district-label')
            await shot("drilled-down")

            # resolving the uncleared red alert asks for confirmation and a note
            await page.click(f"{card} button.resolve")
            await page.wait_for_selector("#confirm:not([hidden])")
            await shot("confirm-resolve")
            await page.click("#confirm-ok")
            assert await page.text_content("#confirm-error") == "请填写处置说明"
            await page.fill("#confirm-note", "已电话联系，本人已离开公园")
            await page.click("#confirm-ok")
            await page.wait_for_selector("#confirm", state="hidden")
            await page.wait_for_selector("#action-result.ok")
            assert "A-red" in (await page.text_content("#action-result") or "")

            # reports: the page, its CSV and a track export
            await page.click("#reports-open")
            await page.click("#report-show")
            await page.wait_for_selector("#report-body table.report")
            assert "玄武区" in (await page.text_content("#report-body") or "")
            await shot("report")
            async with page.expect_download() as dl:
                await page.click("#report-csv")
            report_csv = tmp_path / "report.csv"
            await (await dl.value).save_as(str(report_csv))
            rows = list(csv.reader(io.StringIO(report_csv.read_text(encoding="utf-8"))))
            assert ["alerts_by_kind", "exclusion_entered", "red", "1"] in rows
            assert ["report", "jurisdiction_name", "", "玄武区"] in rows
            await page.fill("#export-person", "P-red")
            async with page.expect_download() as dl:
                await page.click("#export-go")
            track_csv = tmp_path / "track.csv"
            await (await dl.value).save_as(str(track_csv))
            lines = track_csv.read_text(encoding="utf-8").splitlines()
            assert lines[0].startswith("ts,device_id,lat,lon") and len(lines) == 11  # header + 10 fixes

            assert outside == [] and failed == []
        finally:
            await browser.close()
    async with api.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT status, resolution_note FROM alerts WHERE alert_id = 'A-red'")
        audit = {r["action"] for r in await conn.fetch("SELECT action FROM audit_log")}
    assert tuple(row) == ("resolved", "已电话联系，本人已离开公园")
    assert {"report.daily", "track.export", "districts.read", "alert.resolve", "checkins.read"} <= audit
    assert all(p.stat().st_size > 10_000 for p in shots)
    print("screenshots:", ", ".join(str(p) for p in shots), "; opened", format_ts(api.clock.now))


async def test_console_leave_requests_decisions_and_on_leave_badges(make_api: Any,
                                                                    tmp_path: Path) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: apt-get install -y chromium chromium-driver")
    api = await make_api()
    api.clock.now = now = system_clock()
    await _world(api)
    await api.user("chief", "supervisor", "320102")  # decides in the browser
    duty, admin = await api.login("duty"), await api.login("admin")
    day = 86_400_000

    async def leave(token: str, person: str, start: int, days: int) -> int:
        status, body = await api.call("POST", f"/api/persons/{person}/leaves", token, {
            "from": format_ts(start), "until": format_ts(start + days * day), "rules": ["r1"],
            "reason": "住院治疗"})
        assert status == 201, body
        return int(body["leave"]["leave_id"])

    soon = await leave(duty, "P-b1", now + day, 3)
    away = await leave(duty, "P-b2", now - 3_600_000, 2)
    long = await leave(duty, "P-b3", now + day, 9)
    assert (await api.call("POST", f"/api/leaves/{away}/approve", admin))[0] == 200
    await api.apply(record("opened", alert_id="A-overdue", person_id="P-b2", jurisdiction="320102",
                           kind="leave_overdue", rule_id=f"L-{away}", severity="orange",
                           opened_at=now - 60_000))
    base = str(api.client.make_url("/"))
    item = '#leaves li[data-leave-id="{}"]'.format

    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1600, "height": 1000})
            outside: list[str] = []
            page.on("request", lambda r: None if r.url.startswith(base.rstrip("/"))
                    else outside.append(r.url))
            await page.goto(base)
            await page.fill("#username", "chief")
            await page.fill("#password", "correct horse battery")
            await page.click("#login-button")
            await page.wait_for_selector(item(away))
            # the person on leave is marked in the person list and on their alert
            assert await page.text_content(f"{item(away)} .leave-state") == "请假中"
            assert await page.text_content(
                '#persons li[data-person-id="P-b2"] .leave-badge') == "请假中"
            assert await page.locator('#persons li[data-person-id="P-b1"] .leave-badge').count() == 0
            overdue = '#alerts li[data-alert-id="A-overdue"]'
            assert await page.text_content(f"{overdue} .kind") == "请假逾期未归"
            assert await page.text_content(f"{overdue} .leave-badge") == "请假中"
            assert "需司法所审批" in (await page.text_content(item(soon)) or "")
            assert "需司法局审批" in (await page.text_content(item(long)) or "")
            assert await page.locator(f"{item(away)} .leave-return").count() == 1
            await page.screenshot(path=str(tmp_path / "leaves-zh.png"))

            # a supervisor approves three days; nine days are the county's to approve
            await page.click(f"{item(soon)} .leave-approve")
            await page.wait_for_selector(f'{item(soon)}[data-state="approved"]')
            assert "司法所" in (await page.text_content(item(soon)) or "")
            assert await page.locator(f"{item(long)} .leave-approve").count() == 0
            await page.click(f"{item(long)} .leave-reject")  # a rejection needs its note
            await page.wait_for_selector("#action-result.error")
            assert await page.text_content("#action-result") == "请求无效"
            await page.fill(f"{item(long)} input.note", "请提供医院证明")
            await page.click(f"{item(long)} .leave-reject")
            await page.wait_for_selector(item(long), state="detached")  # rejected leave leaves the list

            await page.click("#lang")
            await page.wait_for_function("() => document.documentElement.lang === 'en'")
            assert await page.text_content(f"{item(away)} .leave-state") == "on leave"
            assert await page.text_content(f"{overdue} .kind") == "leave overdue, not back"
            await page.click("#lang")
            assert outside == []
        finally:
            await browser.close()
    async with api.pool.acquire() as conn:
        body = await conn.fetchval("SELECT body FROM orders WHERE person_id = 'P-b1'"
                                   " ORDER BY version DESC LIMIT 1")
        rejected = await conn.fetchrow("SELECT state, note, decided_by FROM leaves WHERE id = $1",
                                       long)
    assert tuple(rejected) == ("rejected", "请提供医院证明", "chief")
    assert [(e["id"], e["approved_by"], e["level"]) for e in body["exemptions"]] == [
        (f"L-{soon}", "chief", "office")]
