"""The ``mbwrap`` command: ``plugins``, ``demo``, ``train``, ``eval``, ``plot``, ``tune``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mbwrap.cli.demo import add_demo_parser
from mbwrap.cli.plot import add_plot_parser
from mbwrap.cli.plugins import add_plugins_parser
from mbwrap.cli.train import add_train_parsers
from mbwrap.cli.tune import add_tune_parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mbwrap",
        description="Model-based RL that plugs into Gymnasium and Stable-Baselines3.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_plugins_parser(commands)
    add_demo_parser(commands)
    add_train_parsers(commands)
    add_plot_parser(commands)
    add_tune_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mbwrap`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
