"""Order templates: the rules an offence type calls for, written once, filled in per person.

A template names an offence type and lists ordinary order rules whose
``zone`` or ``person`` may be a parameter in braces, filled in when an order
is issued from it:

=================  ==================================================================
``{residence}``    the supervised person's home zone
``{workplace}``    their workplace zone
``{county}``       the zone of the county they must stay in; by default the
                   order's jurisdiction code (the demo's inclusion zones are named
                   by their code)
``{victim}``       a victim's person id (in a rule with ``for_each: victims``)
``{victim_home}``  that victim's home zone (in a rule with ``for_each: victims``)
``{place}``        a named place the person must keep away from, such as a school
                   or an entertainment venue (in a rule with ``for_each: places``)
=================  ==================================================================

A rule with ``for_each`` becomes one rule per victim (or place), its id
suffixed with the position in the list (``victim-1``, ``victim-2``, ...), so
the ids stay the same whenever the same lists are given again. A rule naming
``{victim_home}`` is made only for the victims whose home is given. A rule
marked ``optional`` is left out when a parameter it names is not given;
any other rule needs its parameters, and a list that a non-optional rule
runs over needs at least one entry.

The order issued from a template is an ordinary :class:`~geofence.model.Order`
(the same checks apply) whose ``template`` field names the template and its
version. Nothing here does I/O: :func:`parse_templates` takes the text of a
templates file.

Examples
--------
>>> templates = parse_templates('''
... templates:
...   - name: curfew_only
...     version: 1
...     offence: fraud
...     rules:
...       - {id: curfew, type: curfew, zone: "{residence}",
...          windows: [{start: "22:00", end: "06:00"}]}
...       - {id: county, type: inclusion, zone: "{county}"}
... ''')
>>> order = instantiate(templates.get("curfew_only"), "P-1", ["WB-1"], "320102",
...                     {"residence": "home-P-1"})
>>> [(r.id, r.zone) for r in order.rules], order.template.version
([('curfew', 'home-P-1'), ('county', '320102')], 1)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Annotated, Any, Literal, Union

import msgspec

from geofence.errors import OrderError
from geofence.model.order_checks import _check_fields, _check_rule
from geofence.model.order_parsing import load_document, parse_order
from geofence.model.orders import Order, Rule, TemplateRef

ListName = Literal["victims", "places"]

SCALAR_PARAMETERS: dict[str, str] = {"residence": "zone", "workplace": "zone", "county": "zone"}
"""Parameters given once per order, and the rule field each fills."""
ITEM_PARAMETERS: dict[str, tuple[ListName, str]] = {
    "victim": ("victims", "person"),
    "victim_home": ("victims", "zone"),
    "place": ("places", "zone"),
}
"""Parameters given per list entry: the list (a rule's ``for_each``) and the field each fills."""
PARAMETERS = frozenset(SCALAR_PARAMETERS) | frozenset(ITEM_PARAMETERS)
"""Every parameter a template rule may name."""

_FILLED = ("zone", "person")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_SHORT = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class TemplateRule(Rule, frozen=True, forbid_unknown_fields=True):
    """A rule of a template: an order rule whose ``zone`` or ``person`` may be a parameter.

    Attributes
    ----------
    for_each : {"victims", "places"} or None
        Make one rule per entry of that list, ids suffixed ``-1``, ``-2``, ...
    optional : bool
        Leave the rule out when a parameter it names is not given (instead
        of refusing the order).
    """

    for_each: Union[ListName, None] = None
    optional: bool = False

    def parameters(self) -> tuple[str, ...]:
        """The parameters the rule names, in field order."""
        out = []
        for name in _FILLED:
            value = getattr(self, name)
            if value is not None:
                out.extend(_PLACEHOLDER.findall(value))
        return tuple(out)


class Template(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An order template.

    Attributes
    ----------
    name : str
        Stable identifier (``domestic_violence``); with ``version`` it is unique.
    version : int
        A changed template gets a new version; orders name the version they came from.
    offence : str
        The offence type the template is for, in the words of the court
        (free text, e.g. ``故意伤害``).
    description : str
        What the template does and when to use it.
    rules : tuple of TemplateRule
        The rules, parameters in braces.
    """

    name: _SHORT
    version: Annotated[int, msgspec.Meta(ge=1)]
    offence: _SHORT
    rules: tuple[TemplateRule, ...]
    description: str = ""

    def parameters(self) -> frozenset[str]:
        """Every parameter the template's rules name."""
        return frozenset(p for r in self.rules for p in r.parameters())

    def lists(self) -> frozenset[str]:
        """The lists (``victims``, ``places``) the template's rules run over."""
        return frozenset(r.for_each for r in self.rules if r.for_each is not None)

    def parameter_needs(self) -> dict[str, str]:
        """What an order issued from the template may or must give.

        Maps ``residence``, ``workplace``, ``county``, ``victims``,
        ``victim_home`` and ``places`` (those the rules use) to ``required``,
        ``optional`` or, for ``county``, ``default: the jurisdiction``.
        """
        out: dict[str, str] = {}
        for rule in self.rules:
            names = [*rule.parameters(), *([rule.for_each] if rule.for_each else [])]
            for name in names:
                if name in ("victim", "place"):
                    continue
                need = "optional" if rule.optional or name == "victim_home" else "required"
                if name == "county":
                    need = "default: the jurisdiction"
                if out.get(name) != "required":
                    out[name] = need
        order = ("residence", "workplace", "county", "victims", "victim_home", "places")
        return {k: out[k] for k in order if k in out}

    def describe(self) -> dict[str, Any]:
        """The template as plain data: what the command centre lists and shows."""
        return {"name": self.name, "version": self.version, "offence": self.offence,
                "description": self.description, "parameters": self.parameter_needs(),
                "rules": [{k: v for k, v in _json_data(r).items()
                           if v is not None and v != [] and v is not False}
                          for r in self.rules]}

    def ref(self) -> TemplateRef:
        """The provenance an issued order carries."""
        return TemplateRef(self.name, self.version)


class Victim(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A victim named in an order: their person id and, optionally, their home zone."""

    person: _SHORT
    home: Union[_SHORT, None] = None


class Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The values an order issued from a template fills in (see the module text)."""

    residence: Union[_SHORT, None] = None
    workplace: Union[_SHORT, None] = None
    county: Union[_SHORT, None] = None
    victims: tuple[Victim, ...] = ()
    places: tuple[_SHORT, ...] = ()


class _File(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    templates: tuple[Template, ...]


class TemplateSet:
    """The templates of one file, by name and version.

    Parameters
    ----------
    templates : iterable of Template
        Checked already (:func:`parse_templates` does it); names and versions unique.
    """

    def __init__(self, templates: Iterable[Template]) -> None:
        self._all = {(t.name, t.version): t for t in templates}

    def __iter__(self) -> Iterator[Template]:
        """The templates, by name then version."""
        return iter(sorted(self._all.values(), key=lambda t: (t.name, t.version)))

    def __len__(self) -> int:
        return len(self._all)

    def get(self, name: str, version: int | None = None) -> Template:
        """The template ``name`` at ``version`` (its latest version when ``None``).

        Parameters
        ----------
        name : str
            The template's name.
        version : int, optional
            The version wanted; the highest when not given.

        Returns
        -------
        Template

        Raises
        ------
        OrderError
            ``unknown_template`` naming the templates (or versions) there are.
        """
        versions = sorted(v for n, v in self._all if n == name)
        if not versions:
            names = sorted({n for n, _ in self._all})
            raise OrderError("unknown_template", f"no template {name!r}; there are: "
                             f"{', '.join(names) or 'none'}")
        if version is None:
            return self._all[(name, versions[-1])]
        if version not in versions:
            raise OrderError("unknown_template", f"template {name!r} has no version {version};"
                             f" it has {', '.join(map(str, versions))}")
        return self._all[(name, version)]


def parse_templates(text: str | bytes) -> TemplateSet:
    """Parse and check a templates file: ``{"templates": [...]}`` in JSON or YAML.

    Parameters
    ----------
    text : str or bytes
        The file's content.

    Returns
    -------
    TemplateSet
        Every template, each checked by :func:`check_template`.

    Raises
    ------
    OrderError
        With the template (name and version, or its position) and the
        reason: ``malformed``, ``unknown_field``, ``wrong_type``,
        ``duplicate_id`` (a name and version twice, or a rule id twice),
        ``unknown_parameter``, ``invalid_value`` or the reasons of the order
        checks for a rule that could never make a valid order.
    """
    raw = text.encode() if isinstance(text, str) else text
    data = load_document(raw, "templates")
    if not isinstance(data, dict) or "templates" not in data:
        raise OrderError("wrong_type", "a templates file is an object with a `templates` list")
    try:
        parsed = msgspec.convert(data, _File)
    except msgspec.ValidationError as exc:
        text_ = str(exc)
        reason = "unknown_field" if "unknown field" in text_ else "wrong_type"
        raise OrderError(reason, f"templates: {_where(data, text_)}{text_}") from None
    seen: set[tuple[str, int]] = set()
    for t in parsed.templates:
        if (t.name, t.version) in seen:
            raise OrderError("duplicate_id", f"template {t.name!r} version {t.version} is"
                             " defined twice")
        seen.add((t.name, t.version))
        check_template(t)
    return TemplateSet(parsed.templates)


_AT = re.compile(r"`\$\.templates\[(\d+)\]")


def _where(data: Any, error: str) -> str:
    """``template 'x' version 1: `` when a decoding error lies inside a named template."""
    m = _AT.search(error)
    items = data.get("templates")
    if m is None or not isinstance(items, list) or int(m.group(1)) >= len(items):
        return ""
    item = items[int(m.group(1))]
    if isinstance(item, dict) and isinstance(item.get("name"), str):
        return f"template {item['name']!r} version {item.get('version')!r}: "
    return f"template #{m.group(1)}: "


def check_template(t: Template) -> None:
    """Refuse a template that could not make a valid order whatever it is given.

    Parameters
    ----------
    t : Template
        A template as decoded from a file.

    Raises
    ------
    OrderError
        Naming the template, its version, the rule and what is wrong.
    """
    where = f"template {t.name!r} version {t.version}"
    if not t.rules:
        raise OrderError("missing_field", f"{where}: a template needs at least one rule")
    ids = [r.id for r in t.rules]
    if len(set(ids)) != len(ids):
        raise OrderError("duplicate_id", f"{where}: rule ids repeat: {sorted(ids)}")
    for rule in t.rules:
        _check_rule_parameters(where, rule)
        if rule.for_each is not None:
            made = re.compile(re.escape(rule.id) + r"-[0-9]+")
            clash = [i for i in ids if made.fullmatch(i)]
            if clash:
                raise OrderError("duplicate_id", f"{where}: rule {rule.id!r} makes ids"
                                 f" {rule.id}-1, {rule.id}-2, ..., which {clash[0]!r} could repeat")
        # the order checks of one rule, with its parameters standing in for their values
        _check_fields(where, rule)
        _check_rule(where, rule)


def _check_rule_parameters(where: str, rule: TemplateRule) -> None:
    at = f"{where}: rule {rule.id!r}"
    for field in _FILLED:
        value = getattr(rule, field)
        if value is None or ("{" not in value and "}" not in value):
            continue
        m = _PLACEHOLDER.fullmatch(value)
        if m is None:
            raise OrderError("invalid_value", f"{at}: `{field}` {value!r}: a parameter fills the"
                             " whole field, e.g. \"{residence}\"")
        name = m.group(1)
        if name not in PARAMETERS:
            raise OrderError("unknown_parameter", f"{at}: unknown parameter {{{name}}}; known:"
                             f" {', '.join('{' + p + '}' for p in sorted(PARAMETERS))}")
        fills = SCALAR_PARAMETERS.get(name) or ITEM_PARAMETERS[name][1]
        if fills != field:
            raise OrderError("invalid_value", f"{at}: {{{name}}} fills `{fills}`, not `{field}`")
        if name in ITEM_PARAMETERS and ITEM_PARAMETERS[name][0] != rule.for_each:
            raise OrderError("unknown_parameter", f"{at}: {{{name}}} is known only in a rule"
                             f" with `for_each: {ITEM_PARAMETERS[name][0]}`")
    if rule.for_each is not None and not any(
            ITEM_PARAMETERS.get(p, ("",))[0] == rule.for_each for p in rule.parameters()):
        entries = [p for p, (lst, _) in ITEM_PARAMETERS.items() if lst == rule.for_each]
        raise OrderError("invalid_value", f"{at}: a rule with `for_each: {rule.for_each}` names"
                         f" {' or '.join('{' + p + '}' for p in entries)}; otherwise it repeats"
                         " the same rule")


def order_document(
    template: Template, person_id: str, devices: Sequence[str], jurisdiction: str,
    params: Params | Mapping[str, Any] | None = None, *, timezone: str = "Asia/Shanghai",
    valid_from: int | str | None = None, valid_until: int | str | None = None,
) -> dict[str, Any]:
    """The order issued from ``template``, as the JSON data of an orders file.

    Parameters are those of :func:`instantiate`.

    Returns
    -------
    dict
        Plain JSON data (what an orders file or ``PUT /api/orders`` takes),
        not yet checked as an order: :func:`instantiate` checks it.

    Raises
    ------
    OrderError
        ``unknown_parameter``, ``unused_parameter``, ``missing_parameter``
        or ``invalid_value`` (see :func:`instantiate`).
    """
    p = _params(params)
    _refuse_unused(template, p)
    names = {v.person for v in p.victims}
    if len(names) != len(p.victims):
        raise OrderError("invalid_value", "a victim is named twice")
    if person_id in names:
        raise OrderError("invalid_value", f"{person_id!r} is the supervised person, not a victim")
    if len(set(p.places)) != len(p.places):
        raise OrderError("invalid_value", "a place is named twice")
    values: dict[str, str | None] = {"residence": p.residence, "workplace": p.workplace,
                                     "county": p.county or jurisdiction}
    rules: list[dict[str, Any]] = []
    needed_lists: set[str] = set()
    for rule in template.rules:
        if rule.for_each is None:
            missing = [n for n in rule.parameters() if values.get(n) is None]
            if missing and rule.optional:
                continue
            if missing:
                raise OrderError("missing_parameter", f"template {template.name!r} rule"
                                 f" {rule.id!r} needs the {missing[0]} zone")
            rules.append(_fill(rule, rule.id, values))
            continue
        if not rule.optional:
            needed_lists.add(rule.for_each)
        for k, item in enumerate(_entries(p, rule.for_each), start=1):
            filled = {**values, **item}
            if any(filled.get(n) is None for n in rule.parameters()):
                continue  # e.g. a victim whose home is not given
            rules.append(_fill(rule, f"{rule.id}-{k}", filled))
    for name in sorted(needed_lists):
        if not _entries(p, name):
            one = "victim" if name == "victims" else "place"
            raise OrderError("missing_parameter", f"template {template.name!r} needs at least"
                             f" one {one}")
    doc: dict[str, Any] = {"person_id": person_id, "devices": list(devices),
                           "jurisdiction": jurisdiction, "timezone": timezone}
    if valid_from is not None:
        doc["valid_from"] = valid_from
    if valid_until is not None:
        doc["valid_until"] = valid_until
    doc["rules"] = rules
    doc["template"] = {"name": template.name, "version": template.version}
    return doc


def instantiate(
    template: Template, person_id: str, devices: Sequence[str], jurisdiction: str,
    params: Params | Mapping[str, Any] | None = None, *, timezone: str = "Asia/Shanghai",
    valid_from: int | str | None = None, valid_until: int | str | None = None,
) -> Order:
    """Issue an order from a template.

    Parameters
    ----------
    template : Template
        From :meth:`TemplateSet.get`.
    person_id : str
        The supervised person.
    devices : sequence of str
        The devices they wear or carry.
    jurisdiction : str
        Six-digit GB/T 2260 code of the supervising county; also the default ``{county}``.
    params : Params or mapping, optional
        ``residence``, ``workplace``, ``county``, ``victims`` (``[{"person",
        "home"}]``) and ``places`` (zone ids).
    timezone, valid_from, valid_until
        As in an order.

    Returns
    -------
    Order
        Checked as every order is, with ``template`` naming the template and version.

    Raises
    ------
    OrderError
        ``unknown_parameter`` (a parameter that does not exist),
        ``unused_parameter`` (one the template does not use),
        ``missing_parameter`` (one a rule needs), or any reason of the order
        checks (a bad jurisdiction, time zone, validity, ...).
    """
    return parse_order(order_document(template, person_id, devices, jurisdiction, params,
                                      timezone=timezone, valid_from=valid_from,
                                      valid_until=valid_until))


def _params(params: Params | Mapping[str, Any] | None) -> Params:
    if params is None:
        return Params()
    if isinstance(params, Params):
        return params
    try:
        return msgspec.convert(dict(params), Params)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if "unknown field" in text:
            raise OrderError("unknown_parameter", f"params: {text}; known: residence, workplace,"
                             " county, victims, places") from None
        raise OrderError("wrong_type", f"params: {text}") from None


def _refuse_unused(template: Template, p: Params) -> None:
    """A value the template would not use is an error, not silently dropped."""
    used = template.parameters()
    for name in SCALAR_PARAMETERS:
        if getattr(p, name) is not None and name not in used:
            raise OrderError("unused_parameter", f"template {template.name!r} version"
                             f" {template.version} has no rule using {name}")
    for name, entries in (("victims", p.victims), ("places", p.places)):
        if entries and name not in template.lists():
            raise OrderError("unused_parameter", f"template {template.name!r} version"
                             f" {template.version} has no rule for {name}")
    if any(v.home is not None for v in p.victims) and "victim_home" not in used:
        raise OrderError("unused_parameter", f"template {template.name!r} version"
                         f" {template.version} has no rule using a victim's home")


def _entries(p: Params, name: str) -> list[dict[str, str | None]]:
    if name == "victims":
        return [{"victim": v.person, "victim_home": v.home} for v in p.victims]
    return [{"place": z} for z in p.places]


def _json_data(value: Any) -> Any:
    """``value`` as JSON would give it back: lists, dicts, str, numbers, bool, None."""
    return msgspec.json.decode(msgspec.json.encode(value))


def _fill(rule: TemplateRule, rule_id: str, values: Mapping[str, str | None]) -> dict[str, Any]:
    """The order rule: parameters replaced by their values, template-only fields dropped."""
    out: dict[str, Any] = {}
    for name, value in msgspec.structs.asdict(rule).items():
        if name in ("for_each", "optional") or value is None or value == ():
            continue
        if name in _FILLED:
            m = _PLACEHOLDER.fullmatch(value)
            value = values[m.group(1)] if m else value
        out[name] = _json_data(value)
    out["id"] = rule_id
    return out
