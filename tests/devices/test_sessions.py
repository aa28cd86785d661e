"""Protocol sessions and the registry: who may send, what gets acknowledged (no I/O)."""

from __future__ import annotations

from devices import gt06, h02, jt808, watch
from devices.registry import Registry, partition_keys
from devices.sessions import Gt06Session, H02Session, Jt808Session, WatchSession
from geofence.model import Fix, parse_orders

NOW = 1_795_356_210_000
ORDERS = parse_orders(b"""[
 {"person_id": "P-1", "devices": ["013912344329", "8800000015"], "jurisdiction": "320102",
  "rules": []},
 {"person_id": "P-2", "devices": ["864717003283581", "4210051415"], "jurisdiction": "320102",
  "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z", "rules": []},
 {"person_id": "P-3", "devices": ["555"], "jurisdiction": "320102",
  "valid_until": "2020-01-01T00:00:00Z", "rules": []}
]""")
PHONE = "013912344329"


def registry() -> Registry:
    return Registry(ORDERS, b"test-secret")


def test_registry_activity_keys_and_auth_codes():
    r = registry()
    assert r.is_accepted("013912344329", NOW) and r.is_accepted("864717003283581", NOW)
    assert not r.is_accepted("555", NOW)  # order expired
    assert not r.is_accepted("nobody", NOW)
    assert r.key_of("8800000015") == partition_keys(ORDERS)["8800000015"]
    code = r.auth_code(PHONE)
    assert r.check_auth(PHONE, code) and not r.check_auth(PHONE, code[:-1] + "x")
    assert Registry(ORDERS, b"other").auth_code(PHONE) != code
    r.remove_person("P-1")
    assert not r.is_accepted(PHONE, NOW)


def test_jt808_register_authenticate_report():
    s = Jt808Session(registry())
    loc = jt808.encode_location(PHONE, 3, NOW - 5000, 32.05, 118.79)
    # before authentication: refused, dead-lettered, nothing to publish
    out = s.on_frame(loc, NOW)
    assert out.result == "not_authenticated" and not out.telemetry
    assert [d.reason for d in out.dead] == ["not_authenticated"]
    (reply,) = out.replies
    assert jt808.decode_general_response(jt808.parse_frame(reply).body)[2] == jt808.RESULT_FAILURE
    # register -> 0x8100 with the code
    out = s.on_frame(jt808.encode_register(PHONE, 1), NOW)
    ack_serial, result, code = jt808.decode_register_response(jt808.parse_frame(out.replies[0]).body)
    assert (ack_serial, result) == (1, 0) and code == registry().auth_code(PHONE)
    # wrong code, then right code
    out = s.on_frame(jt808.encode_auth(PHONE, 2, "wrong"), NOW)
    assert out.result == "auth_failed" and s.device_id is None
    out = s.on_frame(jt808.encode_auth(PHONE, 2, code), NOW)
    assert out.device_id == PHONE and s.device_id == PHONE
    # location: telemetry to publish, 0x8001 ok to send after Kafka's ack
    out = s.on_frame(loc, NOW)
    assert out.result == "ok" and isinstance(out.telemetry[0], Fix)
    assert jt808.decode_general_response(jt808.parse_frame(out.replies[0]).body) == (
        3, jt808.MSG_LOCATION, jt808.RESULT_OK)
    # pursuit downlink uses the terminal's own number and header version
    cmd = jt808.parse_frame(s.command("pursuit", 15) or b"")
    assert cmd.header.msg_id == 0x8103 and cmd.header.device_id == PHONE


def test_jt808_unknown_device_is_refused_and_dead_lettered():
    s = Jt808Session(registry())
    out = s.on_frame(jt808.encode_register("099999999999", 1), NOW)
    assert out.result == "unknown_device" and not out.telemetry
    assert jt808.decode_register_response(jt808.parse_frame(out.replies[0]).body)[1] == \
        jt808.REGISTER_NO_SUCH_TERMINAL
    out = s.on_frame(jt808.encode_location("099999999999", 2, NOW, 32.0, 118.0), NOW)
    assert not out.telemetry and out.dead[0].reason == "unknown_device"
    assert '"device_id":"099999999999"' in out.dead[0].raw


def test_jt808_bad_frames_and_future_timestamps():
    s = Jt808Session(registry())
    out = s.on_frame(b"\x7e\x01\x02\x03\x7e", NOW)
    assert out.bad and out.result == "truncated" and out.dead[0].reason == "truncated"
    code = registry().auth_code(PHONE)
    s.on_frame(jt808.encode_auth(PHONE, 2, code), NOW)
    out = s.on_frame(jt808.encode_location(PHONE, 3, NOW + 2 * 86_400_000, 32.0, 118.0), NOW)
    assert not out.telemetry and out.dead[0].reason == "future_timestamp"


