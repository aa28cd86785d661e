"""Rules by zone category: exclusion from every school, inclusion in any approved place.

Plain sequences of timestamped fixes, each run through the engine on the fast
path and on the reference path (the records must be equal), positions in
metres east/north of the centre of ``engine_world``. Schools are circles of
radius 100 m: ``s1`` at 0 m and ``s2`` at 2,000 m east in county 320102,
``s3`` at 2,000 m west in county 320104; workplaces ``w1`` (1,000 m north) and
``w2`` (1,000 m south) are squares of half-side 200 m.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
import pytest
from engine_world import MIN, SEC, T0, fix, hit, pt, square

from geofence.engine import Engine, EngineConfig
from geofence.errors import ZoneError
from geofence.model import AlertRecord, Fix, parse_orders
from geofence.zones import ZoneCatalogue

CFG = {"confirm_fixes": 2, "default_dwell_s": 0.0}


def school(zid: str, x: float, jurisdiction: str | None = "320102", **props: Any) -> dict[str, Any]:
    p: dict[str, Any] = {"radius_m": 100, "category": "school", **props}
    if jurisdiction is not None:
        p["jurisdiction"] = jurisdiction
    return {"type": "Feature", "id": zid, "properties": p,
            "geometry": {"type": "Point", "coordinates": list(pt(x))}}


def work(zid: str, y: float) -> dict[str, Any]:
    return {"type": "Feature", "id": zid, "properties": {"category": "workplace",
                                                         "jurisdiction": "320102"},
            "geometry": {"type": "Polygon", "coordinates": [square(0, y, 200)]}}


def catalogue(*extra: dict[str, Any]) -> ZoneCatalogue:
    return ZoneCatalogue.from_geojson({"type": "FeatureCollection", "features": [
        school("s1", 0), school("s2", 2000), school("s3", -2000, "320104"),
        work("w1", 1000), work("w2", -1000), *extra]})


def order(*rules: dict[str, Any], jurisdiction: str = "320102") -> list[Any]:
    return parse_orders(json.dumps([{"person_id": "P-A", "devices": ["WB-A"],
                                     "jurisdiction": jurisdiction, "rules": list(rules)}]))


EXCL = {"id": "r6", "type": "exclusion", "category": "school", "buffer_m": 50, "area": "county"}
INCL = {"id": "r7", "type": "inclusion", "category": "workplace"}


class Both:
    """One engine on the fast path and one on the reference path, fed alike."""

    def __init__(self, zones: ZoneCatalogue, orders: list[Any]) -> None:
        self.fast = Engine(zones, orders, EngineConfig(paths="fast", **CFG))  # type: ignore[arg-type]
        self.ref = Engine(zones, orders, EngineConfig(paths="reference", **CFG))  # type: ignore[arg-type]

    def feed(self, msgs: list[Fix]) -> list[AlertRecord]:
        a = self.fast.process(msgs).records
        b = self.ref.process(msgs).records
        assert a == b
        return a

    def set_zones(self, zones: ZoneCatalogue) -> list[AlertRecord]:
        a = self.fast.set_zones(zones)
        b = self.ref.set_zones(zones)
        assert a == b
        return a


def walk(t0: int, x: float, y: float = 0.0, n: int = 3) -> list[Fix]:
    return [fix(t0 + k * 30 * SEC, x, y) for k in range(n)]


def kinds(records: list[AlertRecord]) -> list[tuple[str, str, str | None]]:
    return [(r.event, r.alert.kind, r.alert.zone) for r in records]


def test_a_category_rule_is_one_zone_rule_not_one_per_zone() -> None:
    eng = Engine(catalogue(), order(EXCL), EngineConfig(**CFG))  # type: ignore[arg-type]
    (zr,) = eng._specs["P-A"].zone_rules
    assert zr.zone_id == "category:school@320102"


def test_entering_any_school_of_the_category_opens_one_episode_naming_it() -> None:
    b = Both(catalogue(), order(EXCL))
    assert b.feed(walk(T0, 1000)) == []
    got = b.feed(walk(T0 + 2 * MIN, 2000))  # school s2, not s1
    assert kinds(got) == [("opened", "exclusion_entered", "s2")]
    assert got[0].alert.rule_id == "r6"
    assert kinds(b.feed(walk(T0 + 4 * MIN, 1000))) == [("cleared", "exclusion_entered", "s2")]
    got = b.feed(walk(T0 + 6 * MIN, 0))  # then s1: a new episode of the same rule
    assert kinds(got) == [("opened", "exclusion_entered", "s1")]


def test_the_approach_buffer_of_the_nearest_school_warns() -> None:
    b = Both(catalogue(), order(EXCL))
    got = b.feed(walk(T0, 2130))  # 30 m outside s2, in its 50 m buffer
    assert kinds(got) == [("opened", "exclusion_approach", "s2")]
    assert kinds(b.feed(walk(T0 + 2 * MIN, 2300))) == [("cleared", "exclusion_approach", "s2")]


def test_a_school_in_another_county_does_not_count_under_area_county() -> None:
    b = Both(catalogue(), order(EXCL))
    assert b.feed(walk(T0, -2000)) == []  # s3 is in 320104
    anywhere = dict(EXCL, area=None)
    del anywhere["area"]
    b = Both(catalogue(), order(anywhere))
    assert kinds(b.feed(walk(T0, -2000))) == [("opened", "exclusion_entered", "s3")]
    # the person of county 320104 is protected from s3 only
    b = Both(catalogue(), order(EXCL, jurisdiction="320104"))
    assert b.feed(walk(T0, 2000)) == []
    assert kinds(b.feed(walk(T0 + 2 * MIN, -2000))) == [("opened", "exclusion_entered", "s3")]


def test_area_city_takes_the_zones_of_the_whole_city() -> None:
    city = dict(EXCL, area="city")
    b = Both(catalogue(), order(city))
    assert kinds(b.feed(walk(T0, -2000))) == [("opened", "exclusion_entered", "s3")]
    b = Both(catalogue(school("s4", -2000, "3202")), order(city, jurisdiction="320104"))
    assert b.feed(walk(T0, 4000)) == []  # nothing near
    assert kinds(b.feed(walk(T0 + 2 * MIN, -2000))) == [("opened", "exclusion_entered", "s3")]


def test_inclusion_in_any_of_several_approved_places() -> None:
    b = Both(catalogue(), order(INCL))
    assert b.feed(walk(T0, 0, 1000)) == []  # at w1
    assert b.feed(walk(T0 + 2 * MIN, 0, -1000)) == []  # at w2: also approved
    got = b.feed(walk(T0 + 4 * MIN, 0, -600))  # 200 m from w2, 1,400 m from w1
    assert kinds(got) == [("opened", "inclusion_left", "w2")]
    assert kinds(b.feed(walk(T0 + 6 * MIN, 0, 1000))) == [("cleared", "inclusion_left", "w2")]


def test_inclusion_far_from_every_place_names_the_nearest() -> None:
    b = Both(catalogue(), order(INCL))
    got = b.feed(walk(T0, 0, 9000))
    assert kinds(got) == [("opened", "inclusion_left", "w1")]


def test_a_school_added_by_reload_protects_at_once() -> None:
    b = Both(catalogue(), order(EXCL))
    assert b.feed(walk(T0, 5000)) == []
    assert b.set_zones(catalogue(school("s9", 5000))) == []
    got = b.feed(walk(T0 + 2 * MIN, 5000))
    assert kinds(got) == [("opened", "exclusion_entered", "s9")]


def test_a_school_removed_by_reload_stops_protecting() -> None:
    zc = catalogue(school("s9", 5000))
    b = Both(zc, order(EXCL))
    assert kinds(b.feed(walk(T0, 5000))) == [("opened", "exclusion_entered", "s9")]
    # the episode stays with its rule (other schools remain); the next fix,
    # no longer inside any school, ends it and nothing opens again
    assert b.set_zones(zc.without(["s9"])) == []
    assert kinds(b.feed(walk(T0 + 2 * MIN, 5000))) == [("cleared", "exclusion_entered", "s9")]
    assert b.feed(walk(T0 + 4 * MIN, 5000, n=5)) == []


def test_the_last_school_removed_ends_the_rule_with_the_zone() -> None:
    zc = ZoneCatalogue.from_geojson({"type": "FeatureCollection", "features": [school("s1", 0)]})
    b = Both(zc, order(EXCL))
    assert kinds(b.feed(walk(T0, 0))) == [("opened", "exclusion_entered", "s1")]
    out = b.set_zones(zc.without(["s1"]))
    assert [(r.event, r.alert.reason) for r in out] == [("cleared", "zone_removed")]
    assert b.feed(walk(T0 + 2 * MIN, 0)) == []


def test_a_changed_school_applies_from_the_reload() -> None:
    b = Both(catalogue(), order(EXCL))
    assert b.feed(walk(T0, 2600)) == []
    assert b.set_zones(catalogue().updated([school("s2", 2600)])) == []  # s2 moved
    assert kinds(b.feed(walk(T0 + 2 * MIN, 2600))) == [("opened", "exclusion_entered", "s2")]


def test_zones_of_lists_a_category_within_an_area() -> None:
    zc = catalogue(school("s4", 100, None))
    assert [zc.ids[i] for i in zc.zones_of("school")] == ["s1", "s2", "s3", "s4"]
    assert [zc.ids[i] for i in zc.zones_of("school", "320102")] == ["s1", "s2"]
    assert [zc.ids[i] for i in zc.zones_of("school", "32")] == ["s1", "s2", "s3"]
    assert zc.zones_of("bar").tolist() == []
    assert set(zc.categories) == {"school", "workplace"}


def test_scope_distance_is_the_least_over_the_zones_of_the_scope() -> None:
    zc = catalogue()
    s = zc.scope_of("school", "320102")
    lon, lat = (np.array(v) for v in zip(pt(1900), pt(-2000), pt(50), pt(0, 9000), strict=True))
    d, near = zc.scope_distance_m(np.full(4, s), lon, lat, np.full(4, 500.0))
    one = zc.signed_distance_m(np.array([zc.index_of("s2"), zc.index_of("s1")]),
                               lon[[0, 2]], lat[[0, 2]], np.full(2, 500.0))
    assert d[[0, 2]].tolist() == one.tolist()
    assert [zc.ids[i] for i in near[[0, 2]]] == ["s2", "s1"]
    assert d[1] > 500.0 and near[1] != zc.index_of("s3")  # s3 is in another county
    assert d[3] == np.inf and near[3] == -1  # nothing within reach
    d, near = zc.scope_distance_m(np.array([s]), lon[1:2], lat[1:2], np.array([np.inf]))
    assert zc.ids[near[0]] == "s1" and abs(d[0] - 1900.0) < 5.0  # every zone of the scope


@pytest.mark.parametrize("value", ["3201x", "1", "3201021", 320102, "", " 3201"])
def test_a_bad_jurisdiction_property_is_refused_with_a_reason(value: object) -> None:
    feat = school("s1", 0, None)
    feat["properties"]["jurisdiction"] = value
    with pytest.raises(ZoneError) as e:
        ZoneCatalogue.from_geojson({"type": "FeatureCollection", "features": [feat]})
    assert e.value.reason == "bad_property"
    assert "feature 's1'" in e.value.detail and "properties.jurisdiction" in e.value.detail
    with pytest.raises(ZoneError):
        catalogue().updated([feat])  # a hot reload refuses it too


def test_the_jurisdiction_property_is_kept_on_both_build_paths() -> None:
    poly = {"type": "Feature", "id": "p", "properties": {"category": "bar", "jurisdiction": "3201"},
            "geometry": {"type": "Polygon", "coordinates": [square(0, 0, 50)]}}
    odd = dict(poly, id="q", geometry={"type": "MultiPolygon", "coordinates": [[square(500, 0, 50)]]})
    zc = ZoneCatalogue.from_geojson({"type": "FeatureCollection", "features": [poly, odd]})
    assert zc.zones_of("bar", "3201").tolist() == [0, 1]
    assert zc.zones_of("bar", "320102").tolist() == []


def test_a_face_match_inside_any_school_opens_the_rule_naming_that_school() -> None:
    b = Both(catalogue(), order(EXCL))
    got = b.feed([hit(T0, "face_match", 2000, person_id="P-A", confidence=0.95)])  # type: ignore[list-item]
    assert kinds(got) == [("opened", "exclusion_entered", "s2")]
    assert got[0].alert.evidence == "video"
    assert b.feed([hit(T0 + MIN, "face_match", -2000, person_id="P-A", confidence=0.95)]) == []  # type: ignore[list-item]


def test_the_zone_an_alert_names_is_the_nearest_of_the_scope_in_random_worlds() -> None:
    """:func:`rule_zone` (measured up to the reach, exactly only when nothing
    is within it) against every zone of the scope measured exactly: the least
    distance, ties to the lower index; and the zone a batch's classification
    carries to the alert (:func:`rule_measures`, all points at once) is the
    zone :func:`rule_zone` names for the point alone."""
    from geofence.engine.classify import rule_measures, rule_zone
    from geofence.rules import EXCLUSION, ZoneRule, scope_index

    rng = np.random.default_rng(5)
    for world in range(20):
        feats = []
        for i in range(int(rng.integers(5, 60))):
            x, y = (float(v) for v in rng.uniform(-6000, 6000, 2))
            props = {"category": f"c{i % 3}", "jurisdiction": f"3201{int(rng.integers(2, 5)):02d}"}
            if rng.random() < 0.5:
                geom = {"type": "Point", "coordinates": list(pt(x, y))}
                props["radius_m"] = float(rng.uniform(20, 400))
            else:
                geom = {"type": "Polygon", "coordinates": [square(x, y, float(rng.uniform(20, 600)))]}
            feats.append({"type": "Feature", "id": f"z{i}", "properties": props, "geometry": geom})
        zc = ZoneCatalogue.from_geojson({"type": "FeatureCollection", "features": feats})
        for cat, area in (("c0", ""), ("c1", "320103"), ("c2", "3201")):
            scope = zc.scope_of(cat, area)
            zs = zc.scope_zones(scope)
            zr = ZoneRule("r", EXCLUSION, cat, scope_index(scope), 0.0, 0, "orange", "yellow", None)
            pts = [(*pt(*(float(v) for v in rng.uniform(-8000, 8000, 2))),
                    float(rng.choice([5.0, 50.0, 500.0, 3000.0]))) for _ in range(25)]
            lons, lats, reach = (np.array(v) for v in zip(*pts, strict=True))
            _, near = rule_measures(zc, np.full(len(pts), scope_index(scope)), lons, lats, reach)
            assert near is not None
            for k, (lon, lat, within) in enumerate(pts):
                x, y = lon, lat
                got = rule_zone(zc, zr, lon, lat, within)
                if near[k] >= 0:
                    assert got == zc.ids[int(near[k])], (world, cat, k)
                if not len(zs):
                    assert got == cat
                    continue
                exact = zc.signed_distance_m(zs, np.full(len(zs), lon), np.full(len(zs), lat),
                                             np.full(len(zs), np.inf))
                assert got == zc.ids[int(zs[int(np.argmin(exact))])], (world, cat, x, y, within)


def test_scope_distance_is_the_least_over_the_scope_measured_one_by_one_in_random_worlds() -> None:
    """:meth:`scope_distance_m` (the category index's candidates, a scope of
    one zone measured directly) against every zone of the scope measured
    with :meth:`signed_distance_m`: the same least distance where it is
    within reach, and the lowest-indexed zone at it; beyond reach, a value
    beyond reach. Scopes of no, one and many zones, zones too large for the
    index's grid, reaches from a few metres to every zone."""
    rng = np.random.default_rng(11)
    for world in range(15):
        feats = []
        for i in range(int(rng.integers(3, 80))):
            x, y = (float(v) for v in rng.uniform(-6000, 6000, 2))
            props = {"category": f"c{int(rng.integers(0, 4))}",
                     "jurisdiction": f"3201{int(rng.integers(2, 6)):02d}"}
            if rng.random() < 0.5:
                geom = {"type": "Point", "coordinates": list(pt(x, y))}
                props["radius_m"] = float(rng.uniform(20, 400))
            else:
                half = 25_000.0 if rng.random() < 0.05 else float(rng.uniform(20, 600))
                geom = {"type": "Polygon", "coordinates": [square(x, y, half)]}
            feats.append({"type": "Feature", "id": f"z{i}", "properties": props, "geometry": geom})
        zc = ZoneCatalogue.from_geojson({"type": "FeatureCollection", "features": feats})
        scopes = [zc.scope_of(c, a) for c in ("c0", "c1", "c2", "c3", "none")
                  for a in ("", "3201", "320102", "320103", "320105")]
        n = 300
        s = np.array(scopes)[rng.integers(0, len(scopes), n)]
        xy = rng.uniform(-9000, 9000, (n, 2))
        lon, lat = (np.array(v) for v in zip(*(pt(float(a), float(b)) for a, b in xy), strict=True))
        w = rng.choice([3.0, 40.0, 250.0, 499.0, 900.0, 5000.0, np.inf], n)
        d, near = zc.scope_distance_m(s, lon, lat, w)
        for i in range(n):
            zs = zc.scope_zones(int(s[i]))
            if not len(zs):
                assert d[i] == np.inf and near[i] == -1
                continue
            one = zc.signed_distance_m(zs, np.full(len(zs), lon[i]), np.full(len(zs), lat[i]),
                                       np.full(len(zs), w[i]))
            least = float(one.min())
            why = (world, i, int(s[i]), float(w[i]), least, float(d[i]))
            if least <= w[i]:
                assert d[i] == least, why
                assert near[i] == zs[int(np.flatnonzero(one == least)[0])], why
            else:
                assert d[i] > w[i], why


