"""Video-analytics hits and two-device persons: generated, truthful, scored, keyed."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
from aiokafka.partitioner import DefaultPartitioner

from geofence.engine import message_key, partition_keys, person_partition_keys
from geofence.model import TelemetryDecoder, VideoHit, format_ts, parse_orders, parse_ts
from simulators.caseload import EXTRA_KINDS, Caseload, SimConfig, generate
from simulators.feed import KafkaSink
from simulators.score import score
from simulators.verify import verify


def _video_lines(cl: Caseload) -> list[dict]:
    return [json.loads(line) for line in cl.lines() if b'"video_hit"' in line]


def _check(d: Path, truth: dict) -> list[str]:
    with open(d / "telemetry.jsonl", "rb") as f:
        return verify((d / "zones.geojson").read_bytes(), (d / "orders.json").read_bytes(),
                      (line.rstrip(b"\n") for line in f), truth, 32.06, 118.79)


def test_every_new_kind_is_present_with_its_truth(small_caseload: Caseload) -> None:
    truth = small_caseload.truth
    for kind in EXTRA_KINDS:
        assert truth["meta"]["scenarios"][kind] >= 1, kind
    by_scen: dict[str, list[dict]] = {}
    for e in truth["expected"]:
        by_scen.setdefault(e["scenario"], []).append(e)
    assert {e["evidence"] for e in by_scen["video_exclusion"]} == {"gps+video"}
    opens = by_scen["video_opens"]
    n = len({e["person_id"] for e in opens})
    assert sorted(e["kind"] for e in opens) == ["device_separation"] * n + ["exclusion_entered"] * n
    assert {e["evidence"] for e in opens} == {"video"}
    assert {e["kind"] for e in by_scen["video_separation"]} == {"device_separation"}
    assert {e["kind"] for e in by_scen["dual_breach"]} == {"exclusion_entered"}
    assert {e["kind"] for e in by_scen["dual_outage"]} == {"signal_lost"}
    facility = by_scen["facility"]
    assert facility and all(e["person_id"] is None and e["rule_id"] == "video:" + e["kind"][6:]
                            for e in facility)
    low = set(truth["silent_persons"]["video_low_conf"])
    assert low and not low & {e["person_id"] for e in truth["expected"]}


def test_face_matches_are_where_the_scenario_says(small_caseload: Caseload) -> None:
    by_person = {p.person_id: p for p in small_caseload.persons}
    faces = [h for h in _video_lines(small_caseload) if h["event"] == "face_match"]
    assert faces and all(0.0 <= h["confidence"] <= 1.0 for h in faces)
    for h in faces:
        p = by_person[h["person_id"]]
        if p.scenario == "video_low_conf":
            assert h["confidence"] < 0.8
        else:
            assert p.scenario in ("video_exclusion", "video_opens", "video_separation")
            assert h["confidence"] >= 0.8
    facility = [h for h in _video_lines(small_caseload) if h["event"] != "face_match"]
    assert facility and all("person_id" not in h and len(h["jurisdiction"]) == 6 for h in facility)


def test_two_device_persons_report_on_both_devices(small_caseload: Caseload) -> None:
    orders = {o["person_id"]: o for o in small_caseload.orders}
    c = small_caseload.messages.fix_cols
    ids = small_caseload.messages.device_ids
    duals = [p for p in small_caseload.persons if p.phone_id is not None]
    assert duals and all(p.scenario in ("dual_breach", "dual_outage") for p in duals)
    for p in duals:
        assert orders[p.person_id]["devices"] == [p.device_id, p.phone_id]
        wb = np.sort(c["ts"][c["dev"] == ids.index(p.device_id)])
        ph = np.sort(c["ts"][c["dev"] == ids.index(p.phone_id)])
        assert len(wb) > 500 and len(ph) > 500
        assert not set((wb // 1000).tolist()) & set((ph // 1000).tolist())  # never the same second
        if p.scenario == "dual_outage":
            after = p.after_s * 1000
            # the wristband is dark for longer than after_s while the phone reports
            assert np.max(np.diff(wb)) > after
            both = np.sort(np.concatenate([wb, ph]))
            assert np.sum(np.diff(both) > after) == 1  # one gap where both are dark


def test_jt808_profile_has_two_devices_but_no_video() -> None:
    cl = generate(SimConfig.for_profile("jt808", persons=120, seed=3, district_detail_m=60.0))
    assert _video_lines(cl) == []
    assert not any(e["kind"].startswith("video_") or e["kind"] == "device_separation"
                   for e in cl.truth["expected"])
    assert all(cl.truth["meta"]["scenarios"][k] == 0 for k in EXTRA_KINDS if k.startswith("video"))
    assert any(len(o["devices"]) == 2 for o in cl.orders)
    c, ids = cl.messages.fix_cols, cl.messages.device_ids
    for p in (p for p in cl.persons if p.phone_id is not None):  # whole seconds: still never one second
        wb = c["ts"][c["dev"] == ids.index(p.device_id)] // 1000
        ph = c["ts"][c["dev"] == ids.index(p.phone_id)] // 1000
        assert not set(wb.tolist()) & set(ph.tolist())


def test_oracle_flags_two_devices_reporting_at_one_timestamp(small_dir: Path, tmp_path: Path) -> None:
    # Found at 5,000 persons (jt808 profile, P-04908): the phone's last fix before a
    # breach and the wristband's first fix inside it fell in one whole second; which
    # of the two counts last is not the contract's to say, so the truth was ambiguous.
    for name in ("zones.geojson", "orders.json", "truth.json"):
        (tmp_path / name).write_bytes((small_dir / name).read_bytes())
    truth = json.loads((small_dir / "truth.json").read_text())
    orders = json.loads((small_dir / "orders.json").read_text())
    dual = next(o for o in orders if len(o["devices"]) == 2)
    lines = (small_dir / "telemetry.jsonl").read_bytes().splitlines()
    first = next(json.loads(line) for line in lines
                 if b'"device_id":"%s"' % dual["devices"][0].encode() in line and b'"kind":"fix"' in line)
    twin = {**first, "device_id": dual["devices"][1], "lat": first["lat"] + 0.001}
    (tmp_path / "telemetry.jsonl").write_bytes(b"\n".join([*lines, json.dumps(twin).encode()]) + b"\n")
    assert _check(small_dir, truth) == []
    problems = _check(tmp_path, truth)
    assert any(f"{dual['person_id']}: devices" in p and "same ts" in p for p in problems), problems


def test_oracle_notices_wrong_video_and_two_device_truth(small_dir: Path) -> None:
    truth = json.loads((small_dir / "truth.json").read_text())
    assert _check(small_dir, truth) == []
    bad = copy.deepcopy(truth)
    sep = next(e for e in bad["expected"] if e["kind"] == "device_separation")
    bad["expected"].remove(sep)
    fac = next(e for e in bad["expected"] if e["scenario"] == "facility")
    lo = parse_ts(fac["opened_at"][0])
    fac["opened_at"] = [format_ts(lo + 1000)] * 2
    low = truth["silent_persons"]["video_low_conf"][0]
    bad["expected"].append({"person_id": low, "rule_id": "device_separation", "kind": "device_separation",
                            "opened_at": [truth["meta"]["day_start"]] * 2, "late": False})
    outage = next(e for e in bad["expected"] if e["scenario"] == "dual_outage")
    t = parse_ts(outage["opened_at"][0])
    outage["opened_at"] = [format_ts(t - 60_000)] * 2  # as if the phone's fixes were ignored
    problems = "\n".join(_check(small_dir, bad))
    assert f"'{sep['person_id']}', 'device_separation', 'device_separation'" in problems
    assert f"'', '{fac['rule_id']}', '{fac['kind']}'" in problems
    assert f"'{low}', 'device_separation', 'device_separation'" in problems
    assert f"'{outage['person_id']}', 'signal', 'signal_lost'" in problems


def test_score_checks_evidence_and_person_less_alerts() -> None:
    truth = {"expected": [
        {"person_id": "P-1", "rule_id": "excl-1", "kind": "exclusion_entered", "evidence": "gps+video",
         "opened_at": ["2026-11-22T02:00:00Z", "2026-11-22T02:00:30Z"], "late": False},
        {"person_id": None, "rule_id": "video:fight", "kind": "video_fight",
         "opened_at": ["2026-11-22T03:00:00Z", "2026-11-22T03:00:00Z"], "late": False},
    ], "silent_persons": {}}
    alerts = [
        {"alert_id": "a", "person_id": "P-1", "rule_id": "excl-1", "kind": "exclusion_entered",
         "opened_at": "2026-11-22T02:00:30Z", "evidence": "gps", "late": False},
        {"alert_id": "b", "person_id": None, "rule_id": "video:fight", "kind": "video_fight",
         "opened_at": "2026-11-22T03:00:00Z", "evidence": "video", "late": False},
    ]
    r = score(truth, alerts)
    assert r.precision == 1.0 and r.recall == 1.0
    assert [m["alert"]["alert_id"] for m in r.evidence_mismatches] == ["a"]
    alerts[0]["evidence"] = "gps+video"
    assert score(truth, alerts).evidence_mismatches == []


def test_kafka_sink_keys_video_hits_like_the_engine(small_dir: Path) -> None:
    orders = parse_orders((small_dir / "orders.json").read_bytes())
    sink = KafkaSink("127.0.0.1:1", orders)  # not started: keying only
    dev_keys, person_keys = partition_keys(orders), person_partition_keys(orders)
    dec = TelemetryDecoder(now_ms=lambda: 2**50)
    hits = [json.loads(line) for line in (small_dir / "telemetry.jsonl").read_bytes().splitlines()
            if b'"video_hit"' in line]
    # a face match of the larger-id partner of a no-contact pair must go to the pair's key
    grouped = next(pid for pid, key in person_keys.items() if key != pid)
    hits.append({"kind": "video_hit", "camera_id": "CAM-X", "ts": 1_790_000_000_000, "event": "face_match",
                 "lat": 32.0, "lon": 118.8, "person_id": grouped, "confidence": 0.9})
    parts = list(range(12))
    part = DefaultPartitioner()
    for h in hits:
        msg = dec.decode(json.dumps(h).encode()).messages[0]
        assert isinstance(msg, VideoHit)
        want = message_key(msg, dev_keys, person_keys)
        assert sink.key_of(h) == want
        assert part(want.encode(), parts, parts) == part(sink.key_of(h).encode(), parts, parts)
    assert sink.key_of(hits[-1]) == person_keys[grouped] != grouped
