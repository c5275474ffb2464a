"""The policy as data: the frozen dataclass tree, its value sets and bounds, and :class:`PolicyError`.

The dataclass fields are the one declaration of every policy default. The JSON Schema
(:mod:`~atlassian_cleanup.decisions.policy_schema`), the "what to fix" hints, the trigger-form
examples and the loader all read them through :func:`default_value`; the tests check the
documented ``include/policy.yaml`` and the README table against them.

This module imports neither Airflow nor an HTTP client.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal

from atlassian_cleanup.action_kinds import POLICY_ACTIONS
from atlassian_cleanup.decisions.products import canonical_product

Action = Literal["suspend", "deactivate", "remove_product_access"]
ACTIONS: tuple[str, ...] = POLICY_ACTIONS
ON_CAP_EXCEEDED: tuple[str, ...] = ("fail", "approve")
#: What happens to an inactive user whose e-mail address Atlassian does not show (``warning.without_email``).
WITHOUT_EMAIL: tuple[str, ...] = ("action_after_notice", "hold")
#: Longest period of days a policy may name (100 years): anything longer cannot be meant.
MAX_DAYS = 36_500
#: Longest wait for an admin's approval of a restore request (30 days, in hours).
MAX_APPROVAL_HOURS = 720
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
    #: Hours an admin has to approve a request no rule allows (Airflow's Required Actions).
    approval_timeout_hours: int = 72


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


#: The name of the rule made of the file's top-level settings (the rule of users no scoped rule selects).
DEFAULT_RULE = "default"
#: The selector keys of a scoped rule, in the order they are documented.
SELECTOR_KEYS: tuple[str, ...] = ("groups", "email_domains", "managed", "products")
#: The keys a scoped rule may set, as dotted paths of the top level; every other key is inherited.
RULE_SETTINGS: tuple[str, ...] = (
    "inactivity.default_days",
    "inactivity.products",
    "warning.lead_days",
    "action",
    "review",
    "delete_after_days",
)


@dataclass(frozen=True)
class RuleSelector:
    """Who a scoped rule selects: every key given must hold (a list holds when any entry does).

    ``None``: the key is not part of the selector. Groups are compared case-insensitively, e-mail
    domains include their subdomains, ``managed`` compares Atlassian's claim status
    (``managed`` / ``unmanaged``), products are canonical keys the user has access to.
    """

    groups: tuple[str, ...] | None = None
    email_domains: tuple[str, ...] | None = None
    managed: bool | None = None
    products: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        values = {item.name: getattr(self, item.name) for item in fields(self)}
        return {key: _json_native(value) for key, value in values.items() if value is not None}


@dataclass(frozen=True)
class ScopedRule:
    """One entry of ``rules``: a population and the settings that differ for it.

    ``settings`` maps the :data:`RULE_SETTINGS` paths the rule sets to their value; the others come
    from the top level (see :func:`atlassian_cleanup.decisions.scopes.effective_policy`).
    """

    name: str
    match: RuleSelector
    settings: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The rule as the policy file writes it (only the keys it sets)."""
        data: dict[str, Any] = {"name": self.name, "match": self.match.to_dict()}
        for path in RULE_SETTINGS:
            if path in self.settings:
                section, _, key = path.rpartition(".")
                target = data.setdefault(section, {}) if section else data
                target[key] = _json_native(self.settings[path])
        return data


@dataclass(frozen=True)
class Policy:
    """The whole cleanup policy. Build it with :func:`load_policy` or :func:`policy_from_dict`."""

    dry_run: bool = True
    inactivity: InactivityPolicy = field(default_factory=InactivityPolicy)
    warning: WarningPolicy = field(default_factory=WarningPolicy)
    action: Action = "suspend"
    #: A user's first action waits for an admin's decision in the review queue (approve or keep).
    review: bool = False
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
    #: Scoped rules, in order: the first whose selector matches a user applies to them; users no
    #: rule selects get the top-level settings (the rule :data:`DEFAULT_RULE`).
    rules: tuple[ScopedRule, ...] = ()

    def actions_in_use(self) -> frozenset[str]:
        """The actions the top level and the scoped rules name (what a run may do to somebody)."""
        return frozenset({self.action, *(rule.settings.get("action", self.action) for rule in self.rules)})

    def to_dict(self) -> dict[str, Any]:
        """JSON-native form, keys in field order; ``policy_from_dict(policy.to_dict()) == policy``."""
        return dict(_json_native(self))


def _json_native(value: Any) -> Any:
    # Sections become mappings, tuples lists, and per-product mappings are sorted so that the same
    # policy always serialises (and hashes) the same way. A scoped rule writes only what it sets.
    if isinstance(value, (ScopedRule, RuleSelector)):
        return value.to_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return {item.name: _json_native(getattr(value, item.name)) for item in fields(value)}
    if isinstance(value, tuple):
        return [_json_native(item) for item in value]
    if isinstance(value, Mapping):
        return dict(sorted(value.items()))
    return value


#: The keys of :class:`Policy` that are sections (a mapping of their own keys in the YAML file).
SECTIONS: tuple[str, ...] = tuple(
    item.name for item in fields(Policy) if is_dataclass(getattr(Policy(), item.name))
)

_DEFAULTS: dict[str, Any] = Policy().to_dict()


def default_value(path: str) -> Any:
    """The default of the policy key at dotted ``path`` (``"inactivity.default_days"`` -> 90), JSON-native.

    A copy: the caller may modify it.
    """
    node: Any = _DEFAULTS
    for part in path.split("."):
        node = node[part]
    return copy.deepcopy(node)


def policy_defaults() -> dict[str, Any]:
    """Every default, as the JSON-native document :func:`policy_from_dict` would accept."""
    return copy.deepcopy(_DEFAULTS)
