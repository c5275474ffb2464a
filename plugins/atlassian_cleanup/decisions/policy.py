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

Missing keys take the defaults documented in ``include/policy.yaml``; the defaults are the safe
choice (``dry_run: true``, ``action: suspend``, no deletion).

A DAG run may override a few keys through DAG Params. :data:`PARAM_SCHEMAS` describes them (JSON
Schema fragments ready for ``airflow.sdk.Param(**schema)``) and :func:`apply_overrides` applies
them: a param left untouched (``None``, ``"policy"``) keeps the policy file's value, and the merged
policy is validated again, with errors naming the param. :func:`conf_key_problems` rejects a run
conf key that is no param at all (``{"dryrun": true}``), naming the closest one.

The API user (the account whose token runs the DAG) is deliberately *not* a policy key: it comes
from the Airflow connections, and the planner receives it as ``api_user_emails`` /
``api_user_account_ids``, so it cannot be forgotten when the policy file is edited.

This module imports neither Airflow nor an HTTP client.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml

from atlassian_cleanup.action_kinds import KINDS, POLICY_ACTIONS
from atlassian_cleanup.decisions.products import _ALIASES as _PRODUCT_ALIASES
from atlassian_cleanup.decisions.products import KNOWN_PRODUCTS, canonical_product

Action = Literal["suspend", "deactivate", "remove_product_access"]
ACTIONS: tuple[str, ...] = POLICY_ACTIONS
ON_CAP_EXCEEDED: tuple[str, ...] = ("fail", "approve")
#: What happens to an inactive user whose e-mail address Atlassian does not show (``warning.without_email``).
WITHOUT_EMAIL: tuple[str, ...] = ("action_after_notice", "hold")
#: Longest period of days a policy may name (100 years): anything longer cannot be meant.
MAX_DAYS = 36_500
#: Periods longer than this (ten years) are accepted with a plausibility warning.
PLAUSIBLE_DAYS = 3_650
BILLING_MODELS: tuple[str, ...] = ("monthly", "annual")

DEFAULT_ADMIN_GROUPS: tuple[str, ...] = (
    "site-admins",
    "administrators",
    "*-admins-*",
    "*-administrators",
    "org-admins",
)

# Deliberately loose: the policy only needs to catch obvious typos (missing "@", spaces, no dot
# in the domain); Atlassian is the authority on what an address looks like.
_EMAIL_PATTERN = r"^[^@\s]+@([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9-]{2,63}$"
_DOMAIN_PATTERN = r"^([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9-]{2,63}$"
_PRODUCT_KEY_PATTERN = r"^[a-z][a-z0-9-]*$"


