"""Scoped rules: who each rule selects, the rules that can never apply, and planning per rule.

Expected values come from the README's description of ``rules`` (first match wins, the top level
is the rule ``default``, unset keys are inherited) and from planning the same users under the
equivalent single-population policy, never from the code's own constants.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from atlassian_cleanup.decisions.planner import UserHistory, plan_actions, plan_to_records, summarise_plan
from atlassian_cleanup.decisions.policy import Policy, PolicyError, policy_from_dict
from atlassian_cleanup.decisions.records import UserRecord
from atlassian_cleanup.decisions.scopes import rule_of_users, selects
from atlassian_cleanup.decisions.user_table import UserTable
from tests.unit.readme_contract import plan_columns
from tests.unit.test_planner import AS_OF, ago, user

CONTRACTORS = {
    "name": "contractors",
    "match": {"email_domains": ["partner.example"], "managed": False},
    "inactivity": {"default_days": 30},
    "warning": {"lead_days": []},
    "action": "remove_product_access",
}


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        policy_from_dict(data)
    return caught.value.problems


def rule_named(rules: list[dict[str, Any]], records: list[UserRecord]) -> list[str]:
    pol = policy_from_dict({"rules": rules})
    names = [*(rule["name"] for rule in rules), "default"]
    return [names[i] for i in rule_of_users(UserTable.from_records(records), pol.rules).tolist()]


# --- matching ---------------------------------------------------------------------------------------


def test_groups_match_any_listed_group_whatever_the_case():
    records = [user("a", groups=("Contractors",)), user("b", groups=("staff", "x")), user("c")]
    assert rule_named([{"name": "ext", "match": {"groups": ["contractors", "x"]}}], records) == [
        "ext",
        "ext",
        "default",
    ]


def test_email_domains_include_subdomains_and_hidden_emails_match_none():
    records = [
        user("a", email="bob@partner.example"),
        user("b", email="eve@eu.Partner.example"),
        user("c", email="mallory@notpartner.example"),
        user("d", email=None),
    ]
    rules = [{"name": "partner", "match": {"email_domains": ["partner.example"]}}]
    assert rule_named(rules, records) == ["partner", "partner", "default", "default"]


def test_managed_compares_the_claim_status_and_unknown_matches_neither():
    records = [user("a", claim="managed"), user("b", claim="unmanaged"), user("c", claim=None)]
    assert rule_named([{"name": "ext", "match": {"managed": False}}], records) == [
        "default",
        "ext",
        "default",
    ]
    assert rule_named([{"name": "own", "match": {"managed": True}}], records) == ["own", "default", "default"]


def test_products_match_any_product_the_user_has_under_any_alias():
    records = [
        user("a", products={"jira-servicedesk": ago(3)}),
        user("b", products={"confluence": None}),
        user("c", products={}),
    ]
    assert rule_named([{"name": "agents", "match": {"products": ["jsm", "confluence"]}}], records) == [
        "agents",
        "agents",
        "default",
    ]


def test_every_key_of_a_selector_must_hold():
    records = [
        user("a", email="bob@partner.example", claim="unmanaged"),
        user("b", email="bob@partner.example", claim="managed"),
        user("c", email="bob@acme.example", claim="unmanaged"),
    ]
    assert rule_named([CONTRACTORS], records) == ["contractors", "default", "default"]


def test_the_first_matching_rule_wins():
    records = [user("a", groups=("ext",), email="a@partner.example"), user("b", groups=("ext",))]
    rules = [
        {"name": "partner", "match": {"email_domains": ["partner.example"]}},
        {"name": "ext", "match": {"groups": ["ext"]}},
    ]
    assert rule_named(rules, records) == ["partner", "ext"]


def test_an_empty_table_selects_nobody():
    pol = policy_from_dict({"rules": [CONTRACTORS]})
    assert selects(UserTable(), pol.rules[0].match).tolist() == []


# --- validation -------------------------------------------------------------------------------------


def test_an_unknown_selector_key_names_the_known_ones():
    (problem,) = problems_of({"rules": [{"name": "x", "match": {"group": ["a"]}}]})
    assert problem.startswith("rules[0].match.group: unknown key; did you mean 'rules[0].match.groups'?")


def test_a_rule_key_in_the_wrong_place_points_to_the_rules_own_section():
    (problem,) = problems_of({"rules": [{"name": "x", "match": {"managed": False}, "default_days": 30}]})
    assert problem.startswith(
        "rules[0].default_days: unknown key; did you mean 'rules[0].inactivity.default_days'?"
    )
    (problem,) = problems_of({"rules": [{"name": "x", "match": {"managed": False}, "min_notice_days": 3}]})
    assert problem.startswith("rules[0].min_notice_days: unknown key; remove it; known keys here: action, ")


def test_an_empty_selector_is_refused_with_the_keys_to_use():
    (problem,) = problems_of({"rules": [{"name": "x", "match": {}}]})
    assert problem.startswith("rules[0].match: must not be empty")
    assert "Fix: give at least one of groups, email_domains, managed, products" in problem


def test_an_empty_selector_list_selects_nobody_and_is_refused():
    (problem,) = problems_of({"rules": [{"name": "x", "match": {"groups": []}}]})
    assert problem.startswith("rules[0].match.groups: must not be empty (an empty list selects nobody)")


def test_a_rule_without_match_or_name_is_refused():
    problems = problems_of({"rules": [{"name": "x"}, {"match": {"managed": True}}]})
    assert [p.split(" (got")[0] for p in problems] == [
        "rules[0]: is missing match",
        "rules[1]: is missing name",
    ]


def test_duplicate_names_are_refused():
    rules = [{"name": "x", "match": {"groups": ["a"]}}, {"name": "x", "match": {"groups": ["b"]}}]
    (problem,) = problems_of({"rules": rules})
    assert problem.startswith("rules[1].name: 'x' is already the name of rules[0]")


def test_the_default_name_is_reserved_for_the_top_level():
    (problem,) = problems_of({"rules": [{"name": "default", "match": {"groups": ["a"]}}]})
    assert problem.startswith("rules[0].name: 'default' is the name of the top-level settings")


def test_a_bad_rule_name_says_how_names_are_written():
    (problem,) = problems_of({"rules": [{"name": "Contractors!", "match": {"groups": ["a"]}}]})
    assert "Fix: use a lower-case name" in problem


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ({"groups": ["a", "b"]}, {"groups": ["a"]}),  # wider list
        ({"groups": ["a"]}, {"groups": ["A"], "managed": True}),  # the same list, narrowed later
        ({"email_domains": ["partner.example"]}, {"email_domains": ["eu.partner.example"]}),  # subdomain
        ({"managed": False}, {"managed": False, "products": ["jira"]}),
        ({"products": ["jira-software"]}, {"products": ["jira"]}),  # aliases of one product
    ],
)
def test_a_rule_an_earlier_rule_covers_is_reported_as_shadowed(earlier, later):
    rules = [{"name": "first", "match": earlier}, {"name": "second", "match": later}]
    (problem,) = problems_of({"rules": rules})
    assert problem.startswith("rules[1] (second) can never match: rules[0] (first) comes first")
    assert "Fix: move 'second' above 'first'" in problem


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ({"groups": ["a"]}, {"groups": ["a", "b"]}),  # the later rule is wider
        ({"groups": ["a"], "managed": True}, {"groups": ["a"]}),  # the earlier one is narrower
        ({"email_domains": ["eu.partner.example"]}, {"email_domains": ["partner.example"]}),
        ({"managed": True}, {"managed": False}),
    ],
)
def test_a_rule_that_still_selects_somebody_of_its_own_is_accepted(earlier, later):
    rules = [{"name": "first", "match": earlier}, {"name": "second", "match": later}]
    assert len(policy_from_dict({"rules": rules}).rules) == 2


def test_a_rule_that_selects_only_protected_people_can_never_apply():
    data = {
        "protected": {"groups": ["VIP"], "domains": ["board.example"]},
        "rules": [
            {"name": "vip", "match": {"groups": ["vip", "site-admins"]}},
            {"name": "board", "match": {"email_domains": ["eu.board.example"]}},
        ],
    }
    problems = problems_of(data)
    assert [p.split(":")[0] for p in problems] == [
        "rules[0] (vip) can never apply",
        "rules[1] (board) can never apply",
    ]


def test_a_rules_lead_days_are_checked_against_its_own_thresholds():
    rule = {"name": "fast", "match": {"managed": False}, "inactivity": {"default_days": 10}}
    (problem,) = problems_of({"rules": [rule]})
    assert problem.startswith("warning.lead_days (inherited by rules[0]): 14 must be shorter")
    assert "raise rules[0].inactivity.default_days" in problem
    rule["warning"] = {"lead_days": [7, 1]}
    assert policy_from_dict({"rules": [rule]}).rules[0].settings["warning.lead_days"] == (7, 1)


def test_a_mistyped_product_in_a_rule_is_caught():
    (problem,) = problems_of({"rules": [{"name": "c", "match": {"products": ["confluense"]}}]})
    assert problem.startswith("rules[0].match.products: unknown product key 'confluense'; did you mean")


def test_rules_round_trip_through_the_policy_record():
    pol = policy_from_dict(
        {"rules": [CONTRACTORS, {"name": "never", "match": {"groups": ["g"]}, "delete_after_days": None}]}
    )
    assert policy_from_dict(pol.to_dict()) == pol
    # Only what a rule sets is written: an inherited key stays inherited after the round trip.
    assert pol.to_dict()["rules"][1] == {
        "name": "never",
        "match": {"groups": ["g"]},
        "delete_after_days": None,
    }


def test_a_rule_that_deactivates_makes_the_run_check_deactivation():
    pol = policy_from_dict({"rules": [{**CONTRACTORS, "action": "deactivate"}]})
    assert pol.action == "suspend"
    assert pol.actions_in_use() == {"suspend", "deactivate"}


# --- planning per rule ------------------------------------------------------------------------------


def idle(account_id: str, days: int, **kwargs: Any) -> UserRecord:
    return user(account_id, products={"jira": ago(days)}, **kwargs)


def test_two_populations_get_different_actions_and_the_plan_names_the_rule():
    records = [
        idle("staff", 45),
        idle("contractor", 45, email="bob@partner.example", claim="unmanaged"),
        idle("staff-idle", 120),
    ]
    plan = plan_to_records(plan_actions(records, policy_from_dict({"rules": [CONTRACTORS]}), AS_OF))
    by_id = {row["account_id"]: row for row in plan}
    # 45 days idle: past the contractors' 30, short of the default 90.
    assert by_id["contractor"]["proposed_action"] == "remove_product_access"
    assert by_id["contractor"]["products_to_remove"] == ["jira"]
    assert by_id["contractor"]["policy_rule"] == "contractors"
    assert by_id["staff"]["proposed_action"] == "none"
    assert by_id["staff"]["policy_rule"] == "default"
    # The default population keeps the top-level action and warnings.
    assert by_id["staff-idle"]["proposed_action"] == "warn"
    assert by_id["staff-idle"]["planned_action"] == "suspend"
    assert [row["account_id"] for row in plan] == ["staff", "contractor", "staff-idle"]
    assert summarise_plan(plan)["by_policy_rule"] == {"contractors": 1, "default": 2}
    assert tuple(plan[0]) == plan_columns()


def test_a_rules_population_plans_as_its_effective_policy_would():
    records = [idle(f"u{i}", days, email=f"u{i}@partner.example", claim="unmanaged") for i, days in
               enumerate([5, 29, 31, 60, 200])]  # fmt: skip
    records.append(idle("staff", 200))
    scoped = plan_to_records(plan_actions(records, policy_from_dict({"rules": [CONTRACTORS]}), AS_OF))
    alone = policy_from_dict(
        {"inactivity": {"default_days": 30}, "warning": {"lead_days": []}, "action": "remove_product_access"}
    )
    expected = plan_to_records(plan_actions(records[:-1], alone, AS_OF))
    for row in scoped[:-1]:
        assert row.pop("policy_rule") == "contractors"
    assert scoped[:-1] == [{k: v for k, v in row.items() if k != "policy_rule"} for row in expected]
    default = plan_to_records(plan_actions(records[-1:], Policy(), AS_OF))[0]
    assert scoped[-1] == default


def test_per_product_thresholds_of_a_rule_merge_over_the_top_level():
    data = {
        "inactivity": {"default_days": 90, "products": {"confluence": 40}},
        "rules": [
            {"name": "jira-fast", "match": {"groups": ["ops"]}, "inactivity": {"products": {"jira": 20}}}
        ],
        "warning": {"lead_days": []},
    }
    records = [user("ops", groups=("ops",), products={"jira": ago(25), "confluence": ago(45)}),
               user("dev", products={"jira": ago(25), "confluence": ago(45)})]  # fmt: skip
    rows = plan_to_records(plan_actions(records, policy_from_dict(data), AS_OF))
    assert rows[0]["inactive_products"] == ["confluence", "jira"]  # jira by the rule, confluence inherited
    assert rows[1]["inactive_products"] == ["confluence"]


def test_a_rule_can_switch_deletion_off_for_its_population():
    data = {
        "delete_after_days": 30,
        "rules": [{"name": "keep", "match": {"groups": ["legal"]}, "delete_after_days": None}],
    }
    records = [user("a", groups=("legal",), status="suspended", products={"jira": ago(300)}),
               user("b", status="suspended", products={"jira": ago(300)})]  # fmt: skip
    actioned = UserHistory(
        stage="actioned", actioned_action="suspend", actioned_at=AS_OF - timedelta(days=91)
    )
    rows = plan_to_records(
        plan_actions(records, policy_from_dict(data), AS_OF, history={"a": actioned, "b": actioned})
    )
    assert (rows[0]["policy_rule"], rows[0]["proposed_action"], rows[0]["rule"]) == (
        "keep",
        "none",
        "already_actioned",
    )
    assert (rows[1]["policy_rule"], rows[1]["proposed_action"]) == ("default", "delete_notice")


def test_a_policy_without_rules_names_the_default_rule_on_every_row():
    rows = plan_to_records(plan_actions([idle("a", 5), idle("b", 200)], Policy(), AS_OF))
    assert [row["policy_rule"] for row in rows] == ["default", "default"]


def test_a_rule_that_selects_nobody_changes_nothing():
    records = [idle("a", 5), idle("b", 200, groups=("x",)), idle("c", 95, email=None)]
    with_rule = policy_from_dict(
        {"rules": [{"name": "nobody", "match": {"groups": ["absent"]}, "action": "deactivate"}]}
    )
    assert plan_to_records(plan_actions(records, with_rule, AS_OF)) == plan_to_records(
        plan_actions(records, Policy(), AS_OF)
    )


def test_a_run_param_changes_the_top_level_and_a_rule_keeps_what_it_sets():
    from atlassian_cleanup.decisions.policy import apply_overrides

    pol = policy_from_dict({"rules": [CONTRACTORS, {"name": "ops", "match": {"groups": ["ops"]}}]})
    run = apply_overrides(pol, {"action": "deactivate", "inactivity_days": 60})
    assert (run.action, run.inactivity.default_days) == ("deactivate", 60)
    assert run.rules == pol.rules  # contractors keep their own 30 days and action; ops inherits


def test_a_run_param_that_breaks_a_rule_is_named_in_the_error():
    from atlassian_cleanup.decisions.policy import apply_overrides

    pol = policy_from_dict(
        {
            "rules": [
                {
                    "name": "fast",
                    "match": {"managed": False},
                    "inactivity": {"default_days": 20},
                    "warning": {"lead_days": [7]},
                },
                {"name": "slow", "match": {"groups": ["ops"]}, "inactivity": {"default_days": 20}},
            ]
        }
    )
    with pytest.raises(PolicyError) as caught:
        apply_overrides(pol, {"warning_lead_days": "21, 7"})
    (problem,) = caught.value.problems
    assert problem.startswith(
        "param warning_lead_days: warning.lead_days (inherited by rules[1]): 21 must be shorter"
    )


def test_deactivating_unmanaged_accounts_is_flagged_as_not_what_happens():
    from atlassian_cleanup.decisions.policy import plausibility_warnings

    pol = policy_from_dict({"rules": [{**CONTRACTORS, "action": "deactivate"}]})
    (warning,) = [w for w in plausibility_warnings(pol) if w.startswith("rules:")]
    assert "'contractors' selects unmanaged accounts and deactivates them" in warning
    # The planner agrees: an idle unmanaged contractor is suspended, not deactivated.
    row = plan_to_records(
        plan_actions([idle("c", 45, email="c@partner.example", claim="unmanaged")], pol, AS_OF)
    )[0]
    assert row["proposed_action"] == "suspend"
    assert not [
        w for w in plausibility_warnings(policy_from_dict({"rules": [CONTRACTORS]})) if w.startswith("rules:")
    ]
