"""The notice before a deletion: planned at the right day, never skipped, once per cycle; and the
audit reasons of deleted accounts, dated from the journal."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from atlassian_cleanup.actions.notifications import render_deletion_notice
from atlassian_cleanup.actions.state import StateStore
from atlassian_cleanup.decisions.policy import PolicyError, policy_from_dict
from atlassian_cleanup.decisions.records import UserHistory
from tests.unit.test_planner import AS_OF, actioned_user, date_in, plan_one, policy


def test_the_notice_goes_out_notice_days_before_the_deletion() -> None:
    pol = policy(delete_after_days=30, delete_notice_days=7)
    record, hist = actioned_user(22)  # deletion due in 8 days: not yet
    row = plan_one(record, pol, history=hist)
    assert (row["rule"], row["proposed_action"], row["action_date"]) == (
        "awaiting_delete",
        "none",
        date_in(8),
    )
    record, hist = actioned_user(23)  # due in 7 days: the notice
    row = plan_one(record, pol, history=hist)
    assert (row["rule"], row["proposed_action"], row["planned_action"]) == (
        "deletion_notice",
        "delete_notice",
        "delete",
    )
    assert row["action_date"] == date_in(7)
    assert row["reason"] == (
        "Suspended by this tool on 2026-11-08, no activity since and not restored: sending the "
        "deletion notice "
        "7 days ahead; deletion on 2026-12-08 (in 7 days) at the earliest (Atlassian keeps it "
        "cancellable for "
        "14 days from the deletion request)."
    )


def test_nobody_is_deleted_without_the_notice_days() -> None:
    pol = policy(delete_after_days=30, delete_notice_days=7)
    # Due for 10 days already (e.g. the notice was just switched on): notice first, deletion 7 days later.
    record, hist = actioned_user(40)
    row = plan_one(record, pol, history=hist)
    assert (row["proposed_action"], row["action_date"]) == ("delete_notice", date_in(7))
    # Noticed 6 days ago: waits one more day; 7 days ago: deleted.
    for noticed, action, rule in ((6, "none", "awaiting_delete"), (7, "delete", "dormant_delete")):
        record, hist = actioned_user(40, delete_notice_at=AS_OF - timedelta(days=noticed))
        row = plan_one(record, pol, history=hist)
        assert (row["proposed_action"], row["rule"]) == (action, rule)
    assert "deletion notice e-mailed on 2026-11-24" in row["reason"]
    # A notice never goes out twice: noticed long ago but deletion not due yet -> waiting, no new notice.
    record, hist = actioned_user(25, delete_notice_at=AS_OF - timedelta(days=2))
    row = plan_one(record, pol, history=hist)
    assert (row["proposed_action"], row["action_date"]) == ("none", date_in(5))


def test_notice_days_zero_turns_the_notice_off() -> None:
    record, hist = actioned_user(30)
    row = plan_one(record, policy(delete_after_days=30, delete_notice_days=0), history=hist)
    assert row["proposed_action"] == "delete"
    # And without deletion there is nothing to give notice of.
    row = plan_one(record, policy(delete_notice_days=7), history=hist)
    assert row["proposed_action"] == "none"


def test_an_unmanaged_account_is_told_it_will_be_removed_not_deleted() -> None:
    record, hist = actioned_user(23)
    record["claim_status"] = "unmanaged"
    row = plan_one(record, policy(delete_after_days=30), history=hist)
    assert row["proposed_action"] == "delete_notice"
    assert "removed from the directory instead, with no grace period" in row["reason"]
    subject, html, text = render_deletion_notice(
        {**row, "actioned_action": "suspend", "actioned_at": "2026-11-08T00:00:00Z"},
        restore_url="https://help.acme.example/restore",
    )
    assert subject == (
        "Action needed: your Atlassian account will be removed from the directory on Tuesday 8 December 2026"
    )
    assert "deleted" not in text.split("--")[0]
    assert "https://help.acme.example/restore" in text
    assert 'href="https://help.acme.example/restore"' in html


def test_the_notice_says_what_was_done_when_and_how_to_keep_the_account() -> None:
    record, hist = actioned_user(23)
    row = plan_one(record, policy(delete_after_days=30), history=hist)
    row = {**row, "actioned_action": "suspend", "actioned_at": "2026-11-08T00:00:00Z", "time_zone": "UTC"}
    subject, _html, text = render_deletion_notice(
        row, org_name="Acme", restore_url="https://help.acme.example/r"
    )
    assert (
        subject == "[Acme] Action needed: your Atlassian account will be deleted on Tuesday 8 December 2026"
    )
    assert (
        "At Acme, your Atlassian account was suspended in this organization on Sunday 8 November "
        "2026, after a "
        "long period without activity. On Tuesday 8 December 2026 (from 00:00 UTC time; deletion date "
        "2026-12-08), your Atlassian account will be deleted: Atlassian keeps a deleted account for 14 days, "
        "during which an administrator can still cancel the deletion; after that it is gone for good."
    ) in text
    assert "request your access back before Tuesday 8 December 2026: https://help.acme.example/r" in text


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"delete_notice_days": -1}, "delete_notice_days"),
        ({"delete_notice_days": "7"}, "delete_notice_days"),
        ({"delete_notice_days": True}, "delete_notice_days"),
        ({"delete_notice_day": 7}, "delete_notice_days"),  # a typo gets a "did you mean"
    ],
)
def test_bad_notice_days_are_refused_with_a_fix(data: dict, fragment: str) -> None:
    with pytest.raises(PolicyError) as caught:
        policy_from_dict(data)
    assert fragment in str(caught.value)


def test_notice_days_default_and_round_trip() -> None:
    pol = policy_from_dict({})
    assert pol.delete_notice_days == 7
    assert policy_from_dict(pol.to_dict()) == pol
    assert policy_from_dict({"delete_notice_days": 0}).delete_notice_days == 0


# --- what the daily audit says about accounts this tool deleted ---------------------------------------


def test_pending_and_finished_deletions_are_dated_from_the_request() -> None:
    requested = AS_OF - timedelta(days=3)
    record, hist = actioned_user(10, status="for_deletion")
    facts = {"delete_requested_at": requested, "deletion_kind": "delete"}
    hist = {k: UserHistory(**{**v.__dict__, **facts, "stage": "pending_delete"}) for k, v in hist.items()}
    row = plan_one(record, policy(delete_after_days=7), history=hist)
    assert row["reason"] == (
        "Suspended by this tool on 2026-11-21; deletion requested on 2026-11-28; Atlassian's "
        "14-day window to "
        "cancel it ends on 2026-12-12."
    )
    hist = {
        k: UserHistory(**{**v.__dict__, "delete_requested_at": AS_OF - timedelta(days=14)})
        for k, v in hist.items()
    }
    row = plan_one(record, policy(delete_after_days=7), history=hist)
    assert row["reason"].endswith(
        "Atlassian's 14-day window to cancel it ended on 2026-12-01: deleted for good."
    )


def test_a_removal_from_the_directory_is_not_called_a_deletion() -> None:
    record, hist = actioned_user(10, status="not_invited")
    facts = {"delete_requested_at": AS_OF - timedelta(days=2), "deletion_kind": "remove_from_directory"}
    hist = {k: UserHistory(**{**v.__dict__, **facts, "stage": "deleted"}) for k, v in hist.items()}
    row = plan_one(record, policy(delete_after_days=7), history=hist)
    assert row["reason"] == (
        "Suspended by this tool on 2026-11-21, then removed from the directory on 2026-11-29 (not "
        "a deletion: no "
        "grace period; only a re-invite brings the user back); nothing to do."
    )


def test_the_store_reads_the_deletion_facts_of_the_current_cycle_back(tmp_path: Path) -> None:
    at = AS_OF - timedelta(days=10)
    with StateStore(str(tmp_path / "state.db")) as store:
        for account_id, removal in (("lifecycle", False), ("removed", True), ("noticed", None)):
            store.record_event(account_id, "actioned", at=at, run_id="r1", action="suspend")
            if removal is None:
                claim = store.claim(
                    run_id="r2", account_id=account_id, action="delete_notice", at=at + timedelta(days=1)
                )
                store.complete(claim.entry_id, outcome="succeeded", at=at + timedelta(days=1))
                continue
            claim = store.claim(
                run_id="r2", account_id=account_id, action="delete", at=at + timedelta(days=2)
            )
            store.complete(
                claim.entry_id, outcome="succeeded", at=at + timedelta(days=2), event="delete_requested"
            )
            if removal:
                store.record_event(account_id, "deleted", at=at + timedelta(days=2), run_id="r2",
                                   evidence={"performed": "remove_from_directory"})  # fmt: skip
        history = store.history()
        # A retried notice claim in the same cycle is "done": never sent twice.
        assert (
            store.claim(run_id="r3", account_id="noticed", action="delete_notice", at=AS_OF).status == "done"
        )
        store.record_event("noticed", "activity_seen", at=AS_OF, run_id="r3")
        after_return = store.history(["noticed"])["noticed"]
    assert (history["lifecycle"].stage, history["lifecycle"].deletion_kind) == ("pending_delete", "delete")
    assert history["lifecycle"].delete_requested_at == at + timedelta(days=2)
    assert (history["removed"].stage, history["removed"].deletion_kind) == (
        "deleted",
        "remove_from_directory",
    )
    assert history["noticed"].delete_notice_at == at + timedelta(days=1)
    assert history["noticed"].delete_requested_at is None
    # A new cycle starts without the old notice.
    assert after_return.delete_notice_at is None


def test_the_notice_is_sent_once_per_cycle_whatever_retries_and_reruns_do(tmp_path: Path) -> None:
    from atlassian_cleanup.actions.enforcement import Enforcer

    sent: list[dict] = []
    actioned_at = AS_OF - timedelta(days=23)
    row = {"account_id": "u1", "proposed_action": "delete_notice", "planned_action": "delete",
           "action_date": date_in(7), "email": "ada@acme.example"}  # fmt: skip
    stranger = {**row, "account_id": "u2"}  # never actioned by this tool
    with StateStore(str(tmp_path / "state.db")) as store:
        store.record_event("u1", "actioned", at=actioned_at, run_id="r0", action="suspend")

        def run(run_id: str) -> list:
            enforcer = Enforcer(lambda: None, store, run_id=run_id, at=AS_OF)
            return enforcer.warn([row, stranger], sent.append)

        first = run("r1")
        retry = run("r1")  # the task retried
        rerun = run("r2")  # the DAG re-run for the same day
        history = store.history(["u1"])["u1"]
    assert [(o.result, o.performed) for o in first] == [
        ("done", "delete_notice"),
        ("skipped_changed", "none"),
    ]
    assert [o.result for o in retry] == ["skipped_already_done", "skipped_changed"]
    assert [o.result for o in rerun] == ["skipped_already_done", "skipped_changed"]
    # One e-mail, with the store's record of what was done and when.
    assert len(sent) == 1
    assert (sent[0]["account_id"], sent[0]["actioned_action"]) == ("u1", "suspend")
    assert sent[0]["actioned_at"] == actioned_at.isoformat()
    assert history.stage == "actioned"  # a notice is no state change
    assert history.delete_notice_at == AS_OF


@pytest.mark.parametrize(("listed", "counts_as_notice"), [(True, True), (False, False)])
def test_a_user_without_an_address_is_listed_or_held_as_warning_without_email_says(
    tmp_path: Path, listed: bool, counts_as_notice: bool
) -> None:
    from atlassian_cleanup.actions.enforcement import Enforcer, RecipientNotAddressable

    def no_address(row: dict) -> None:
        raise RecipientNotAddressable("no e-mail address for account u1")

    row = {"account_id": "u1", "proposed_action": "delete_notice", "planned_action": "delete",
           "action_date": date_in(7), "email": None}  # fmt: skip
    with StateStore(str(tmp_path / "state.db")) as store:
        store.record_event("u1", "actioned", at=AS_OF - timedelta(days=23), run_id="r0", action="suspend")
        enforcer = Enforcer(lambda: None, store, run_id="r1", at=AS_OF)
        [outcome] = enforcer.warn([row], no_address, list_unaddressable=listed)
        history = store.history(["u1"])["u1"]
    assert outcome.result == "reported"
    assert (history.delete_notice_at == AS_OF) is counts_as_notice
    assert ("action_after_notice" if listed else "Held: never deleted") in outcome.detail
