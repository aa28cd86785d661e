"""``wardstream orders``: the order templates file, and orders issued from it.

::

    wardstream orders templates [--templates FILE] [--json]
    wardstream orders from-template --template NAME [--version N] --person ID \\
        --device ID [--device ID ...] --jurisdiction CODE [--residence ZONE] \\
        [--workplace ZONE] [--county ZONE] [--victim PERSON[:HOMEZONE] ...] \\
        [--place ZONE ...] [--timezone TZ] [--valid-from T] [--valid-until T]

``from-template`` prints the order as JSON (one object, as ``PUT
/api/orders/{person_id}`` takes it); invalid input is one line on stderr and
exit 2. The templates file defaults to ``WARDSTREAM_ORDER_TEMPLATES``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from geofence.errors import OrderError
from geofence.model import parse_order
from geofence.templates import Params, TemplateSet, Victim, order_document, parse_templates
from stream.cli import Parser
from stream.settings import Settings

_INSTALLED = Path(__file__).resolve().parent.parent


def templates_path(value: str) -> Path:
    """Where a templates file named in a setting or option is.

    An absolute path is used as it is; a relative one is looked up in the
    working directory, then in the installation (the shipped ``config/``).
    """
    path = Path(value)
    if path.is_absolute() or path.exists() or not (_INSTALLED / path).exists():
        return path
    return _INSTALLED / path


def read_templates(value: str) -> TemplateSet:
    """Read and check a templates file.

    Raises
    ------
    OrderError
        The file's problem, its path first.
    OSError
        When the file cannot be read.
    """
    path = templates_path(value)
    try:
        return parse_templates(path.read_bytes())
    except OrderError as exc:
        raise OrderError(exc.reason, f"templates {str(path)!r}: {exc.detail}") from None


def _victim(text: str) -> Victim:
    person, _, home = text.partition(":")
    if not person or (":" in text and not home):
        raise OrderError("invalid_value", f"--victim {text!r}: use PERSON or PERSON:HOMEZONE")
    return Victim(person, home or None)


def main(argv: Sequence[str]) -> int:
    """Entry point of ``wardstream orders``."""
    settings = Settings.from_env()
    parser = Parser(prog="wardstream orders",
                    description="Order templates: the rules an offence type calls for, filled"
                                " in for one person.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = sub.add_parser("templates", help="list the templates of a file",
                             description="List the templates: name, version, offence and the"
                                         " parameters an order gives.")
    listing.add_argument("--templates", default=settings.order_templates, metavar="FILE",
                         help="templates file (default: %(default)s)")
    listing.add_argument("--json", action="store_true",
                         help="every template with its rules, as JSON")
    fill = sub.add_parser("from-template", help="print the order a template gives for one person",
                           description="Print the order (JSON) a template gives for one"
                                       " person. Parameters a template does not use are"
                                       " refused, as are missing ones it needs.")
    fill.add_argument("--templates", default=settings.order_templates, metavar="FILE",
                       help="templates file (default: %(default)s)")
    fill.add_argument("--template", required=True, metavar="NAME")
    fill.add_argument("--version", type=int, metavar="N",
                       help="template version (default: the latest)")
    fill.add_argument("--person", required=True, metavar="ID", help="the supervised person")
    fill.add_argument("--device", required=True, action="append", metavar="ID",
                       help="a device the person wears or carries (repeat for more)")
    fill.add_argument("--jurisdiction", required=True, metavar="CODE",
                       help="six-digit GB/T 2260 code of the supervising county")
    fill.add_argument("--residence", metavar="ZONE", help="the person's home zone")
    fill.add_argument("--workplace", metavar="ZONE", help="the person's workplace zone")
    fill.add_argument("--county", metavar="ZONE",
                       help="zone the person must stay in (default: the jurisdiction code)")
    fill.add_argument("--victim", action="append", default=[], metavar="PERSON[:HOMEZONE]",
                       help="a victim's person id and, optionally, home zone (repeat for more)")
    fill.add_argument("--place", action="append", default=[], metavar="ZONE",
                       help="a named place to keep away from, e.g. a school (repeat for more)")
    fill.add_argument("--timezone", default="Asia/Shanghai", help="(default: %(default)s)")
    fill.add_argument("--valid-from", metavar="T", help="RFC 3339 or epoch ms")
    fill.add_argument("--valid-until", metavar="T", help="RFC 3339 or epoch ms")
    args = parser.parse_args(list(argv))

    templates = read_templates(args.templates)
    if args.command == "templates":
        if args.json:
            print(json.dumps([t.describe() for t in templates], ensure_ascii=False, indent=1))
            return 0
        for t in templates:
            needs = ", ".join(f"{k} ({v})" for k, v in t.parameter_needs().items())
            print(f"{t.name} v{t.version}: {t.offence}\n  {needs}")
        return 0

    params = Params(residence=args.residence, workplace=args.workplace, county=args.county,
                    victims=tuple(_victim(v) for v in args.victim), places=tuple(args.place))
    doc = order_document(templates.get(args.template, args.version), args.person,
                         args.device, args.jurisdiction, params, timezone=args.timezone,
                         valid_from=_ts(args.valid_from), valid_until=_ts(args.valid_until))
    parse_order(doc)  # the checks every order passes
    print(json.dumps(doc, ensure_ascii=False, indent=1))
    return 0


def _ts(value: str | None) -> int | str | None:
    """An option's time: epoch ms when it is all digits, else RFC 3339 text."""
    return int(value) if value is not None and value.isdigit() else value
