"""The ``wardstream`` command: one entry point, one subcommand per part.

Each subcommand lives in the package that owns it and is imported only when
it runs, so ``wardstream decode`` does not pay for Faust and ``wardstream
broker`` does not need shapely. A handler takes its own ``argv`` and returns
the exit code. A part that has not been built yet says so and exits 2.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

# name -> (module, function, one-line help, issue that builds it)
COMMANDS: dict[str, tuple[str, str, str, int]] = {
    "demo": ("stream.demo", "main", "the whole system on embedded defaults; Ctrl-C stops it", 2),
    "broker": ("stream.broker", "main", "the embedded Kafka-compatible broker (Tansu, memory only)", 2),
    "replay": ("stream.replay", "main", "deterministic offline evaluation of a telemetry file", 3),
    "worker": ("stream.worker", "main", "the stream worker: telemetry in, alert lifecycle records out", 4),
    "decode": ("devices.cli", "decode_main", "decode one tracker-protocol frame to canonical JSON", 6),
    "gateway": ("devices.cli", "gateway_main", "device gateway: tracker protocols into Kafka", 6),
    "api": ("alerts.cli", "api_main", "command-centre HTTP API, live feed and dashboard", 5),
    "users": ("alerts.cli", "users_main", "manage command-centre operators", 5),
    "notifier": ("alerts.notify.app", "main", "page officers on call for alert lifecycle steps (Faust)", 0),
    "notify": ("alerts.notify.cli", "main", "notification policies and duty rosters", 0),
    "simulate": ("simulators.cli", "main", "synthetic caseloads, load and scoring", 7),
    "bench": ("simulators.bench", "main", "benchmark suite and report", 7),
    "settings": ("stream.cli", "settings_main", "print the effective settings (secrets masked)", 2),
}


def settings_main(argv: Sequence[str]) -> int:
    """``wardstream settings [--markdown]``: effective settings or README's table."""
    from stream.settings import Settings, markdown_table

    if "--markdown" in argv:
        print(markdown_table())
    else:
        print(Settings.from_env())
    return 0


def _usage() -> str:
    lines = ["usage: wardstream COMMAND [ARGS...]", "", "commands:"]
    for name, (_, _, help_text, _) in COMMANDS.items():
        lines.append(f"  {name:<10} {help_text}")
    lines.append("")
    lines.append("`wardstream COMMAND --help` for a command's options.")
    return "\n".join(lines)


def resolve(name: str) -> Callable[[Sequence[str]], int] | None:
    """The handler of a subcommand, or ``None`` when its part is not built yet."""
    module_name, func_name, _, _ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            return None
        raise
    handler = getattr(module, func_name, None)
    return handler if callable(handler) else None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wardstream`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"wardstream: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    handler = resolve(name)
    if handler is None:
        issue = COMMANDS[name][3]
        print(f"wardstream {name}: not built yet (issue {issue}); nothing was done", file=sys.stderr)
        return 2
    try:
        return int(handler(rest) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
