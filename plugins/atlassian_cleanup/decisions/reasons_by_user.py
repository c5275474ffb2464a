"""The reasons of the rarer rules (protections, lifecycle), worded one user at a time.

These rules hold few users each, so :class:`~atlassian_cleanup.decisions.reasons.Reasons` words
them row by row with the methods of :class:`OneUserWording`, its base class; the columns they
read are set by ``Reasons``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from atlassian_cleanup.action_kinds import KINDS
from atlassian_cleanup.decisions.account_facts import DELETE_GRACE_DAYS
from atlassian_cleanup.decisions.policy import Policy
from atlassian_cleanup.decisions.products import product_label
from atlassian_cleanup.decisions.words import days_text


class OneUserWording:
    """Sentences for one user (``i``) of the rarer rules, from the columns ``Reasons`` holds."""

    policy: Policy
    products: list[str]
    protected_by: np.ndarray
    account_types: np.ndarray
    statuses: np.ndarray
    managed: np.ndarray
    acted: list[str]
    act_code: np.ndarray
    last_pc: np.ndarray
    reset_ref: np.ndarray
    warned_at: np.ndarray
    removed_from_directory: np.ndarray
    grace_over: np.ndarray
    since_added: np.ndarray
    since_restored: np.ndarray
    since_action: np.ndarray
    action_days: np.ndarray
    # Dates (``YYYY-MM-DD`` or None) per user.
    added: np.ndarray
    last_any: np.ndarray
    warned: np.ndarray
    actioned: np.ndarray
    restored: np.ndarray
    action_date: np.ndarray
    delete_requested: np.ndarray
    grace_ends: np.ndarray
    noticed: np.ndarray
    delete_after: Any
    planned_names: np.ndarray
    review_of: Callable[[int], Any]

    def _deletion_kind(self, i: int) -> str:
        """What a deletion will be for this account (Atlassian deletes managed accounts only)."""
        if self.managed[i]:
            return f"Atlassian keeps it cancellable for {DELETE_GRACE_DAYS} days from the deletion request"
        return (
            "an unmanaged account: Atlassian does not delete it, it is removed from the directory "
            "instead, with no grace period"
        )

    def _label_of(self, code: int) -> str | None:
        return product_label(self.products[code]) if code >= 0 else None

    def _one_by_one(self) -> dict[str, Callable[[int, str], str]]:
        protections = (
            "unknown_account_type",
            "admin_role",
            "admin_group",
            "protected_domain",
            "protected_group",
        )
        words: dict[str, Callable[[int, str], str]] = {}
        words |= dict.fromkeys((*protections, "new_user_grace", "restored_grace"), self._protection)
        words |= dict.fromkeys(("deleted", "pending_delete"), self._deletion_requested)
        words |= dict.fromkeys(("dormant_delete", "deletion_notice", "awaiting_delete"), self._deletion_ahead)
        words |= dict.fromkeys(("already_actioned", "changed_outside_tool"), self._not_deleted)
        words |= {"kept_in_review": self._kept_in_review, "awaiting_review": self._awaiting_review}
        return words | {"activity_seen": self._activity_seen, "unknown_status": self._unknown_status}

    def _kept_in_review(self, i: int, rule: str) -> str:
        decision = self.review_of(i)
        return (
            f"Protected: kept by {decision.decided_by} in the review queue on "
            f"{decision.decided_at.date().isoformat()}, until {decision.keep_until.isoformat()} "
            f"(inclusive): {decision.reason}"
        )

    def _awaiting_review(self, i: int, rule: str) -> str:
        kind = KINDS.get(str(self.planned_names[i]))
        noun = (kind.noun if kind else None) or str(self.planned_names[i])
        when = "since" if self.action_days[i] <= 0 else "on"
        return (
            f"Due for {noun} {when} {self.action_date[i]} ({self._last_text(i)}); waits for an "
            "admin's approve or keep in the review queue (review: true)."
        )

    def _last_text(self, i: int) -> str:
        if self.last_any[i]:
            code = self.last_pc[i]
            where = f" in {self._label_of(code)}" if code >= 0 else ""
            return f"last active {self.last_any[i]}{where}"
        if self.added[i]:
            return f"never active since joining on {self.added[i]}"
        return "no activity ever recorded"

    def _done(self, i: int) -> str:
        """How this tool's action on the user is said ("Suspended")."""
        code = int(self.act_code[i])
        kind = KINDS.get(self.acted[code - 1]) if code else None
        return (kind.done_label if kind else None) or "Actioned"

    def _protection(self, i: int, rule: str) -> str:
        by = str(self.protected_by[i]).split(":", 1)[-1]
        policy = self.policy
        if rule == "unknown_account_type":
            return (
                f"Protected: account type '{self.account_types[i]}' is not a normal user account; "
                "only 'atlassian' accounts are actioned."
            )
        if rule == "new_user_grace":
            return (
                f"New user: added to the org on {self.added[i]} ({days_text(self.since_added[i])} ago), "
                f"within the {policy.new_user_grace_days}-day new-user grace period."
            )
        if rule == "restored_grace":
            return (
                f"Restored by this tool on {self.restored[i]} ({days_text(max(self.since_restored[i], 0))} "
                f"ago), within the {policy.restored_grace_days}-day grace period after a restore."
            )
        return {
            "admin_role": f"Protected: holds the admin role {by}.",
            "admin_group": f"Protected: member of admin group {by} (matches admin_groups).",
            "protected_domain": f"Protected: e-mail domain is covered by protected.domains entry {by}.",
            "protected_group": f"Protected: member of protected group {by}.",
        }[rule]

    def _activity_seen(self, i: int, rule: str) -> str:
        if self.reset_ref[i] == self.warned_at[i]:
            event = f"the warning sent on {self.warned[i]}"
        else:
            event = f"this tool's action on {self.actioned[i]}"
        return f"Activity seen ({self._last_text(i)}) after {event}; access kept, the user is active again."

    def _deletion_requested(self, i: int, rule: str) -> str:
        """Users this tool deleted or asked Atlassian to delete."""
        done, actioned, requested, ends = (
            self._done(i),
            self.actioned[i],
            self.delete_requested[i],
            self.grace_ends[i],
        )
        if rule == "deleted":
            if self.removed_from_directory[i] and requested:
                return (
                    f"{done} by this tool on {actioned}, then removed from the directory on {requested} "
                    "(not a deletion: no grace period; only a re-invite brings the user back); nothing to do."
                )
            if requested:
                return (
                    f"{done} by this tool on {actioned}; deletion requested on {requested}, final since "
                    f"{ends}; nothing to do."
                )
            return "Deleted by this tool earlier (stage deleted); nothing to do."
        grace = f"Atlassian's {DELETE_GRACE_DAYS}-day"
        if not requested:
            return f"Deletion already requested by this tool; {grace} cancellable grace period is running."
        if self.grace_over[i]:
            window = f"{grace} window to cancel it ended on {ends}: deleted for good"
        else:
            window = f"{grace} window to cancel it ends on {ends}"
        return f"{done} by this tool on {actioned}; deletion requested on {requested}; {window}."

    def _deletion_ahead(self, i: int, rule: str) -> str:
        """Users this tool actioned, on their way to deletion."""
        done, actioned, date, noticed = self._done(i), self.actioned[i], self.action_date[i], self.noticed[i]
        if rule == "dormant_delete":
            notice = f", deletion notice e-mailed on {noticed}" if noticed else ""
            return (
                f"{done} by this tool on {actioned} ({days_text(self.since_action[i])} ago, delete after "
                f"{self.delete_after}){notice}, no activity since and not restored: proposing deletion "
                f"({self._deletion_kind(i)})."
            )
        if rule == "deletion_notice":
            return (
                f"{done} by this tool on {actioned}, no activity since and not restored: sending the "
                f"deletion notice {days_text(self.policy.delete_notice_days)} ahead; deletion on {date} "
                f"(in {days_text(self.action_days[i])}) at the earliest ({self._deletion_kind(i)})."
            )
        notice = f" Deletion notice e-mailed on {noticed}." if noticed else ""
        return (
            f"{done} by this tool on {actioned}; if still inactive it will be proposed for "
            f"deletion on {date} (in {days_text(self.action_days[i])}).{notice}"
        )

    def _not_deleted(self, i: int, rule: str) -> str:
        """Users this tool actioned who are never deleted automatically."""
        done, actioned, restored = self._done(i), self.actioned[i], self.restored[i]
        if rule == "changed_outside_tool":
            return (
                f"{done} by this tool on {actioned}, but Atlassian now shows status "
                f"{self.statuses[i]}: changed outside this tool, so it is not deleted."
            )
        if self.delete_after is None:
            why = "deletion is off (delete_after_days is null)"
        elif restored and actioned and restored >= actioned:
            why = f"restored on {restored}, so it is not deleted"
        else:
            why = "the action or its date is not recorded, so it is never deleted automatically"
        return f"{done} by this tool on {actioned or 'an unknown date'}; {why}."

    def _unknown_status(self, i: int, rule: str) -> str:
        return f"Atlassian status '{self.statuses[i]}' is not 'active'; no warning or action."
