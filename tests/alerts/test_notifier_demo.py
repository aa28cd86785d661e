"""In ``wardstream demo``, a red alert pages its duty officer within 2 s, and an
escalation to the city pages the city's duty officer.

The whole demo runs as in ``make demo`` (embedded broker, worker, gateway,
API, ``wardstream notifier --demo-inbox``), without the simulator so that
the only alerts are the ones this test raises, and with a short escalation
time. A wristband's tamper event is published to the telemetry topic as a
gateway would; the worker raises a red alert, the notifier pages the county's
duty officer, and the demo prints what the inbox received. The 2 s bound is
measured from the alert's opening time (the tamper event's time, taken just
before it is published) to the moment the demo prints the page. The first
alert only warms the path up (the notifier's first group join takes seconds);
the second is the one measured.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from geofence.model import format_ts
from stream.broker import free_port
from stream.topics import TELEMETRY

ROOT = Path(__file__).resolve().parents[2]
ORDERS = json.loads((ROOT / "config" / "demo-orders.json").read_text())
BOUND_S = 2.0

pytestmark = pytest.mark.slow  # the whole demo starts and stops: about 20-25 s


class Output:
    """The demo's stdout, each line with the time it was read."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[tuple[float, str]] = []
        self._proc = proc
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append((time.time(), line.rstrip("\n")))

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def wait(self, pattern: str, timeout: float) -> tuple[float, str]:
        """The first line matching ``pattern``, with the time it was printed."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            for at, line in list(self.lines):
                if rx.search(line):
                    return at, line
            if self._proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r}:\n{self.text()}")


def tamper(bootstrap: str, device: str) -> float:
    """Publish a tamper event of ``device`` stamped now; returns that time (epoch s)."""
    async def send() -> float:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            now_ms = int(time.time() * 1000)
            event = {"kind": "device_event", "device_id": device, "ts": format_ts(now_ms),
                     "event": "tamper"}
            await producer.send_and_wait(TELEMETRY, json.dumps(event).encode(), key=device.encode())
            return now_ms / 1000.0
        finally:
            await producer.stop()

    return asyncio.run(send())


def _person(jurisdiction: str) -> tuple[str, str]:
    order = next(o for o in ORDERS if o["jurisdiction"] == jurisdiction)
    return order["person_id"], order["devices"][0]


def test_red_alert_pages_the_duty_officer_within_2_s_and_escalation_pages_the_city(
    tmp_path: Path, database_url: str,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WARDSTREAM_KAFKA"}
    env.update({"WARDSTREAM_DEMO_LOGS": str(tmp_path), "WARDSTREAM_DATABASE_URL": database_url,
                "WARDSTREAM_ESCALATION": "red=4/600", "PYTHONPATH": str(ROOT)})
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "demo", "--no-simulator",
         "--api-port", str(free_port())],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    out = Output(proc)
    try:
        out.wait(r"Ctrl-C stops everything", timeout=120)
        bootstrap = re.search(r"Kafka bootstrap (\S+)", out.text())
        assert bootstrap, out.text()
        for part in ("worker", "api", "notifier"):
            assert f"  + {part}" in out.text(), out.text()
        officers = json.loads(out.wait(r"inbox: \{\"duty_officers\"", timeout=60)[1]
                              .split("inbox: ", 1)[1])["duty_officers"]
        assert "320100" in officers and "320102" in officers

        # warm-up: the first page waits for the worker's and notifier's group joins
        warm, warm_device = _person("320104")
        tamper(bootstrap.group(1), warm_device)
        out.wait(rf"inbox: e-mail to duty-320104@\S+: \[RED\] tamper opened - {warm}", 90)

        person, device = _person("320102")
        opened = tamper(bootstrap.group(1), device)
        mail_at, _ = out.wait(
            rf"inbox: e-mail to duty-320102@demo\.wardstream\.local: \[RED\] tamper opened"
            rf" - {person}$", timeout=30)
        hook_at, _ = out.wait(r"inbox: webhook opened \S+ \(red, 320102\) for duty-320102$",
                                 timeout=30)
        print(f"paged {mail_at - opened:.2f} s (e-mail) and {hook_at - opened:.2f} s (webhook)"
              " after the alert opened")
        assert mail_at - opened <= BOUND_S, (mail_at - opened, out.text())
        assert hook_at - opened <= BOUND_S, (hook_at - opened, out.text())

        # nobody acknowledges it: after 4 s the API escalates it to the city tier
        city_at, _ = out.wait(
            rf"inbox: e-mail to duty-320100@demo\.wardstream\.local: \[RED\] tamper escalated"
            rf" - {person}$", timeout=30)
        assert city_at - opened >= 4.0
        print(f"city officer paged {city_at - opened:.2f} s after the alert opened")
        pages = [line for _, line in out.lines if "inbox: " in line and person in line]
        # the county officer is paged once for the opening and not again for the city step
        assert sum("duty-320102@" in p for p in pages) == 1, pages
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, out.text()
    assert "wardstream demo: stopped" in out.text()
