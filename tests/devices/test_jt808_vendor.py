"""Vendor wristband alarms in JT/T 808 location reports: strap removal, vibration, tamper.

Captured frames (used as data) come from Traccar,
repository traccar/traccar, file src/test/java/org/traccar/protocol/Jt808ProtocolDecoderTest.java,
where the decoder reads ``removing`` / ``vibration`` from item 0xEB sub-items 0x0089
(bit 12 clear) and 0x00C5 (bit 6 clear). The three 0xEB frames below are one device's
report with only those flag bytes (and the check code) differing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import jt808, vendor
from devices.cli import decode_frame, load_vendor_models
from devices.registry import Registry
from devices.sessions import Jt808Session
from geofence.model import DeviceEvent, Fix, parse_orders

H = bytes.fromhex
ROOT = Path(__file__).resolve().parents[2]

# Traccar: 0xEB {0x00B2 ICCID, 0x0089 ffffffff, 0x00C5 ffffffef, 0x002D, 0x00A8}: no alarm
TRACCAR_EB_QUIET = H(
    "7e020000530095900689830016000000000000000b00a2394803a925f800000000000025112411514701040000003e"
    "300115310113eb29000c00b28988228066613427450900060089ffffffff000600c5ffffffef0004002d0fa5000300"
    "a85c657e")
# Traccar: the same with 0x0089 = ffffefff (bit 12 clear) -> ALARM_REMOVING
TRACCAR_EB_REMOVING = H(
    "7e020000530095900689830016000000000000000b00a2394803a925f800000000000025112411514701040000003e"
    "300115310113eb29000c00b28988228066613427450900060089ffffefff000600c5ffffffef0004002d0fa5000300"
    "a85c757e")
# Traccar: the same with 0x00C5 = ffffffaf (bit 6 clear) -> ALARM_VIBRATION
TRACCAR_EB_VIBRATION = H(
    "7e020000530095900689830016000000000000000b00a2394803a925f800000000000025112411514701040000003e"
    "300115310113eb29000c00b28988228066613427450900060089ffffffff000600c5ffffffaf0004002d0fa5000300"
    "a85c257e")
# Traccar: alarm dword 0x80 and 0x0089 = FFFFEFFF -> "lowBattery,removing"
TRACCAR_LOW_BATTERY_REMOVING = H(
    "7E020000480123456789010013000000800000000301597BC506CBFF6600EB00000155210726203531010400000000"
    "EB24000C00B28986047701207027150200060089FFFFEFFF0004002D0E10000600C5FFFFFFEF697E")
# Traccar: 0xEB holding a time-zone text ("UTC+08:00"), six 0x0704 items -> no vendor flags
TRACCAR_EB_TIMEZONE_BATCH = H(
    "7e070401654eb6fb4afd9e485b000601003900000000000c000301f5a58700ca24c5000d0000004925111215454501"
    "040000000025040000000030011731010aeb095554432b30383a3030003900000000000c000301f5a58e00ca24cd00"
    "0d0000002825111215454701040000000025040000000030011731010aeb095554432b30383a3030003900000000000c"
    "000301f5a5ad00ca24de000e0000011025111215455901040000000025040000000030011931010aeb095554432b3038"
    "3a3030003900000000000c000301f5a5b100ca24ed000e0000004625111215461401040000000025040000000030011931"
    "010aeb095554432b30383a3030003900000000000c000301f5a5a900ca24f5000e000000a125111215461701040000"
    "000025040000000030011931010aeb095554432b30383a3030003900000000000c000301f5a5af00ca24fb000e000000"
    "dd25111215463201040000000025040000000030011731010beb095554432b30383a3030537e")
# Traccar: alarm dword bit 0 (SOS on a standard terminal), status west + positioned
TRACCAR_ALARM_BIT0 = H("7e0200002e094027587492000a000000010000000a03083db7001329f3000000140000130412"
                       "164952010400000012360a0002341502cb0c20085c107e")

NOW = 1_795_356_210_000
PHONE = "013912344329"


def events(telemetry: list) -> list[tuple[str, str | None]]:
    return [(m.event, m.detail) for m in telemetry if isinstance(m, DeviceEvent)]


def both_paths(frame: bytes, **kw) -> list:
    """Telemetry of the full decoder; asserts the gateway's fast lane gives the same."""
    profile = vendor.profile_of(kw.pop("model", None), kw.pop("models", vendor.MODELS))
    full = jt808.decode_message(jt808.parse_frame(frame), profile=profile, **kw).telemetry
    fast = jt808.decode_report(frame, profile=profile, **kw)
    assert fast is not None and fast[3] == full
    return full


