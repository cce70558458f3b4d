"""The README's table of which spaces each built-in model, planner and algorithm takes,
generated from their :class:`~mbwrap.space_support.SpaceSupport` declarations.

Regenerate it in place with::

    python -m mbwrap.space_table --update README.md

(without ``--update`` the table is printed). It sits between :data:`TABLE_START` and
:data:`TABLE_END`; ``tests/test_space_support.py`` fails while the README's copy is stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mbwrap import registry
from mbwrap.space_support import SpaceSupport

#: The README comments the generated table sits between.
TABLE_START = "<!-- spaces-table:start -->"
TABLE_END = "<!-- spaces-table:end -->"

#: The table's sections in order: (label, registry kind).
_SECTIONS: tuple[tuple[str, str], ...] = (
    ("model", "model"),
    ("planner", "planner"),
    ("algorithm", "algo"),
)


def support_table(dist: str = "mbwrap") -> str:
    """A markdown table of the spaces every component of distribution ``dist`` takes, read
    from the classes' ``space_support``: models, planners, then algorithms, each sorted by
    registry name.

    :raises TypeError: naming a registered class that declares no ``space_support``.
    """
    lines = [
        "| component | observations | actions | notes |",
        "|---|---|---|---|",
    ]
    for label, kind in _SECTIONS:
        for info in sorted(registry.plugins(kind, dist=dist), key=lambda i: i.name):
            support = getattr(info.load(), "space_support", None)
            if not isinstance(support, SpaceSupport):
                raise TypeError(
                    f"{kind} plugin {info.name!r} ({info.target}) declares no space_support"
                )
            cells = (support.describe_observations(), support.describe_actions(), support.notes)
            # A "|" in a cell would end it.
            row = " | ".join(cell.replace("|", "\\|") for cell in cells)
            lines.append(f'| {label} `"{info.name}"` | {row} |')
    return "\n".join(lines) + "\n"


def table_in(text: str) -> str:
    """What lies between :data:`TABLE_START` and :data:`TABLE_END` in ``text``, the
    newline after the start marker excluded.

    :raises ValueError: when the markers are missing or out of order.
    """
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"text: expected {TABLE_START!r} followed by {TABLE_END!r}")
    return text[start + len(TABLE_START) : end].removeprefix("\n")


def replace_table(text: str, table: str) -> str:
    """``text`` with the table between the markers replaced by ``table``.

    :raises ValueError: when the markers are missing or out of order.
    """
    table_in(text)  # the markers are there, in order
    start, end = text.find(TABLE_START) + len(TABLE_START), text.find(TABLE_END)
    return f"{text[:start]}\n{table}{text[end:]}"


def main(argv: list[str] | None = None) -> int:
    """``python -m mbwrap.space_table [--update FILE]``: print the table, or rewrite it
    between the markers of ``FILE``."""
    parser = argparse.ArgumentParser(prog="python -m mbwrap.space_table", description=__doc__)
    parser.add_argument("--update", type=Path, metavar="FILE", help="rewrite the table in FILE")
    args = parser.parse_args(argv)
    table = support_table()
    if args.update is None:
        sys.stdout.write(table)
    else:
        args.update.write_text(replace_table(args.update.read_text(), table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