class PolicyError(ValueError):
    """The policy (or a per-run override) is invalid.

    ``problems`` holds one human-readable line per problem; ``str(error)`` joins them.
    """

    def __init__(self, problems: Iterable[str], *, source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        header = f"invalid policy{f' in {source}' if source else ''} ({len(self.problems)} problem"
        header += "s):" if len(self.problems) != 1 else "):"
        super().__init__("\n".join([header, *(f"- {problem}" for problem in self.problems)]))


# --------------------------------------------------------------------------------------------------
# The dataclass tree
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InactivityPolicy:
    """When a user counts as inactive.

    ``products`` maps canonical product keys (see :mod:`atlassian_cleanup.decisions.products`) to their own
    threshold; a product without an entry uses ``default_days``.
    """

    default_days: int = 90
    products: Mapping[str, int] = field(default_factory=dict)

    def threshold_for(self, product: str) -> int:
        """Inactivity threshold in days for ``product`` (any alias is accepted)."""
        return int(self.products.get(canonical_product(product), self.default_days))

    @property
    def min_threshold(self) -> int:
        """The smallest threshold of any product (warnings must fit below it)."""
        return min([self.default_days, *self.products.values()])


@dataclass(frozen=True)
class WarningPolicy:
    """Warning e-mails: send one this many days before the action date (descending, unique).

    ``min_notice_days``: nobody is actioned sooner than this many days after their first warning
    (``None``: the largest of ``lead_days``; see :attr:`notice_days`). ``without_email``: a user
    whose e-mail Atlassian hides is listed to the admins instead of warned, then actioned after the
    same notice (``action_after_notice``), or never actioned (``hold``).
    """

    lead_days: tuple[int, ...] = (14, 7, 1)
    min_notice_days: int | None = None
    without_email: Literal["action_after_notice", "hold"] = "action_after_notice"

    @property
    def enabled(self) -> bool:
        return bool(self.lead_days)

    @property
    def notice_days(self) -> int:
        """Days from the first warning before any action: ``min_notice_days`` or the largest lead day."""
        if self.min_notice_days is not None:
            return self.min_notice_days
        return max(self.lead_days, default=0)


@dataclass(frozen=True)
class ProtectedPolicy:
    """Users that are never warned or actioned. Emails and domains are stored lower case."""

    groups: tuple[str, ...] = ()
    account_ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class SafetyPolicy:
    """Caps and sanity gates that stop a run before its first write."""

    max_actions_per_run: int = 50
    max_action_share: float = 0.1
    on_cap_exceeded: Literal["fail", "approve"] = "fail"
    min_user_count_ratio: float = 0.5
    max_missing_activity_share: float = 0.9
    write_concurrency: int = 4
    #: ``execution_timeout`` of every task that calls Atlassian (minutes); read when the DAGs parse.
    task_timeout_minutes: int = 120


@dataclass(frozen=True)
class StateStorePolicy:
    """Where this tool keeps its own memory (warnings sent, actions taken, the journal).

    ``conn_id`` names an Airflow connection whose URI is a SQLAlchemy URL (``sqlite:///...`` or
    ``postgresql://...``). When the default id is not defined, an embedded SQLite file under
    ``$AIRFLOW_HOME`` is used; a non-default id that is not defined is an error.
    """

    conn_id: str = "atlassian_cleanup_state"


@dataclass(frozen=True)
class RestorePolicy:
    """Who may get access back through a self-service restore request."""

    allowed_domains: tuple[str, ...] = ()
    allowed_groups: tuple[str, ...] = ()
    schedule: str = "*/10 * * * *"
    service_desk: str | None = None
    request_type: str = "Restore my access"
    max_restores_per_run: int = 20


@dataclass(frozen=True)
class NotificationsPolicy:
    """Warning e-mails to users and the per-run digest to admins (sent through your SMTP relay)."""

    smtp_conn_id: str = "smtp_default"
    from_email: str | None = None
    templates_dir: str | None = None
    request_access_url: str | None = None
    admin_emails: tuple[str, ...] = ()
    audit_page_url: str | None = None


@dataclass(frozen=True)
class LicensingPolicy:
    """What a billable seat costs, for the seats-reclaimed figures on the audit page and digest.

    ``seat_price`` is the price of one user per billing period (a month for ``monthly``, a year for
    ``annual``) in ``currency``; ``product_seat_prices`` overrides it per canonical product key.
    A price of 0 means "not configured": seats are still counted, no saving is estimated.
    """

    billing: Literal["monthly", "annual"] = "monthly"
    currency: str = "USD"
    seat_price: float = 0.0
    product_seat_prices: Mapping[str, float] = field(default_factory=dict)

    def price_for(self, product: str) -> float:
        """Price of one seat of ``product`` per billing period (any alias is accepted)."""
        return float(self.product_seat_prices.get(canonical_product(product), self.seat_price))


@dataclass(frozen=True)
class Policy:
    """The whole cleanup policy. Build it with :func:`load_policy` or :func:`policy_from_dict`."""

    dry_run: bool = True
    inactivity: InactivityPolicy = field(default_factory=InactivityPolicy)
    warning: WarningPolicy = field(default_factory=WarningPolicy)
    action: Action = "suspend"
    delete_after_days: int | None = None
    delete_notice_days: int = 7
    new_user_grace_days: int = 30
    restored_grace_days: int = 30
    protected: ProtectedPolicy = field(default_factory=ProtectedPolicy)
    admin_groups: tuple[str, ...] = DEFAULT_ADMIN_GROUPS
    safety: SafetyPolicy = field(default_factory=SafetyPolicy)
    restore: RestorePolicy = field(default_factory=RestorePolicy)
    notifications: NotificationsPolicy = field(default_factory=NotificationsPolicy)
    state_store: StateStorePolicy = field(default_factory=StateStorePolicy)
    licensing: LicensingPolicy = field(default_factory=LicensingPolicy)

    def to_dict(self) -> dict[str, Any]:
        """JSON-native form; ``policy_from_dict(policy.to_dict()) == policy``."""
        return {
            "dry_run": self.dry_run,
            "inactivity": {
                "default_days": self.inactivity.default_days,
                "products": dict(sorted(self.inactivity.products.items())),
            },
            "warning": {
                "lead_days": list(self.warning.lead_days),
                "min_notice_days": self.warning.min_notice_days,
                "without_email": self.warning.without_email,
            },
            "action": self.action,
            "delete_after_days": self.delete_after_days,
            "delete_notice_days": self.delete_notice_days,
            "new_user_grace_days": self.new_user_grace_days,
            "restored_grace_days": self.restored_grace_days,
            "protected": {
                "groups": list(self.protected.groups),
                "account_ids": list(self.protected.account_ids),
                "emails": list(self.protected.emails),
                "domains": list(self.protected.domains),
            },
            "admin_groups": list(self.admin_groups),
            "safety": {
                "max_actions_per_run": self.safety.max_actions_per_run,
                "max_action_share": self.safety.max_action_share,
                "on_cap_exceeded": self.safety.on_cap_exceeded,
                "min_user_count_ratio": self.safety.min_user_count_ratio,
                "max_missing_activity_share": self.safety.max_missing_activity_share,
                "write_concurrency": self.safety.write_concurrency,
                "task_timeout_minutes": self.safety.task_timeout_minutes,
            },
            "restore": {
                "allowed_domains": list(self.restore.allowed_domains),
                "allowed_groups": list(self.restore.allowed_groups),
                "schedule": self.restore.schedule,
                "service_desk": self.restore.service_desk,
                "request_type": self.restore.request_type,
                "max_restores_per_run": self.restore.max_restores_per_run,
            },
            "notifications": {
                "smtp_conn_id": self.notifications.smtp_conn_id,
                "from_email": self.notifications.from_email,
                "templates_dir": self.notifications.templates_dir,
                "request_access_url": self.notifications.request_access_url,
                "admin_emails": list(self.notifications.admin_emails),
                "audit_page_url": self.notifications.audit_page_url,
            },
            "state_store": {"conn_id": self.state_store.conn_id},
            "licensing": {
                "billing": self.licensing.billing,
                "currency": self.licensing.currency,
                "seat_price": self.licensing.seat_price,
                "product_seat_prices": dict(sorted(self.licensing.product_seat_prices.items())),
            },
        }


# --------------------------------------------------------------------------------------------------
# JSON Schema
# --------------------------------------------------------------------------------------------------


def _int(minimum: int, default: Any, description: str, maximum: int | None = None) -> dict[str, Any]:
    schema = {"type": "integer", "minimum": minimum, "default": default, "description": description}
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def _strings(description: str, *, item: dict[str, Any] | None = None, nullable: bool = True) -> dict:
    return {
        "type": ["array", "null"] if nullable else "array",
        "items": item or {"type": "string", "minLength": 1},
        "default": [],
        "description": description,
    }


def _section(properties: dict[str, Any], description: str) -> dict[str, Any]:
    # A section left empty in YAML (``protected:``) parses as null; that means "all defaults".
    return {
        "type": ["object", "null"],
        "additionalProperties": False,
        "properties": properties,
        "description": description,
    }


_EMAIL_ITEM = {"type": "string", "pattern": _EMAIL_PATTERN}
_DOMAIN_ITEM = {"type": "string", "pattern": _DOMAIN_PATTERN}

_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/atlassian-cleanup/policy.schema.json",
    "title": "Atlassian inactive-user cleanup policy",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "dry_run": {
            "type": "boolean",
            "default": True,
            "description": "Plan and report only; no e-mails, no Atlassian writes. false goes live.",
        },
        "inactivity": _section(
            {
                "default_days": _int(
                    1, 90, "Days without activity after which a user is inactive.", MAX_DAYS
                ),
                "products": {
                    "type": ["object", "null"],
                    "propertyNames": {"pattern": _PRODUCT_KEY_PATTERN},
                    "additionalProperties": {"type": "integer", "minimum": 1, "maximum": MAX_DAYS},
                    "default": {},
                    "description": "Per-product thresholds in days (jira, confluence, jsm, ...).",
                },
            },
            "When a user counts as inactive.",
        ),
        "warning": _section(
            {
                "lead_days": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 1, "maximum": MAX_DAYS},
                    "uniqueItems": True,
                    "default": [14, 7, 1],
                    "description": "Send a warning this many days before the action date; [] = none.",
                },
                "min_notice_days": {
                    "type": ["integer", "null"],
                    "minimum": 1,
                    "maximum": MAX_DAYS,
                    "default": None,
                    "description": "Nobody is actioned sooner than this many days after their first "
                    "warning; null = the largest of lead_days.",
                },
                "without_email": {
                    "enum": list(WITHOUT_EMAIL),
                    "default": "action_after_notice",
                    "description": "Users whose e-mail is hidden: listed to the admins and actioned "
                    "after the notice period, or held (never actioned).",
                },
            },
            "Warning e-mails before the action.",
        ),
        "action": {
            "enum": list(ACTIONS),
            "default": "suspend",
            "description": "What happens to an inactive user.",
        },
        "delete_after_days": {
            "type": ["integer", "null"],
            "minimum": 1,
            "maximum": MAX_DAYS,
            "default": None,
            "description": "Delete accounts this tool actioned at least this many days ago; null = never.",
        },
        "delete_notice_days": _int(
            0, 7, "E-mail a deletion notice this many days before deleting (0 = no notice).", MAX_DAYS
        ),
        "new_user_grace_days": _int(0, 30, "No action for users added to the org fewer days ago.", MAX_DAYS),
        "restored_grace_days": _int(0, 30, "No action for this many days after a restore.", MAX_DAYS),
        "protected": _section(
            {
                "groups": _strings("Group names whose members are never touched."),
                "account_ids": _strings("Atlassian account ids that are never touched."),
                "emails": _strings("E-mail addresses that are never touched.", item=_EMAIL_ITEM),
                "domains": _strings("E-mail domains (and subdomains) never touched.", item=_DOMAIN_ITEM),
            },
            "Users that are never warned or actioned.",
        ),
        "admin_groups": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "default": list(DEFAULT_ADMIN_GROUPS),
            "description": "Glob patterns of admin groups; their members are never touched.",
        },
        "safety": _section(
            {
                "max_actions_per_run": _int(0, 50, "Most suspend/deactivate/remove/delete per run."),
                "max_action_share": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": 1,
                    "default": 0.1,
                    "description": "Largest share of all users one run may action.",
                },
                "on_cap_exceeded": {
                    "enum": list(ON_CAP_EXCEEDED),
                    "default": "fail",
                    "description": "fail = stop the run; approve = wait for a human approval.",
                },
                "min_user_count_ratio": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 1,
                    "default": 0.5,
                    "description": "Stop when the user count falls below this share of the last run.",
                },
                "max_missing_activity_share": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": 1,
                    "default": 0.9,
                    "description": "Stop when more than this share of users have no activity data.",
                },
                "write_concurrency": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 16,
                    "default": 4,
                    "description": "Atlassian writes in flight at once within one task.",
                },
                "task_timeout_minutes": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 1440,
                    "default": SafetyPolicy.task_timeout_minutes,
                    "description": "execution_timeout of every task that calls Atlassian (minutes).",
                },
            },
            "Caps and sanity gates.",
        ),
        "restore": _section(
            {
                "allowed_domains": _strings("Domains allowed to self-restore.", item=_DOMAIN_ITEM),
                "allowed_groups": _strings("Groups whose members may self-restore."),
                "schedule": {
                    "type": "string",
                    "minLength": 1,
                    "default": "*/10 * * * *",
                    "description": "Cron schedule of the restore DAG.",
                },
                "service_desk": {
                    "type": ["string", "null"],
                    "minLength": 1,
                    "default": None,
                    "description": "JSM service desk (id or project key) whose requests are read.",
                },
                "request_type": {
                    "type": "string",
                    "minLength": 1,
                    "default": "Restore my access",
                    "description": "Request type (name or id) that asks for access back.",
                },
                "max_restores_per_run": _int(0, 20, "Most restores one restore run may perform."),
            },
            "Self-service restore rules.",
        ),
        "notifications": _section(
            {
                "smtp_conn_id": {
                    "type": "string",
                    "minLength": 1,
                    "pattern": r"^[A-Za-z0-9_.-]+$",
                    "default": "smtp_default",
                    "description": "Airflow connection of your SMTP relay.",
                },
                "from_email": {
                    "type": ["string", "null"],
                    "pattern": _EMAIL_PATTERN,
                    "default": None,
                    "description": "Sender address (default: the SMTP connection's from_email).",
                },
                "templates_dir": {
                    "type": ["string", "null"],
                    "minLength": 1,
                    "default": None,
                    "description": "Directory with your own e-mail templates (default: include/templates).",
                },
                "request_access_url": {
                    "type": ["string", "null"],
                    "pattern": r"^https?://",
                    "default": None,
                    "description": "Link in warnings to request access back (your JSM portal request type).",
                },
                "admin_emails": _strings(
                    "Admins who get the run digest and failure alerts.", item=_EMAIL_ITEM
                ),
                "audit_page_url": {
                    "type": ["string", "null"],
                    "pattern": r"^https?://",
                    "default": None,
                    "description": "Link to the audit page, shown in the digest.",
                },
            },
            "Warning e-mails and the admin digest.",
        ),
        "state_store": _section(
            {
                "conn_id": {
                    "type": "string",
                    "minLength": 1,
                    "pattern": r"^[A-Za-z0-9_.-]+$",
                    "default": "atlassian_cleanup_state",
                    "description": "Airflow connection id of the state database (SQLAlchemy URL).",
                },
            },
            "Where this tool keeps its own state.",
        ),
        "licensing": _section(
            {
                "billing": {
                    "enum": list(BILLING_MODELS),
                    "default": "monthly",
                    "description": "Your Atlassian billing model: monthly or annual subscription.",
                },
                "currency": {
                    "type": "string",
                    "pattern": r"^[A-Z]{3}$",
                    "default": "USD",
                    "description": "ISO 4217 code the prices are in.",
                },
                "seat_price": {
                    "type": "number",
                    "minimum": 0,
                    "default": 0,
                    "description": "Price of one user per billing period (0 = no saving estimate).",
                },
                "product_seat_prices": {
                    "type": ["object", "null"],
                    "propertyNames": {"pattern": _PRODUCT_KEY_PATTERN},
                    "additionalProperties": {"type": "number", "minimum": 0},
                    "default": {},
                    "description": "Per-product seat prices overriding seat_price.",
                },
            },
            "Seat prices for the seats-reclaimed and saving figures.",
        ),
    },
}

