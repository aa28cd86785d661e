"""Provisioning: parsing, secrets, networks, JT/T 808 fields and ``wardstream devices``."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from devices.provisioning import (
    Jt808Identity,
    Provisioning,
    ProvisioningError,
    exposed,
    hash_secret,
    in_networks,
    load,
    parse_networks,
    verify_secret,
)

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_secret_hash_verifies_only_the_secret_and_is_salted():
    h1, h2 = hash_secret("s3cret"), hash_secret("s3cret")
    assert h1 != h2  # a fresh salt each time
    assert verify_secret("s3cret", h1) and verify_secret("s3cret", h2)
    assert not verify_secret("s3cret ", h1)
    assert not verify_secret("other", h1)
    assert not verify_secret("s3cret", "md5:00:00")
    assert not verify_secret("s3cret", "garbage")


def test_networks_and_ipv4_mapped_sources():
    nets = parse_networks(["10.20.0.0/16", "fd00::/8"])
    assert in_networks("10.20.3.4", nets)
    assert in_networks("::ffff:10.20.3.4", nets)
    assert in_networks("fd12::1", nets)
    assert not in_networks("10.21.0.1", nets)
    assert not in_networks("not-an-ip", nets)
    with pytest.raises(ProvisioningError, match="not a network"):
        parse_networks(["10.0.0.300/8"])


def test_parse_json_and_yaml_give_the_same_devices():
    entries = [{"device_id": "T1", "protocol": "jt808",
                "jt808": {"province": 32, "manufacturer": "WSTRM", "terminal_id": "0000001"},
                "networks": ["10.0.0.0/8"]},
               {"device_id": "W1", "protocol": "watch", "model": "Q50"}]
    a = Provisioning.parse_bytes(json.dumps(entries).encode())
    yaml_text = ("- device_id: T1\n  protocol: jt808\n  jt808: {province: 32, manufacturer: WSTRM,"
                 " terminal_id: '0000001'}\n  networks: [10.0.0.0/8]\n"
                 "- {device_id: W1, protocol: watch, model: Q50}\n")
    b = Provisioning.parse_bytes(yaml_text.encode())
    assert a.devices == b.devices
    t1 = a.get("T1")
    assert t1 is not None and t1.allows_source("10.1.2.3") and not t1.allows_source("192.168.1.2")
    assert a.get("W1") is not None and a.get("W1").allows_source("203.0.113.9")  # type: ignore[union-attr]
    assert a.for_protocol("W1", "gt06") is None
    assert a.to_json() == Provisioning.parse(a.to_json()).to_json()


def test_jt808_identity_reports_each_mismatching_field():
    ident = Jt808Identity(province=32, manufacturer="WSTRM", terminal_id="0000001")
    assert ident.mismatches(32, 5, "WSTRM", "X", "0000001", "") == []
    assert ident.mismatches(31, 5, "EVIL", "X", "0000001", "") == ["province", "manufacturer"]


@pytest.mark.parametrize("data,message", [
    ({"device_id": "X"}, "a list of devices"),
    (["X"], "entry 0: an entry is an object"),
    ([{"device_id": "X", "protocol": "telnet"}], "`protocol` must be one of"),
    ([{"device_id": "X", "protocol": "watch", "pasword": "x"}], "unknown field `pasword`"),
    ([{"device_id": "X", "protocol": "watch", "jt808": {}}], "`jt808` fields on a watch device"),
    ([{"device_id": "X", "protocol": "jt808", "jt808": {"province": 70000}}], "0..65535"),
    ([{"device_id": "X", "protocol": "osmand", "secret_hash": "plain"}], "`secret_hash` is not"),
    ([{"device_id": "X", "protocol": "h02"}, {"device_id": "X", "protocol": "h02"}],
     "provisioned twice"),
])
def test_bad_entries_name_the_entry_and_the_reason(data, message):
    with pytest.raises(ProvisioningError, match=message):
        Provisioning.parse(data)


def devices(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stream.cli", "devices", *args], env=ENV,
                          capture_output=True, text=True, timeout=60)


def test_cli_add_prints_the_secret_once_and_writes_an_owner_only_file(tmp_path):
    path = tmp_path / "devices.json"
    r = devices("add", "--file", str(path), "--device-id", "PHONE-1", "--protocol", "osmand",
                "--network", "10.0.0.0/8")
    assert r.returncode == 0, r.stderr
    secret = r.stdout.strip().rsplit(" ", 1)[1]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secret not in path.read_text()
    dev = load(str(path)).get("PHONE-1")
    assert dev is not None and dev.check_secret(secret) and not dev.check_secret(secret[:-1])
    r = devices("add", "--file", str(path), "--device-id", "T1", "--protocol", "jt808",
                "--jt808-manufacturer", "WSTRM", "--jt808-terminal-id", "0000001")
    assert r.returncode == 0, r.stderr
    assert "secret" not in r.stdout
    t1 = load(str(path)).get("T1")
    assert t1 is not None and t1.secret_hash is None
    assert t1.jt808 == Jt808Identity(manufacturer="WSTRM", terminal_id="0000001")
    listed = devices("list", "--file", str(path))
    assert listed.returncode == 0 and "PHONE-1" in listed.stdout and "sha256" not in listed.stdout
    assert devices("remove", "--file", str(path), "--device-id", "T1").returncode == 0
    assert load(str(path)).get("T1") is None


def test_cli_bad_file_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "devices.json"
    path.write_text('[{"device_id": "X", "protocol": "telnet"}]')
    r = devices("list", "--file", str(path))
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "protocol" in r.stderr
    assert "Traceback" not in r.stderr
    r = devices("add", "--file", str(path) + ".new", "--device-id", "X", "--protocol", "watch",
                "--network", "nope")
    assert r.returncode == 2 and "not a network" in r.stderr and "Traceback" not in r.stderr


def test_simulator_writes_a_provisioning_for_its_caseload(tmp_path):
    out = tmp_path / "day"
    r = subprocess.run([sys.executable, "-m", "stream.cli", "simulate", "generate", "--persons", "4",
                        "--no-telemetry", "--quiet", "--profile", "jt808", "--out", str(out),
                        "--provisioning-out", str(tmp_path / "devices.json")],
                       env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    path = tmp_path / "devices.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    orders = json.loads((out / "orders.json").read_text())
    devices = {d for o in orders for d in o["devices"]}
    book = load(str(path))
    assert {d.device_id for d in book} == devices and devices
    assert {d.protocol for d in book} == {"jt808"}


def test_exposed_names_a_file_others_can_read(tmp_path):
    path = tmp_path / "devices.json"
    path.write_text("[]")
    path.chmod(0o644)
    assert exposed(str(path)) == 0o644
    path.chmod(0o600)
    assert exposed(str(path)) is None
    assert exposed(str(tmp_path / "missing.json")) is None


def test_cli_unwritable_paths_are_one_line_and_exit_2(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    r = devices("add", "--file", str(blocker / "devices.json"), "--device-id", "X",
                "--protocol", "watch")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f"wardstream devices: cannot write {blocker / 'devices.json'}: Not a directory"]
    book = tmp_path / "devices.json"
    book.write_text("[]")
    env = dict(ENV, WARDSTREAM_MQTT_URL="mqtt://gw:pw@127.0.0.1:1883")
    r = subprocess.run([sys.executable, "-m", "stream.cli", "devices", "mosquitto-config",
                        "--file", str(book), "--out", str(blocker / "out")], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f"wardstream devices: cannot write {blocker / 'out'}: Not a directory"]