# --------------------------------------------------------------------------- real frames


def test_real_frame_without_flags_gives_only_the_fix(verify_fix):
    (fix,) = both_paths(TRACCAR_EB_QUIET)
    verify_fix(fix, device_id="009590068983", lat=10.631496, lon=-61.416952,  # status: west
               ts="2025-11-24T11:51:47+08:00")


def test_real_frame_strap_removed():
    fix, event = both_paths(TRACCAR_EB_REMOVING)
    assert isinstance(fix, Fix) and isinstance(event, DeviceEvent)
    assert (event.event, event.detail) == ("removed", "jt808 item 0xEB/0x0089 bit 12 clear")
    assert event.ts == fix.ts and event.device_id == fix.device_id == "009590068983"


def test_real_frame_vibration():
    assert events(both_paths(TRACCAR_EB_VIBRATION)) == [
        ("vibration", "jt808 item 0xEB/0x00C5 bit 6 clear")]


def test_real_frame_alarm_dword_and_vendor_item_together():
    assert events(both_paths(TRACCAR_LOW_BATTERY_REMOVING)) == [
        ("battery_low", "jt808 alarm 0x00000080"), ("removed", "jt808 item 0xEB/0x0089 bit 12 clear")]


def test_eb_item_that_is_not_sub_items_gives_no_event_and_no_error():
    d = jt808.decode(TRACCAR_EB_TIMEZONE_BATCH)
    assert not d.errors and len(d.telemetry) == 6
    assert all(isinstance(m, Fix) for m in d.telemetry)
    assert vendor.sub_items(b"UTC+08:00") is None


def test_every_report_with_the_flag_gives_the_event_again():
    # stateless: two reports while the strap stays off -> one event each (engine dedups episodes)
    for _ in range(2):
        assert [e for e, _ in events(jt808.decode(TRACCAR_EB_REMOVING).telemetry)] == ["removed"]


# --------------------------------------------------------------------------- polarity


def eb(sub: int, value: int) -> tuple[int, bytes]:
    return 0xEB, bytes.fromhex(f"0006{sub:04x}{value:08x}")


def report(*extras: tuple[int, bytes], alarm: int = 0) -> bytes:
    return jt808.encode_location(PHONE, 5, NOW - 60_000, 32.05, 118.79, alarm=alarm,
                                 battery_pct=70, extras=extras)


@pytest.mark.parametrize(("items", "expected"), [
    ([eb(0x0089, 0xFFFFFFFF)], []),                      # all flags high: nothing active
    ([eb(0x0089, 0xFFFFEFFF)], ["removed"]),             # bit 12 low: strap off
    ([eb(0x0089, 0x00001000 | 1)], []),                  # bits 12 and 0 high, others low
    ([eb(0x0089, 0x00001000)], ["power_off"]),           # bit 0 low (main power), bit 12 high
    ([eb(0x00C5, 0xFFFFFFBF)], ["vibration"]),           # bit 6 low
    ([eb(0x00C5, 0x00000040)], []),                      # bit 6 high
    ([(0xD0, bytes.fromhex("00000008"))], ["vibration"]),  # 0xD0 is active-high: bit 3 set
    ([(0xD0, bytes.fromhex("fffffff7"))], []),
    ([(0xEB, bytes.fromhex("00060089ffff"))], []),       # sub-item overruns the item: not read
    ([(0xEB, bytes.fromhex("0004008900"))], []),          # 1-byte value cannot hold bit 12
])
def test_polarity_of_the_default_flags(items, expected):
    assert [e for e, _ in events(both_paths(report(*items)))] == expected


def test_an_event_raised_by_both_alarm_dword_and_item_is_reported_once():
    tele = both_paths(report(eb(0x0089, 0xFFFFEFFF), alarm=1 << 16))  # dword bit 16 = removed
    assert events(tele) == [("removed", "jt808 alarm 0x00010000")]


# --------------------------------------------------------------------------- per model


def test_model_profile_replaces_the_alarm_bits():
    assert [e for e, _ in events(both_paths(TRACCAR_ALARM_BIT0))] == ["sos"]
    assert [e for e, _ in events(both_paths(TRACCAR_ALARM_BIT0, model="G-360P"))] == ["removed"]
    assert [e for e, _ in events(both_paths(report(alarm=0b10), model="G-508P"))] == ["tamper"]
    # a model not in the table gets the default profile
    assert [e for e, _ in events(both_paths(TRACCAR_ALARM_BIT0, model="XYZ"))] == ["sos"]


