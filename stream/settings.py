"""Typed, frozen settings with one catalogue of keys and their variables.

Every setting wardstream reads from the environment is listed once in
:data:`CATALOGUE` with its ``WARDSTREAM_*`` variable, type, default and a
one-line description; README's configuration table is generated from the
same list (``wardstream settings --markdown``). Secrets are masked whenever a
:class:`Settings` is printed or logged.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stream.errors import ConfigError


@dataclass(frozen=True)
class Key:
    """One entry of the settings catalogue."""

    name: str
    type: type
    default: Any
    help: str
    secret: bool = False
    choices: tuple[str, ...] = ()  # when given: the only values accepted (case-insensitive)

    @property
    def env(self) -> str:
        """The environment variable, ``WARDSTREAM_<NAME>``."""
        return "WARDSTREAM_" + self.name.upper()


CATALOGUE: tuple[Key, ...] = (
    Key("kafka", str, "", "Kafka bootstrap servers (host:port,...). Unset: the embedded broker"
        " is started where a command needs one (demo, tests)."),
    Key("database_url", str, "postgresql://postgres@127.0.0.1:5432/test",
        "PostgreSQL DSN for the alert and track stores.", secret=True),
    Key("database_schema", str, "wardstream", "PostgreSQL schema holding the command-centre"
        " store (lets several stores share one database)."),
    Key("escalation", str, "red=120/300", "Escalation of unacknowledged alerts per severity:"
        " seconds to city / to province, e.g. `red=120/300,orange=900/1800`."),
    Key("topic_partitions", int, 12, "Partitions of wardstream.telemetry when it is created."),
    Key("topic_replication", int, 1, "Replication factor of topics created by wardstream"
        " (3 in production)."),
    Key("telemetry_retention_h", int, 72, "Retention of wardstream.telemetry in hours."),
    Key("lateness_s", int, 120, "Event-time lateness horizon per person, seconds."),
    Key("future_skew_s", int, 300, "Largest lead of a message's event time over its arrival"
        " (at the gateway, at the worker), seconds; more is dead-lettered `future_timestamp`."),
    Key("face_match_min_confidence", float, 0.8, "Face matches below this raise nothing."),
    Key("max_batch", int, 10_000, "Largest batched envelope, messages; larger is dead-lettered."),
    Key("max_payload_bytes", int, 8 * 1024 * 1024, "Largest telemetry payload, bytes."),
    Key("jt808_tz_offset_h", int, 8, "UTC offset of JT/T 808 BCD times, hours."),
    Key("api_host", str, "127.0.0.1", "Bind address of `wardstream api`."),
    Key("api_port", int, 8080, "Port of `wardstream api`."),
    Key("token_ttl_s", int, 8 * 3600, "Lifetime of API login tokens, seconds."),
    Key("track_retention_days", int, 30, "Days of position history kept in the track store."),
    Key("worker_web_port", int, 6066, "Port of the worker's /metrics and /healthz."),
    Key("gateway_metrics_port", int, 9108, "Port of the gateway's /metrics."),
    Key("mqtt_url", str, "mqtt://127.0.0.1:1883", "MQTT broker the gateway subscribes to.",
        secret=True),
    Key("log_level", str, "INFO", "Logging level: DEBUG, INFO, WARNING, ERROR or CRITICAL.",
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")),
    Key("gateway_secret", str, "", "Key of the gateway's JT/T 808 authentication codes (HMAC);"
        " unset: random per start, so terminals must register again after a restart.",
        secret=True),
    Key("alerts_retention_h", int, 24 * 30, "Retention of wardstream.alerts in hours."),
    Key("worker_group", str, "wardstream-worker", "Consumer group of the stream workers."),
    Key("snapshot_interval_s", float, 10.0, "Seconds between state snapshots of a partition"
        " (offsets are committed only up to a snapshot)."),
    Key("idle_watermark_s", float, 10.0, "Wall-clock guard: a caught-up partition silent this"
        " long advances its watermark to now - lateness - this; 0 disables."),
    Key("session_timeout_ms", int, 10_000, "Kafka consumer-group session timeout of a worker."),
    Key("pursuit_interval_s", int, 15, "Report interval requested from a device while its"
        " person has an open geofence alert (wardstream.commands)."),
    Key("normal_interval_s", int, 60, "Report interval restored when the episode clears."),
    Key("gc_freeze", bool, True, "Worker: move long-lived state out of the garbage"
        " collector's scans (gc.freeze) after restores and snapshots; avoids multi-second"
        " full-collection pauses with large caseloads."),
    Key("notify_smtp", str, "", "Notifier: apprise e-mail URL without recipient, e.g."
        " `mailto://mail.example.org:25?from=alerts@example.org`; unset: no e-mail channel.",
        secret=True),
    Key("notify_sms", str, "", "Notifier: apprise JSON URL of the SMS gateway"
        " (`json://gw:8080/send`); the phone number is sent as `to`.", secret=True),
    Key("notify_mqtt", str, "", "Notifier: apprise MQTT URL with the topic of pages"
        " (`mqtt://broker:1883/wardstream/pages`).", secret=True),
    Key("notify_webhook_secret", str, "", "Notifier: HMAC-SHA256 key of webhook signatures.",
        secret=True),
    Key("notify_timeout_s", float, 5.0, "Notifier: timeout of one delivery attempt, seconds."),
    Key("notify_retries", int, 3, "Notifier: retries of a failed delivery before it is logged"
        " failed."),
    Key("order_templates", str, "config/order-templates.yaml", "Order templates offered by the"
        " command centre and `wardstream orders` (a relative path is looked up in the working"
        " directory, then in the installation)."),
    Key("leave_office_max_days", int, 7, "Longest leave a justice-office supervisor may approve,"
        " days; a longer one needs a county administrator."),
)
_BY_NAME = {k.name: k for k in CATALOGUE}
_URL_PASSWORD = re.compile(r"(://[^:/@]+:)([^@]+)(@)")


def mask(value: str) -> str:
    """Hide a secret: passwords inside URLs are starred, other secrets shortened.

    Examples
    --------
    >>> mask("postgresql://u:hunter2@db:5432/x")
    'postgresql://u:***@db:5432/x'
    """
    if "://" in value:
        return _URL_PASSWORD.sub(r"\1***\3", value)
    return "***" if value else ""


def shown_value(key: Key, value: Any) -> Any:
    """A setting's value as it may be printed: secrets masked, everything else as is."""
    return mask(str(value)) if key.secret else value


