"""Summary lines in words and numbers (the task-log lines admins read)."""

from __future__ import annotations

from collections import Counter

from atlassian_cleanup.progress import counts_in_words


def test_counts_read_as_words_largest_first_without_zeros():
    counts = {"suspended": 6, "active": 270, "closed": 0, "deactivated": 4, "for_deletion": 4}
    assert counts_in_words(counts) == "active 270, suspended 6, deactivated 4, for_deletion 4"


def test_nothing_to_count_says_so():
    assert counts_in_words({}) == "none"
    assert counts_in_words(Counter(), none="nothing planned") == "nothing planned"
    assert counts_in_words({"warn": 0}) == "none"