CONFIG = {"models": {
    "WB-9": {"alarm_bits": {"0": "sos"},
             "items": [{"item": "0xE8", "bit": 2, "event": "tamper"}],
             "inherit_items": False},
    "WB-10": {"items": [{"item": "0xEB", "sub": "0x00F1", "bit": "0", "event": "removed",
                         "active_low": True}]},
    "WB-11": {"alarm_bits": {}},
}}


def test_configured_models_override_and_extend():
    models = vendor.parse_models(CONFIG)
    assert models["G-360P"] is vendor.MODELS["G-360P"]  # built-ins kept
    # WB-9 drops the default items: the real removing frame gives nothing for it
    assert events(both_paths(TRACCAR_EB_REMOVING, model="WB-9", models=models)) == []
    assert events(both_paths(report((0xE8, b"\x04")), model="WB-9", models=models)) == [
        ("tamper", "jt808 item 0xE8 bit 2 set")]
    # WB-10 keeps the defaults and adds its own active-low sub-item
    assert [e for e, _ in events(both_paths(TRACCAR_EB_REMOVING, model="WB-10", models=models))
            ] == ["removed"]
    assert events(both_paths(report((0xEB, bytes.fromhex("000300f1fe"))), model="WB-10",
                             models=models)) == [("removed", "jt808 item 0xEB/0x00F1 bit 0 clear")]
    assert events(both_paths(report((0xEB, bytes.fromhex("000300f1ff"))), model="WB-10",
                             models=models)) == []
    # an empty alarm-bit map: the alarm dword raises nothing for that model
    assert events(both_paths(TRACCAR_ALARM_BIT0, model="WB-11", models=models)) == []
    # a model named "" replaces the default profile (here: no item flags at all)
    quiet = vendor.parse_models({"models": {"": {"inherit_items": False}}})
    assert events(both_paths(TRACCAR_EB_REMOVING, model=None, models=quiet)) == []
    assert events(both_paths(TRACCAR_EB_REMOVING, model="unlisted", models=quiet)) == []
    assert events(both_paths(TRACCAR_EB_REMOVING, model="G-360P", models=quiet)) != []


@pytest.mark.parametrize(("doc", "reason"), [
    ([], "is an object"),
    ({"models": {"X": {"items": [{"item": 1, "bit": 0, "event": "explode"}]}}},
     "'explode' is not a device event"),
    ({"models": {"X": {"items": [{"item": 300, "bit": 0, "event": "sos"}]}}}, "one-byte item id"),
    ({"models": {"X": {"items": [{"item": 1, "bit": 0}]}}}, "'event' is missing"),
    ({"models": {"X": {"items": [{"item": 1, "bit": 0, "event": "sos", "colour": 1}]}}},
     "unknown field(s) colour"),
    ({"models": {"X": {"alarm_bits": {"40": "sos"}}}}, "alarm bit 40"),
    ({"models": {"X": {"alarm_bits": {"zero": "sos"}}}}, "'zero' is not a number"),
    ({"models": {"X": {"items": [{"item": 1, "bit": 0, "event": "sos", "active_low": "yes"}]}}},
     "active_low is true or false"),
])
def test_unusable_configuration_is_refused_with_a_reason(doc, reason):
    with pytest.raises(vendor.VendorMapError) as exc:
        vendor.parse_models(doc)
    assert reason in str(exc.value) and ("'X'" in str(exc.value) or doc == [])


# --------------------------------------------------------------------------- session wiring


class ProvisionedRegistry(Registry):
    """A registry whose devices carry a provisioned model."""

    def __init__(self, models: dict[str, str]) -> None:
        super().__init__(parse_orders(f"""[{{"person_id": "P-1", "devices": ["{PHONE}"],
            "jurisdiction": "320102", "rules": []}}]""".encode()), b"test-secret")
        self.models = models

    def model_of(self, device_id: str) -> str | None:
        return self.models.get(device_id)


def authenticated(reg: Registry, **kw) -> Jt808Session:
    s = Jt808Session(reg, **kw)
    s.on_frame(jt808.encode_auth(PHONE, 1, reg.auth_code(PHONE)), NOW)
    assert s.device_id == PHONE
    return s


def test_registry_model_defaults_to_none():
    assert ProvisionedRegistry({}).model_of(PHONE) is None
    assert Registry([], b"k").model_of(PHONE) is None


