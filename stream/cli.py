"""The ``wardstream`` command: one entry point, one subcommand per part.

Each subcommand lives in the package that owns it and is imported only when
it runs, so ``wardstream decode`` does not pay for Faust and ``wardstream
broker`` does not need shapely. A handler takes its own ``argv`` and returns
the exit code.

Every command parses its options with :class:`Parser`: no abbreviated
options, a misspelt option is reported as unrecognised (before any missing
one), and a usage error is one line on stderr with exit 2. The settings are
checked before any command runs, so an invalid ``WARDSTREAM_*`` variable is
one line and exit 2 as well, never a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from geofence.errors import WardstreamError

# name -> (module, function, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("stream.demo", "main", "the whole system on embedded defaults; Ctrl-C stops it"),
    "broker": ("stream.broker", "main", "the embedded Kafka-compatible broker (Tansu, memory only)"),
    "replay": ("stream.replay", "main", "deterministic offline evaluation of a telemetry file"),
    "worker": ("stream.worker", "main", "the stream worker: telemetry in, alert lifecycle records out"),
    "decode": ("devices.cli", "decode_main", "decode one tracker-protocol frame to canonical JSON"),
    "gateway": ("devices.cli", "gateway_main", "device gateway: tracker protocols into Kafka"),
    "api": ("alerts.cli", "api_main", "command-centre HTTP API, live feed and dashboard"),
    "users": ("alerts.cli", "users_main", "manage command-centre operators"),
    "zones": ("alerts.districts", "zones_main", "zone files: official district boundaries and names"),
    "notifier": ("alerts.notify.app", "main", "page officers on call for alert lifecycle steps (Faust)"),
    "notify": ("alerts.notify.cli", "main", "notification policies and duty rosters"),
    "simulate": ("simulators.cli", "main", "synthetic caseloads, load and scoring"),
    "bench": ("simulators.bench", "main", "benchmark suite and report"),
    "devices": ("devices.cli", "devices_main", "provision the devices the gateway accepts"),
    "topics": ("stream.topics", "main", "check the Kafka topics against the contract"),
    "orders": ("stream.order_templates", "main", "order templates: list them, fill one in for a person"),
    "settings": ("stream.cli", "settings_main", "print the effective settings (secrets masked)"),
}


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` as every wardstream command uses it.

    Options are never abbreviated (``--zone`` is not ``--zones``), an unknown
    option is reported as unrecognised even when a required one is also
    missing, and an error is a single line: ``PROG: error: MESSAGE (see
    PROG --help)``, exit 2.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def format_help(self) -> str:
        """Help text, with the documentation's ``literal`` markup taken off."""
        return _plain(super().format_help())

    def format_usage(self) -> str:
        """Usage line, with the documentation's ``literal`` markup taken off."""
        return _plain(super().format_usage())

    def error(self, message: str) -> NoReturn:
        """Print one line and exit 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None,
    ) -> tuple[argparse.Namespace, list[str]]:
        """Report unknown options first, then let argparse do the rest."""
        argv = list(sys.argv[1:] if args is None else args)
        unknown, where = self._unknown_options(argv)
        if unknown:
            if len(unknown) == 1:
                hints = [f"did you mean {close}?" for _, close in unknown if close]
            else:
                hints = [f"{token.split('=', 1)[0]}: did you mean {close}?"
                         for token, close in unknown if close]
            where.error(f"unrecognized arguments: {' '.join(t for t, _ in unknown)}"
                        + (f" ({'; '.join(hints)})" if hints else ""))
        return super().parse_known_args(argv, namespace)

    def _unknown_options(
        self, argv: list[str],
    ) -> tuple[list[tuple[str, str | None]], argparse.ArgumentParser]:
        """Options in ``argv`` that neither this parser nor the chosen subparser knows,
        each with the closest known option (or ``None``), and the innermost parser."""
        parser: argparse.ArgumentParser = self
        unknown: list[tuple[str, str | None]] = []
        expecting_value = False
        for token in argv:
            if token == "--":
                break
            if expecting_value:
                expecting_value = False
                continue
            if token.startswith("-") and len(token) > 1 and not _is_number(token):
                name = token.split("=", 1)[0]
                action = parser._option_string_actions.get(name)
                if action is None and not token.startswith("--"):
                    action = parser._option_string_actions.get(token[:2])  # -xVALUE, -xy
                    if action is not None:
                        continue
                if action is None:
                    close = difflib.get_close_matches(name, parser._option_string_actions, 1)
                    unknown.append((token, close[0] if close else None))
                elif "=" not in token and action.nargs is None:
                    expecting_value = True  # the next token is this option's value
                continue
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction) and token in action.choices:
                    parser = action.choices[token]
                    break
        return unknown, parser


def _plain(text: str) -> str:
    return re.sub(r"``(.+?)``", r"\1", text, flags=re.S).replace("\\\n", "\n")


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def version() -> str:
    """The installed wardstream version (the source tree's when not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("wardstream")
    except PackageNotFoundError:
        return "0+unknown"


def settings_main(argv: Sequence[str]) -> int:
    """``wardstream settings [--json | --markdown]``: the effective settings."""
    from stream.settings import CATALOGUE, Settings, markdown_table, shown_value

    parser = Parser(
        prog="wardstream settings",
        description="Print every setting: its environment variable, effective value and "
        "where the value comes from. Secrets are masked.")
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object, variable -> value")
    fmt.add_argument("--markdown", action="store_true",
                     help="the configuration table of the README (defaults, not effective values)")
    args = parser.parse_args(list(argv))
    if args.markdown:
        print(markdown_table())
        return 0
    import os

    settings = Settings.from_env()
    if args.json:
        print(json.dumps({k.env: shown_value(k, getattr(settings, k.name)) for k in CATALOGUE},
                         indent=2))
        return 0
    rows = [(k.env, str(shown_value(k, getattr(settings, k.name))),
             "environment" if k.env in os.environ else "default") for k in CATALOGUE]
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    print(f"{'variable':<{width[0]}}  {'value':<{width[1]}}  source")
    for env, value, source in rows:
        print(f"{env:<{width[0]}}  {value:<{width[1]}}  {source}")
    return 0


def _usage() -> str:
    lines = ["usage: wardstream COMMAND [ARGS...]", "       wardstream --version", "",
             "commands:"]
    for name, (_, _, help_text) in COMMANDS.items():
        lines.append(f"  {name:<10} {help_text}")
    lines.append("")
    lines.append("`wardstream COMMAND --help` for a command's options.")
    return "\n".join(lines)


def resolve(name: str) -> Callable[[Sequence[str]], int]:
    """The handler of a subcommand.

    Raises
    ------
    WardstreamError
        When the command's module or a Python package it needs is not installed.
    """
    module_name, func_name, _ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        raise WardstreamError(
            f"needs the Python package {missing!r}, which is not installed here"
            " (`make install`, or pip install -e '.[dev]')") from None
    handler = getattr(module, func_name, None)
    if not callable(handler):
        raise WardstreamError(f"{module_name} has no {func_name}(); the installation is broken")
    return handler  # type: ignore[no-any-return]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wardstream`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        print(f"wardstream {version()}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, 1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        print(f"wardstream: unknown command {name!r} ({hint}wardstream --help lists them)",
              file=sys.stderr)
        return 2
    try:
        from stream.settings import Settings

        Settings.from_env()  # an invalid WARDSTREAM_* variable stops every command here
        handler = resolve(name)
        return int(handler(rest) or 0)
    except KeyboardInterrupt:
        return 130
    except WardstreamError as exc:
        print(f"wardstream {name}: {_one_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `wardstream ... | head`: the reader has gone, that is all
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # a file a command could not read or write, named by the OS error
        where = f" {exc.filename!r}" if exc.filename else ""
        print(f"wardstream {name}: cannot use{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
