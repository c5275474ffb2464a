"""The policy's JSON Schema (draft 2020-12) and the "how to fix it" hint of every key.

Every leaf key's ``default`` in the schema is taken from the :class:`Policy` dataclass
(:func:`~atlassian_cleanup.decisions.policy_model.default_value`), and the hints quote those
defaults as their examples, so a default is changed in one place.

This module imports neither Airflow nor an HTTP client.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

from atlassian_cleanup.decisions.policy_model import (
    ACTIONS,
    BILLING_MODELS,
    MAX_APPROVAL_HOURS,
    MAX_DAYS,
    ON_CAP_EXCEEDED,
    SELECTOR_KEYS,
    WITHOUT_EMAIL,
    default_value,
)

# Deliberately loose: the policy only needs to catch obvious typos (missing "@", spaces, no dot
# in the domain); Atlassian is the authority on what an address looks like.
EMAIL_PATTERN = r"^[^@\s]+@([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9-]{2,63}$"
DOMAIN_PATTERN = r"^([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9-]{2,63}$"
PRODUCT_KEY_PATTERN = r"^[a-z][a-z0-9-]*$"
_CONN_ID_PATTERN = r"^[A-Za-z0-9_.-]+$"
_URL_PATTERN = r"^https?://"


def _int(minimum: int, description: str, maximum: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": minimum, "description": description}
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def _days(minimum: int, description: str) -> dict[str, Any]:
    return _int(minimum, description, MAX_DAYS)


def _fraction(description: str, *, above_zero: bool = True) -> dict[str, Any]:
    lower = {"exclusiveMinimum": 0} if above_zero else {"minimum": 0}
    return {"type": "number", **lower, "maximum": 1, "description": description}


def _text(description: str, *, nullable: bool = False, **constraints: Any) -> dict[str, Any]:
    if not constraints:
        constraints = {"minLength": 1}
    return {"type": ["string", "null"] if nullable else "string", **constraints, "description": description}


def _strings(
    description: str, *, item: dict[str, Any] | None = None, nullable: bool = True
) -> dict[str, Any]:
    return {
        "type": ["array", "null"] if nullable else "array",
        "items": item or {"type": "string", "minLength": 1},
        "description": description,
    }


def _by_product(value: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "type": ["object", "null"],
        "propertyNames": {"pattern": PRODUCT_KEY_PATTERN},
        "additionalProperties": value,
        "description": description,
    }


def _choice(values: Iterable[str], description: str) -> dict[str, Any]:
    return {"enum": list(values), "description": description}


def _section(properties: dict[str, Any], description: str) -> dict[str, Any]:
    # A section left empty in YAML (``protected:``) parses as null; that means "all defaults".
    return {
        "type": ["object", "null"],
        "additionalProperties": False,
        "properties": properties,
        "description": description,
    }


_EMAIL_ITEM = {"type": "string", "pattern": EMAIL_PATTERN}
_DOMAIN_ITEM = {"type": "string", "pattern": DOMAIN_PATTERN}
RULE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


def _selection(item: dict[str, Any], description: str) -> dict[str, Any]:
    # An empty list would select nobody: a rule written that way can never apply.
    return {"type": "array", "items": item, "minItems": 1, "description": description}


def _rule_section(properties: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": properties,
        "description": description,
    }


_RULE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "match"],
    "properties": {
        "name": _text(
            "Name of the rule, shown in every plan and audit row it decides.", pattern=RULE_NAME_PATTERN
        ),
        "match": _rule_section(
            {
                "groups": _selection({"type": "string", "minLength": 1}, "Members of any of these groups."),
                "email_domains": _selection(_DOMAIN_ITEM, "E-mail in any of these domains (or subdomains)."),
                "managed": {"type": "boolean", "description": "true: managed accounts; false: unmanaged."},
                "products": _selection(
                    {"type": "string", "pattern": PRODUCT_KEY_PATTERN}, "Access to any of these products."
                ),
            },
            f"Who the rule selects (every key given must hold): {', '.join(SELECTOR_KEYS)}.",
        ),
        "inactivity": _rule_section(
            {
                "default_days": _days(1, "Inactivity threshold of this population."),
                "products": _by_product(
                    {"type": "integer", "minimum": 1, "maximum": MAX_DAYS}, "Per-product thresholds."
                ),
            },
            "Thresholds of this population (merged over the top level's).",
        ),
        "warning": _rule_section(
            {
                "lead_days": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 1, "maximum": MAX_DAYS},
                    "uniqueItems": True,
                    "description": "Warning lead days of this population; [] = none.",
                }
            },
            "Warnings of this population.",
        ),
        "action": _choice(ACTIONS, "What happens to an inactive user of this population."),
        "review": {
            "type": "boolean",
            "description": "An admin approves each first action of this population in the review queue.",
        },
        "delete_after_days": {
            "type": ["integer", "null"],
            "minimum": 1,
            "maximum": MAX_DAYS,
            "description": "Deletion delay of this population; null = never delete them.",
        },
    },
}

_PROPERTIES: dict[str, Any] = {
    "dry_run": {
        "type": "boolean",
        "description": "Plan and report only; no e-mails, no Atlassian writes. false goes live.",
    },
    "inactivity": _section(
        {
            "default_days": _days(1, "Days without activity after which a user is inactive."),
            "products": _by_product(
                {"type": "integer", "minimum": 1, "maximum": MAX_DAYS},
                "Per-product thresholds in days (jira, confluence, jsm, ...).",
            ),
        },
        "When a user counts as inactive.",
    ),
    "warning": _section(
        {
            "lead_days": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1, "maximum": MAX_DAYS},
                "uniqueItems": True,
                "description": "Send a warning this many days before the action date; [] = none.",
            },
            "min_notice_days": {
                "type": ["integer", "null"],
                "minimum": 1,
                "maximum": MAX_DAYS,
                "description": "Nobody is actioned sooner than this many days after their first "
                "warning; null = the largest of lead_days.",
            },
            "without_email": _choice(
                WITHOUT_EMAIL,
                "Users whose e-mail is hidden: listed to the admins and actioned "
                "after the notice period, or held (never actioned).",
            ),
        },
        "Warning e-mails before the action.",
    ),
    "action": _choice(ACTIONS, "What happens to an inactive user."),
    "review": {
        "type": "boolean",
        "description": "A user's first action waits for an admin's approve or keep in the review "
        "queue (audit page) instead of happening on the due date.",
    },
    "delete_after_days": {
        "type": ["integer", "null"],
        "minimum": 1,
        "maximum": MAX_DAYS,
        "description": "Delete accounts this tool actioned at least this many days ago; null = never.",
    },
    "delete_notice_days": _days(
        0, "E-mail a deletion notice this many days before deleting (0 = no notice)."
    ),
    "new_user_grace_days": _days(0, "No action for users added to the org fewer days ago."),
    "restored_grace_days": _days(0, "No action for this many days after a restore."),
    "protected": _section(
        {
            "groups": _strings("Group names whose members are never touched."),
            "account_ids": _strings("Atlassian account ids that are never touched."),
            "emails": _strings("E-mail addresses that are never touched.", item=_EMAIL_ITEM),
            "domains": _strings("E-mail domains (and subdomains) never touched.", item=_DOMAIN_ITEM),
        },
        "Users that are never warned or actioned.",
    ),
    "admin_groups": _strings(
        "Glob patterns of admin groups; their members are never touched.", nullable=False
    ),
    "safety": _section(
        {
            "max_actions_per_run": _int(0, "Most suspend/deactivate/remove/delete per run."),
            "max_action_share": _fraction("Largest share of all users one run may action."),
            "on_cap_exceeded": _choice(
                ON_CAP_EXCEEDED, "fail = stop the run; approve = wait for a human approval."
            ),
            "min_user_count_ratio": _fraction(
                "Stop when the user count falls below this share of the last run.", above_zero=False
            ),
            "max_missing_activity_share": _fraction(
                "Stop when more than this share of users have no activity data."
            ),
            "write_concurrency": _int(1, "Atlassian writes in flight at once within one task.", 16),
            "task_timeout_minutes": _int(
                1, "execution_timeout of every task that calls Atlassian (minutes).", 1440
            ),
        },
        "Caps and sanity gates.",
    ),
    "restore": _section(
        {
            "allowed_domains": _strings("Domains allowed to self-restore.", item=_DOMAIN_ITEM),
            "allowed_groups": _strings("Groups whose members may self-restore."),
            "schedule": _text("Cron schedule of the restore DAG."),
            "service_desk": _text(
                "JSM service desk (id or project key) whose requests are read.", nullable=True
            ),
            "request_type": _text("Request type (name or id) that asks for access back."),
            "max_restores_per_run": _int(0, "Most restores one restore run may perform."),
            "approval_timeout_hours": _int(
                1, "Hours an admin has to approve a request no rule allows.", MAX_APPROVAL_HOURS
            ),
        },
        "Self-service restore rules.",
    ),
    "notifications": _section(
        {
            "smtp_conn_id": _text(
                "Airflow connection of your SMTP relay.", minLength=1, pattern=_CONN_ID_PATTERN
            ),
            "from_email": _text(
                "Sender address (default: the SMTP connection's from_email).",
                nullable=True,
                pattern=EMAIL_PATTERN,
            ),
            "templates_dir": _text(
                "Directory with your own e-mail templates (default: include/templates).", nullable=True
            ),
            "request_access_url": _text(
                "Link in warnings to request access back (your JSM portal request type).",
                nullable=True,
                pattern=_URL_PATTERN,
            ),
            "admin_emails": _strings("Admins who get the run digest and failure alerts.", item=_EMAIL_ITEM),
            "audit_page_url": _text(
                "Link to the audit page, shown in the digest.", nullable=True, pattern=_URL_PATTERN
            ),
        },
        "Warning e-mails and the admin digest.",
    ),
    "state_store": _section(
        {
            "conn_id": _text(
                "Airflow connection id of the state database (SQLAlchemy URL).",
                minLength=1,
                pattern=_CONN_ID_PATTERN,
            ),
        },
        "Where this tool keeps its own state.",
    ),
    "licensing": _section(
        {
            "billing": _choice(
                BILLING_MODELS, "Your Atlassian billing model: monthly or annual subscription."
            ),
            "currency": _text("ISO 4217 code the prices are in.", pattern=r"^[A-Z]{3}$"),
            "seat_price": {
                "type": "number",
                "minimum": 0,
                "description": "Price of one user per billing period (0 = no saving estimate).",
            },
            "product_seat_prices": _by_product(
                {"type": "number", "minimum": 0}, "Per-product seat prices overriding seat_price."
            ),
        },
        "Seat prices for the seats-reclaimed and saving figures.",
    ),
    "rules": {
        "type": ["array", "null"],
        "items": _RULE,
        "description": "Scoped rules, in order; the first whose match selects a user applies to them.",
    },
}


def _with_defaults(properties: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``properties`` with every leaf key's ``default`` read from the dataclasses (sections have none)."""
    result = {}
    for key, schema in properties.items():
        path = f"{prefix}{key}"
        if "properties" in schema:
            result[key] = {**schema, "properties": _with_defaults(schema["properties"], f"{path}.")}
        else:
            result[key] = {**schema, "default": default_value(path)}
    return result


SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/atlassian-cleanup/policy.schema.json",
    "title": "Atlassian inactive-user cleanup policy",
    "type": "object",
    "additionalProperties": False,
    "properties": _with_defaults(_PROPERTIES),
}


def policy_json_schema() -> dict[str, Any]:
    """The policy's JSON Schema (draft 2020-12). A deep copy: callers may modify it."""
    return copy.deepcopy(SCHEMA)


def _all_key_paths(schema: Mapping[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        paths.append(path)
        paths.extend(_all_key_paths(sub, f"{path}."))
    return paths


#: Every key path of the policy, sections included (``"safety"``, ``"safety.max_action_share"``).
KNOWN_PATHS: list[str] = _all_key_paths(SCHEMA)
#: Every key path within one scoped rule (``"match.groups"``, ``"inactivity.default_days"``).
RULE_PATHS: list[str] = _all_key_paths(SCHEMA["properties"]["rules"]["items"])


def _eg(path: str) -> str:
    """The default of ``path`` written as the example of a hint."""
    return str(default_value(path))


def _range(path: str) -> str:
    """``"from 1 to 16"``: the bounds of the integer key at ``path``, as its schema states them."""
    section, key = path.split(".")
    schema = _PROPERTIES[section]["properties"][key]
    return f"from {schema['minimum']} to {schema['maximum']}"


_SHARE = default_value("safety.max_action_share")
_LEAD_DAYS = default_value("warning.lead_days")

# How to fix a bad value, by key path (list indexes removed). Shown after every schema problem.
_FIXES: dict[str, str] = {
    "dry_run": "use true (plan only, the safe default) or false (act for real)",
    "inactivity": "make it a mapping with default_days and, optionally, products",
    "inactivity.default_days": "use a whole number of days, at least 1, e.g. "
    f"{_eg('inactivity.default_days')}",
    "inactivity.products": "map lower-case product keys to whole days, e.g. {confluence: 180}",
    "warning": "make it a mapping with lead_days, min_notice_days and without_email",
    "warning.lead_days": f"use a list of distinct whole days, each at least 1, e.g. {_LEAD_DAYS}; [] = none",
    "warning.min_notice_days": f"use a whole number of days, at least 1, e.g. {max(_LEAD_DAYS)}, or null for "
    "the largest lead day",
    "warning.without_email": f"use {' or '.join(WITHOUT_EMAIL)}",
    "action": f"use one of: {', '.join(ACTIONS)}",
    "review": "use true (first actions wait for an admin in the review queue) or false",
    "delete_after_days": "use a whole number of days, at least 1, or null to never delete",
    "delete_notice_days": f"use a whole number of days, 0 or more, e.g. {_eg('delete_notice_days')} "
    "(0 = no deletion notice)",
    "new_user_grace_days": f"use a whole number of days, 0 or more, e.g. {_eg('new_user_grace_days')}",
    "restored_grace_days": f"use a whole number of days, 0 or more, e.g. {_eg('restored_grace_days')}",
    "protected": "make it a mapping with groups, account_ids, emails and domains lists",
    "protected.groups": "use a list of group names, e.g. [vip-executives]",
    "protected.account_ids": "use a list of Atlassian account ids, e.g. ['712020:4f0c...']",
    "protected.emails": "use a list of full addresses, e.g. [ceo@acme.example]",
    "protected.domains": "use a list of bare domains without '@', e.g. [acme.example]",
    "admin_groups": "use a list of group-name glob patterns, e.g. ['site-admins', '*-admins-*']; [] = none",
    "safety": "make it a mapping of the safety keys",
    "safety.max_actions_per_run": f"use a whole number, 0 or more, e.g. {_eg('safety.max_actions_per_run')}",
    "safety.max_action_share": f"use a fraction above 0 and at most 1, e.g. {_SHARE} for {_SHARE * 100:g} %",
    "safety.on_cap_exceeded": f"use {' or '.join(ON_CAP_EXCEEDED)}",
    "safety.min_user_count_ratio": "use a fraction from 0 to 1, e.g. "
    f"{_eg('safety.min_user_count_ratio')} (0 disables the gate)",
    "safety.max_missing_activity_share": "use a fraction above 0 and at most 1, e.g. "
    f"{_eg('safety.max_missing_activity_share')} (1 disables)",
    "safety.write_concurrency": f"use a whole number {_range('safety.write_concurrency')}, e.g. "
    f"{_eg('safety.write_concurrency')}",
    "safety.task_timeout_minutes": f"use a whole number of minutes {_range('safety.task_timeout_minutes')}, "
    f"e.g. {_eg('safety.task_timeout_minutes')}",
    "restore": "make it a mapping with allowed_domains and allowed_groups",
    "restore.allowed_domains": "use a list of bare domains without '@', e.g. [acme.example]",
    "restore.allowed_groups": "use a list of group names",
    "restore.schedule": f"use a cron expression, e.g. {default_value('restore.schedule')!r}",
    "restore.service_desk": "use the service desk id or project key, e.g. ITH, or null",
    "restore.request_type": f"use the request type's name or id, e.g. {_eg('restore.request_type')}",
    "restore.max_restores_per_run": "use a whole number, 0 or more, e.g. "
    f"{_eg('restore.max_restores_per_run')}",
    "restore.approval_timeout_hours": f"use a whole number of hours from 1 to {MAX_APPROVAL_HOURS}, e.g. "
    f"{_eg('restore.approval_timeout_hours')}",
    "notifications": "make it a mapping of the notification keys",
    "notifications.smtp_conn_id": f"use an Airflow connection id, e.g. {_eg('notifications.smtp_conn_id')}",
    "notifications.from_email": "use an e-mail address, e.g. it-cleanup@acme.example, or null",
    "notifications.templates_dir": "use a directory path, or null for the shipped templates",
    "notifications.request_access_url": "use an http(s) URL, or null",
    "notifications.admin_emails": "use a list of e-mail addresses",
    "notifications.audit_page_url": "use an http(s) URL, or null",
    "state_store": "make it a mapping with conn_id",
    "state_store.conn_id": "use an Airflow connection id (letters, digits, _ . -)",
    "licensing": "make it a mapping with billing, currency, seat_price and product_seat_prices",
    "licensing.billing": f"use {' or '.join(BILLING_MODELS)}",
    "licensing.currency": "use a three-letter ISO 4217 code in capitals, e.g. USD or EUR",
    "licensing.seat_price": "use a number, 0 or more, e.g. 8.6 (the price of one user per period)",
    "licensing.product_seat_prices": "map lower-case product keys to prices, e.g. {confluence: 6.05}",
    "rules": "use a list of rules, each a mapping with name, match and the settings it changes; [] = none",
    "rules.name": "use a lower-case name (letters, digits, '-' and '_'), e.g. contractors",
    "rules.match": f"give at least one of {', '.join(SELECTOR_KEYS)}, "
    "e.g. {email_domains: [partner.example]}",
    "rules.match.groups": "list at least one group name, e.g. [contractors]",
    "rules.match.email_domains": "list at least one bare domain without '@', e.g. [partner.example]",
    "rules.match.managed": "use true (managed accounts) or false (unmanaged accounts)",
    "rules.match.products": "list at least one lower-case product key, e.g. [confluence]",
    "rules.inactivity": "give default_days and/or products, or leave the key out to inherit both",
    "rules.inactivity.default_days": "use a whole number of days, at least 1, e.g. 30",
    "rules.inactivity.products": "map lower-case product keys to whole days, e.g. {confluence: 45}",
    "rules.warning": "give lead_days, or leave the key out to inherit it",
    "rules.review": "use true (this population's first actions wait for an admin) or false",
    "rules.warning.lead_days": "use a list of distinct whole days, each at least 1, e.g. [7, 1]; [] = none",
    "rules.action": f"use one of: {', '.join(ACTIONS)}",
    "rules.delete_after_days": "use a whole number of days, at least 1, or null to never delete "
    "this population",
}


def fix_for(path: str) -> str:
    """How to fix a bad value at ``path`` (``"warning.lead_days[2]"``): the hint of the nearest key."""
    plain = re.sub(r"\[\d+\]", "", path)
    while plain:
        if plain in _FIXES:
            return _FIXES[plain]
        if plain.startswith(("inactivity.products.", "rules.inactivity.products.")):
            return _FIXES[plain.rpartition(".")[0]]
        plain = plain.rpartition(".")[0]
    return "see the comments in include/policy.yaml"
