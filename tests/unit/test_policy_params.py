"""The trigger form's params agree with the policy keys they override.

A param that accepted less than its policy key would refuse a value the policy file may hold; one
that accepted more would only fail when the merged policy is checked again, with a vaguer message.
"""

from __future__ import annotations

from typing import Any

from atlassian_cleanup.decisions.policy import PARAM_POLICY_KEYS, PARAM_SCHEMAS, policy_json_schema

_BOUNDS = ("minimum", "exclusiveMinimum")

# Deliberate differences: ``delete_after_days: 0`` turns deletion off for one run (the policy file
# says null for that), and a choice param adds "as the policy says" to the policy key's values.
_DIFFERENT_BY_DESIGN = {"delete_after_days": {"minimum": 0}}


def _key_schema(path: str) -> dict[str, Any]:
    node: dict[str, Any] = policy_json_schema()
    for part in path.split("."):
        node = node["properties"][part]
    return node


def _numbers(schema: dict[str, Any]) -> dict[str, Any]:
    """The lower bounds of a number, or of a list's items or a mapping's values."""
    inner = schema.get("items") or schema.get("additionalProperties") or schema
    return {bound: inner[bound] for bound in _BOUNDS if bound in inner}


def test_every_param_has_the_lower_bounds_of_its_policy_key():
    for name, path in PARAM_POLICY_KEYS.items():
        param = _numbers(PARAM_SCHEMAS[name])
        if not param:
            continue
        expected = _DIFFERENT_BY_DESIGN.get(name, _numbers(_key_schema(path)))
        assert param == expected, name


def test_a_share_param_has_the_upper_bound_of_its_policy_key():
    assert PARAM_SCHEMAS["max_action_share"]["maximum"] == _key_schema("safety.max_action_share")["maximum"]


def test_the_action_param_offers_keep_policy_then_the_policy_actions():
    assert PARAM_SCHEMAS["action"]["enum"] == ["policy", *_key_schema("action")["enum"]]


def test_lead_days_param_items_are_unique_like_the_policy_key():
    assert PARAM_SCHEMAS["warning_lead_days"]["uniqueItems"] is True
    assert _key_schema("warning.lead_days")["uniqueItems"] is True
