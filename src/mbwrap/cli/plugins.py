"""``mbwrap plugins``: every registered plugin and whether it loads."""

from __future__ import annotations

import argparse
from typing import Any

from mbwrap import registry
from mbwrap.errors import PluginLoadError


def plugin_rows(check: bool = True) -> list[dict[str, str]]:
    """One row per registered plugin: kind, name, dist, version, target, status.

    :param check: import each plugin to report ``"ok"`` or the error; ``False`` leaves
        ``status`` as ``"not checked"`` and imports nothing.
    """
    rows = []
    for kind in registry.GROUPS:
        for info in registry.plugins(kind):
            status = "not checked"
            if check:
                try:
                    info.load()
                    status = "ok"
                except PluginLoadError as err:
                    cause = err.__cause__
                    status = f"error: {type(cause).__name__}: {cause}" if cause else f"error: {err}"
            rows.append(
                {
                    "kind": kind,
                    "name": info.name,
                    "dist": info.dist,
                    "version": info.version,
                    "target": info.target,
                    "status": status,
                }
            )
    return rows


def format_table(rows: list[dict[str, str]], columns: list[str]) -> str:
    """Left-aligned plain-text table with a header row."""
    widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def run(args: argparse.Namespace) -> int:
    rows = plugin_rows(check=not args.no_check)
    columns = ["kind", "name", "dist", "version", "status"]
    if args.verbose:
        columns.insert(4, "target")
    print(format_table(rows, columns))
    return 1 if any(r["status"].startswith("error") for r in rows) and args.strict else 0


def add_plugins_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "plugins",
        help="list registered models, planners, algorithms and reward/termination functions",
        description="List every plugin registered through mbwrap's entry-point groups, with its "
        "distribution and version, and whether it loads.",
    )
    parser.add_argument("--no-check", action="store_true", help="do not import plugins")
    parser.add_argument("-v", "--verbose", action="store_true", help="also show each target")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a plugin fails to load")
    parser.set_defaults(run=run)
