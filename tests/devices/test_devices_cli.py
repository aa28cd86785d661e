"""``wardstream decode`` and ``wardstream gateway`` as processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from devices import jt808
from stream.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
LOW_BATTERY = ("7E020000480123456789010013000000800000000301597BC506CBFF6600EB00000155210726203531"
               "010400000000EB24000C00B28986047701207027150200060089FFFFEFFF0004002D0E10000600C5FF"
               "FFFFEF697E")


def decode(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stream.cli", "decode", *args], env=ENV,
                          capture_output=True, text=True, timeout=60)


def test_decode_jt808_with_and_without_escaping():
    r = decode("--protocol", "jt808", LOW_BATTERY)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert lines[0] == {"kind": "fix", "device_id": "012345678901", "ts": "2021-07-26T12:35:31Z",
                        "lat": 22.641605, "lon": 114.032486, "speed_mps": 0.0, "heading_deg": 341.0,
                        "altitude_m": 235.0, "source": "gnss"}
    assert lines[1]["event"] == "battery_low"
    unescaped = LOW_BATTERY[2:-2]  # the same frame without flags (no 7D/7E inside it)
    assert decode("--protocol", "jt808", unescaped).stdout == r.stdout
    r = decode("--protocol", "jt808", "--tz-offset-h", "0", LOW_BATTERY)
    assert json.loads(r.stdout.splitlines()[0])["ts"] == "2021-07-26T20:35:31Z"


def test_decode_invalid_frame_exits_1_with_reason():
    r = decode("--protocol", "jt808", LOW_BATTERY[:-4] + "687E")
    assert r.returncode == 1 and "bad_checksum" in r.stderr and not r.stdout
    r = decode("--protocol", "watch", "[SG*1*0002")
    assert r.returncode == 1 and "malformed" in r.stderr
    r = decode("--protocol", "gt06", "zz")
    assert r.returncode == 1


def test_decode_other_protocols():
    r = decode("--protocol", "osmand", "/?id=123456&timestamp=1377177267&lat=60.0&lon=30.0")
    assert json.loads(r.stdout)["ts"] == "2013-08-22T13:14:27Z"
    r = decode("--protocol", "h02", "*HQ,4210051415,V1,164549,A,0956.3869,N,08406.7068,W,"
               "000.00,000,221215,FFFFFBFF#")
    assert json.loads(r.stdout)["device_id"] == "4210051415"
    r = decode("--protocol", "gt06", "78780D01086471700328358100093F040D0A")
    assert r.returncode == 0 and "login from 864717003283581" in r.stderr


def test_gateway_process_acks_after_kafka_and_stops_cleanly(kafka_bootstrap, tmp_path):
    orders = tmp_path / "orders.json"
    orders.write_text(json.dumps([{"person_id": "P-9", "devices": ["013900000009"],
                                   "jurisdiction": "320102", "rules": []}]))
    provisioning = tmp_path / "devices.json"
    added = subprocess.run([sys.executable, "-m", "stream.cli", "devices", "add", "--file",
                            str(provisioning), "--device-id", "013900000009", "--protocol",
                            "jt808", "--network", "127.0.0.0/8"],
                           env=ENV, capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    port = free_port()
    env = dict(ENV, WARDSTREAM_GATEWAY_SECRET="s3cret", WARDSTREAM_LOG_LEVEL="WARNING")
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "gateway", "--orders", str(orders), "--kafka",
         kafka_bootstrap, "--host", "127.0.0.1", "--jt808-port", str(port), "--metrics-port",
         str(free_port()), "--no-follow-orders", "--provisioning", str(provisioning)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        assert "jt808 127.0.0.1:" in proc.stdout.readline()
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        sock.sendall(jt808.encode_register("013900000009", 1))
        reply = jt808.parse_frame(sock.recv(4096))
        code = jt808.decode_register_response(reply.body)[2]
        sock.sendall(jt808.encode_auth("013900000009", 2, code))
        assert jt808.decode_general_response(jt808.parse_frame(sock.recv(4096)).body)[2] == 0
        ts = int(time.time()) * 1000
        sock.sendall(jt808.encode_location("013900000009", 3, ts, 32.0, 118.0))
        ack = jt808.parse_frame(sock.recv(4096))
        assert jt808.decode_general_response(ack.body) == (3, 0x0200, 0)
        sock.close()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert "stopped (1 messages published)" in out
    finally:
        if proc.poll() is None:
            proc.kill()


def test_gateway_refuses_bad_orders(tmp_path):
    bad = tmp_path / "orders.json"
    bad.write_text('[{"person_id": "P", "devices": [], "jurisdiction": "320102", "rules": []}]')
    r = subprocess.run([sys.executable, "-m", "stream.cli", "gateway", "--orders", str(bad),
                        "--kafka", "127.0.0.1:1", "--jt808-port", "0"], env=ENV,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "invalid orders" in r.stderr


def test_gateway_needs_provisioning_or_an_explicit_insecure_flag(tmp_path):
    orders = tmp_path / "orders.json"
    orders.write_text(json.dumps([{"person_id": "P-9", "devices": ["013900000009"],
                                   "jurisdiction": "320102", "rules": []}]))
    base = [sys.executable, "-m", "stream.cli", "gateway", "--orders", str(orders),
            "--kafka", "127.0.0.1:1", "--jt808-port", "0"]
    r = subprocess.run(base, env=ENV, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--provisioning" in r.stderr and "--allow-unprovisioned" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    bad = tmp_path / "devices.yaml"
    bad.write_text("- {device_id: X, protocol: jt808, networks: [300.1.1.1/8]}\n")
    r = subprocess.run([*base, "--provisioning", str(bad)], env=ENV, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "invalid provisioning" in r.stderr and "300.1.1.1/8" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([*base, "--allow-unprovisioned", "--watch-allow", "10.0.0.0/33"], env=ENV,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--watch-allow" in r.stderr and "Traceback" not in r.stderr
