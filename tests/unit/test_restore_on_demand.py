"""Restore on demand: the trigger form's accounts, checked before any write, and the rules they meet."""

from __future__ import annotations

import pytest

from atlassian_cleanup.restore.carry_out import request_scope
from atlassian_cleanup.restore.on_demand import (
    Entry,
    OnDemandError,
    is_on_demand,
    on_demand_requests,
    parse_entries,
    read_form,
    resolve_entries,
    unrestorable,
    wants_on_demand,
)
from atlassian_cleanup.restore.rules import NOT_ACTIONED, REFUSED, RESTORE, RestoreRequest
from tests.unit.test_restore_rules import ALICE, ENG, account, action_entry, history, run

BOB = "5b10ac8d82e05b22cc7d4ef5"
REASON = "Back from parental leave"


def problems_of(call, *args, **kwargs) -> list[str]:
    with pytest.raises(OnDemandError) as caught:
        call(*args, **kwargs)
    assert "nothing was changed" in str(caught.value)
    return caught.value.problems


@pytest.mark.parametrize("untouched", [None, "", "  \n", []])
def test_an_untouched_form_is_a_scheduled_run(untouched):
    assert not wants_on_demand(untouched, untouched)
    assert wants_on_demand(BOB, REASON)


def test_a_reason_without_accounts_is_refused_not_ignored():
    assert "accounts is empty" in problems_of(wants_on_demand, "  ", REASON)[0]


def test_entries_are_split_classified_and_deduplicated():
    text = f"alice@acme.example, {ALICE}\n{BOB}; Alice@ACME.example  {BOB}"
    assert parse_entries(text, REASON, 10) == [
        Entry("alice@acme.example", "email"),
        Entry(ALICE, "account_id"),
        Entry(BOB, "account_id"),
    ]
    assert parse_entries(["alice@acme.example", BOB], REASON, 10) == [
        Entry("alice@acme.example", "email"),
        Entry(BOB, "account_id"),
    ]


def test_every_malformed_entry_is_named_at_once():
    problems = problems_of(parse_entries, "alice@, bob@acme, <script>, ok@acme.example", REASON, 10)
    assert len(problems) == 3
    assert "'alice@' is not an e-mail address" in problems[0]
    assert "'bob@acme' is not an e-mail address" in problems[1]
    assert "'<script>' is neither an account id nor an e-mail address" in problems[2]
    assert all("Fix:" in p for p in problems)


def test_a_list_item_that_is_not_text_is_refused():
    assert "is not text" in problems_of(parse_entries, ["a@acme.example", 7], REASON, 10)[0]
    assert "neither text nor a list" in problems_of(parse_entries, 7, REASON, 10)[0]


def test_more_accounts_than_the_cap_are_refused_before_anything():
    # Three distinct accounts against a cap of two (the policy's restore.max_restores_per_run).
    problems = problems_of(parse_entries, f"a@acme.example, b@acme.example, {BOB}", REASON, 2)
    assert problems == [
        "accounts: 3 accounts, more than restore.max_restores_per_run (2). Fix: split them over "
        "several runs, or raise the cap in the policy"
    ]
    assert len(parse_entries("a@acme.example, A@acme.example", REASON, 1)) == 1


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_a_reason_is_required(reason):
    assert problems_of(parse_entries, BOB, reason, 5)[0].startswith("restore_reason: empty")


def test_a_reason_over_500_characters_is_refused():
    assert "longer than 500" in problems_of(parse_entries, BOB, "x" * 501, 5)[0]


def directory_user(account_id: str, email: str) -> dict:
    return {"accountId": account_id, "email": email, "name": email.split("@")[0], "groups": []}


def test_entries_resolve_to_one_directory_user_each():
    alice = directory_user(ALICE, "alice@acme.example")
    bob = directory_user(BOB, "bob@acme.example")
    users = resolve_entries(
        [Entry("Alice@acme.example", "email"), Entry(BOB, "account_id"), Entry(ALICE, "account_id")],
        by_id={BOB: bob, ALICE: alice},
        # The same account listed twice (two directories) is still one account.
        by_email={"alice@acme.example": [alice, alice]},
    )
    assert [u["accountId"] for u in users] == [ALICE, BOB]


def test_unknown_ambiguous_and_unmatched_entries_are_all_reported():
    twin = directory_user("712020:twin", "shared@acme.example")
    other = directory_user("712020:other", "shared@acme.example")
    problems = problems_of(
        resolve_entries,
        [
            Entry("nobody@acme.example", "email"),
            Entry("shared@acme.example", "email"),
            Entry("712020:gone", "account_id"),
        ],
        by_id={},
        by_email={"nobody@acme.example": [], "shared@acme.example": [twin, other]},
    )
    assert problems[0].startswith("accounts: e-mail 'nobody@acme.example' matches no account")
    assert "matches 2 accounts (712020:other, 712020:twin)" in problems[1]
    assert "give the account id" in problems[1]
    assert "account id '712020:gone' is not in the organisation's directory" in problems[2]


def test_the_form_and_the_directory_problems_come_together():
    entries, problems = read_form("oops@, nobody@acme.example", "", 5)
    assert entries == [Entry("nobody@acme.example", "email")]
    assert len(problems) == 2
    everything = problems_of(resolve_entries, entries, by_id={}, by_email={}, earlier=problems)
    assert everything[:2] == problems
    assert "'nobody@acme.example' matches no account" in everything[2]


