"""What the enforcement engine reports per plan row, and a sender's way to say "not addressable"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ActionOutcome:
    """
    What happened to one plan row.

    :param account_id: the user.
    :param action: the planned action (``suspend``, ``deactivate``, ``remove_product_access``,
        ``delete``, ``warn``).
    :param performed: what was really done: the planned action, ``suspend`` when a deactivation
        fell back to suspending, ``remove_from_directory`` when a deletion fell back to removing,
        ``none`` when nothing was written.
    :param result: one of :data:`RESULTS`.
    :param api_status: HTTP status of the last write (200 with a body, 204 without), or of the
        error; ``None`` when no write was made or its effect was confirmed by re-reading.
    :param detail: one sentence for the audit CSV.
    :param groups_removed: names of the groups the user was removed from.
    :param groups_not_removable: names of the groups Atlassian would not let us change (IdP-synced).
    """

    account_id: str
    action: str
    performed: str
    result: str
    api_status: int | None = None
    detail: str = ""
    groups_removed: tuple[str, ...] = ()
    groups_not_removable: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-native form."""
        return {
            "account_id": self.account_id,
            "action": self.action,
            "performed": self.performed,
            "result": self.result,
            "api_status": self.api_status,
            "detail": self.detail,
            "groups_removed": list(self.groups_removed),
            "groups_not_removable": list(self.groups_not_removable),
        }


class RecipientNotAddressable(Exception):
    """A sender's way to say "this user cannot be reached, an admin must act" (not a failure).

    A warning for a user without a visible e-mail address is *reported*: retrying cannot make an
    address appear, so failing the task (and its retries) every day would only bury real errors.
    With ``warning.without_email: action_after_notice`` the user is listed to the admins in the
    digest and that listing is recorded as the warning (the notice runs from it); with ``hold`` the
    journal records it as skipped, so the next run reports it again until someone acts, and the
    planner keeps such a user at the final warning.
    """
