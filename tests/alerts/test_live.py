"""/api/live: WebSocket auth (query token or first message) and jurisdiction scope."""

from __future__ import annotations

from typing import Any

import aiohttp
from alerts_testkit import record


async def _next_event(ws: aiohttp.ClientWebSocketResponse, timeout: float = 3.0) -> dict[str, Any] | None:
    """The next acknowledgement record on the feed (other messages are skipped)."""
    try:
        while True:
            msg = await ws.receive_json(timeout=timeout)
            if msg.get("event") == "acknowledged":
                return msg
    except (TimeoutError, TypeError):
        return None


async def test_live_feed_auth_and_scope(make_api: Any) -> None:
    api = await make_api()
    county = await api.user("county", "operator", "320102")
    other = await api.user("other", "operator", "320104")
    await api.apply(record(alert_id="A-1", jurisdiction="320102"),
                    record(alert_id="A-2", jurisdiction="320104"))

    ws_bad = await api.client.ws_connect("/api/live?token=forged")
    msg = await ws_bad.receive_json(timeout=3)
    assert msg == {"type": "error", "error": "unauthorized"}
    await ws_bad.receive(timeout=3)
    assert ws_bad.close_code == 4401

    ws_county = await api.client.ws_connect(f"/api/live?token={county}")
    assert (await ws_county.receive_json(timeout=3))["jurisdiction"] == "320102"
    ws_other = await api.client.ws_connect("/api/live")  # token as the first message
    await ws_other.send_json({"token": other})
    assert (await ws_other.receive_json(timeout=3))["username"] == "other"

    h_other = {"Authorization": f"Bearer {other}"}
    assert (await api.client.post("/api/alerts/A-2/ack", headers=h_other)).status == 200
    got = await _next_event(ws_other)
    assert got is not None and got["event"] == "acknowledged" and got["alert"]["alert_id"] == "A-2"
    assert got["operator"] == "other"
    assert await _next_event(ws_county, timeout=1.0) is None  # another county's record never arrives

    h_county = {"Authorization": f"Bearer {county}"}
    assert (await api.client.post("/api/alerts/A-1/ack", headers=h_county)).status == 200
    got = await _next_event(ws_county)
    assert got is not None and got["alert"]["alert_id"] == "A-1"
    assert await _next_event(ws_other, timeout=1.0) is None
    for ws in (ws_county, ws_other):
        await ws.close()


async def test_live_feed_hears_events_written_by_another_process(make_api: Any) -> None:
    """A record written through a second service (another replica) reaches this one's clients."""
    from alerts.service import Service, ServiceOptions
    from alerts.store import Principal
    from alerts.workflow import acknowledge

    api = await make_api()
    token = await api.user("county", "viewer", "320102")
    await api.apply(record(alert_id="A-1", jurisdiction="320102"))
    ws = await api.client.ws_connect("/api/live")
    await ws.send_json({"token": token})
    assert (await ws.receive_json(timeout=3))["type"] == "hello"
    other = Service(api.service.settings, clock=api.clock,
                    options=ServiceOptions(run_escalator=False, run_retention=False))
    await other.start()
    try:
        assert other.pool is not None
        async with other.pool.acquire() as conn:
            await acknowledge(conn, Principal(99, "replica-op", "operator", "32"), "A-1",
                              api.clock(), "10.1.1.1")
    finally:
        await other.stop()
    got = await _next_event(ws)
    assert got is not None and got["operator"] == "replica-op"
    await ws.close()
