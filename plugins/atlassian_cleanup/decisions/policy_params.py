"""Per-run overrides of the policy: the trigger form's DAG Params and the run's conf.

:data:`PARAM_SCHEMAS` describes the params (JSON Schema fragments ready for
``airflow.sdk.Param(**schema)``) and :func:`apply_overrides` applies them: a param left untouched
(``None``, ``"policy"``) keeps the policy file's value, and the merged policy is validated again,
with errors naming the param. :func:`conf_key_problems` rejects a run conf key that is no param at
all (``{"dryrun": true}``), naming the closest one.

This module imports neither Airflow nor an HTTP client.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema

from atlassian_cleanup.action_kinds import KINDS, POLICY_ACTIONS
from atlassian_cleanup.decisions.policy_checks import build_policy, describe, format_path, problems_in
from atlassian_cleanup.decisions.policy_model import ACTIONS, Policy, PolicyError, default_value
from atlassian_cleanup.decisions.policy_schema import PRODUCT_KEY_PATTERN
from atlassian_cleanup.decisions.products import canonical_product

#: The run-only param that lets one live run start from a state store that does not know the
#: earlier live runs (read by ``compute_inactivity``; see README "Where the memory lives").
ACKNOWLEDGE_NEW_STATE_STORE = "acknowledge_new_state_store"

#: The value of a choice param (``mode``, ``action``) that keeps the policy file's value.
KEEP_POLICY = "policy"

#: ``mode`` choice -> the run's ``dry_run`` (``None``: the policy file decides).
MODE_DRY_RUN: dict[str, bool | None] = {KEEP_POLICY: None, "dry_run": True, "live": False}

_KEEP = "Empty: the policy's value."

#: DAG Params that may override the policy for one run. Each value is a JSON Schema fragment usable
#: as ``Param(**PARAM_SCHEMAS[name])``, with ``title`` and ``description``. Every default keeps the
#: policy file's value, and no field has an untouched state that differs from its toggled-back one:
#: the trigger form draws choices as dropdowns with readable labels (``values_display``) whose
#: default is "as the policy says", and free values as empty boxes (a cleared box submits null,
#: exactly like an untouched one). There is no boolean: a switch toggled on and off again submits
#: ``false``, which is how a "dry run" switch once sent a run live.
PARAM_SCHEMAS: dict[str, dict[str, Any]] = {
    "mode": {
        "default": KEEP_POLICY,
        "type": "string",
        "enum": list(MODE_DRY_RUN),
        "values_display": {
            KEEP_POLICY: "As the policy says (dry_run in the policy file)",
            "dry_run": "Dry run: plan and audit only, nothing is sent or changed",
            "live": "Live: warning e-mails and Atlassian writes",
        },
        "title": "Mode",
        "description": "What this run may do. 'As the policy says' follows dry_run in the policy file; "
        "only 'Live' sends warning e-mails and changes Atlassian.",
    },
    "inactivity_days": {
        "default": None,
        "type": ["null", "integer"],
        "minimum": 1,
        "title": "Inactivity threshold (days)",
        "description": f"Days without activity before a user is inactive (inactivity.default_days). {_KEEP}",
    },
    "product_thresholds": {
        "default": None,
        "type": ["null", "string", "object"],
        "propertyNames": {"pattern": PRODUCT_KEY_PATTERN},
        "additionalProperties": {"type": "integer", "minimum": 1},
        "title": "Per-product thresholds (days)",
        "description": "e.g. confluence=180, jira=120 (or JSON). Merged over inactivity.products; other "
        f"products keep their policy value. {_KEEP}",
    },
    "warning_lead_days": {
        "default": None,
        "type": ["null", "string", "array"],
        "items": {"type": "integer", "minimum": 1},
        "uniqueItems": True,
        "title": "Warning lead days",
        "description": "Warn this many days before the action date, e.g. "
        f"{', '.join(map(str, default_value('warning.lead_days')))}; none = no warnings. {_KEEP}",
    },
    "action": {
        "default": KEEP_POLICY,
        "type": "string",
        "enum": [KEEP_POLICY, *ACTIONS],
        "values_display": {
            KEEP_POLICY: "As the policy says (action in the policy file)",
            **{name: str(KINDS[name].form_label) for name in POLICY_ACTIONS},
        },
        "title": "Action",
        "description": "What happens to an inactive user in this run.",
    },
    "delete_after_days": {
        "default": None,
        "type": ["null", "integer"],
        "minimum": 0,
        "title": "Delete after (days)",
        "description": "Delete accounts actioned at least this many days ago; 0 = never delete in this "
        f"run. {_KEEP}",
    },
    "new_user_grace_days": {
        "default": None,
        "type": ["null", "integer"],
        "minimum": 0,
        "title": "New-user grace (days)",
        "description": f"No action for users added to the org fewer than this many days ago. {_KEEP}",
    },
    "max_actions_per_run": {
        "default": None,
        "type": ["null", "integer"],
        "minimum": 0,
        "title": "Max actions per run",
        "description": f"Stop before the first write when the plan has more actions than this. {_KEEP}",
    },
    "max_action_share": {
        "default": None,
        "type": ["null", "number"],
        "exclusiveMinimum": 0,
        "maximum": 1,
        "title": "Max share of users actioned",
        "description": "Stop before the first write when more than this fraction of users would be "
        f"actioned. {_KEEP}",
    },
    ACKNOWLEDGE_NEW_STATE_STORE: {
        "default": None,
        "type": ["null", "boolean"],
        "title": "Acknowledge a new state store",
        "description": "true = this one live run may start from a state store that does not know the "
        "earlier live runs (it was lost or replaced); people already warned may be warned again. "
        "Empty: such a run stops before any e-mail or write.",
    },
}

#: The restore DAG's params of a restore on demand (read by its first task, never by the policy:
#: see :mod:`atlassian_cleanup.restore.on_demand`). Left empty, the run reads JSM as scheduled.
RESTORE_ACCOUNTS = "accounts"
RESTORE_REASON = "restore_reason"
RESTORE_PARAM_SCHEMAS: dict[str, dict[str, Any]] = {
    RESTORE_ACCOUNTS: {
        "default": None,
        "type": ["null", "string", "array"],
        "items": {"type": "string"},
        "title": "Restore these accounts now",
        "description": "Account ids or e-mail addresses, separated by commas or new lines. Only "
        "accounts this tool actioned are restored, the way they were actioned; JSM requests are not "
        "read in such a run. Empty: the run handles the open JSM requests.",
    },
    RESTORE_REASON: {
        "default": None,
        "type": ["null", "string"],
        "maxLength": 500,
        "title": "Reason (restore on demand)",
        "description": "Why these accounts are restored; required with accounts, written to the audit.",
    },
}

#: Params that belong to one run and change no policy key (read by the operators from the run's
#: params, validated here like the others).
RUN_ONLY_PARAMS: frozenset[str] = frozenset({ACKNOWLEDGE_NEW_STATE_STORE})

#: Which policy key each param overrides (every param of :data:`PARAM_SCHEMAS` but the
#: :data:`RUN_ONLY_PARAMS`).
PARAM_POLICY_KEYS: dict[str, str] = {
    "mode": "dry_run",
    "inactivity_days": "inactivity.default_days",
    "product_thresholds": "inactivity.products",
    "warning_lead_days": "warning.lead_days",
    "action": "action",
    "delete_after_days": "delete_after_days",
    "new_user_grace_days": "new_user_grace_days",
    "max_actions_per_run": "safety.max_actions_per_run",
    "max_action_share": "safety.max_action_share",
}

#: Conf keys still understood but no longer in the trigger form: ``dry_run: true`` (old
#: scripts) still means a dry run; ``dry_run: false`` alone no longer goes live (see
#: :func:`apply_overrides`).
LEGACY_PARAMS: dict[str, str] = {"dry_run": "mode"}


def keeps_policy(value: Any) -> bool:
    """True when a param value means "keep the policy file's value" (untouched or cleared field)."""
    return value is None or value == KEEP_POLICY or (isinstance(value, str) and not value.strip())


def active_overrides(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run params that change something (in :data:`PARAM_SCHEMAS` order, then legacy keys)."""
    params = params or {}
    names = [*PARAM_SCHEMAS, *LEGACY_PARAMS]
    return {name: params[name] for name in names if name in params and not keeps_policy(params[name])}


