"""What the restore answers say, per case: facts from the journal, worded for the person and the admin.

The expected sentences are written from the API contract (§4.1-4.5): a suspension keeps groups and
roles, a deactivation is undone by lifecycle/enable, a product removal by re-adding the groups, a
lifecycle deletion can be cancelled for 14 days counted from the deletion request, and a removal
from the directory is no deletion at all (no window; a re-invite is the way back).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from atlassian_cleanup.decisions.account_facts import (
    LIFECYCLE_DELETE,
    REMOVE_FROM_DIRECTORY,
    SUSPEND,
    facts_from_journal,
)
from atlassian_cleanup.decisions.planner import UserHistory
from atlassian_cleanup.decisions.policy import RestorePolicy
from atlassian_cleanup.restore.rules import RestoreRequest, decide

SUSPENDED_ON = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
DELETE_ON = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
ENG = {"id": "g-eng", "name": "engineering"}
REVIEW = "An administrator will review your request."
LEAVE_ALONE = "The inactive-user cleanup will leave your account alone for 30 days."


def acted(action: str, products: list[str] | None = None) -> dict:
    return {"action": action, "outcome": "succeeded", "event": "actioned", "cycle": 0, "products": products,
            "before": {"status": "active", "groups": [ENG]}, "result_at": SUSPENDED_ON}  # fmt: skip


def delete_requested(at: datetime = DELETE_ON) -> dict:
    return {
        "action": "delete",
        "outcome": "succeeded",
        "event": "delete_requested",
        "cycle": 0,
        "result_at": at,
    }


def deleted(at: datetime = DELETE_ON, performed: str | None = None) -> dict:
    evidence = {"performed": performed} if performed else None
    return {"action": "deleted", "outcome": "succeeded", "event": "deleted", "cycle": 0, "result_at": at,
            "result_source": "observation", "evidence": evidence}  # fmt: skip


def hist(stage: str, action: str | None = "suspend", **extra) -> UserHistory:
    return UserHistory(
        stage=stage, actioned_at=SUSPENDED_ON if action else None, actioned_action=action, **extra
    )


SUSPENDED = (
    "After a long period without activity, your account was suspended in the organization's directory on "
    "2026-11-20."
)
SUSPENDED_THEN_DELETE = (
    "After a long period without activity, your account was suspended in the organization's directory on "
    "2026-11-20 and its deletion was requested on 2026-11-27."
)

# case: (history, journal, live status or None, as_of, allowed?, verdict, exact comment)
CASES = {
    "suspended": (
        hist("actioned"), [acted("suspend")], "suspended", DELETE_ON, False, "refused",
        f"Your request cannot be granted automatically. {SUSPENDED} Your groups and roles were kept, so an "
        f"administrator can give the same access back in one step. {REVIEW}",
    ),
    "suspended, restored": (
        hist("actioned"), [acted("suspend")], "suspended", DELETE_ON, True, "restore",
        f"Your access has been restored. {SUSPENDED} The suspension was lifted: your groups and roles are "
        f"back as they were. {LEAVE_ALONE}",
    ),
    "deactivate that Atlassian turned into a suspension": (
        hist("actioned", "suspend"), [acted("deactivate")], "suspended", DELETE_ON, True, "restore",
        f"Your access has been restored. {SUSPENDED} The suspension was lifted: your groups and roles are "
        f"back as they were. {LEAVE_ALONE}",
    ),
    "deactivated": (
        hist("actioned", "deactivate"), [acted("deactivate")], "deactivated", DELETE_ON, False, "refused",
        "Your request cannot be granted automatically. After a long period without activity, your Atlassian "
        "account was deactivated on 2026-11-20. An administrator can re-activate the account; nothing was "
        f"deleted. {REVIEW}",
    ),
    "deactivated, restored": (
        hist("actioned", "deactivate"), [acted("deactivate")], "deactivated", DELETE_ON, True, "restore",
        "Your access has been restored. After a long period without activity, your Atlassian account was "
        f"deactivated on 2026-11-20. Your account was re-activated. {LEAVE_ALONE}",
    ),
    "removed from the directory two days ago": (
        hist("deleted"), [acted("suspend"), delete_requested(), deleted(performed="remove_from_directory")],
        None, DELETE_ON + timedelta(days=2), True, "removed_from_directory",
        "After a long period without activity, your account was suspended in the organization's directory on "
        "2026-11-20 and then removed from the organization's directory on 2026-11-27. This was not "
        "a deletion "
        "and no 14-day window applies: your Atlassian account still exists, but it is no longer a member of "
        "the organization and lost its groups and roles, so it cannot be restored automatically. "
        "If access is "
        "approved, an administrator will invite you again and re-add your groups (this tool recorded them). "
        f"{REVIEW}",
    ),
    "lifecycle-deleted, within the window": (
        hist("pending_delete"), [acted("suspend"), delete_requested()], "for_deletion",
        DELETE_ON + timedelta(days=3), False, "refused",
        f"Your request cannot be granted automatically. {SUSPENDED_THEN_DELETE} Atlassian keeps the account "
        "until 2026-12-11 (14 days after the deletion request); until then the deletion can be cancelled and "
        f"your access given back. {REVIEW}",
    ),
    "lifecycle-deleted, within the window, restored": (
        hist("pending_delete"), [acted("suspend"), delete_requested()], "for_deletion",
        DELETE_ON + timedelta(days=13), True, "restore",
        f"Your access has been restored. {SUSPENDED_THEN_DELETE} The deletion was cancelled within "
        "Atlassian's "
        "14-day window, which would have ended on 2026-12-11. The suspension was lifted: your "
        "groups and roles "
        f"are back as they were. {LEAVE_ALONE}",
    ),
    "lifecycle-deleted, past the window": (
        hist("pending_delete"), [acted("suspend"), delete_requested()], "for_deletion",
        DELETE_ON + timedelta(days=14), True, "deleted",
        f"{SUSPENDED_THEN_DELETE} Atlassian's 14-day window to cancel the deletion ended on "
        "2026-12-11, so the "
        f"account is deleted for good and cannot be restored. If access is approved, you will be invited "
        f"again. {REVIEW}",
    ),
    "product access removed": (
        hist("actioned", "remove_product_access"), [acted("remove_product_access", ["confluence", "jsm"])],
        "active", DELETE_ON, False, "refused",
        "Your request cannot be granted automatically. After a long period without activity, your access to "
        "Confluence and Jira Service Management was removed on 2026-11-20. Your account is still active; "
        f"re-adding you to the groups you were in gives the access back. {REVIEW}",
    ),
    "product access removed, restored": (
        hist("actioned", "remove_product_access"), [acted("remove_product_access", ["confluence"])],
        "active", DELETE_ON, True, "restore",
        "Your access has been restored. After a long period without activity, your access to Confluence was "
        f"removed on 2026-11-20. You were added back to engineering. {LEAVE_ALONE}",
    ),
    "never touched by this tool": (
        None, [], "active", DELETE_ON, True, "not_actioned",
        "The inactive-user cleanup has not suspended, deactivated, removed or deleted your account, so "
        f"nothing was changed automatically. {REVIEW}",
    ),
    "only warned": (
        UserHistory(stage="warned", warned_at=SUSPENDED_ON, last_warned_lead_days=7), [], "active", DELETE_ON,
        True, "not_actioned",
        "The inactive-user cleanup has not suspended, deactivated, removed or deleted your account, so "
        f"nothing was changed automatically. It only sent you a warning e-mail on 2026-11-20. {REVIEW}",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_each_answer_states_what_was_done_and_when(case: str) -> None:
    history, journal, status, as_of, allowed, verdict, comment = CASES[case]
    account = None if status is None else {"accountId": "a", "email": "a@acme.example", "status": status}
    decision = decide(
        RestoreRequest("ITH-9", "a", "a@acme.example"),
        account=account,
        history=history,
        journal=journal,
        restore_policy=RestorePolicy(allowed_domains=("acme.example",) if allowed else ()),
        as_of=as_of,
    )
    assert decision.verdict == verdict
    assert decision.comment == comment


def test_a_removal_is_never_told_that_a_deletion_window_is_over() -> None:
    # The reported bug: an unmanaged account removed from the directory two days earlier was told
    # "Atlassian's 14-day window to undo the deletion is over". Whatever the date, no window exists.
    for days_later in (0, 2, 30):
        decision = decide(
            RestoreRequest("ITH-1", "a"),
            account=None,
            history=hist("deleted"),
            journal=[acted("suspend"), delete_requested(), deleted(performed="remove_from_directory")],
            restore_policy=RestorePolicy(allowed_domains=("acme.example",)),
            as_of=DELETE_ON + timedelta(days=days_later),
        )
        assert "window to cancel" not in decision.comment
        assert "no 14-day window applies" in decision.comment
        assert decision.resolve is False


def test_the_deletion_request_is_dated_on_its_own_day_not_the_suspension() -> None:
    facts = facts_from_journal([acted("suspend"), delete_requested()], hist("pending_delete"))
    assert [(s.kind, s.at) for s in facts.access] == [(SUSPEND, SUSPENDED_ON)]
    assert (facts.deletion.kind, facts.deletion.at) == (LIFECYCLE_DELETE, DELETE_ON)
    assert facts.grace_ends() == datetime(2026, 12, 11, tzinfo=UTC)


def test_the_admin_reason_names_the_atlassian_calls() -> None:
    decision = decide(
        RestoreRequest("ITH-1", "a"),
        account=None,
        history=hist("deleted"),
        journal=[acted("suspend"), delete_requested(), deleted(performed="remove_from_directory")],
        restore_policy=RestorePolicy(),
        as_of=DELETE_ON,
    )
    assert decision.rule == "removed_from_directory"
    assert decision.reason.startswith(
        "This tool: suspended on 2026-11-20 with the v2 directory suspend (POST …/directories/{directory}/"
        "users/{account}/suspend); removed from the directory on 2026-11-27 with the v2 remove user from "
        "directory (DELETE …/directories/{directory}/users/{account}), as Atlassian did not allow "
        "deleting it."
    )


@pytest.mark.parametrize(
    ("deleted_entry", "kind"),
    [
        # Journals written before the observation said what was performed: same moment = removal.
        (deleted(DELETE_ON), REMOVE_FROM_DIRECTORY),
        # A lifecycle deletion observed as final after its grace is still a lifecycle deletion.
        (deleted(DELETE_ON + timedelta(days=15)), LIFECYCLE_DELETE),
        (deleted(DELETE_ON, performed="delete"), LIFECYCLE_DELETE),
    ],
)
def test_removal_and_lifecycle_deletion_are_told_apart(deleted_entry: dict, kind: str) -> None:
    facts = facts_from_journal([acted("suspend"), delete_requested(), deleted_entry], hist("deleted"))
    assert facts.deletion is not None
    assert facts.deletion.kind == kind


def test_only_the_latest_actioned_cycle_counts() -> None:
    old = {**acted("deactivate"), "cycle": 0}
    new = {**acted("suspend"), "cycle": 2, "result_at": DELETE_ON}
    facts = facts_from_journal([old, new], hist("actioned"))
    assert [(s.kind, s.at) for s in facts.access] == [(SUSPEND, DELETE_ON)]
