"""What the README promises about the audit CSV, read from its table, as the expected values of tests.

Tests compare the code with these instead of with the code's own constants, so a column or a value
changed in the code but not in the documentation (or the other way round) fails a test.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
_CODE = re.compile(r"`([^`]+)`")


@cache
def _audit_table() -> tuple[tuple[tuple[str, ...], str], ...]:
    """(columns named in the first cell, the meaning cell) for each row of "The audit CSV" table."""
    section = README.read_text(encoding="utf-8").split("\n## The audit CSV\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if line.startswith("| `"):
            _, names, meaning, _ = line.split("|", 3)
            rows.append((tuple(_CODE.findall(names)), meaning))
    return tuple(rows)


def audit_columns() -> tuple[str, ...]:
    """The documented column order; a row naming several columns (`account_id`, `email`, `name`)
    keeps their order."""
    return tuple(name for names, _ in _audit_table() for name in names)


def plan_columns() -> tuple[str, ...]:
    """The columns the planner decides: those after the run's own (`run_id` to `mode`) and before
    what the run did (`result` onwards)."""
    columns = audit_columns()
    return columns[columns.index("mode") + 1 : columns.index("result")]


def documented_values(column: str) -> tuple[str, ...]:
    """The values the README lists, in backticks, in the meaning of a single-column row."""
    for names, meaning in _audit_table():
        if names == (column,):
            return tuple(_CODE.findall(meaning))
    raise KeyError(column)
