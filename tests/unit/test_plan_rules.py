"""The planner's rule table: one ordered list, first match wins."""

from __future__ import annotations

import numpy as np
import pytest

from atlassian_cleanup.decisions import plan_rules
from atlassian_cleanup.decisions.plan_rules import RULES, Rule
from atlassian_cleanup.decisions.planner import UserHistory, plan_actions
from atlassian_cleanup.decisions.policy import policy_from_dict
from tests.unit.test_planner import AS_OF, ago, user

# The order the planner's documentation describes: protection, lifecycle, status, inactivity.
DOCUMENTED_ORDER = [
    "app_account",
    "customer_account",
    "unknown_account_type",
    "admin_role",
    "admin_group",
    "api_user",
    "protected_account",
    "protected_email",
    "protected_domain",
    "protected_group",
    "new_user_grace",
    "restored_grace",
    "kept_in_review",
    "deleted",
    "pending_delete",
    "already_for_deletion",
    "activity_seen",
    "already_actioned",
    "changed_outside_tool",
    "deletion_notice",
    "dormant_delete",
    "awaiting_delete",
    "already_suspended",
    "already_deactivated",
    "not_invited",
    "unknown_status",
    "no_product_access",
    "notice_period",
    "already_warned",
    "final_warning",
    "warning_window",
    "awaiting_review",
    "inactive_product",
    "inactive_all_products",
    "inactive_no_product_access",
    "active",
]


def test_the_rules_are_one_ordered_table_of_distinct_names():
    assert [rule.name for rule in RULES] == DOCUMENTED_ORDER


def test_the_first_rule_that_applies_decides():
    """An inactive app account that also holds an admin role, in a protected group, that this tool
    already deleted: the account type comes first."""
    pol = policy_from_dict({"protected": {"groups": ["vip"]}})
    users = [
        user(
            "app",
            account_type="app",
            roles=("atlassian/org-admin",),
            groups=("vip",),
            products={"jira": ago(400)},
        ),
        user("admin", roles=("atlassian/org-admin",), groups=("vip",), products={"jira": ago(400)}),
        user("vip", groups=("vip",), products={"jira": ago(400)}),
        user("gone", products={"jira": ago(400)}, status="suspended"),
    ]
    history = {name: UserHistory(stage="deleted") for name in ("app", "admin", "vip", "gone")}
    plan = plan_actions(users, pol, AS_OF, history=history)
    assert plan["rule"].tolist() == ["app_account", "admin_role", "protected_group", "deleted"]
    assert plan["protected_by"].tolist() == ["account_type:app", "role:atlassian/org-admin", "group:vip", ""]


def test_a_rule_must_name_its_users_with_a_boolean_mask(monkeypatch):
    """A number mask would pick users by index: refused, not silently applied."""
    counted = Rule("counted", lambda facts: np.ones(facts.n, dtype=np.int64))
    monkeypatch.setattr(plan_rules, "RULES", (counted, *RULES))
    with pytest.raises(TypeError, match="counted"):
        plan_actions([user("u1")], policy_from_dict({}), AS_OF)
