"""The `boucle` command: one entry point, a subcommand per job.

Each subcommand lives with its component and is imported only when used, so
`boucle --help` stays fast and a missing optional dependency only breaks its own
subcommand. A component exposes `configure(parser)` (adds its arguments) and
`run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from boucle.logs import redact_credentials

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "up": ("boucle.up", "run the whole stack on embedded defaults: broker, gateway, store, API, simulator"),
    "gateway": ("gateway.service", "run the ingest gateway (MQTT → validate → dedup → store)"),
    "api": ("cloud.serve", "run the indicator API and dashboard (uvicorn)"),
    "simulate": ("simulator.run", "run a simulated fleet that publishes like real devices"),
    "key": ("cloud.keys", "create an API key and print the registry entry for it"),
    "flash": ("workshop.flash", "flash, provision and verify ESP32 boards on the bench"),
    "calibrate": ("workshop.calibrate", "guide the calibration of a provisioned sensor"),
    "secrets": ("workshop.stack_secrets", "generate the compose stack's secrets (.env) and broker service accounts"),
    "verify": ("cloud.verify", "check an export's readings against its ledger and recompute its indicators, offline"),
    "bench": ("bench.run", "run the benchmarks and write a report"),
}


class UserError(Exception):
    """An expected failure (busy port, bad config, missing binary): one line, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="boucle", description="Boucle: territorial energy and waste indicators from IoT sensors.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        # Arguments are added lazily in main() for the chosen command only.
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in SUBCOMMANDS:
        module_name = SUBCOMMANDS[command][0]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            print(f"boucle {command}: missing Python module {exc.name!r}; "
                  f"install Boucle with its dependencies (pip install -e '.[test]')", file=sys.stderr)
            return 2
        sub_action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        module.configure(sub_action.choices[command])
    args = parser.parse_args(argv)
    try:
        return int(module.run(args) or 0)
    except UserError as exc:
        print(f"boucle {command}: {redact_credentials(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
