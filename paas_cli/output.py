"""What `paas` prints: tables and text through rich (no colour when stdout is not a terminal or NO_COLOR is set),
JSON as it is with --json, errors on stderr."""
import json
import os
import sys
from contextlib import contextmanager

from rich.console import Console
from rich.table import Table

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def plain():
    """True when output must carry no colour or motion (a pipe, a file, NO_COLOR)."""
    return not out.is_terminal or "NO_COLOR" in os.environ


def emit_json(data):
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def table(columns, rows, empty="nothing to show"):
    if not rows:
        out.print(empty, markup=False)
        return
    grid = Table(box=None, pad_edge=False, header_style="bold" if not plain() else None)
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*("" if value is None else str(value) for value in row))
    out.print(grid)


def fields(pairs):
    width = max(len(key) for key, _ in pairs)
    for key, value in pairs:
        out.print(f"{key + ':':<{width + 1}} {'' if value is None else value}", markup=False)


def line(text, style=None):
    out.print(text, markup=False, style=None if plain() else style)


@contextmanager
def waiting(text):
    """A spinner on a terminal; nothing elsewhere."""
    if plain():
        yield None
        return
    with err.status(text) as status:
        yield status