# How to fix a bad value, by key path (list indexes removed). Shown after every schema problem.
_FIXES: dict[str, str] = {
    "dry_run": "use true (plan only, the safe default) or false (act for real)",
    "inactivity": "make it a mapping with default_days and, optionally, products",
    "inactivity.default_days": "use a whole number of days, at least 1, e.g. 90",
    "inactivity.products": "map lower-case product keys to whole days, e.g. {confluence: 180}",
    "warning": "make it a mapping with lead_days, min_notice_days and without_email",
    "warning.lead_days": "use a list of distinct whole days, each at least 1, e.g. [14, 7, 1]; [] = none",
    "warning.min_notice_days": "use a whole number of days, at least 1, e.g. 14, or null for the largest "
    "lead day",
    "warning.without_email": "use action_after_notice or hold",
    "action": "use one of: suspend, deactivate, remove_product_access",
    "delete_after_days": "use a whole number of days, at least 1, or null to never delete",
    "delete_notice_days": "use a whole number of days, 0 or more, e.g. 7 (0 = no deletion notice)",
    "new_user_grace_days": "use a whole number of days, 0 or more, e.g. 30",
    "restored_grace_days": "use a whole number of days, 0 or more, e.g. 30",
    "protected": "make it a mapping with groups, account_ids, emails and domains lists",
    "protected.groups": "use a list of group names, e.g. [vip-executives]",
    "protected.account_ids": "use a list of Atlassian account ids, e.g. ['712020:4f0c...']",
    "protected.emails": "use a list of full addresses, e.g. [ceo@acme.example]",
    "protected.domains": "use a list of bare domains without '@', e.g. [acme.example]",
    "admin_groups": "use a list of group-name glob patterns, e.g. ['site-admins', '*-admins-*']; [] = none",
    "safety": "make it a mapping of the safety keys",
    "safety.max_actions_per_run": "use a whole number, 0 or more, e.g. 50",
    "safety.max_action_share": "use a fraction above 0 and at most 1, e.g. 0.1 for 10 %",
    "safety.on_cap_exceeded": "use fail or approve",
    "safety.min_user_count_ratio": "use a fraction from 0 to 1, e.g. 0.5 (0 disables the gate)",
    "safety.max_missing_activity_share": "use a fraction above 0 and at most 1, e.g. 0.9 (1 disables)",
    "restore": "make it a mapping with allowed_domains and allowed_groups",
    "restore.allowed_domains": "use a list of bare domains without '@', e.g. [acme.example]",
    "restore.allowed_groups": "use a list of group names",
    "restore.schedule": "use a cron expression, e.g. '*/10 * * * *'",
    "restore.service_desk": "use the service desk id or project key, e.g. ITH, or null",
    "restore.request_type": "use the request type's name or id, e.g. Restore my access",
    "restore.max_restores_per_run": "use a whole number, 0 or more, e.g. 20",
    "notifications": "make it a mapping of the notification keys",
    "notifications.smtp_conn_id": "use an Airflow connection id, e.g. smtp_default",
    "notifications.from_email": "use an e-mail address, e.g. it-cleanup@acme.example, or null",
    "notifications.templates_dir": "use a directory path, or null for the shipped templates",
    "notifications.request_access_url": "use an http(s) URL, or null",
    "notifications.admin_emails": "use a list of e-mail addresses",
    "notifications.audit_page_url": "use an http(s) URL, or null",
    "safety.write_concurrency": "use a whole number from 1 to 16, e.g. 4",
    "safety.task_timeout_minutes": "use a whole number of minutes from 1 to 1440, e.g. 120",
    "state_store": "make it a mapping with conn_id",
    "state_store.conn_id": "use an Airflow connection id (letters, digits, _ . -)",
    "licensing": "make it a mapping with billing, currency, seat_price and product_seat_prices",
    "licensing.billing": "use monthly or annual",
    "licensing.currency": "use a three-letter ISO 4217 code in capitals, e.g. USD or EUR",
    "licensing.seat_price": "use a number, 0 or more, e.g. 8.6 (the price of one user per period)",
    "licensing.product_seat_prices": "map lower-case product keys to prices, e.g. {confluence: 6.05}",
}

