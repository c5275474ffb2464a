"""The policy model: loading, validation messages, overrides and round trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest

from atlassian_cleanup.decisions.policy import (
    DEFAULT_ADMIN_GROUPS,
    LEGACY_PARAMS,
    PARAM_POLICY_KEYS,
    PARAM_SCHEMAS,
    RUN_ONLY_PARAMS,
    Policy,
    PolicyError,
    active_overrides,
    apply_overrides,
    conf_key_problems,
    keeps_policy,
    load_policy,
    plausibility_warnings,
    policy_from_dict,
    policy_json_schema,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "include" / "policy.yaml"


def problems_of(data: Any) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        policy_from_dict(data)
    return caught.value.problems


def only_problem(data: Any) -> str:
    problems = problems_of(data)
    assert len(problems) == 1, problems
    return problems[0]


def test_shipped_policy_loads_with_safe_defaults():
    policy = load_policy(SHIPPED)
    assert policy.dry_run is True
    assert policy.action == "suspend"
    assert policy.delete_after_days is None
    assert policy.warning.lead_days == (14, 7, 1)
    assert policy.admin_groups == DEFAULT_ADMIN_GROUPS
    # The shipped file spells out the defaults: it equals an empty policy.
    assert policy == policy_from_dict({})


def test_shipped_policy_validates_against_the_schema():
    import yaml

    data = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(policy_json_schema()).validate(data)


def test_every_shipped_key_is_commented():
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "-")) and ":" in stripped:
            assert lines[number - 1].strip().startswith("#"), f"key without a comment: {line!r}"


def test_schema_is_draft_2020_12_and_a_copy():
    schema = policy_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"].endswith("2020-12/schema")
    schema["properties"].clear()
    assert policy_json_schema()["properties"]


def test_empty_and_null_documents_give_defaults():
    assert policy_from_dict(None) == Policy()
    assert policy_from_dict({"protected": None, "restore": None}) == Policy()


@pytest.mark.parametrize(
    ("data", "path", "fix_word"),
    [
        ({"dry_run": "yes please"}, "dry_run", "true"),
        ({"inactivity": {"default_days": 0}}, "inactivity.default_days", "at least 1"),
        ({"inactivity": {"default_days": 2.5}}, "inactivity.default_days", "whole number"),
        ({"inactivity": {"products": {"confluence": 0}}}, "inactivity.products.confluence", "whole days"),
        ({"inactivity": {"products": ["jira"]}}, "inactivity.products", "map"),
        ({"warning": {"lead_days": [7, 0]}}, "warning.lead_days[1]", "at least 1"),
        ({"warning": {"lead_days": 7}}, "warning.lead_days", "list"),
        ({"action": "delete"}, "action", "suspend"),
        ({"delete_after_days": 0}, "delete_after_days", "null"),
        ({"new_user_grace_days": -1}, "new_user_grace_days", "0 or more"),
        ({"restored_grace_days": "30"}, "restored_grace_days", "0 or more"),
        ({"protected": {"groups": [""]}}, "protected.groups[0]", "group names"),
        ({"protected": {"account_ids": "abc"}}, "protected.account_ids", "account ids"),
        ({"protected": {"emails": ["not-an-email"]}}, "protected.emails[0]", "full addresses"),
        ({"protected": {"domains": ["@acme.example"]}}, "protected.domains[0]", "without '@'"),
        ({"admin_groups": None}, "admin_groups", "patterns"),
        ({"safety": {"max_actions_per_run": -5}}, "safety.max_actions_per_run", "0 or more"),
        ({"safety": {"max_action_share": 0}}, "safety.max_action_share", "above 0"),
        ({"safety": {"max_action_share": 1.5}}, "safety.max_action_share", "at most 1"),
        ({"safety": {"on_cap_exceeded": "ignore"}}, "safety.on_cap_exceeded", "fail or approve"),
        ({"safety": {"min_user_count_ratio": 2}}, "safety.min_user_count_ratio", "from 0 to 1"),
        ({"safety": {"max_missing_activity_share": 0}}, "safety.max_missing_activity_share", "above 0"),
        ({"restore": {"allowed_domains": ["no spaces.example"]}}, "restore.allowed_domains[0]", "domains"),
        ({"restore": {"allowed_groups": [3]}}, "restore.allowed_groups[0]", "group names"),
    ],
)
def test_bad_value_names_key_value_and_fix(data, path, fix_word):
    problem = only_problem(data)
    assert problem.startswith(f"{path}: "), problem
    assert "(got " in problem
    assert "Fix:" in problem
    assert fix_word in problem.split("Fix:", 1)[1]


def test_booleans_are_not_numbers():
    assert only_problem({"inactivity": {"default_days": True}}).startswith("inactivity.default_days:")


def test_unknown_keys_suggest_the_close_one():
    assert "did you mean 'dry_run'" in only_problem({"dryrun": True})
    assert "did you mean 'safety.max_actions_per_run'" in only_problem({"safety": {"max_action_per_run": 3}})
    # The right key in the wrong section.
    assert "did you mean 'inactivity.default_days'" in only_problem({"default_days": 30})
    # Nothing close: list what is allowed.
    assert "known keys here" in only_problem({"warning": {"zzz": 1}})


def test_product_keys_are_canonicalised_and_checked():
    policy = policy_from_dict({"inactivity": {"products": {"jira-servicedesk": 60, "jira-software": 45}}})
    assert dict(policy.inactivity.products) == {"jsm": 60, "jira": 45}
    assert policy.inactivity.threshold_for("jira-service-management") == 60
    assert policy.inactivity.threshold_for("confluence") == 90
    assert policy.inactivity.threshold_for("bitbucket") == 90

    duplicate = only_problem({"inactivity": {"products": {"jira-servicedesk": 60, "jsm": 30}}})
    assert "duplicates 'jira-servicedesk'" in duplicate
    assert "'jsm'" in duplicate

    typo = only_problem({"inactivity": {"products": {"confluense": 60}}})
    assert typo.startswith("inactivity.products.confluense:")
    assert "did you mean 'confluence'" in typo

    upper = only_problem({"inactivity": {"products": {"Confluence": 60}}})
    assert upper.startswith("inactivity.products.Confluence:")
    assert "'confluence'" in upper

    # Other Atlassian products are fine.
    assert policy_from_dict({"inactivity": {"products": {"bitbucket": 30}}}).inactivity.products == {
        "bitbucket": 30
    }


def test_lead_days_must_be_shorter_than_every_threshold():
    problem = only_problem({"inactivity": {"default_days": 90, "products": {"jsm": 14}}})
    assert problem.startswith("warning.lead_days:")
    assert "inactivity.products.jsm = 14" in problem
    assert "14" in problem
    assert "Fix:" in problem
    problem = only_problem({"inactivity": {"default_days": 10}, "warning": {"lead_days": [3, 10]}})
    assert "inactivity.default_days = 10" in problem
    # Exactly one day shorter is fine; no warnings is fine.
    assert policy_from_dict({"inactivity": {"default_days": 15}}).warning.lead_days == (14, 7, 1)
    assert policy_from_dict({"inactivity": {"default_days": 1}, "warning": {"lead_days": []}})


def test_lead_days_duplicates_rejected_and_order_normalised():
    assert "duplicates" in only_problem({"warning": {"lead_days": [7, 7]}})
    assert policy_from_dict({"warning": {"lead_days": [1, 14, 7]}}).warning.lead_days == (14, 7, 1)


def test_all_problems_reported_together_one_per_line():
    with pytest.raises(PolicyError) as caught:
        policy_from_dict(
            {
                "dry_rn": False,
                "action": "nuke",
                "inactivity": {"default_days": 0},
                "protected": {"emails": ["bad"]},
                "safety": {"max_action_share": 3},
            }
        )
    error = caught.value
    assert len(error.problems) == 5
    text = str(error)
    assert text.splitlines()[0] == "invalid policy (5 problems):"
    for key in (
        "dry_rn",
        "action",
        "inactivity.default_days",
        "protected.emails[0]",
        "safety.max_action_share",
    ):
        assert any(line.startswith(f"- {key}:") for line in text.splitlines()), key
    assert isinstance(error, ValueError)


def test_emails_and_domains_are_lower_cased():
    policy = policy_from_dict(
        {"protected": {"emails": ["CEO@Acme.Example"], "domains": ["VIP.Acme.Example"]}}
    )
    assert policy.protected.emails == ("ceo@acme.example",)
    assert policy.protected.domains == ("vip.acme.example",)


def test_load_policy_reports_file_problems(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("dry_run: [\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(broken)
    duplicate = tmp_path / "duplicate.yaml"
    duplicate.write_text("dry_run: true\ndry_run: false\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="duplicate key 'dry_run'"):
        load_policy(duplicate)
    listed = tmp_path / "list.yaml"
    listed.write_text("- dry_run\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="must be a mapping") as caught:
        load_policy(listed)
    assert str(listed) in str(caught.value)


FULL = {
    "dry_run": False,
    "inactivity": {"default_days": 120, "products": {"confluence": 60, "jira-servicedesk": 45}},
    "warning": {"lead_days": [1, 21, 7]},
    "action": "deactivate",
    "delete_after_days": 180,
    "new_user_grace_days": 14,
    "restored_grace_days": 0,
    "protected": {
        "groups": ["vip-executives"],
        "account_ids": ["712020:abc"],
        "emails": ["Boss@Acme.example"],
        "domains": ["partner.example"],
    },
    "admin_groups": ["site-admins"],
    "safety": {
        "max_actions_per_run": 0,
        "max_action_share": 1,
        "on_cap_exceeded": "approve",
        "min_user_count_ratio": 0,
        "max_missing_activity_share": 1,
    },
    "restore": {"allowed_domains": ["acme.example"], "allowed_groups": ["staff"]},
}


def test_to_dict_round_trips_and_is_json_native():
    import json

    policy = policy_from_dict(FULL)
    data = policy.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert policy_from_dict(data) == policy
    assert data["inactivity"]["products"] == {"confluence": 60, "jsm": 45}
    assert data["warning"]["lead_days"] == [21, 7, 1]
    assert data["protected"]["emails"] == ["boss@acme.example"]
    jsonschema.Draft202012Validator(policy_json_schema()).validate(data)
    assert policy_from_dict(Policy().to_dict()) == Policy()


# --- overrides ---------------------------------------------------------------------------------------


def test_param_schemas_are_valid_and_default_to_the_policy():
    assert set(PARAM_SCHEMAS) == set(PARAM_POLICY_KEYS) | RUN_ONLY_PARAMS
    assert not RUN_ONLY_PARAMS & set(PARAM_POLICY_KEYS)
    assert set(PARAM_SCHEMAS) == {
        "mode",
        "inactivity_days",
        "product_thresholds",
        "warning_lead_days",
        "action",
        "delete_after_days",
        "new_user_grace_days",
        "max_actions_per_run",
        "max_action_share",
        "acknowledge_new_state_store",
    }
    for name, schema in PARAM_SCHEMAS.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert keeps_policy(schema["default"]), name
        assert schema["title"], name
        assert schema["description"], name
        jsonschema.validate(schema["default"], schema)
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if name in RUN_ONLY_PARAMS:
            # A one-run acknowledgement: only true acknowledges, so a switch toggled back (false)
            # acts like an untouched one (null).
            assert schema["default"] is None, name
            assert "Empty:" in schema["description"], name
            continue
        # No switch: a boolean toggled on and off again submits false, not "untouched".
        assert "boolean" not in types, name
        if "enum" in schema:
            # A dropdown: readable labels, "as the policy says" first and the default.
            assert schema["enum"][0] == schema["default"] == "policy", name
            assert set(schema["values_display"]) == set(schema["enum"]), name
            assert "policy" in schema["values_display"]["policy"].lower(), name
        else:
            # A free field starts empty (the form shows nothing, not null, {} or []) and says so.
            assert schema["default"] is None, name
            assert "Empty: the policy's value." in schema["description"], name


def test_untouched_params_keep_the_file_values():
    policy = policy_from_dict(FULL)
    live = policy_from_dict({**FULL, "dry_run": False})
    assert apply_overrides(policy, {}) == policy
    assert apply_overrides(policy, None) == policy
    assert apply_overrides(policy, dict.fromkeys(PARAM_SCHEMAS)) == policy
    untouched = {name: schema["default"] for name, schema in PARAM_SCHEMAS.items()}
    assert apply_overrides(policy, untouched) == policy
    assert apply_overrides(live, untouched) == live
    # A text field typed into and cleared again submits "" or null: still the policy's value.
    assert (
        apply_overrides(policy, {**untouched, "warning_lead_days": "", "product_thresholds": " "}) == policy
    )
    # A DAG's other params are ignored.
    assert apply_overrides(policy, {"approve_plan": True}) == policy


def test_the_state_store_acknowledgement_is_validated_but_changes_no_policy_key():
    policy = policy_from_dict(FULL)
    assert apply_overrides(policy, {"acknowledge_new_state_store": True}) == policy
    # A typo'd value never counts as an acknowledgement: it is an error naming the param.
    with pytest.raises(PolicyError, match="param acknowledge_new_state_store"):
        apply_overrides(policy, {"acknowledge_new_state_store": "yes"})


@pytest.mark.parametrize(
    ("file_dry_run", "mode", "expected"),
    [
        (True, "policy", True),
        (False, "policy", False),
        (True, "dry_run", True),
        (False, "dry_run", True),
        (True, "live", False),
        (False, "live", False),
    ],
)
def test_mode_choice(file_dry_run, mode, expected):
    policy = policy_from_dict({"dry_run": file_dry_run})
    assert apply_overrides(policy, {"mode": mode}).dry_run is expected


def test_only_an_explicit_choice_goes_live():
    dry = Policy()
    # The old conf key still means a dry run...
    assert apply_overrides(policy_from_dict({"dry_run": False}), {"dry_run": True}).dry_run is True
    assert apply_overrides(dry, {"dry_run": False, "mode": "live"}).dry_run is False
    # ...but false alone (what a toggled-back switch submitted) no longer goes live.
    for params in (
        {"dry_run": False},
        {"dry_run": False, "mode": "policy"},
        {"dry_run": False, "mode": "dry_run"},
    ):
        with pytest.raises(PolicyError) as caught:
            apply_overrides(dry, params)
        assert "mode" in str(caught.value)
        assert "live" in str(caught.value)
    for params in ({"dry_run": True, "mode": "live"}, {"dry_run": "no"}, {"mode": "Live"}, {"mode": True}):
        with pytest.raises(PolicyError):
            apply_overrides(dry, params)


def test_text_fields_are_parsed():
    policy = policy_from_dict(FULL)
    assert apply_overrides(policy, {"warning_lead_days": "none"}).warning.lead_days == ()
    assert apply_overrides(policy, {"warning_lead_days": "7, 21 1"}).warning.lead_days == (21, 7, 1)
    assert apply_overrides(policy, {"warning_lead_days": "[3]"}).warning.lead_days == (3,)
    thresholds = apply_overrides(policy, {"product_thresholds": "jira-software=100; confluence: 95"})
    assert dict(thresholds.inactivity.products) == {"confluence": 95, "jira": 100, "jsm": 45}
    as_json = apply_overrides(policy, {"product_thresholds": '{"confluence": 95}'})
    assert as_json.inactivity.products["confluence"] == 95
    for params, named in (
        ({"warning_lead_days": "seven"}, "param warning_lead_days:"),
        ({"warning_lead_days": "0"}, "param warning_lead_days.[0]:"),
        ({"product_thresholds": "confluence"}, "param product_thresholds:"),
        ({"product_thresholds": "confluence=0"}, "param product_thresholds.confluence:"),
    ):
        with pytest.raises(PolicyError) as caught:
            apply_overrides(policy, params)
        assert caught.value.problems[0].startswith(named), caught.value.problems


def test_unknown_conf_keys_name_the_closest_param():
    known = [*PARAM_SCHEMAS, *LEGACY_PARAMS]
    (problem,) = conf_key_problems({"dryrun": True, "mode": "dry_run"}, known)
    assert "'dryrun'" in problem
    assert "did you mean 'dry_run'?" in problem
    (problem,) = conf_key_problems({"max_action_per_run": 5}, known)
    assert "did you mean 'max_actions_per_run'?" in problem
    (problem,) = conf_key_problems({"zzz": 1}, known)
    assert "did you mean" not in problem
    assert "mode" in problem
    assert conf_key_problems({"mode": "live", "dry_run": True}, known) == []
    assert conf_key_problems(None, known) == []


def test_active_overrides_lists_what_changed():
    untouched = {name: schema["default"] for name, schema in PARAM_SCHEMAS.items()}
    assert active_overrides(untouched) == {}
    assert active_overrides({**untouched, "mode": "live", "max_actions_per_run": 0, "dry_run": True}) == {
        "mode": "live",
        "max_actions_per_run": 0,
        "dry_run": True,
    }


def test_overrides_are_applied():
    policy = policy_from_dict(FULL)
    result = apply_overrides(
        policy,
        {
            "mode": "dry_run",
            "inactivity_days": 200,
            "product_thresholds": {"jira-software": 100, "confluence": 90},
            "warning_lead_days": [3],
            "action": "remove_product_access",
            "delete_after_days": 0,
            "new_user_grace_days": 0,
            "max_actions_per_run": 7,
            "max_action_share": 0.25,
        },
    )
    assert result.dry_run is True
    assert result.inactivity.default_days == 200
    assert dict(result.inactivity.products) == {"confluence": 90, "jira": 100, "jsm": 45}
    assert result.warning.lead_days == (3,)
    assert result.action == "remove_product_access"
    assert result.delete_after_days is None  # 0 = no deletion in this run
    assert result.new_user_grace_days == 0
    assert result.safety.max_actions_per_run == 7
    assert result.safety.max_action_share == 0.25
    # Untouched keys keep the file's values.
    assert result.protected == policy.protected
    assert result.restored_grace_days == policy.restored_grace_days
    assert apply_overrides(policy, {"warning_lead_days": []}).warning.lead_days == ()
    assert apply_overrides(Policy(), {"delete_after_days": 30}).delete_after_days == 30


def test_bad_override_names_the_param():
    with pytest.raises(PolicyError) as caught:
        apply_overrides(
            Policy(),
            {
                "action": "nuke",
                "inactivity_days": 0,
                "max_action_share": 2,
                "product_thresholds": {"jira": 0},
            },
        )
    problems = caught.value.problems
    assert len(problems) == 4
    assert any(p.startswith("param action:") and "'nuke'" in p and "Fix:" in p for p in problems)
    assert any(p.startswith("param inactivity_days:") and "at least 1" in p for p in problems)
    assert any(p.startswith("param max_action_share:") for p in problems)
    assert any(p.startswith("param product_thresholds.jira:") for p in problems)


def test_override_that_breaks_a_cross_field_rule_names_the_param():
    with pytest.raises(PolicyError) as caught:
        apply_overrides(Policy(), {"inactivity_days": 10})
    (problem,) = caught.value.problems
    assert problem.startswith("param inactivity_days: warning.lead_days:")
    with pytest.raises(PolicyError) as caught:
        apply_overrides(Policy(), {"warning_lead_days": [100]})
    (problem,) = caught.value.problems
    assert problem.startswith("param warning_lead_days: warning.lead_days:")
    with pytest.raises(PolicyError) as caught:
        apply_overrides(Policy(), {"product_thresholds": {"jsm": 5}})
    assert caught.value.problems[0].startswith("param product_thresholds:")


def test_overrides_do_not_change_the_original_policy():
    policy = policy_from_dict(FULL)
    before = policy.to_dict()
    apply_overrides(policy, {"product_thresholds": {"jira": 99}, "inactivity_days": 99})
    assert policy.to_dict() == before


# -- safety.task_timeout_minutes: the execution_timeout of the tasks that call Atlassian -------------


def test_task_timeout_defaults_to_two_hours_as_documented():
    import yaml

    shipped = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    assert shipped["safety"]["task_timeout_minutes"] == 120
    assert policy_from_dict({}).safety.task_timeout_minutes == 120
    assert load_policy(SHIPPED).safety.task_timeout_minutes == 120


@pytest.mark.parametrize("value", [0, -1, 1441, "ten", 2.5, True, None])
def test_task_timeout_rejects_what_is_not_a_sane_whole_number_of_minutes(value):
    problem = only_problem({"safety": {"task_timeout_minutes": value}})
    assert problem.startswith("safety.task_timeout_minutes: "), problem
    assert "1 to 1440" in problem


def test_task_timeout_typo_is_caught_not_ignored():
    assert "did you mean 'safety.task_timeout_minutes'" in only_problem(
        {"safety": {"task_timeout_minute": 5}}
    )


# --- notice period, users without e-mail, plausibility ----------------------------------------------


def test_notice_defaults_to_the_largest_lead_day_and_can_be_set():
    assert policy_from_dict({}).warning.notice_days == 14
    assert policy_from_dict({"warning": {"lead_days": [30, 3]}}).warning.notice_days == 30
    custom = policy_from_dict({"warning": {"min_notice_days": 21}})
    assert (custom.warning.min_notice_days, custom.warning.notice_days) == (21, 21)
    assert policy_from_dict({}).warning.without_email == "action_after_notice"
    assert policy_from_dict({"warning": {"without_email": "hold"}}).warning.without_email == "hold"
    assert policy_from_dict(custom.to_dict()) == custom


@pytest.mark.parametrize(
    ("warning", "expected"),
    [
        ({"min_notice_days": 0}, "warning.min_notice_days: must be at least 1 (got 0)"),
        ({"min_notice_days": "14"}, "warning.min_notice_days: must be a whole number (got '14')"),
        ({"min_notice_days": True}, "warning.min_notice_days: must be a whole number (got True)"),
        ({"without_email": "skip"}, "warning.without_email: must be one of action_after_notice, hold"),
        (
            {"min_notice_dayz": 3},
            "warning.min_notice_dayz: unknown key; did you mean 'warning.min_notice_days'?",
        ),
    ],
)
def test_notice_and_without_email_typos_are_errors(warning, expected):
    assert only_problem({"warning": warning}).startswith(expected)


@pytest.mark.parametrize(
    "data",
    [
        {"inactivity": {"default_days": 36_501}},
        {"inactivity": {"products": {"confluence": 40_000}}},
        {"delete_after_days": 100_000},
        {"new_user_grace_days": 36_501},
        {"restored_grace_days": 99_999},
        {"warning": {"min_notice_days": 36_501}},
    ],
)
def test_periods_beyond_a_hundred_years_are_errors(data):
    problem = only_problem(data)
    assert "must be at most 36500 days (100 years): a longer period cannot be meant" in problem


def test_exactly_a_hundred_years_is_valid_with_a_warning():
    policy = policy_from_dict(
        {
            "inactivity": {"default_days": 36_500},
            "warning": {"lead_days": [14]},
            "protected": {"groups": ["vip"]},
        }
    )
    (warning,) = plausibility_warnings(policy)
    assert warning.startswith("inactivity.default_days: 36500 days is more than ten years (3650 days)")


def test_plausibility_warnings():
    protected = {"protected": {"groups": ["vip-executives"]}}
    assert plausibility_warnings(policy_from_dict(protected)) == []
    # The shipped policy protects nobody beyond the built-in protections: accepted, with a warning.
    (warning,) = plausibility_warnings(load_policy(SHIPPED))
    assert warning.startswith("protected: nobody is protected beyond the built-in protections")
    for key in ("account_ids", "emails", "domains"):
        value = {"account_ids": ["712020:x"], "emails": ["ceo@acme.example"], "domains": ["acme.example"]}[
            key
        ]
        assert plausibility_warnings(policy_from_dict({"protected": {key: value}})) == []
    ten_years = policy_from_dict(
        {**protected, "inactivity": {"default_days": 3650, "products": {"jira": 3651}}}
    )
    assert [w.split(":")[0] for w in plausibility_warnings(ten_years)] == ["inactivity.products.jira"]
    long = policy_from_dict({**protected, "delete_after_days": 4000, "new_user_grace_days": 5000})
    assert [w.split(":")[0] for w in plausibility_warnings(long)] == [
        "delete_after_days",
        "new_user_grace_days",
    ]
    silent = policy_from_dict({**protected, "warning": {"lead_days": [], "min_notice_days": 14}})
    assert plausibility_warnings(silent)[0].startswith(
        "warning.min_notice_days is set but warning.lead_days is []"
    )


def test_a_param_override_beyond_a_hundred_years_is_an_error_naming_the_param():
    with pytest.raises(PolicyError) as caught:
        apply_overrides(Policy(), {"inactivity_days": 40_000})
    assert "param inactivity_days" in str(caught.value)
    assert "100 years" in str(caught.value)
