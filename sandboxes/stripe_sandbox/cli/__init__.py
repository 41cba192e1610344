"""The sandbox's command line: ``serve`` (the default), ``listen`` and ``trigger``."""

from __future__ import annotations

import argparse
import sys

from . import listen, serve, trigger

COMMANDS = {"serve": serve, "listen": listen, "trigger": trigger}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stripe_sandbox",
        description="Serve the local Stripe sandbox, or use a running one like Stripe's CLI.",
    )
    commands = parser.add_subparsers(dest="command")
    for name, module in COMMANDS.items():
        sub = commands.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(sub)
    raw = sys.argv[1:] if argv is None else list(argv)
    if not raw or (raw[0] not in COMMANDS and raw[0] not in ("-h", "--help")):
        raw = ["serve", *raw]  # `python -m stripe_sandbox --port 12111` as before
    args = parser.parse_args(raw)
    return int(COMMANDS[args.command].run(args))