def test_watch_session_known_unknown_and_command():
    s = WatchSession(registry())
    out = s.on_frame(watch.encode_position("SG", "8800000015", NOW, 32.0, 118.0, kind="AL"), NOW)
    assert out.device_id == "8800000015" and len(out.telemetry) == 1
    assert out.replies == [b"[SG*8800000015*0002*AL]"]
    assert s.command("pursuit", 10) == b"[SG*8800000015*0009*UPLOAD,10]"
    out = WatchSession(registry()).on_frame(b"[SG*123*0002*LK]", NOW)
    assert out.result == "unknown_device" and not out.replies and not out.telemetry


def test_gt06_login_required():
    s = Gt06Session(registry())
    loc = gt06.encode_location(NOW, 32.0, 118.0, 2)
    out = s.on_frame(loc, NOW)
    assert out.result == "not_authenticated" and not out.telemetry
    out = s.on_frame(gt06.encode_login("864717003283581", 1), NOW)
    assert out.device_id == "864717003283581" and out.replies
    out = s.on_frame(loc, NOW)
    assert out.telemetry[0].device_id == "864717003283581"
    out = Gt06Session(registry()).on_frame(gt06.encode_login("111111111111111", 1), NOW)
    assert out.result == "unknown_device" and not out.replies


def test_h02_session():
    s = H02Session(registry())
    out = s.on_frame(h02.encode_position("4210051415", NOW, 32.0, 118.0), NOW)
    assert out.telemetry and not out.replies
    out = s.on_frame(h02.encode_position("999", NOW, 32.0, 118.0), NOW)
    assert out.result == "unknown_device"


def test_decoder_gap_never_raises():
    s = WatchSession(registry())
    out = s.on_frame(b"[SG*8800000015*0009*UD,\xff\xfe]", NOW)
    assert out.bad


def test_registry_entries_without_an_order():
    r = Registry(ORDERS, b"k", extra_devices=[("rig-1", "RIG")])
    assert r.is_accepted("rig-1", NOW) and r.key_of("rig-1") == "RIG"
    assert r.person_of("rig-1") is None


def test_future_skew_is_measured_from_arrival():
    r = registry()
    s = Jt808Session(r, future_skew_ms=300_000)
    s.on_frame(jt808.encode_auth(PHONE, 1, r.auth_code(PHONE)), NOW)
    inside = s.on_frame(jt808.encode_location(PHONE, 2, NOW + 300_000, 32.0, 118.0), NOW)
    assert [m.ts for m in inside.telemetry] == [NOW + 300_000] and not inside.dead
    beyond = s.on_frame(jt808.encode_location(PHONE, 3, NOW + 301_000, 32.0, 118.0), NOW)
    assert not beyond.telemetry and [d.reason for d in beyond.dead] == ["future_timestamp"]
    assert "300 s ahead" in beyond.dead[0].detail
    # the same frame arriving a second later is in time
    later = s.on_frame(jt808.encode_location(PHONE, 4, NOW + 301_000, 32.0, 118.0), NOW + 1000)
    assert len(later.telemetry) == 1


def provisioned_registry() -> Registry:
    from devices.provisioning import Provisioning

    return Registry(ORDERS, b"test-secret", provisioning=Provisioning.parse([
        {"device_id": PHONE, "protocol": "jt808", "jt808": {"province": 32, "plate": "苏A1"}},
        {"device_id": "8800000015", "protocol": "watch", "networks": ["10.8.0.0/16"]},
        {"device_id": "864717003283581", "protocol": "h02"},  # not its protocol
    ]))


def test_provisioning_decides_registration_and_identification():
    r = provisioned_registry()
    s = Jt808Session(r)
    bad = s.on_frame(jt808.encode_register(PHONE, 1, province=11, plate="苏A1"), NOW)
    assert bad.result == "registration_mismatch" and "province" in bad.dead[0].detail
    assert jt808.decode_register_response(jt808.parse_frame(bad.replies[0]).body)[1:] == (
        jt808.REGISTER_NO_SUCH_TERMINAL, "")
    good = s.on_frame(jt808.encode_register(PHONE, 2, province=32, plate="苏A1"), NOW)
    assert jt808.decode_register_response(jt808.parse_frame(good.replies[0]).body)[1:] == (
        0, r.auth_code(PHONE))
    w = WatchSession(r, source_ip="192.168.1.5")
    out = w.on_frame(b"[3G*8800000015*0002*LK]", NOW)
    assert out.result == "source_refused" and not out.replies and w.device_id is None
    w = WatchSession(r, source_ip="10.8.3.4")
    assert w.on_frame(b"[3G*8800000015*0002*LK]", NOW).replies
    g = Gt06Session(r)
    out = g.on_frame(gt06.encode_login("864717003283581", 1), NOW)
    assert out.result == "not_provisioned" and not out.replies and g.device_id is None


def test_a_device_live_elsewhere_is_a_conflict():
    r = registry()
    s = H02Session(r, source_ip="10.0.0.9", elsewhere=lambda dev: "10.0.0.1:5000")
    out = s.on_frame(h02.encode_position("4210051415", NOW - 1000, 32.0, 118.0), NOW)
    assert out.result == "device_conflict" and out.conflict == "4210051415"
    assert not out.telemetry and s.device_id is None
    assert "10.0.0.1:5000" in out.dead[0].detail and "4210051415" in out.dead[0].raw