def test_session_decodes_with_the_provisioned_model():
    frame = report(alarm=1)  # bit 0: SOS normally, strap removal on a G-360P
    plain = authenticated(ProvisionedRegistry({}))
    assert [e for e, _ in events(plain.on_frame(frame, NOW).telemetry)] == ["sos"]
    g360 = authenticated(ProvisionedRegistry({PHONE: "G-360P"}))
    out = g360.on_frame(frame, NOW)
    assert out.result == "ok" and [e for e, _ in events(out.telemetry)] == ["removed"]
    # the full path (escaped bytes keep the frame off the fast lane) agrees
    escaped = report((0x7E, b"\x7e"), alarm=1)
    assert g360.report(escaped, NOW) is None
    assert [e for e, _ in events(g360.on_frame(escaped, NOW).telemetry)] == ["removed"]
    # configured models reach the session
    custom = authenticated(ProvisionedRegistry({PHONE: "WB-9"}),
                           models=vendor.parse_models(CONFIG))
    assert events(custom.on_frame(report((0xE8, b"\x04")), NOW).telemetry) == [
        ("tamper", "jt808 item 0xE8 bit 2 set")]


# --------------------------------------------------------------------------- command line


def test_decode_frame_with_model_and_models_file(tmp_path):
    assert [m.event for m in decode_frame("jt808", TRACCAR_ALARM_BIT0.hex(), now_ms=NOW,
                                          model="G-360P")[0] if isinstance(m, DeviceEvent)
            ] == ["removed"]
    path = tmp_path / "models.json"
    path.write_text(json.dumps(CONFIG))
    models = load_vendor_models(str(path))
    tele, _ = decode_frame("jt808", report((0xE8, b"\x04")).hex(), now_ms=NOW, model="WB-9",
                           models=models)
    assert [m.event for m in tele if isinstance(m, DeviceEvent)] == ["tamper"]


def run_decode(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stream.cli", "decode", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_cli_decode_model_and_bad_models_file(tmp_path):
    ok = run_decode("--protocol", "jt808", "--model", "G-360P", TRACCAR_ALARM_BIT0.hex())
    assert ok.returncode == 0, ok.stderr
    assert [json.loads(line).get("event") for line in ok.stdout.splitlines()] == [None, "removed"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"models": {"X": {"items": [{"item": 1, "bit": 0, "event": "explode"}]}}}')
    out = run_decode("--protocol", "jt808", "--models", str(bad), TRACCAR_ALARM_BIT0.hex())
    assert out.returncode == 2 and not out.stdout
    assert out.stderr.count("\n") == 1 and "'explode' is not a device event" in out.stderr
    assert "Traceback" not in out.stderr
    wrong = run_decode("--protocol", "h02", "--model", "G-360P", "*HQ,1,V1#")
    assert wrong.returncode == 2 and "jt808 only" in wrong.stderr and not wrong.stdout


def test_gateway_refuses_an_unusable_models_file(tmp_path):
    orders = tmp_path / "orders.json"
    orders.write_text(f'[{{"person_id": "P", "devices": ["{PHONE}"], "jurisdiction": "320102", '
                      '"rules": []}]')
    bad = tmp_path / "models.json"
    bad.write_text('{"models": {"WB-9": {"items": [{"item": "0xEB", "bit": 40, "event": "sos", '
                   '"sub": "0x10000"}]}}}')
    r = subprocess.run([sys.executable, "-m", "stream.cli", "gateway", "--orders", str(orders),
                        "--kafka", "127.0.0.1:1", "--jt808-port", "0", "--jt808-models", str(bad),
                        "--allow-unprovisioned"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and not r.stdout and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0
    assert "model 'WB-9' item 0" in r.stderr and "sub-item 0x10000 is not a WORD" in r.stderr
    missing = subprocess.run([sys.executable, "-m", "stream.cli", "gateway", "--orders",
                              str(orders), "--kafka", "127.0.0.1:1", "--jt808-port", "0",
                              "--jt808-models", str(tmp_path / "nope.json"),
                              "--allow-unprovisioned"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60,
                             env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert missing.returncode == 2 and "cannot read vendor map" in missing.stderr


JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.text(max_size=6),
              st.sampled_from(["0xEB", "0x0089", "removed", "sos", "12", "-1", "0x"])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["models", "items", "alarm_bits", "item", "sub", "bit",
                                         "event", "active_low", "inherit_items", "WB", "0"]),
                        inner, max_size=4)),
    max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(JSONISH)
def test_any_configuration_document_is_a_model_table_or_a_vendor_map_error(doc):
    try:
        models = vendor.parse_models(doc)
    except vendor.VendorMapError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    for profile in models.values():
        assert vendor.item_events([(0xEB, bytes.fromhex("00060089ffffefff"))], profile) is not None
