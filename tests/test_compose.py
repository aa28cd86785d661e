"""docker-compose.yml is coherent (Docker does not run on the test machine)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from stream.settings import CATALOGUE

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("stream", "geofence", "devices", "alerts", "simulators")
# Settings a wardstream service cannot run without (no usable default in a container).
NEEDS = {
    "worker": {"WARDSTREAM_KAFKA"},
    "gateway": {"WARDSTREAM_KAFKA"},
    "api": {"WARDSTREAM_KAFKA", "WARDSTREAM_DATABASE_URL"},
    "notifier": {"WARDSTREAM_KAFKA", "WARDSTREAM_DATABASE_URL"},
}


def compose() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_every_service_has_an_image_or_build() -> None:
    services = compose()["services"]
    assert {"kafka", "postgres", "worker", "gateway", "api", "prometheus"} <= set(services)
    for name, svc in services.items():
        assert svc.get("image") or svc.get("build"), name
        if svc.get("build"):
            assert (REPO / str(svc["build"]) / "Dockerfile").exists()


def test_depends_on_names_services() -> None:
    services = compose()["services"]
    for name, svc in services.items():
        deps = svc.get("depends_on") or []
        for dep in deps if isinstance(deps, list) else deps.keys():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert dep != name


def test_settings_read_by_code_are_catalogued_and_set() -> None:
    catalogued = {k.env for k in CATALOGUE}
    read: set[str] = set()
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            read |= set(re.findall(r"WARDSTREAM_[A-Z0-9_]+", path.read_text()))
    # the demo's log folder and the tests' database: never read inside a container
    read -= {"WARDSTREAM_DEMO_LOGS", "WARDSTREAM_TEST_DATABASE_URL"}
    assert read <= catalogued | {"WARDSTREAM_"}, sorted(read - catalogued)
    services = compose()["services"]
    for name, needed in NEEDS.items():
        env = env_of(services[name])
        assert needed <= set(env), f"{name} lacks {sorted(needed - set(env))}"
        assert set(k for k in env if k.startswith("WARDSTREAM_")) <= catalogued
        assert services[name]["image"].startswith("wardstream")


def test_host_ports_do_not_clash() -> None:
    seen: dict[str, str] = {}
    for name, svc in compose()["services"].items():
        for mapping in svc.get("ports") or []:
            host = str(mapping).rsplit(":", 1)[0]
            assert host not in seen, f"{name} and {seen[host]} both publish {host}"
            seen[host] = name


def test_prometheus_scrapes_every_wardstream_service() -> None:
    config = yaml.safe_load((REPO / "config" / "prometheus.yml").read_text())
    text = yaml.safe_dump(config)
    for name in NEEDS:
        assert name in text, f"prometheus does not scrape {name}"
    services = compose()["services"]
    assert "./config/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]


def test_no_secret_is_written_into_the_compose_file() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    assert "${POSTGRES_PASSWORD:?" in text
    assert not re.search(r"PASSWORD:\s*[\"']?[A-Za-z0-9]{4,}", text)
