"""The dashboard in headless Chromium: log in, see a Kafka alert live, acknowledge it.

Runs Debian's chromium through the playwright package (never ``playwright
install``). The page must work with no network beyond the API itself.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from alerts_testkit import create_topic, produce, record, wait_for

from alerts.db import system_clock

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


async def _async(value: Any) -> Any:
    return value


async def test_dashboard_live_alert_and_acknowledge(make_api: Any, kafka_bootstrap: str,
                                                     tmp_path: Path) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: apt-get install -y chromium chromium-driver")
    topic = f"alerts-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, topic)
    api = await make_api(kafka=kafka_bootstrap, alerts_topic=topic)
    api.clock.now = system_clock()  # the page asks for the last 24 h in real time
    token = await api.user("duty", "operator", "320102")
    admin = await api.user("admin", "admin", "")
    order = {"person_id": "P-7", "devices": ["WB-7"], "jurisdiction": "320102",
             "rules": [{"id": "r1", "type": "exclusion", "zone": "Z-school"}]}
    zone = {"type": "Feature", "properties": {"name": "school", "category": "exclusion",
                                              "jurisdiction": "320102"},
            "geometry": {"type": "Polygon", "coordinates": [[[118.78, 32.04], [118.80, 32.04],
                                                             [118.80, 32.06], [118.78, 32.06],
                                                             [118.78, 32.04]]]}}
    h = {"Authorization": f"Bearer {admin}"}
    assert (await api.client.put("/api/orders/P-7", json=order, headers=h)).status == 201
    assert (await api.client.put("/api/zones/Z-school", json=zone, headers=h)).status == 201
    del token
    sink = api.service.sinks[0]
    await wait_for(lambda: _async(sink.assigned), 30)
    url = str(api.client.make_url("/"))

    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 850})
            failed: list[str] = []
            page.on("requestfailed", lambda r: failed.append(r.url))
            await page.goto(url)
            await page.fill("#username", "duty")
            await page.fill("#password", "correct horse battery")
            await page.click("#login-button")
            await page.wait_for_selector("#app:not([hidden])")
            await page.wait_for_selector("#live-status.online", timeout=5000)

            now = system_clock()
            rec = record("opened", alert_id="LIVE-1", person_id="P-7", opened_at=now - 5000,
                         lat=32.05, lon=118.79)
            started = time.monotonic()
            await produce(kafka_bootstrap, topic, [json.dumps(rec).encode()], ["LIVE-1"])
            item = '#alerts li[data-alert-id="LIVE-1"]'
            await page.wait_for_selector(item, timeout=2000)
            seen_after = time.monotonic() - started
            assert seen_after <= 2.0
            assert await page.get_attribute(item, "data-status") == "open"
            assert await page.text_content(f"{item} .status") == "未处理"  # Chinese by default
            assert await page.get_attribute(f"{item} .badge", "class") == "badge red"

            await page.click(f"{item} button.ack")
            await page.wait_for_selector('#alerts li[data-alert-id="LIVE-1"][data-status="acknowledged"]',
                                         timeout=3000)
            assert await page.text_content(f"{item} .status") == "已签收"
            # the person's risk colour reached the list live, the map shows the zone and the alert
            await page.wait_for_selector('#persons li[data-person-id="P-7"] .badge.red', timeout=3000)
            assert await page.locator("#zones path").count() == 1
            assert await page.locator("#alert-marks circle").count() == 1
            # the jurisdiction counts follow live: one open red alert, one red person in 320102
            await page.wait_for_function(
                """() => { const r = document.querySelector('#counts tr[data-code="320102"]');
                           if (!r) return false;
                           const m = r.querySelectorAll('.mini.red');
                           return m.length === 2 && m[0].textContent === '1'
                                  && m[1].textContent === '1'; }""", timeout=3000)
            await page.click('#persons li[data-person-id="P-7"]')
            await page.wait_for_selector("#timeline:not([hidden]) li.alert-ev")
            shot = tmp_path / "dashboard.png"
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            assert failed == []  # nothing outside the API was requested or failed
        finally:
            await browser.close()
    async with api.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT status, acknowledged_by FROM alerts WHERE alert_id = 'LIVE-1'")
    assert tuple(row) == ("acknowledged", "duty")
    print(f"alert visible {seen_after:.3f} s after publishing; screenshot {shot}")