def _convert(key: Key, raw: str) -> Any:
    try:
        if key.type is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if key.choices:
            if raw.upper() not in key.choices:
                raise ConfigError(f"{key.env}={raw!r} is not one of {', '.join(key.choices)}")
            return raw.upper()
        return key.type(raw)
    except ValueError:
        raise ConfigError(f"{key.env}={raw!r} is not a valid {key.type.__name__}") from None


@dataclass(frozen=True)
class Settings:
    """Every setting, read once; pass it down instead of reading the environment."""

    kafka: str = ""
    database_url: str = "postgresql://postgres@127.0.0.1:5432/test"
    database_schema: str = "wardstream"
    escalation: str = "red=120/300"
    topic_partitions: int = 12
    topic_replication: int = 1
    telemetry_retention_h: int = 72
    lateness_s: int = 120
    future_skew_s: int = 300
    face_match_min_confidence: float = 0.8
    max_batch: int = 10_000
    max_payload_bytes: int = 8 * 1024 * 1024
    jt808_tz_offset_h: int = 8
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    token_ttl_s: int = 8 * 3600
    track_retention_days: int = 30
    worker_web_port: int = 6066
    gateway_metrics_port: int = 9108
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    log_level: str = "INFO"
    gateway_secret: str = ""
    alerts_retention_h: int = 24 * 30
    worker_group: str = "wardstream-worker"
    snapshot_interval_s: float = 10.0
    idle_watermark_s: float = 10.0
    session_timeout_ms: int = 10_000
    pursuit_interval_s: int = 15
    normal_interval_s: int = 60
    gc_freeze: bool = True
    notify_smtp: str = ""
    notify_sms: str = ""
    notify_mqtt: str = ""
    notify_webhook_secret: str = ""
    notify_timeout_s: float = 5.0
    notify_retries: int = 3
    order_templates: str = "config/order-templates.yaml"
    leave_office_max_days: int = 7
    extra: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every catalogued ``WARDSTREAM_*`` variable; overrides win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for key in CATALOGUE:
            if key.env in env:
                values[key.name] = _convert(key, env[key.env])
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        parts = []
        for key in CATALOGUE:
            parts.append(f"{key.name}={shown_value(key, getattr(self, key.name))!r}")
        return f"Settings({', '.join(parts)})"

    __str__ = __repr__


def markdown_table() -> str:
    """README's configuration table, made from the catalogue."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for key in CATALOGUE:
        rows.append(f"| `{key.env}` | `{shown_value(key, key.default)}` | {key.help} |")
    return "\n".join(rows)


def catalogue_key(name: str) -> Key:
    """Look a key up by name."""
    return _BY_NAME[name]
