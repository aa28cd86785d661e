"""Settings catalogue, secret masking, README's table, and the CLI dispatcher."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stream import cli
from stream.errors import ConfigError
from stream.settings import CATALOGUE, Settings, markdown_table, mask

REPO = Path(__file__).resolve().parents[2]


def test_every_catalogue_key_is_a_field_with_the_same_default() -> None:
    defaults = Settings()
    for key in CATALOGUE:
        assert key.env == "WARDSTREAM_" + key.name.upper()
        assert getattr(defaults, key.name) == key.default, key.name
        assert isinstance(key.default, key.type)


def test_from_env_converts_and_rejects() -> None:
    s = Settings.from_env({"WARDSTREAM_TOPIC_PARTITIONS": "48", "WARDSTREAM_KAFKA": "k:9092",
                           "UNRELATED": "x"})
    assert s.topic_partitions == 48 and s.kafka == "k:9092" and s.lateness_s == 120
    with pytest.raises(ConfigError, match="WARDSTREAM_LATENESS_S='soon'"):
        Settings.from_env({"WARDSTREAM_LATENESS_S": "soon"})


def test_secrets_never_print() -> None:
    s = Settings.from_env({"WARDSTREAM_DATABASE_URL": "postgresql://ward:s3cr3t-pw@db:5432/w",
                           "WARDSTREAM_MQTT_URL": "mqtt://dev:hunter22@mq:1883"})
    assert s.database_url.endswith("@db:5432/w")
    for text in (repr(s), str(s)):
        assert "s3cr3t-pw" not in text and "hunter22" not in text
        assert "ward:***@db" in text
    assert mask("") == "" and mask("plain-token") == "***"


def test_readme_configuration_table_matches_the_catalogue() -> None:
    assert markdown_table() in (REPO / "README.md").read_text()


def test_unbuilt_part_says_so_and_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(cli.COMMANDS, "teleport", ("stream.no_such_module", "main", "x", 99))
    assert cli.main(["teleport"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["wardstream teleport: not built yet (issue 99); nothing was done"]


def test_unknown_command_and_help() -> None:
    out = subprocess.run([sys.executable, "-m", "stream.cli", "frobnicate"], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown command 'frobnicate'" in out.stderr
    out = subprocess.run([sys.executable, "-m", "stream.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in ("demo", "replay", "decode", "api", "worker", "gateway", "simulate", "bench", "broker", "users"):
        assert f"  {name} " in out.stdout
