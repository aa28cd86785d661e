"""Reading supervision orders: one order from a mapping, or a whole orders file.

An orders file is a JSON array (YAML with the same structure is accepted,
and so is ``{"orders": [...]}``); every error names the order, the rule and
the reason.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from geofence.errors import OrderError
from geofence.gc_pause import gc_paused
from geofence.model.decoding import _classify
from geofence.model.order_checks import _check_all, _check_order
from geofence.model.orders import Order

_ORDERS = msgspec.json.Decoder(list[Order])
_ORDER_CONVERT = msgspec.convert


_RULE_AT = re.compile(r"`\$\.rules\[(\d+)\]")


def _rule_named(data: Any, error: str) -> str:
    """`` rule 'r1'`` when a decoding error lies inside a rule that has an id."""
    m = _RULE_AT.search(error)
    if m is None or not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        return ""
    k = int(m.group(1))
    rules = data["rules"]
    rid = rules[k].get("id") if k < len(rules) and isinstance(rules[k], dict) else None
    return f" rule {rid!r}" if isinstance(rid, str) else f" rule #{k}"


def parse_order(data: Any, index: int = 0) -> Order:
    """Validate one order given as a mapping (already parsed JSON/YAML)."""
    try:
        order = _ORDER_CONVERT(data, Order)
    except msgspec.ValidationError as exc:
        text = str(exc)
        reason = "unknown_field" if "unknown field" in text else _classify(exc)
        raise OrderError(reason, f"order {index}{_rule_named(data, text)}: {text}") from None
    return _check_order(index, order)


def load_document(raw: bytes, what: str) -> Any:
    """JSON, or YAML when it is not JSON, as plain data.

    Raises
    ------
    OrderError
        ``malformed``, naming ``what`` and the place of the syntax error.
    """
    try:
        return json.loads(raw)
    except ValueError as json_exc:
        if raw.lstrip()[:1] in (b"[", b"{"):  # meant as JSON: its error is the useful one
            raise OrderError("malformed", f"{what} are not valid JSON: {json_exc}") from None
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml is a dependency
        raise OrderError("malformed", f"{what} are not valid JSON and PyYAML is missing") from None
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise OrderError("malformed", f"{what} are neither JSON nor YAML: {problem}{at}") from None


def parse_orders(text: str | bytes) -> list[Order]:
    """Parse an orders file: a JSON array, or YAML with the same structure.

    Raises
    ------
    OrderError
        With the order's index and person, the rule id and the reason.
    """
    raw = text.encode() if isinstance(text, str) else text
    # fast path: a plain JSON array of well-typed orders decodes straight into
    # Order structs (no intermediate dicts); anything else (YAML, the
    # {"orders": [...]} form, a type error) takes the path below, which
    # reports exactly which order is wrong and why
    with gc_paused():
        try:
            typed: list[Order] | None = _ORDERS.decode(raw)
        except Exception:  # any failure: the reference path below decides
            typed = None
        if typed is not None:
            return _check_all([_check_order(i, o) for i, o in enumerate(typed)])
    data = load_document(raw, "orders")
    if isinstance(data, dict) and "orders" in data:
        data = data["orders"]
    if not isinstance(data, list):
        raise OrderError("wrong_type", "an orders file is a JSON (or YAML) array of orders")
    return _check_all([parse_order(item, i) for i, item in enumerate(data)])
