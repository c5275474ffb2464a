"""Whether an account is still as this tool left it: one rule for the planner and the enforcer.

A deletion is only proposed (planner) and only carried out (enforcer) while Atlassian still shows
the account the way this tool's action left it; anything else means somebody restored the user by
hand, and deleting them then would undo that decision. The planner asks for every user at once
(numpy arrays), the enforcer for one re-read account (plain values): both get the same answer here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from atlassian_cleanup.action_kinds import DEACTIVATE, REMOVE_PRODUCT_ACCESS, SUSPEND


def still_as_left(actioned_action: Any, status: Any, has_access: Any) -> Any:
    """Whether the account still looks the way ``actioned_action`` left it.

    ``suspend``: suspended, or deactivated since (that keeps the user out too); ``deactivate``:
    deactivated; ``remove_product_access``: no product access; an action this tool does not
    record: either of those. ``status`` is Atlassian's composite status, ``has_access`` whether
    the user can use any product now. Element-wise on arrays (returns a bool array), else a bool.
    """
    action = np.asarray(actioned_action, dtype=object)
    shown = np.asarray(status, dtype=object)
    no_access = ~np.asarray(has_access, dtype=bool)
    deactivated = shown == "deactivated"
    kept_out = (shown == "suspended") | deactivated
    left = np.where(
        action == SUSPEND,
        kept_out,
        np.where(
            action == DEACTIVATE,
            deactivated,
            np.where(action == REMOVE_PRODUCT_ACCESS, no_access, kept_out | no_access),
        ),
    )
    return left if left.ndim else bool(left)


def changed_since_left(actioned_action: str | None, status: str, has_access: bool) -> str | None:
    """Why one account no longer looks the way this tool left it (for admins), or None when it does."""
    if still_as_left(actioned_action, status, has_access):
        return None
    if actioned_action == REMOVE_PRODUCT_ACCESS:
        return "The user has product access again (someone restored it)"
    return f"Atlassian shows the user as {status}, not as this tool left them (someone restored them)"
