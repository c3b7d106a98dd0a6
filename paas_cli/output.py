"""What `paas` prints: tables and text through rich (no colour when stdout is not a terminal or NO_COLOR is set),
JSON as it is with --json, errors on stderr."""
import json
import os
import re
import sys
from contextlib import contextmanager

from rich.console import Console
from rich.table import Table

# Not a terminal: lines as long as they are (a table piped into grep keeps each row on one line).
_WIDE = None if sys.stdout.isatty() else 4096
out = Console(highlight=False, soft_wrap=True, emoji=False, width=_WIDE)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
# What a build or an app may print that would drive the reader's terminal: escape sequences and control characters.
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|[\x00-\x08\x0b-\x1f\x7f\x9b]")


def clean(text):
    return _CONTROL.sub("", text)


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
    out.print(clean(text), markup=False, style=None if plain() else style)


@contextmanager
def waiting(text):
    """A spinner on a terminal; nothing elsewhere."""
    if plain():
        yield None
        return
    with err.status(text) as status:
        yield status
