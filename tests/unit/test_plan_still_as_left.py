"""One rule for "the account is as we left it": the same answer for one account and for a column."""

from __future__ import annotations

import numpy as np
import pytest

from atlassian_cleanup.decisions.still_as_left import changed_since_left, still_as_left

CASES = [
    # (actioned action, Atlassian status, has product access, still as left)
    ("suspend", "suspended", True, True),
    ("suspend", "deactivated", True, True),
    ("suspend", "active", False, False),
    ("deactivate", "deactivated", True, True),
    ("deactivate", "suspended", False, False),
    ("remove_product_access", "active", False, True),
    ("remove_product_access", "active", True, False),
    (None, "suspended", True, True),
    (None, "active", False, True),
    (None, "active", True, False),
]


@pytest.mark.parametrize(("action", "status", "access", "expected"), CASES)
def test_one_account(action, status, access, expected):
    assert still_as_left(action, status, access) is expected
    assert (changed_since_left(action, status, access) is None) is expected


def test_a_column_gives_the_same_answers_as_one_account_at_a_time():
    actions, statuses, access, expected = (list(column) for column in zip(*CASES, strict=True))
    got = still_as_left(np.array(actions, dtype=object), np.array(statuses, dtype=object), np.array(access))
    assert got.tolist() == expected


def test_why_not_as_left_names_what_changed():
    assert changed_since_left("remove_product_access", "active", True) == (
        "The user has product access again (someone restored it)"
    )
    assert changed_since_left("deactivate", "active", False) == (
        "Atlassian shows the user as active, not as this tool left them (someone restored them)"
    )
