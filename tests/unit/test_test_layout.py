"""The test tree itself: pytest imports test files by basename (no packages), so two files with the
same name in different folders break collection of the whole suite (`make test`), while running
either folder alone still passes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_file_names_are_unique_across_folders():
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
