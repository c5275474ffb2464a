"""The action registry against the README and the Atlassian contract, not against itself.

Expected values are literals taken from README.md (policy values, plan values, seats, restore
steps) and ../shared/atlassian-api.md (the endpoints); a test here fails when a declaration drifts
from what admins were told.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from atlassian_cleanup import action_kinds
from atlassian_cleanup.action_kinds import KINDS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_the_policy_offers_the_three_documented_actions():
    assert action_kinds.POLICY_ACTIONS == ("suspend", "deactivate", "remove_product_access")
    for name in action_kinds.POLICY_ACTIONS:
        assert f"`{name}`" in README, name


def test_the_plan_values_are_the_documented_ones_in_order():
    assert action_kinds.PROPOSED_ACTIONS == (
        "none",
        "warn",
        "suspend",
        "deactivate",
        "remove_product_access",
        "delete",
        "delete_notice",
    )


def test_only_account_changes_count_as_writes():
    # E-mails (warn, delete_notice) and "none" never touch Atlassian; the caps count the rest.
    assert set(action_kinds.WRITE_ACTIONS) == {"suspend", "deactivate", "remove_product_access", "delete"}
    assert set(action_kinds.EMAIL_ACTIONS) == {"warn", "delete_notice"}
    assert not set(action_kinds.WRITE_ACTIONS) & set(action_kinds.EMAIL_ACTIONS)


@pytest.mark.parametrize(
    ("name", "stage"),
    [
        ("warn", "warned"),
        ("suspend", "actioned"),
        ("deactivate", "actioned"),
        ("remove_product_access", "actioned"),
        ("delete", "pending_delete"),
        ("none", None),
        ("delete_notice", None),
    ],
)
def test_each_kind_leads_to_the_documented_stage(name, stage):
    assert KINDS[name].stage_after == stage
    if stage:
        assert stage.upper() in README


@pytest.mark.parametrize(
    ("name", "seats"),
    [
        # README "Seats reclaimed": suspended, deactivated or pending-deletion accounts are not billed.
        ("suspend", "all"),
        ("deactivate", "all"),
        ("delete", "all"),
        # Only the removed products' seats are freed.
        ("remove_product_access", "listed_products"),
        ("warn", "none"),
        ("delete_notice", "none"),
    ],
)
def test_seat_effects_follow_the_billing_model(name, seats):
    assert KINDS[name].seats == seats


@pytest.mark.parametrize(
    ("name", "step"),
    [
        # README "Self-service restore": directory restore for a suspension, lifecycle enable for
        # a deactivation, the recorded groups re-added for a product access removal, and a
        # cancel of a pending deletion.
        ("suspend", "restore_user"),
        ("deactivate", "enable_user"),
        ("remove_product_access", "add_group_member"),
        ("delete", "cancel_delete"),
        ("warn", None),
    ],
)
def test_each_write_is_undone_by_its_restore_step(name, step):
    assert KINDS[name].restore_step == step


@pytest.mark.parametrize(
    ("name", "endpoint"),
    [
        ("suspend", "/suspend"),
        ("deactivate", "/manage/lifecycle/disable"),
        ("remove_product_access", "/memberships/"),
        ("delete", "/manage/lifecycle/delete"),
    ],
)
def test_api_calls_name_the_contract_endpoints(name, endpoint):
    assert endpoint in str(KINDS[name].api_call)