def test_too_many_accounts_stop_the_form_before_any_lookup():
    problems = problems_of(read_form, "a@acme.example b@acme.example oops@", REASON, 1)
    assert "'oops@' is not an e-mail address" in problems[0]
    assert "2 accounts, more than restore.max_restores_per_run (1)" in problems[1]


def test_requests_carry_the_admin_and_a_key_per_run_and_account():
    (req,) = on_demand_requests(
        [directory_user(ALICE, "alice@acme.example")],
        run_id="manual__2026-12-10",
        requested_by="admin",
        reason=f" {REASON} ",
    )
    assert req.key == f"on-demand:manual__2026-12-10:{ALICE}"
    assert is_on_demand(req.key)
    assert not is_on_demand("ITH-12")
    assert (req.reporter_account_id, req.requested_by, req.summary) == (ALICE, "admin", REASON)
    # Journalled under its own key; a JSM request keeps its jsm: scope.
    assert request_scope(req.key) == req.key
    assert request_scope("ITH-12") == "jsm:ITH-12"
    assert RestoreRequest.from_dict(req.to_dict()) == req


def on_demand(**kwargs) -> RestoreRequest:
    return RestoreRequest(
        key=f"on-demand:r1:{ALICE}",
        reporter_account_id=ALICE,
        reporter_email="alice@contractor.example",
        summary=REASON,
        requested_by="admin",
        **kwargs,
    )


def test_the_admin_decides_instead_of_the_domain_and_group_rules():
    journal = [action_entry("suspend", [ENG])]
    acct = account(email="alice@contractor.example")
    # As a self-service request, no rule allows this contractor...
    self_service = RestoreRequest(key="ITH-1", reporter_account_id=ALICE, reporter_email=acct["email"])
    assert run(self_service, acct=acct, hist=history(), journal=journal).verdict == REFUSED
    # ...named by an admin, it is restored the way it was actioned, and the audit says by whom and why.
    decision = run(on_demand(), acct=acct, hist=history(), journal=journal)
    assert decision.verdict == RESTORE
    assert decision.steps == ("restore_user",)
    assert decision.rule == "on_demand:admin"
    assert decision.reason.startswith(f"Restore on demand by admin: {REASON}.")


def test_a_cleared_run_finds_its_own_restore_done():
    journal = [
        action_entry("suspend", [ENG]),
        {"action": "restore", "outcome": "succeeded", "evidence": {"request_key": on_demand().key}},
    ]
    decision = run(on_demand(), acct=account(status="active"), hist=history(), journal=journal)
    assert (decision.verdict, decision.done_earlier) == (RESTORE, True)
    # Another run's key for the same account is a new request (then judged on the account's stage).
    other = RestoreRequest(key=f"on-demand:r2:{ALICE}", reporter_account_id=ALICE, requested_by="admin")
    assert not run(other, acct=account(), hist=history(), journal=journal).done_earlier


def test_an_account_this_tool_never_actioned_is_not_restored_on_demand():
    decision = run(on_demand(), acct=account(status="suspended"), hist=None)
    assert decision.verdict == NOT_ACTIONED
    problems = unrestorable([decision.to_dict()], (NOT_ACTIONED,))
    assert len(problems) == 1
    # Named by the directory's e-mail, as read now.
    assert problems[0].startswith("accounts: alice@acme.example cannot be restored by this tool")
    assert "Fix: remove it from accounts" in problems[0]


def test_the_readme_documents_the_form_fields_and_the_cli_example():
    import json
    import re
    from pathlib import Path

    from atlassian_cleanup.decisions.policy_params import RESTORE_PARAM_SCHEMAS

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Restore on demand", 1)[1].split("\n## ", 1)[0]
    for name, schema in RESTORE_PARAM_SCHEMAS.items():
        assert f'| `{name}` | "{schema["title"]}"' in section, name
    # The documented command's conf is valid: it parses and passes the form's checks.
    conf = json.loads(re.search(r"--conf '(\{.*?\})'", section, re.S).group(1))
    assert set(conf) <= {"mode", *RESTORE_PARAM_SCHEMAS}
    assert [e.kind for e in parse_entries(conf["accounts"], conf["restore_reason"], 10)] == [
        "email",
        "account_id",
    ]


def test_each_email_is_searched_alone_so_a_hidden_address_still_matches():
    from atlassian_cleanup.restore.carry_out import find_by_emails

    class Directory:
        def __init__(self) -> None:
            self.searches: list[list[str]] = []

        def iter_directory_users(self, *, filters, expand):
            self.searches.append(filters["emails"])
            assert "groups" in expand
            # The profile hides Alice's e-mail: the user comes back without one.
            return [{"accountId": ALICE}] if filters["emails"] == ["alice@acme.example"] else []

    directory = Directory()
    found = find_by_emails(directory, ["Alice@acme.example", "nobody@acme.example", "ALICE@acme.example"])
    assert directory.searches == [["alice@acme.example"], ["nobody@acme.example"]]
    assert found == {"alice@acme.example": [{"accountId": ALICE}], "nobody@acme.example": []}
