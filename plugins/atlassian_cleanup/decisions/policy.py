"""The cleanup policy: who counts as inactive, what happens to them, and who is never touched.

The policy lives in ``include/policy.yaml`` and is loaded into a frozen :class:`Policy` by
:func:`load_policy` (or :func:`policy_from_dict` for data that is already parsed). Loading is
strict, because a typo in a policy file can suspend the wrong people:

* the document is validated against a JSON Schema (draft 2020-12, :func:`policy_json_schema`),
  then against cross-field rules the schema cannot express (warning lead days must be shorter than
  every inactivity threshold, product keys must not collide after canonicalisation, ...);
* unknown keys are errors, with a "did you mean ..." suggestion when a known key is close;
* every problem is collected and :class:`PolicyError` reports them all at once, one per line, each
  naming the key path, what is wrong, the value seen and how to fix it.

An ordered list ``rules`` may give populations (selected by groups, e-mail domains, managed or
unmanaged accounts, products) their own thresholds, action, lead days and deletion delay; the
first rule that selects a user applies, the top level is the rule ``default``. Loading refuses a
rule that could never apply (see :mod:`~atlassian_cleanup.decisions.policy_rules`); who each rule
selects is :mod:`~atlassian_cleanup.decisions.scopes`.

Missing keys take the defaults, which are the safe choice (``dry_run: true``, ``action: suspend``,
no deletion). Each is declared once, as a field default of the dataclasses; the schema, the fix
hints and the trigger form read it from there, and tests hold ``include/policy.yaml`` and the
README's key table to it.

A DAG run may override a few keys through DAG Params. :data:`PARAM_SCHEMAS` describes them (JSON
Schema fragments ready for ``airflow.sdk.Param(**schema)``) and :func:`apply_overrides` applies
them: a param left untouched (``None``, ``"policy"``) keeps the policy file's value, and the merged
policy is validated again, with errors naming the param. :func:`conf_key_problems` rejects a run
conf key that is no param at all (``{"dryrun": true}``), naming the closest one.

The API user (the account whose token runs the DAG) is deliberately *not* a policy key: it comes
from the Airflow connections, and the planner receives it as ``api_user_emails`` /
``api_user_account_ids``, so it cannot be forgotten when the policy file is edited.

Where each part lives: the dataclasses and their defaults in
:mod:`~atlassian_cleanup.decisions.policy_model`, the JSON Schema and the "how to fix it" hints in
:mod:`~atlassian_cleanup.decisions.policy_schema`, checking and building in
:mod:`~atlassian_cleanup.decisions.policy_checks`, the DAG Params in
:mod:`~atlassian_cleanup.decisions.policy_params`. This module reads the file and is the one import
for callers.

This module imports neither Airflow nor an HTTP client.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from atlassian_cleanup.decisions.policy_checks import build_policy, plausibility_warnings, problems_in
from atlassian_cleanup.decisions.policy_model import (
    ACTIONS,
    BILLING_MODELS,
    DEFAULT_ADMIN_GROUPS,
    DEFAULT_RULE,
    MAX_DAYS,
    ON_CAP_EXCEEDED,
    PLAUSIBLE_DAYS,
    WITHOUT_EMAIL,
    Action,
    InactivityPolicy,
    LicensingPolicy,
    NotificationsPolicy,
    Policy,
    PolicyError,
    ProtectedPolicy,
    RestorePolicy,
    RuleSelector,
    SafetyPolicy,
    ScopedRule,
    StateStorePolicy,
    WarningPolicy,
)
from atlassian_cleanup.decisions.policy_params import (
    ACKNOWLEDGE_NEW_STATE_STORE,
    KEEP_POLICY,
    LEGACY_PARAMS,
    MODE_DRY_RUN,
    PARAM_POLICY_KEYS,
    PARAM_SCHEMAS,
    RUN_ONLY_PARAMS,
    active_overrides,
    apply_overrides,
    conf_key_problems,
    keeps_policy,
)
from atlassian_cleanup.decisions.policy_schema import policy_json_schema

__all__ = [
    "ACKNOWLEDGE_NEW_STATE_STORE",
    "ACTIONS",
    "BILLING_MODELS",
    "DEFAULT_ADMIN_GROUPS",
    "DEFAULT_RULE",
    "KEEP_POLICY",
    "LEGACY_PARAMS",
    "MAX_DAYS",
    "MODE_DRY_RUN",
    "ON_CAP_EXCEEDED",
    "PARAM_POLICY_KEYS",
    "PARAM_SCHEMAS",
    "PLAUSIBLE_DAYS",
    "RUN_ONLY_PARAMS",
    "WITHOUT_EMAIL",
    "Action",
    "InactivityPolicy",
    "LicensingPolicy",
    "NotificationsPolicy",
    "Policy",
    "PolicyError",
    "ProtectedPolicy",
    "RestorePolicy",
    "RuleSelector",
    "SafetyPolicy",
    "ScopedRule",
    "StateStorePolicy",
    "WarningPolicy",
    "active_overrides",
    "apply_overrides",
    "conf_key_problems",
    "keeps_policy",
    "load_policy",
    "plausibility_warnings",
    "policy_from_dict",
    "policy_json_schema",
]


def policy_from_dict(data: Mapping[str, Any] | None, *, source: str | None = None) -> Policy:
    """Validate parsed policy data and build a :class:`Policy`; raise :class:`PolicyError`."""
    problems = problems_in(data)
    if problems:
        raise PolicyError([p.text for p in problems], source=source)
    return build_policy(data or {})


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_policy(path: str | Path) -> Policy:
    """Read, validate and build the policy in the YAML file at ``path``."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError([f"cannot read the policy file: {exc}"], source=source) from exc
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise PolicyError([f"not valid YAML: {exc}"], source=source) from exc
    return policy_from_dict(data, source=source)
