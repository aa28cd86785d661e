"""The dashboard's dispatch, note thread, response times and failed pages, in headless Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from alerts_testkit import record

from alerts.db import system_clock
from alerts.notify import store
from alerts.notify.policy import Target

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


async def test_dispatch_notes_response_times_and_failed_pages_on_the_dashboard(
    make_api: Any,
) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: apt-get install -y chromium chromium-driver")
    api = await make_api()
    api.clock.now = system_clock()
    await api.apply(record("opened", alert_id="D-1", opened_at=api.clock.now - 5000))
    await api.user("duty", "operator", "320102")
    async with api.pool.acquire() as conn:
        t = Target("D-1", "opened", "li", "sms", "+86", 1)
        await store.claim(conn, t, "320102", "red")
        await store.finish(conn, t, False, 4, 10.0, "sms: HTTP 503")
    url = str(api.client.make_url("/"))
    item = '#alerts li[data-alert-id="D-1"]'
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 850})
            await page.goto(url)
            await page.fill("#username", "duty")
            await page.fill("#password", "correct horse battery")
            await page.click("#login-button")
            await page.wait_for_selector(item)
            await page.wait_for_selector("#failed-pages li.failed-page", timeout=5000)
            assert "sms: HTTP 503" in (await page.text_content("#failed-pages") or "")
            await page.wait_for_selector("#response-times tbody tr", timeout=5000)

            await page.click(f"{item} button.details")
            await page.wait_for_selector(f"{item} .detail .dispatch")
            assert await page.get_attribute(f"{item} .detail .dispatch", "data-dispatch-status") == "none"
            assert await page.text_content(f"{item} .detail .dispatch") == "未派警"
            await page.fill(f"{item} input.assignee", "officer-li")
            await page.click(f"{item} button.dispatch")
            await page.wait_for_selector(f"{item} .detail button.advance")
            assert "officer-li" in (await page.text_content(f"{item} .detail .dispatch") or "")
            await page.click(f"{item} button.advance")
            await page.wait_for_function(
                """() => (document.querySelector('#alerts li[data-alert-id="D-1"] .detail .dispatch')
                          || {dataset: {}}).dataset.dispatchStatus === 'en_route'""", timeout=5000)
            await page.fill(f"{item} input.note-text", "subject answered the phone")
            await page.click(f"{item} button.add-note")
            await page.wait_for_selector(f"{item} .detail .notes li", timeout=5000)
            assert "subject answered the phone" in (
                await page.text_content(f"{item} .detail .notes") or "")
        finally:
            await browser.close()
    async with api.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT assignee, status FROM dispatches WHERE alert_id = 'D-1'")
        notes = await conn.fetchval("SELECT count(*) FROM alert_notes WHERE alert_id = 'D-1'")
    assert tuple(row) == ("officer-li", "en_route") and notes == 1
