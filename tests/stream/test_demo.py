"""`wardstream demo` starts every part, prints where they are and the demo login,
and stops cleanly on SIGINT with no process left behind."""

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

import pytest

from stream.broker import free_port, metadata_ok


def _children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            child = int(stat.parent.name)
            found |= {child} | _children_of(child)
    return found


def _schemas(dsn: str) -> list[str]:
    import asyncio

    import asyncpg

    async def query() -> list[str]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'wardstream%'")
        finally:
            await conn.close()
        return sorted(r["nspname"] for r in rows)

    return asyncio.run(query())


def test_demo_starts_prints_addresses_and_stops_on_sigint(tmp_path: Path, database_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WARDSTREAM_KAFKA"}
    env["WARDSTREAM_DEMO_LOGS"] = str(tmp_path)
    env["WARDSTREAM_DATABASE_URL"] = database_url
    api_port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "demo", "--api-port", str(api_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        text = "".join(lines)
        match = re.search(r"Kafka bootstrap 127\.0\.0\.1:(\d+)", text)
        assert match, text
        broker_port = int(match.group(1))
        assert metadata_ok("127.0.0.1", broker_port), text
        for part in ("worker", "gateway", "api", "notifier", "simulator"):
            assert f"  + {part}" in text, text
        login = re.search(r"log in as: demo / (\S+)", text)
        assert login, text
        request = urllib.request.Request(
            f"http://127.0.0.1:{api_port}/api/auth/login", method="POST",
            data=json.dumps({"username": "demo", "password": login.group(1)}).encode())
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["token"]
        # the logs hold the demo password: only this user may read them
        assert tmp_path.stat().st_mode & 0o777 == 0o700
        assert (tmp_path / "api.log").stat().st_mode & 0o777 == 0o600
        assert _schemas(database_url) == ["wardstream_demo"]
        descendants = _children_of(proc.pid)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        text += rest
        assert proc.returncode == 0, text
        assert "wardstream demo: stopped" in text
        assert _schemas(database_url) == [], text
        assert not metadata_ok("127.0.0.1", broker_port, timeout=0.3)
        time.sleep(0.2)
        alive = [p for p in descendants if Path(f"/proc/{p}").exists()
                 and Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
        assert alive == [], f"stray processes {alive}\n{text}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_demo_logs_are_private_and_removed_unless_something_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    from stream.demo import Demo

    monkeypatch.delenv("WARDSTREAM_DEMO_LOGS", raising=False)
    quiet = Demo(out=lambda _line: None)
    assert quiet.log_dir.stat().st_mode & 0o777 == 0o700
    (quiet.log_dir / "api.log").write_text("demo operator demo password x\n")
    quiet.stop()
    assert not quiet.log_dir.exists()

    failed = Demo(out=lambda _line: None)
    failed.failed = True
    failed.stop()
    assert failed.log_dir.exists()  # kept for the user to read what went wrong
    for f in failed.log_dir.iterdir():
        f.unlink()
    failed.log_dir.rmdir()


def test_demo_provisions_each_simulated_device_with_a_key_of_its_own(tmp_path: Path) -> None:
    from devices.provisioning import load
    from geofence.model import parse_orders
    from stream.demo import REPO, demo_provisioning

    orders_path = str(REPO / "config" / "demo-orders.json")
    devices, keys_path = demo_provisioning(orders_path, tmp_path)
    keys = json.loads(Path(keys_path).read_text())
    wanted = {d for o in parse_orders(Path(orders_path).read_bytes()) for d in o.devices}
    assert set(keys) == wanted and len(set(keys.values())) == len(keys)
    assert Path(keys_path).stat().st_mode & 0o777 == 0o600
    provisioning = load(devices)
    for device_id, key in list(keys.items())[:5]:
        entry = provisioning.for_protocol(device_id, "osmand")
        assert entry is not None and entry.check_secret(key) and not entry.check_secret(key + "x")
    assert key not in Path(devices).read_text()  # only salted hashes are stored


def test_demo_day_sets_the_simulated_clock_to_the_local_time_of_day(tmp_path: Path) -> None:
    from geofence.model import parse_orders
    from simulators.live import live_items
    from stream.demo import demo_day

    now = 1_800_000_000_000 - (1_800_000_000_000 + 8 * 3_600_000) % 86_400_000 + (3 * 60 + 40) * 60_000
    zones_path, orders_path, shown = demo_day(tmp_path / "run", 60, now_ms=now)
    assert shown == "03:40"  # 19:40 UTC is 03:40 in Asia/Shanghai
    zones = json.loads(Path(zones_path).read_text())
    assert zones["wardstream_simulation"]["front_load_s"] == 3 * 3600 + 40 * 60
    orders = parse_orders(Path(orders_path).read_bytes())
    assert len(orders) == 60
    from simulators.feed import item_ts

    # the feed accepts the pair and starts its clock where the demo day was staged
    stamps = (item_ts(i) for i in live_items(zones, orders, now_ms=now))
    first = next(t for t in stamps if t is not None)
    assert now <= first <= now + 60_000


def test_demo_phones_are_staged_from_the_start_and_provisioned_for_checkins(tmp_path: Path) -> None:
    from devices.provisioning import load
    from geofence.model import parse_orders
    from stream.demo import demo_provisioning, stage_demo
    from stream.demo_phones import DEMO_PHONES, ENROL_BEFORE_MS

    now = 1_800_000_000_000 - (1_800_000_000_000 + 8 * 3_600_000) % 86_400_000 + (21 * 60 + 7) * 60_000
    day = stage_demo(tmp_path / "run", 30, now_ms=now)
    assert day.shown == "21:07" and day.phones == len(DEMO_PHONES) and day.checkins is not None
    caseload = parse_orders(Path(day.caseload_orders).read_bytes())
    every = parse_orders(Path(day.orders).read_bytes())
    phones = [o for o in every if any(r.type == "checkin" for r in o.rules)]
    assert len(caseload) == 30 and len(every) == 30 + len(DEMO_PHONES) and len(phones) == len(DEMO_PHONES)
    # the window opens at the first whole minute at least 30 s after the start: 21:08 local
    windows = [r.windows[0] for o in phones for r in o.rules if r.type == "checkin" and r.windows]
    assert windows and all((w.start, w.end) == ("21:08", "21:09") for w in windows)
    lines = [json.loads(line) for line in Path(day.checkins).read_text().splitlines()]
    assert [x["deliver_ms"] for x in lines] == sorted(x["deliver_ms"] for x in lines)
    devices = {o.devices[0] for o in phones}
    assert {x["message"]["device_id"] for x in lines} == devices
    opens = now + 60_000 - now % 60_000
    first = {}
    for x in lines:
        first.setdefault(x["message"]["device_id"], x["message"]["ts"])
    assert set(first.values()) == {opens - ENROL_BEFORE_MS}  # every phone enrols first
    assert all(x["message"]["ts"] <= x["deliver_ms"] for x in lines)
    provisioning, keys = demo_provisioning(day.orders, tmp_path / "run")
    book = load(provisioning)
    assert all(book.for_protocol(d, "checkin") is not None for d in devices)
    assert all(book.for_protocol(d, "osmand") is not None for o in caseload for d in o.devices)
    assert devices <= set(json.loads(Path(keys).read_text()))