def test_the_nearest_zone_is_named_where_a_bound_and_the_exact_distance_differ_by_a_hair() -> None:
    """A point in the hole of a zone, 200 m from its inner ring (from random
    world 691 of test_worlds.py): the zone's raster gives a clearance 0.06 mm
    above the exact distance, within the exact distance's error. Naming the
    nearest zone beyond reach must not lose the zone to that hair."""
    from geofence.engine.classify import rule_zone
    from geofence.rules import EXCLUSION, ZoneRule, scope_index

    outer = [[118.79578040957955, 32.03751377173022], [118.80636893831117, 32.03751377173022],
             [118.80636893831117, 32.046531905726816], [118.79578040957955, 32.046531905726816],
             [118.79578040957955, 32.03751377173022]]
    hole = [[118.79895696819904, 32.0402192119292], [118.79895696819904, 32.043826465527836],
            [118.80319237969168, 32.043826465527836], [118.80319237969168, 32.0402192119292],
            [118.79895696819904, 32.0402192119292]]
    zc = ZoneCatalogue.from_geojson({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "ring", "properties": {"category": "c"},
         "geometry": {"type": "Polygon", "coordinates": [outer, hole]}},
        school("far", 9000, category="c")]})
    scope = zc.scope_of("c")
    zr = ZoneRule("r", EXCLUSION, "c", scope_index(scope), 0.0, 0, "orange", "yellow", None)
    assert rule_zone(zc, zr, 118.80107467394537, 32.04202283872852, 10.0) == "ring"
