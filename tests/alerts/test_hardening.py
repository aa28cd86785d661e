"""The API under hostile use: blank notes, ended sessions, framing, caching,
oversized and deeply nested bodies, and refusals that leave an audit row."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from test_api import bearer, seeded

from alerts import api as api_module
from alerts.workflow import has_visible_text

INVISIBLE = ["\u200b", "\u2060", "\ufeff", "\u200b\u2060\ufeff", " \u200b\t\u2060\n",
             "\u200e\u200f", "\u3164", "\u0301\u0301", "\x01"]


@pytest.mark.parametrize("note", INVISIBLE)
def test_invisible_notes_have_no_visible_text(note: str) -> None:
    assert not has_visible_text(note)


@pytest.mark.parametrize("note", ["ok", "已核实，腕带更换", "\u200bstrap cut\u200b", "é"])
def test_real_notes_have_visible_text(note: str) -> None:
    assert has_visible_text(note)


async def test_a_tamper_alert_is_not_resolved_with_an_invisible_note(make_api: Any) -> None:
    api, tok = await seeded(make_api)
    h = bearer(tok["county"])
    for note in INVISIBLE:
        resp = await api.client.post("/api/alerts/T-1/resolve", json={"note": note}, headers=h)
        assert resp.status == 422, note
        assert (await resp.json())["error"] == "note_required"
    resp = await api.client.post("/api/alerts/T-1/resolve",
                                 json={"note": "\u200bstrap replaced"}, headers=h)
    assert resp.status == 200


async def _closed_with_4401(ws: aiohttp.ClientWebSocketResponse, timeout: float) -> bool:
    """Read until the server closes; True if it said unauthorized with code 4401."""
    said = False
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT and '"unauthorized"' in msg.data:
                said = True
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.CLOSING):
                return said and ws.close_code == 4401


async def test_logout_closes_that_tokens_live_feed_only(make_api: Any) -> None:
    api = await make_api()
    token = await api.user("county", "operator", "320102")
    second = await api.login("county")
    ws = await api.client.ws_connect(f"/api/live?token={token}")
    ws2 = await api.client.ws_connect(f"/api/live?token={second}")
    for w in (ws, ws2):
        assert (await w.receive_json(timeout=3))["type"] == "hello"
    resp = await api.client.post("/api/auth/logout", headers=bearer(token))
    assert resp.status == 200
    assert await _closed_with_4401(ws, 3)
    await ws2.send_str("ping")
    assert (await ws2.receive_json(timeout=3)) == {"type": "pong"}  # the other session stays
    await ws2.close()


async def test_a_live_feed_ends_when_its_token_expires_or_is_revoked_elsewhere(
        make_api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api_module, "LIVE_RECHECK_S", 0.2)
    api = await make_api()
    token = await api.user("county", "operator", "320102")
    other = await api.login("county")
    ws = await api.client.ws_connect(f"/api/live?token={token}")
    assert (await ws.receive_json(timeout=3))["type"] == "hello"
    ttl = api.service.settings.token_ttl_s
    api.clock.advance(ttl + 1)
    assert await _closed_with_4401(ws, 3)
    api.clock.advance(-(ttl + 1))
    # a session deleted by another replica's logout (straight in the store)
    ws2 = await api.client.ws_connect(f"/api/live?token={other}")
    assert (await ws2.receive_json(timeout=3))["type"] == "hello"
    async with api.pool.acquire() as conn:
        await conn.execute("DELETE FROM sessions")
    assert await _closed_with_4401(ws2, 3)


SECURITY = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer"}


async def test_security_headers_on_every_response(make_api: Any) -> None:
    api, tok = await seeded(make_api)
    h = bearer(tok["county"])
    paths = [("GET", "/", None), ("GET", "/static/app.js", None), ("GET", "/healthz", None),
             ("GET", "/api/alerts", h), ("GET", "/api/alerts/A-2", h),  # 200 and 403
             ("GET", "/api/alerts", None), ("GET", "/api/nope", h), ("GET", "/metrics", None),
             ("POST", "/api/auth/login", None)]
    for method, path, headers in paths:
        resp = await api.client.request(method, path, headers=headers, data=b"{")
        for name, value in SECURITY.items():
            assert resp.headers.get(name) == value, (path, name, resp.headers.get(name))
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"], path
        server = resp.headers.get("Server", "")
        assert not any(ch.isdigit() for ch in server) and "aiohttp" not in server.lower(), server
        if path.startswith("/api/"):
            assert resp.headers.get("Cache-Control") == "no-store", path
    index = await api.client.get("/")
    csp = index.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp


@pytest.mark.parametrize("path", ["/api/auth/login", "/api/orders/P-9", "/api/zones/Z-9",
                                  "/api/alerts/T-1/resolve"])
async def test_deep_and_large_bodies_are_400_before_parsing(make_api: Any, path: str) -> None:
    api, tok = await seeded(make_api)
    h = {**bearer(tok["admin"]), "Content-Type": "application/json"}
    method = "POST" if path.startswith(("/api/auth", "/api/alerts")) else "PUT"
    for body, reason in ((b"[" * 100_000, "too_deep"),
                         (b'{"username": ' + b"[" * 1500 + b"]" * 1500 + b"}", "too_deep"),
                         (b'{"a": "' + b"x" * 2_100_000 + b'"}', "too_large")):
        resp = await api.client.request(method, path, data=body, headers=h)
        assert resp.status == 400, (path, reason, resp.status, await resp.text())
        assert (await resp.json())["error"] == reason


async def test_a_deep_first_message_on_the_live_feed_is_unauthorized(make_api: Any) -> None:
    api = await make_api()
    ws = await api.client.ws_connect("/api/live")
    await ws.send_str("[" * 30_000 + "]" * 30_000)
    assert await _closed_with_4401(ws, 5)


async def test_every_refused_scoped_request_is_audited(make_api: Any) -> None:
    api, tok = await seeded(make_api)
    h = bearer(tok["county"])
    refused = [("GET", "/api/alerts/A-2", "A-2"), ("GET", "/api/persons/P-2", "P-2"),
               ("GET", "/api/orders/P-2", "P-2"), ("POST", "/api/alerts/A-2/ack", "A-2"),
               ("GET", "/api/jurisdictions?prefix=320104", None)]
    for method, path, _ in refused:
        resp = await api.client.request(method, path, headers=h)
        assert resp.status == 403, (path, resp.status)
    resp = await api.client.get("/api/persons/P-2/track", headers=h)
    assert resp.status == 403
    async with api.pool.acquire() as conn:
        rows = await conn.fetch("SELECT action, target, detail FROM audit_log"
                                " WHERE operator = 'county' AND action LIKE '%denied'"
                                " ORDER BY id")
    got = [(r["action"], r["target"]) for r in rows]
    assert got == [("access.denied", t) for _, _, t in refused] + [("track.denied", "P-2")]
