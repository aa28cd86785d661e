"""Order templates: the shipped file, filling one in, and every refusal with its reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from geofence.engine.replay import replay_lines
from geofence.errors import OrderError
from geofence.model import TemplateRef, parse_order, parse_orders
from geofence.rules import compile_order
from geofence.templates import (
    Params,
    Template,
    Victim,
    instantiate,
    order_document,
    parse_templates,
)
from geofence.zones import load_zones

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config" / "order-templates.yaml"
DEMO_ZONES = ROOT / "config" / "demo-zones.geojson"


def _demo_zones() -> dict[str, dict[str, Any]]:
    data = json.loads(DEMO_ZONES.read_text())
    return {f.get("id") or f["properties"]["id"]: f for f in data["features"]}


def _inside(zone_id: str) -> tuple[float, float]:
    """A point well inside a demo zone."""
    from shapely.geometry import shape

    geometry = _demo_zones()[zone_id]["geometry"]
    if geometry["type"] == "Point":
        lon, lat = geometry["coordinates"][:2]
        return lon, lat
    p = shape(geometry).representative_point()
    return p.x, p.y


# every parameter a shipped template may use, with demo zones in county 320117
JURISDICTION = "320117"
FULL: dict[str, Any] = {
    "residence": "home-P-00010",
    "workplace": "home-P-00011",
    "victims": [{"person": "P-00012", "home": "Z-victim-00001"}, {"person": "P-00013"}],
    "places": ["Z-bar-00001", "Z-bar-00006"],
}


def _params_for(template: Template) -> dict[str, Any]:
    needs = template.parameter_needs()
    out = {k: v for k, v in FULL.items() if k in needs}
    if "victims" in out and "victim_home" not in needs:
        out["victims"] = [{"person": v["person"]} for v in FULL["victims"]]
    return out


def _shipped() -> list[Template]:
    return list(parse_templates(SHIPPED.read_bytes()))


def test_shipped_file_has_the_offence_types_of_the_plan() -> None:
    names = {t.name for t in _shipped()}
    assert {"domestic_violence", "drug_offence", "theft", "sexual_offence_minors",
            "fraud"} <= names
    for t in _shipped():
        assert t.offence and t.description, t.name


@pytest.mark.parametrize("template", _shipped(), ids=lambda t: t.name)
def test_every_shipped_template_gives_a_valid_order_on_demo_zones(template: Template) -> None:
    order = instantiate(template, "P-00099", ["WB-99"], JURISDICTION, _params_for(template),
                        valid_from="2026-11-01T00:00:00+08:00",
                        valid_until="2027-02-01T00:00:00+08:00")
    assert order.template == TemplateRef(template.name, template.version)
    assert order.valid_from == 1_793_462_400_000  # normalised as any order is
    zones = _demo_zones()
    for rule in order.rules:
        assert rule.zone is None or rule.zone in zones, (rule.id, rule.zone)
        assert rule.zone is None or "{" not in rule.zone
    # as an orders file (the fast JSON path) it parses to the same order
    doc = order_document(template, "P-00099", ["WB-99"], JURISDICTION, _params_for(template),
                         valid_from="2026-11-01T00:00:00+08:00",
                         valid_until="2027-02-01T00:00:00+08:00")
    assert parse_orders(json.dumps([doc])) == [order]
    # plain JSON data: stored and read back, it compares equal (no new version)
    assert json.loads(json.dumps(doc)) == doc


def _fixes(device: str, lon: float, lat: float, start_ms: int) -> list[bytes]:
    return [json.dumps({"kind": "fix", "device_id": device, "ts": start_ms + k * 30_000,
                        "lat": lat, "lon": lon, "accuracy_m": 5}).encode() for k in range(5)]


def test_orders_from_templates_replay_and_their_rules_fire() -> None:
    templates = parse_templates(SHIPPED.read_bytes())
    dv = instantiate(templates.get("domestic_violence"), "P-00020", ["WB-20"], JURISDICTION,
                     {"residence": "home-P-00020",
                      "victims": [{"person": "P-00021", "home": "Z-victim-00001"}]})
    drug = instantiate(templates.get("drug_offence"), "P-00022", ["WB-22"], JURISDICTION,
                       {"residence": "home-P-00022", "places": ["Z-bar-00001", "Z-bar-00006"]})
    rest = [t for t in templates if t.name not in ("domestic_violence", "drug_offence")]
    others = [instantiate(t, f"P-0003{k}", [f"WB-3{k}"], JURISDICTION, _params_for(t))
              for k, t in enumerate(rest)]
    assert len(others) == 3
    noon = 1_795_320_000_000  # 2026-11-22T04:00:00Z, 12:00 in Nanjing: no curfew
    lines = (_fixes("WB-20", *_inside("Z-victim-00001"), noon)
             + _fixes("WB-22", *_inside("Z-bar-00006"), noon)
             + [f for k in range(3) for f in _fixes(f"WB-3{k}", *_inside("320117"), noon)])
    zones = load_zones(str(DEMO_ZONES))
    for order in (dv, drug, *others):  # every zone a rule names is in the catalogue
        assert compile_order(order, zones, 60.0).missing_zones == (), order.template
    alerts, summary = replay_lines(lines, zones, [dv, drug, *others])
    assert sum(summary.rejected.values()) == 0 and summary.messages == len(lines)
    fired = {(a.person_id, a.rule_id, a.kind) for a in alerts}
    assert ("P-00020", "victim-home-1", "exclusion_entered") in fired
    assert ("P-00022", "venue-2", "exclusion_entered") in fired
    # the template field is provenance only: without it the engine decides the same
    plain = [msgspec.structs.replace(o, template=None) for o in (dv, drug)]
    assert replay_lines(lines, zones, plain)[0] == alerts


def test_victim_rules_are_suffixed_by_the_victims_position() -> None:
    t = parse_templates(SHIPPED.read_bytes()).get("domestic_violence")
    order = instantiate(t, "P-1", ["WB-1"], "320102", Params(
        residence="home-P-1", victims=(Victim("P-2"), Victim("P-3", "Z-victim-00003"))))
    ids = [(r.id, r.type, r.person or r.zone) for r in order.rules]
    assert ids[:3] == [("victim-1", "no_contact", "P-2"), ("victim-2", "no_contact", "P-3"),
                       ("victim-home-2", "exclusion", "Z-victim-00003")]
    assert [r.id for r in order.rules][3:] == ["curfew", "county", "signal"]


def test_county_defaults_to_the_jurisdiction_and_an_optional_rule_needs_its_zone() -> None:
    t = parse_templates(SHIPPED.read_bytes()).get("theft")
    without = instantiate(t, "P-1", ["WB-1"], "320102", {"residence": "home-P-1"})
    assert [(r.id, r.zone) for r in without.rules if r.zone] == [
        ("curfew", "home-P-1"), ("county", "320102")]
    withwork = instantiate(t, "P-1", ["WB-1"], "320102",
                           {"residence": "home-P-1", "workplace": "W-1", "county": "3201-city"})
    assert [(r.id, r.zone) for r in withwork.rules if r.zone] == [
        ("curfew", "home-P-1"), ("work-hours", "W-1"), ("county", "3201-city")]


def test_latest_version_unless_one_is_named() -> None:
    text = """