def conf_key_problems(conf: Mapping[str, Any] | None, known: Iterable[str]) -> list[str]:
    """One line per key of a run's conf that is not a param of the DAG, with the closest known key.

    An unknown key is an error, never ignored: ``{"dryrun": true}`` once ran live because the
    misspelt key was silently dropped.
    """
    known = sorted(set(known))
    problems = []
    for key in conf or {}:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        problems.append(
            f"conf key {key!r} is not a parameter of this DAG{hint} Fix: use one of {', '.join(known)}"
        )
    return problems


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _parse_thresholds(text: str) -> dict[str, Any]:
    """``"confluence=180, jira: 120"`` -> ``{"confluence": 180, "jira": 120}`` (JSON text too)."""
    text = text.strip()
    if text.startswith("{"):
        try:
            return dict(json.loads(text))
        except ValueError as exc:
            raise ValueError(f"not valid JSON ({exc})") from None
    result: dict[str, Any] = {}
    for part in re.split(r"[,;\n]+", text):
        if not part.strip():
            continue
        match = re.fullmatch(r"\s*([^=:\s]+)\s*[=:]\s*(\d+)\s*", part)
        if match is None:
            raise ValueError(f"{part.strip()!r} is not product=days")
        key, days = match.groups()
        result[key] = int(days)
    return result


def _parse_lead_days(text: str) -> list[Any]:
    """``"14, 7, 1"`` -> ``[14, 7, 1]``; ``"none"`` -> ``[]`` (JSON text too)."""
    text = text.strip()
    if text.lower() in ("none", "no", "[]"):
        return []
    if text.startswith("["):
        try:
            return list(json.loads(text))
        except ValueError as exc:
            raise ValueError(f"not valid JSON ({exc})") from None
    parts = [p for p in re.split(r"[,;\s]+", text) if p]
    if not all(re.fullmatch(r"\d+", p) for p in parts):
        raise ValueError("not a list of whole days")
    return [int(p) for p in parts]


