"""In ``wardstream demo``, phones check in over HTTP and their alerts reach the dashboard.

The whole demo runs as ``make demo`` starts it (embedded broker, worker,
gateway, API, notifier, simulator). Its phone persons post their check-ins
to the gateway's ``POST /checkin`` with their keys (the only way check-ins
enter the demo); the test reads the check-ins the demo staged, logs in to
the command centre as the demo operator and waits until the dashboard's
alert list has, for the impostor, a ``checkin_failed`` opened at the
impostor's check-in (and the duty officer was paged: it is red), for the
person who checked in from another district a ``checkin_outside`` opened at
that check-in, and for the person who let the window pass a
``checkin_missed`` opened at the window's end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from geofence.model import parse_ts
from stream.broker import free_port
from stream.demo_phones import DEMO_PHONES
from tests.alerts.test_notifier_demo import Output

ROOT = Path(__file__).resolve().parents[2]
PERSONS = 20

# the demo runs until its phones' first window has passed (~3-4 min): beside the suite
pytestmark = [pytest.mark.slow, pytest.mark.alongside, pytest.mark.timeout(420)]


def api(port: int, path: str, token: str | None = None, body: Any = None) -> Any:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method="POST" if body is not None else "GET",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json",
                 **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(req, timeout=10) as rsp:
        return json.loads(rsp.read())


def test_phone_checkins_over_http_raise_checkin_alerts_in_the_dashboard(
    tmp_path: Path, database_url: str,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WARDSTREAM_KAFKA"}
    env.update({"WARDSTREAM_DEMO_LOGS": str(tmp_path), "WARDSTREAM_DATABASE_URL": database_url,
                "PYTHONPATH": str(ROOT)})
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "demo", "--persons", str(PERSONS),
         "--api-port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    out = Output(proc)
    try:
        out.wait(r"Ctrl-C stops everything", timeout=120)
        assert f"+ demo phones: {len(DEMO_PHONES)} phone-supervised persons" in out.text()
        password = re.search(r"log in as: demo / (\S+)", out.text())
        assert password, out.text()
        token = api(port, "/api/auth/login", body={"username": "demo",
                                                    "password": password.group(1)})["token"]

        # what the demo staged: person k+1 after the caseload does DEMO_PHONES[k]
        orders = {o["person_id"]: o for o in
                  json.loads((tmp_path / "demo-orders-with-phones.json").read_text())}
        checkins = [json.loads(line)["message"] for line in
                    (tmp_path / "demo-checkins.jsonl").read_text().splitlines()]
        behaviour = {f"P-{PERSONS + k + 1:05d}": b for k, (b, _, _) in enumerate(DEMO_PHONES)}
        by_person = {p: [c for c in checkins if c["device_id"] == orders[p]["devices"][0]]
                     for p in behaviour}
        impostor = next(p for p, b in behaviour.items() if b == "impostor")
        faked = next(c for c in by_person[impostor] if c.get("face_score", 1.0) < 0.8)
        outside = next(p for p, b in behaviour.items() if b == "outside")
        away = by_person[outside][1]  # after the enrolment check-in at home
        missed = next(p for p, b in behaviour.items() if b == "missed")
        window = next(r for r in orders[missed]["rules"] if r["type"] == "checkin")["windows"][0]
        assert [c["ts"] for c in by_person[missed]] == [by_person[missed][0]["ts"]]  # enrolment only
        want = {(impostor, "checkin_failed"): parse_ts(faked["ts"]),
                (outside, "checkin_outside"): parse_ts(away["ts"])}

        def dashboard() -> dict[tuple[str, str], int]:
            got = {}
            for p in behaviour:
                for a in api(port, f"/api/alerts?person_id={p}", token)["alerts"]:
                    if a["kind"].startswith("checkin_"):
                        got[(p, a["kind"])] = parse_ts(a["opened_at"])
            return got

        deadline = time.monotonic() + 300
        got: dict[tuple[str, str], int] = {}
        while time.monotonic() < deadline:
            got = dashboard()
            if all(k in got for k in want) and (missed, "checkin_missed") in got:
                break
            time.sleep(2)
        for k, at in want.items():
            assert got.get(k) == at, (k, got, out.text())
        # the missed window's end, local time, in the order's time zone
        opened = got.get((missed, "checkin_missed"))
        assert opened is not None, (got, out.text())
        from datetime import datetime
        from zoneinfo import ZoneInfo

        local = datetime.fromtimestamp(opened / 1000, ZoneInfo(orders[missed]["timezone"]))
        assert local.strftime("%H:%M") == window["end"] and local.second == 0
        # red: the county's duty officer was paged
        out.wait(rf"inbox: e-mail to duty-\S+: \[RED\] checkin_failed opened - {impostor}$", 60)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, out.text()