templates:
  - {name: t, version: 1, offence: x, rules: [{id: a, type: signal_loss, after_s: 60}]}
  - {name: t, version: 3, offence: x, rules: [{id: a, type: signal_loss, after_s: 90}]}
"""
    ts = parse_templates(text)
    assert ts.get("t").version == 3 and ts.get("t", 1).rules[0].after_s == 60
    with pytest.raises(OrderError) as e:
        ts.get("t", 2)
    assert e.value.reason == "unknown_template" and "has 1, 3" in e.value.detail
    with pytest.raises(OrderError) as e:
        ts.get("u")
    assert e.value.reason == "unknown_template" and "there are: t" in e.value.detail


# -- filling in: refused input names its reason
@pytest.mark.parametrize(("template", "params", "reason", "words"), [
    ("domestic_violence", {"victims": [{"person": "P-2"}]}, "missing_parameter",
     "rule 'curfew' needs the residence zone"),
    ("domestic_violence", {"residence": "h"}, "missing_parameter", "at least one victim"),
    ("sexual_offence_minors", {"residence": "h"}, "missing_parameter", "at least one place"),
    ("fraud", {"residence": "h", "schools": ["Z"]}, "unknown_parameter", "`schools`"),
    ("fraud", {"residence": "h", "victims": [{"person": "P-2", "age": 9}]}, "unknown_parameter",
     "`age`"),
    ("domestic_violence", {"residence": "h", "victims": [{"person": "P-2"}], "workplace": "w"},
     "unused_parameter", "no rule using workplace"),
    ("fraud", {"residence": "h", "places": ["Z-bar-00001"]}, "unused_parameter",
     "no rule for places"),
    ("sexual_offence_minors", {"residence": "h", "places": ["S"],
                               "victims": [{"person": "P-2", "home": "Z"}]},
     "unused_parameter", "victim's home"),
    ("domestic_violence", {"residence": "h", "victims": [{"person": "P-1"}]}, "invalid_value",
     "supervised person"),
    ("domestic_violence", {"residence": "h", "victims": [{"person": "P-2"}, {"person": "P-2"}]},
     "invalid_value", "named twice"),
    ("fraud", {"residence": 7}, "wrong_type", "residence"),
])
def test_filling_in_refuses(template: str, params: dict[str, Any], reason: str,
                            words: str) -> None:
    t = parse_templates(SHIPPED.read_bytes()).get(template)
    with pytest.raises(OrderError) as e:
        instantiate(t, "P-1", ["WB-1"], "320102", params)
    assert e.value.reason == reason and words in e.value.detail, e.value


def test_the_order_checks_apply_to_the_filled_in_order() -> None:
    t = parse_templates(SHIPPED.read_bytes()).get("fraud")
    fill = {"residence": "h"}
    for jurisdiction, options, words in (
            ("3201", {}, "6-digit"),
            ("320102", {"timezone": "Mars/Olympus"}, "unknown timezone"),
            ("320102", {"valid_from": "2027-01-01T00:00:00Z",
                        "valid_until": "2026-01-01T00:00:00Z"}, "not after")):
        with pytest.raises(OrderError) as e:
            instantiate(t, "P-1", ["WB-1"], jurisdiction, fill, **options)
        assert words in e.value.detail


# -- reading templates: each mistake is refused with its reason and place
_RULE = "{id: c, type: curfew, zone: '{residence}', windows: [{start: '22:00', end: '06:00'}]}"


def _one(rule: str, extra: str = "") -> str:
    return f"templates:\n  - {{name: t, version: 2, offence: x, {extra}rules: [{rule}]}}\n"


@pytest.mark.parametrize(("text", "reason", "words"), [
    (_one("{id: a, type: exclusion, zone: '{home}'}"), "unknown_parameter",
     "unknown parameter {home}"),
    (_one("{id: a, type: no_contact, person: '{victim}'}"), "unknown_parameter",
     "only in a rule with `for_each: victims`"),
    (_one("{id: a, type: exclusion, for_each: victims, zone: '{victim}'}"), "invalid_value",
     "{victim} fills `person`, not `zone`"),
    (_one("{id: a, type: exclusion, zone: 'home-{residence}'}"), "invalid_value",
     "fills the whole field"),
    (_one("{id: a, type: exclusion, for_each: places, zone: Z-1}"), "invalid_value",
     "names {place}"),
    (_one("{id: a, type: exclusion, for_each: hobbies, zone: '{place}'}"), "wrong_type",
     "for_each"),
    (_one("{id: a, type: exclusion, zone: '{residence}', colour: red}"), "unknown_field",
     "colour"),
    (_one(_RULE, "court: x, "), "unknown_field", "court"),
    (_one("{id: c, type: curfew, zone: '{residence}'}"), "missing_field", "needs `windows`"),
    (_one("{id: c, type: inclusion, zone: '{county}', buffer_m: 5}"), "unsupported_field",
     "`buffer_m` applies only to exclusion"),
    (_one(f"{_RULE}, {_RULE}"), "duplicate_id", "rule ids repeat"),
    (_one("{id: v, type: no_contact, for_each: victims, person: '{victim}'},"
          " {id: v-2, type: signal_loss}"), "duplicate_id", "'v-2' could repeat"),
    ("templates:\n" + 2 * _one(_RULE).removeprefix("templates:\n"), "duplicate_id",
     "template 't' version 2 is defined twice"),
    (_one(""), "missing_field", "at least one rule"),
    ("- just a list\n", "wrong_type", "`templates` list"),
    ("templates: [\n", "malformed", "neither JSON nor YAML"),
    ('{"templates": [}', "malformed", "not valid JSON"),
])
def test_reading_refuses(text: str, reason: str, words: str) -> None:
    with pytest.raises(OrderError) as e:
        parse_templates(text)
    assert e.value.reason == reason and words in e.value.detail, e.value
    if reason in ("unknown_parameter", "invalid_value", "missing_field"):
        assert "template 't' version 2" in e.value.detail


def test_an_order_names_its_template_and_only_as_a_template_ref() -> None:
    base = {"person_id": "P-1", "devices": ["WB-1"], "jurisdiction": "320102",
            "rules": [{"id": "s", "type": "signal_loss"}]}
    order = parse_order({**base, "template": {"name": "fraud", "version": 2}})
    assert order.template == TemplateRef("fraud", 2)
    assert parse_order(base).template is None
    for bad, reason in (({"name": "fraud"}, "missing_field"),
                        ({"name": "fraud", "version": 0}, "out_of_range"),
                        ({"name": "fraud", "version": 1, "by": "x"}, "unknown_field")):
        with pytest.raises(OrderError) as e:
            parse_order({**base, "template": bad})
        assert e.value.reason == reason and "template" in e.value.detail