def _param_value(name: str, value: Any) -> Any:
    """The policy value a param stands for (strings parsed, choices mapped); ValueError if unusable."""
    if name == "mode":
        return MODE_DRY_RUN.get(value, value)
    if name == "product_thresholds" and isinstance(value, str):
        return _parse_thresholds(value)
    if name == "warning_lead_days" and isinstance(value, str):
        return _parse_lead_days(value)
    return value


def _legacy_dry_run(params: Mapping[str, Any]) -> tuple[bool | None, list[str]]:
    """The old ``dry_run`` conf key: ``true`` still means a dry run; going live must say ``mode: live``."""
    value = params.get("dry_run")
    mode = params.get("mode")
    if value is None:
        return None, []
    if not isinstance(value, bool):
        return None, [f"param dry_run: must be true or false (got {value!r}). Fix: use mode instead"]
    if value and mode == "live":
        return None, ["param dry_run: true contradicts mode 'live'. Fix: drop dry_run and choose one mode"]
    if not value and mode != "live":
        return None, [
            "param dry_run: false no longer makes a run live (an untouched or toggled-back switch "
            "submitted false). Fix: to go live, set mode to 'live'; otherwise drop dry_run"
        ]
    return value, []


def _checked_value(name: str, schema: Mapping[str, Any], raw: Any) -> tuple[Any, list[str]]:
    """The value param ``name`` stands for, or the problems that make ``raw`` unusable."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors(raw))
    value = raw
    if not errors:
        try:
            value = _param_value(name, raw)
        except ValueError as exc:
            return None, [f"param {name}: {exc} (got {raw!r}). Fix: {schema['description']}"]
        if isinstance(raw, str) and isinstance(value, (list, dict)):
            errors = list(validator.iter_errors(value))  # parsed from text: check what it says
    problems = []
    for error in sorted(errors, key=lambda e: list(map(str, e.absolute_path))):
        inner = format_path(error.absolute_path) if error.absolute_path else ""
        where = f"{name}.{inner}" if inner else name
        problems.append(
            f"param {where}: {describe(error)} (got {error.instance!r}). Fix: {schema['description']}"
        )
    return value, problems


def _policy_value(name: str, value: Any, data: Mapping[str, Any]) -> Any:
    """What the policy key of param ``name`` becomes: thresholds merge, 0 days of deletion is none."""
    if name == "product_thresholds":
        merged = dict(data["inactivity"]["products"])
        merged.update({canonical_product(k): v for k, v in value.items()})
        return merged
    if name == "delete_after_days" and value == 0:
        return None
    if name == "warning_lead_days":
        return list(value)
    return value


def _revalidate(data: Mapping[str, Any], overridden: Mapping[str, str]) -> None:
    """Check the policy with the params applied; a problem names the params whose keys it involves."""

    def param_names(paths: Iterable[str]) -> list[str]:
        names = []
        for path in paths:
            for key, name in overridden.items():
                if (path == key or path.startswith(f"{key}.")) and name not in names:
                    names.append(name)
        return names

    lines = []
    for problem in problems_in(data):
        names = param_names(problem.paths)
        label = f"param {', '.join(names)}" if names else "policy file"
        lines.append(f"{label}: {problem.text}")
    if lines:
        raise PolicyError(lines, source="policy with DAG params applied")


def apply_overrides(policy: Policy, params: Mapping[str, Any] | None) -> Policy:
    """Return ``policy`` with the per-run DAG Params in ``params`` applied.

    Only the keys of :data:`PARAM_SCHEMAS` (and the legacy ``dry_run``) are read (run-only params are
    validated, not applied); a value that
    :func:`keeps_policy` (``None``, ``"policy"``, an empty string) keeps the policy file's value.
    ``mode`` maps to ``dry_run``; ``product_thresholds`` (``"confluence=180"`` or a mapping) is
    merged over the file's per-product thresholds; ``warning_lead_days`` takes ``"14, 7, 1"``,
    ``"none"`` or a list; ``delete_after_days: 0`` turns deletion off for the run. The result is
    validated again (for example lead days against a lowered threshold); every problem names the
    param.
    """
    params = params or {}
    data = policy.to_dict()
    overridden: dict[str, str] = {}  # policy key -> param name
    legacy, problems = _legacy_dry_run(params)
    if legacy is not None and keeps_policy(params.get("mode")):
        data["dry_run"] = legacy
        overridden["dry_run"] = "dry_run"
    for name, schema in PARAM_SCHEMAS.items():
        raw = params.get(name)
        if keeps_policy(raw):
            continue
        value, value_problems = _checked_value(name, schema, raw)
        problems.extend(value_problems)
        if value_problems or name in RUN_ONLY_PARAMS:
            continue
        key = PARAM_POLICY_KEYS[name]
        overridden[key] = name
        _set_path(data, key, _policy_value(name, value, data))
    if problems:
        raise PolicyError(problems, source="DAG params")
    _revalidate(data, overridden)
    return build_policy(data)