_TYPE_WORDS = {
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "string": "a string",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


def policy_json_schema() -> dict[str, Any]:
    """The policy's JSON Schema (draft 2020-12). A deep copy: callers may modify it."""
    return copy.deepcopy(_SCHEMA)


def _all_key_paths(schema: Mapping[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        paths.append(path)
        paths.extend(_all_key_paths(sub, f"{path}."))
    return paths


_KNOWN_PATHS = _all_key_paths(_SCHEMA)


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    paths: tuple[str, ...]  # key paths involved, the first is the one reported
    text: str


def _format_path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _fix_for(path: str) -> str:
    plain = re.sub(r"\[\d+\]", "", path)
    while plain:
        if plain in _FIXES:
            return _FIXES[plain]
        if plain.startswith("inactivity.products."):
            return _FIXES["inactivity.products"]
        plain = plain.rpartition(".")[0]
    return "see the comments in include/policy.yaml"


def _type_names(types: Any) -> str:
    names = [types] if isinstance(types, str) else list(types)
    return " or ".join(_TYPE_WORDS.get(name, name) for name in names if name != "null") or "null"


def _describe(error: jsonschema.ValidationError) -> str:
    """Say what is wrong with a value in words an admin understands (not jsonschema's)."""
    kind, expected = error.validator, error.validator_value
    if kind == "type":
        return f"must be {_type_names(expected)}"
    if kind == "minimum":
        return f"must be at least {expected}"
    if kind == "maximum":
        if expected == MAX_DAYS:
            return f"must be at most {MAX_DAYS} days (100 years): a longer period cannot be meant"
        return f"must be at most {expected}"
    if kind == "exclusiveMinimum":
        return f"must be greater than {expected}"
    if kind == "enum":
        return f"must be one of {', '.join(str(v) for v in expected if v is not None)}"
    if kind == "uniqueItems":
        return "must not contain duplicates"
    if kind == "minLength":
        return "must not be empty"
    if kind == "pattern":
        if expected == _EMAIL_PATTERN:
            return "is not a valid e-mail address"
        if expected == _DOMAIN_PATTERN:
            return "is not a valid domain name"
        if expected == _PRODUCT_KEY_PATTERN:
            return "is not a lower-case product key"
        return "has an invalid format"
    return str(error.message)  # pragma: no cover - every keyword the schemas use is handled above


def _suggest(key: str, siblings: Iterable[str], prefix: str) -> str:
    # The right key in the wrong section (``default_days`` at the top level) is a common slip.
    elsewhere = [path for path in _KNOWN_PATHS if path.rsplit(".", 1)[-1] == key]
    if elsewhere:
        return f"did you mean '{elsewhere[0]}'?"
    close = difflib.get_close_matches(key, list(siblings), n=1, cutoff=0.6)
    if close:
        return f"did you mean '{prefix}{close[0]}'?"
    return f"remove it; known keys here: {', '.join(sorted(siblings))}"


def _schema_problems(data: Any) -> list[_Problem]:
    validator = jsonschema.Draft202012Validator(_SCHEMA)
    problems: list[_Problem] = []
    for error in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        parts = list(error.absolute_path)
        path = _format_path(parts)
        prefix = f"{path}." if parts else ""
        kind = error.validator
        if kind == "additionalProperties" and isinstance(error.instance, Mapping):
            known = error.schema.get("properties", {})
            for key in sorted(set(error.instance) - set(known), key=str):
                problems.append(
                    _Problem(
                        (f"{prefix}{key}",),
                        f"{prefix}{key}: unknown key; {_suggest(str(key), known, prefix)}",
                    )
                )
            continue
        if "propertyNames" in error.schema_path:
            key = error.instance
            key_path = f"{prefix}{key}"
            problems.append(
                _Problem(
                    (key_path,),
                    f"{key_path}: product key {key!r} is not a lower-case product key. "
                    f"Fix: write it in lower case with letters, digits and '-', e.g. "
                    f"{str(key).strip().lower()!r} or one of {', '.join(KNOWN_PRODUCTS)}",
                )
            )
            continue
        value = error.instance
        what = _describe(error)
        problems.append(_Problem((path,), f"{path}: {what} (got {value!r}). Fix: {_fix_for(path)}"))
    return problems


def _section_of(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def _canonical_products(raw: Mapping[str, Any]) -> tuple[dict[str, int], list[_Problem]]:
    products: dict[str, int] = {}
    origin: dict[str, str] = {}
    problems: list[_Problem] = []
    known = sorted(set(KNOWN_PRODUCTS) | set(_PRODUCT_ALIASES))
    for key, days in raw.items():
        path = f"inactivity.products.{key}"
        canonical = canonical_product(str(key))
        if canonical in origin:
            problems.append(
                _Problem(
                    (path,),
                    f"{path}: duplicates '{origin[canonical]}' (both mean product '{canonical}'; "
                    f"got {days!r} and {raw[origin[canonical]]!r}). Fix: keep only one of them",
                )
            )
            continue
        if canonical not in KNOWN_PRODUCTS:
            # Any product key is allowed (Bitbucket, Trello, ...), but a near miss of a known key
            # would silently leave that product on the default threshold.
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.8)
            if close:
                problems.append(
                    _Problem(
                        (path,),
                        f"{path}: unknown product key {key!r}; did you mean '{close[0]}'? "
                        f"Fix: use one of {', '.join(KNOWN_PRODUCTS)} or the exact key Atlassian reports",
                    )
                )
                continue
        origin[canonical] = str(key)
        if isinstance(days, int) and not isinstance(days, bool):
            products[canonical] = days
    return products, problems


def _cross_field_problems(data: Mapping[str, Any]) -> list[_Problem]:
    inactivity = _section_of(data, "inactivity")
    raw_products = inactivity.get("products") or {}
    problems: list[_Problem] = []
    products: dict[str, int] = {}
    if isinstance(raw_products, Mapping):
        products, problems = _canonical_products(raw_products)

    default_days = inactivity.get("default_days", 90)
    thresholds: dict[str, int] = {}
    if isinstance(default_days, int) and not isinstance(default_days, bool) and default_days >= 1:
        thresholds["inactivity.default_days"] = default_days
    for product, days in products.items():
        if days >= 1:
            thresholds[f"inactivity.products.{product}"] = days

    lead_days = _section_of(data, "warning").get("lead_days", [14, 7, 1])
    if thresholds and isinstance(lead_days, list):
        smallest_key = min(thresholds, key=lambda k: thresholds[k])
        smallest = thresholds[smallest_key]
        too_long = sorted(
            {d for d in lead_days if isinstance(d, int) and not isinstance(d, bool) and d >= smallest},
            reverse=True,
        )
        if too_long:
            problems.append(
                _Problem(
                    ("warning.lead_days", smallest_key),
                    f"warning.lead_days: {', '.join(map(str, too_long))} must be shorter than the smallest "
                    f"inactivity threshold ({smallest_key} = {smallest} days), or the warning would "
                    f"go out before the user is even inactive (got {lead_days!r}). Fix: use lead days "
                    f"below {smallest}, or raise {smallest_key}",
                )
            )
    return problems


def _validate(data: Any) -> list[_Problem]:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        return [
            _Problem(
                ("(top level)",),
                f"(top level): the policy must be a mapping of keys (got {type(data).__name__}). "
                "Fix: start from include/policy.yaml",
            )
        ]
    problems = _schema_problems(data)
    problems.extend(_cross_field_problems(data))
    return problems


def _lower_unique(values: Iterable[str] | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(v).strip().lower() for v in values or ()))


def _unique(values: Iterable[str] | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(v) for v in values or ()))


def _build(data: Mapping[str, Any]) -> Policy:
    inactivity = _section_of(data, "inactivity")
    products, _ = _canonical_products(inactivity.get("products") or {})
    warning = _section_of(data, "warning")
    protected = _section_of(data, "protected")
    safety = _section_of(data, "safety")
    restore = _section_of(data, "restore")
    defaults = SafetyPolicy()
    return Policy(
        dry_run=bool(data.get("dry_run", True)),
        inactivity=InactivityPolicy(
            default_days=int(inactivity.get("default_days", 90)),
            products=dict(sorted(products.items())),
        ),
        # Stored descending: the order warnings go out.
        warning=WarningPolicy(
            tuple(sorted(warning.get("lead_days", [14, 7, 1]), reverse=True)),
            min_notice_days=warning.get("min_notice_days"),
            without_email=warning.get("without_email") or WarningPolicy.without_email,
        ),
        action=data.get("action", "suspend"),
        delete_after_days=data.get("delete_after_days"),
        delete_notice_days=int(data.get("delete_notice_days", 7)),
        new_user_grace_days=int(data.get("new_user_grace_days", 30)),
        restored_grace_days=int(data.get("restored_grace_days", 30)),
        protected=ProtectedPolicy(
            groups=_unique(protected.get("groups")),
            account_ids=_unique(str(v).strip() for v in protected.get("account_ids") or ()),
            emails=_lower_unique(protected.get("emails")),
            domains=_lower_unique(protected.get("domains")),
        ),
        admin_groups=_unique(data.get("admin_groups", DEFAULT_ADMIN_GROUPS)),
        safety=SafetyPolicy(
            max_actions_per_run=int(safety.get("max_actions_per_run", defaults.max_actions_per_run)),
            max_action_share=float(safety.get("max_action_share", defaults.max_action_share)),
            on_cap_exceeded=safety.get("on_cap_exceeded", defaults.on_cap_exceeded),
            min_user_count_ratio=float(safety.get("min_user_count_ratio", defaults.min_user_count_ratio)),
            max_missing_activity_share=float(
                safety.get("max_missing_activity_share", defaults.max_missing_activity_share)
            ),
            write_concurrency=int(safety.get("write_concurrency", defaults.write_concurrency)),
            task_timeout_minutes=int(safety.get("task_timeout_minutes", defaults.task_timeout_minutes)),
        ),
        restore=RestorePolicy(
            allowed_domains=_lower_unique(restore.get("allowed_domains")),
            allowed_groups=_unique(restore.get("allowed_groups")),
            schedule=str(restore.get("schedule") or RestorePolicy.schedule),
            service_desk=restore.get("service_desk"),
            request_type=str(restore.get("request_type") or RestorePolicy.request_type),
            max_restores_per_run=int(restore.get("max_restores_per_run", RestorePolicy.max_restores_per_run)),
        ),
        notifications=_notifications(_section_of(data, "notifications")),
        state_store=StateStorePolicy(
            conn_id=str(_section_of(data, "state_store").get("conn_id", StateStorePolicy.conn_id))
        ),
        licensing=_licensing(_section_of(data, "licensing")),
    )


def _licensing(section: Mapping[str, Any]) -> LicensingPolicy:
    defaults = LicensingPolicy()
    prices = section.get("product_seat_prices") or {}
    return LicensingPolicy(
        billing=section.get("billing") or defaults.billing,
        currency=str(section.get("currency") or defaults.currency),
        seat_price=float(section.get("seat_price") or 0),
        product_seat_prices={
            canonical_product(str(key)): float(value) for key, value in sorted(prices.items())
        },
    )


def _notifications(section: Mapping[str, Any]) -> NotificationsPolicy:
    defaults = NotificationsPolicy()
    return NotificationsPolicy(
        smtp_conn_id=str(section.get("smtp_conn_id") or defaults.smtp_conn_id),
        from_email=section.get("from_email"),
        templates_dir=section.get("templates_dir"),
        request_access_url=section.get("request_access_url"),
        admin_emails=_lower_unique(section.get("admin_emails")),
        audit_page_url=section.get("audit_page_url"),
    )


def policy_from_dict(data: Mapping[str, Any] | None, *, source: str | None = None) -> Policy:
    """Validate parsed policy data and build a :class:`Policy`; raise :class:`PolicyError`."""
    problems = _validate(data)
    if problems:
        raise PolicyError([p.text for p in problems], source=source)
    return _build(data or {})


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
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


# --------------------------------------------------------------------------------------------------
# Plausibility
# --------------------------------------------------------------------------------------------------


def plausibility_warnings(policy: Policy) -> list[str]:
    """What a valid policy allows but is probably not meant; one sentence per finding.

    These are accepted (the run goes on) and shown in the ``compute_inactivity`` log and the admin
    digest: a policy that protects nobody beyond the built-in protections, periods longer than ten
    years (:data:`PLAUSIBLE_DAYS`), a notice period without warnings. Values that cannot be meant
    (longer than :data:`MAX_DAYS`) are errors of :func:`policy_from_dict` instead. The warning
    about caps allowing more than half the org needs the org size:
    :func:`atlassian_cleanup.decisions.gates.cap_plausibility_warnings`.
    """
    warnings: list[str] = []
    protected = policy.protected
    if not (protected.groups or protected.account_ids or protected.emails or protected.domains):
        warnings.append(
            "protected: nobody is protected beyond the built-in protections (apps, customers, admins, "
            "admin groups, the API user, new and restored users). If that is not meant, list your "
            "VIP groups, break-glass accounts or partner domains under protected, e.g. "
            "protected.groups: [vip-executives]."
        )
    periods: list[tuple[str, int | None]] = [
        ("inactivity.default_days", policy.inactivity.default_days),
        *((f"inactivity.products.{p}", d) for p, d in sorted(policy.inactivity.products.items())),
        ("warning.min_notice_days", policy.warning.min_notice_days),
        ("delete_after_days", policy.delete_after_days),
        ("new_user_grace_days", policy.new_user_grace_days),
        ("restored_grace_days", policy.restored_grace_days),
    ]
    for key, days in periods:
        if days is not None and days > PLAUSIBLE_DAYS:
            warnings.append(
                f"{key}: {days} days is more than ten years ({PLAUSIBLE_DAYS} days); check that it "
                "is meant (a threshold in weeks or months is usual)."
            )
    if policy.warning.min_notice_days is not None and not policy.warning.lead_days:
        warnings.append(
            "warning.min_notice_days is set but warning.lead_days is []: nobody is warned, so there is "
            "no notice period and users are actioned as soon as they are due."
        )
    return warnings


# --------------------------------------------------------------------------------------------------
# Per-run overrides (DAG Params)
# --------------------------------------------------------------------------------------------------

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
        "propertyNames": {"pattern": _PRODUCT_KEY_PATTERN},
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
        "description": "Warn this many days before the action date, e.g. 14, 7, 1; none = no warnings. "
        f"{_KEEP}",
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
    problems: list[str] = []
    data = policy.to_dict()
    overridden: dict[str, str] = {}  # policy key -> param name
    legacy, legacy_problems = _legacy_dry_run(params)
    problems.extend(legacy_problems)
    if legacy is not None and keeps_policy(params.get("mode")):
        data["dry_run"] = legacy
        overridden["dry_run"] = "dry_run"
    for name, schema in PARAM_SCHEMAS.items():
        value = params.get(name)
        if keeps_policy(value):
            continue
        validator = jsonschema.Draft202012Validator(schema)
        errors = list(validator.iter_errors(value))
        if not errors:
            try:
                value = _param_value(name, value)
            except ValueError as exc:
                fix = schema["description"]
                problems.append(f"param {name}: {exc} (got {params.get(name)!r}). Fix: {fix}")
                continue
            if isinstance(params.get(name), str) and isinstance(value, (list, dict)):
                errors = list(validator.iter_errors(value))  # parsed from text: check what it says
        if errors:
            for error in sorted(errors, key=lambda e: list(map(str, e.absolute_path))):
                inner = _format_path(error.absolute_path) if error.absolute_path else ""
                where = f"{name}.{inner}" if inner else name
                seen = error.instance
                problems.append(
                    f"param {where}: {_describe(error)} (got {seen!r}). Fix: {schema['description']}"
                )
            continue
        if name in RUN_ONLY_PARAMS:
            continue
        key = PARAM_POLICY_KEYS[name]
        overridden[key] = name
        if name == "product_thresholds":
            merged = dict(data["inactivity"]["products"])
            merged.update({canonical_product(k): v for k, v in value.items()})
            value = merged
        elif name == "delete_after_days" and value == 0:
            value = None
        elif name == "warning_lead_days":
            value = list(value)
        _set_path(data, key, value)
    if problems:
        raise PolicyError(problems, source="DAG params")

    def param_names(paths: Iterable[str]) -> list[str]:
        names = []
        for path in paths:
            for key, name in overridden.items():
                if (path == key or path.startswith(f"{key}.")) and name not in names:
                    names.append(name)
        return names

    lines = []
    for problem in _validate(data):
        names = param_names(problem.paths)
        label = f"param {', '.join(names)}" if names else "policy file"
        lines.append(f"{label}: {problem.text}")
    if lines:
        raise PolicyError(lines, source="policy with DAG params applied")
    return _build(data)
