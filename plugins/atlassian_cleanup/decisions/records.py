"""The user record every stage after extraction works with.

``extract_users`` turns the Admin API's v2 ``MultiDirectoryUser`` objects (camelCase, with the
``productAccess``, ``groups`` and ``platformRoles`` expansions) into these flat, JSON-native dicts,
so XCom carries plain data and the planner never sees an API shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

from atlassian_cleanup import action_kinds
from atlassian_cleanup.decisions.products import canonical_product, product_of_resource


class UserRecord(TypedDict):
    account_id: str
    account_type: str  # atlassian | app | customer | unknown
    name: str | None
    email: str | None
    email_domain: str | None  # lower case, None when the email is hidden
    status: str  # v2 composite: active | suspended | not_invited | deactivated | for_deletion
    account_status: str  # active | inactive | closed
    membership_status: str | None  # active | suspended | no_membership
    claim_status: str | None  # managed | unmanaged
    # Who provisions the account (v2 ``managementSource``: ``invited``, ``scim``, ...); None unknown.
    management_source: str | None
    added_to_org: str | None  # ISO-8601 UTC
    platform_roles: list[str]
    groups: list[str]  # group names
    group_ids: list[str]
    # canonical product -> ISO-8601 UTC last activity; None = has access but never used it. The
    # products are those the user's groups grant (when the group grants are known, see
    # :func:`product_grants`); the dates come from ``productAccess``, which lists activity only.
    product_access: dict[str, str | None]
    last_active: str | None  # latest activity over all products, None when never active
    # IANA zone from the profile (e.g. "Europe/Paris"); None when Atlassian does not say. Only used
    # to word dates in warning e-mails: every decision stays in UTC.
    time_zone: str | None


#: Columns of a plan row, in order (types and meaning: see :mod:`atlassian_cleanup.decisions.planner`). Kept
#: here, beside the user record, so the audit writer can use them without importing pandas.
PLAN_COLUMNS: tuple[str, ...] = (
    "account_id",
    "email",
    "name",
    "account_type",
    "claim_status",
    "status",
    "product_last_active",
    "days_inactive",
    "inactive_products",
    "action_date",
    "days_until_action",
    "rule",
    "policy_rule",
    "stage",
    "proposed_action",
    "products_to_remove",
    "warning_lead_days",
    "reason",
    "protected_by",
    "planned_action",
    "time_zone",
    "review_decision",
    "review_by",
    "review_at",
    "review_reason",
    "keep_until",
)


def parse_timestamp(value: str | None) -> datetime | None:
    """Parse an Atlassian ISO-8601 timestamp or date (``2026-09-14T08:12:00Z``, ``2026-09-14``)."""
    if not value:
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def plan_product_activity(row: Mapping[str, Any]) -> dict[str, datetime | None]:
    """A plan row's ``product_last_active`` as ``{canonical product: last activity or None}``.

    The planner stores it as a JSON string (one cell in the CSV); rows built by hand may hold the
    mapping itself. Every product listed is one the user has access to.
    """
    raw = row.get("product_last_active")
    if isinstance(raw, str):
        raw = json.loads(raw) if raw.strip() else {}
    return {
        canonical_product(str(product)): parse_timestamp(seen) if seen else None
        for product, seen in (raw or {}).items()
    }


def valid_email_address(value: Any) -> str | None:
    """The address stripped, or None when it cannot be mailed (empty, no ``@``, spaces or ``<>,;``).

    Atlassian hides the e-mail of some accounts; such a user is never guessed at, only reported.
    """
    address = str(value or "").strip()
    if not address or "@" not in address or any(ch.isspace() or ch in "<>,;" for ch in address):
        return None
    return address


def format_timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _product_access(entries: Iterable[Mapping[str, Any]] | None) -> dict[str, str | None]:
    access: dict[str, datetime | None] = {}
    for entry in entries or ():
        key = entry.get("key")
        if not key:
            continue
        product = canonical_product(str(key))
        seen = parse_timestamp(entry.get("lastActiveTimestamp") or entry.get("lastActive"))
        # Several instances of one product (two Jira sites) collapse to the latest activity.
        previous = access.get(product)
        if product not in access or (seen is not None and (previous is None or seen > previous)):
            access[product] = seen
    return {product: format_timestamp(seen) for product, seen in sorted(access.items())}


#: Identity-provider values of the v2 ``managementSource`` (lower case): such accounts are
#: provisioned by SCIM and Atlassian does not let the org deactivate them through the API
#: (``GET /users/{id}/manage`` answers ``externalDirectory.scim``).
IDP_MANAGEMENT_SOURCES: frozenset[str] = frozenset({"scim", "idp", "identity_provider", "external"})


def is_idp_managed(management_source: str | None) -> bool:
    """Whether a v2 ``managementSource`` says an identity provider (SCIM) manages the account."""
    return bool(management_source) and str(management_source).strip().lower() in IDP_MANAGEMENT_SOURCES


def product_grants(
    groups: Iterable[tuple[Mapping[str, Any], Iterable[Mapping[str, Any]]]],
) -> dict[str, frozenset[str]]:
    """Group id -> canonical products its role assignments grant (groups granting none left out).

    :param groups: ``(group, role assignments)`` pairs as the Admin API gives them (v2 group search
        and ``GET .../groups/{id}/role-assignments``). An assignment without any role grants nothing;
        platform roles grant no product.
    """
    grants: dict[str, frozenset[str]] = {}
    for group, assignments in groups:
        products = set()
        for assignment in assignments:
            if not assignment.get("roleAssignments"):
                continue
            resource = str(assignment.get("resourceId") or "")
            product = product_of_resource(resource, assignment.get("resourceOwner"))
            if product:
                products.add(product)
        if products:
            grants[str(group["id"])] = frozenset(products)
    return grants


def _granted(group_ids: Iterable[str], grants: Mapping[str, frozenset[str]], cache: dict[Any, Any]) -> Any:
    key = tuple(group_ids)
    found = cache.get(key)
    if found is None:
        products: set[str] = set()
        for group_id in key:
            products.update(grants.get(group_id, ()))
        found = cache[key] = tuple(sorted(products))
    return found


def user_record_from_v2(
    user: Mapping[str, Any],
    grants: Mapping[str, frozenset[str]] | None = None,
    *,
    cache: dict[Any, Any] | None = None,
) -> UserRecord:
    """Normalise one v2 ``users/search`` result (camelCase) into a :class:`UserRecord`.

    :param grants: group id -> products the group grants (:func:`product_grants`). With it, the
        user's products are the ones their groups grant, each with its last activity from
        ``productAccess`` or ``None`` when never opened (Atlassian leaves such products out of
        ``productAccess``, §3.6); activity on a product no group grants still counts as activity
        (``last_active``) but not as access. Without it, ``productAccess`` is read as the access list.
    """
    email = user.get("email") or None
    activity = _product_access(user.get("productAccess"))
    active_times = [value for value in activity.values() if value]
    groups = user.get("groups") or []
    if grants is None:
        product_access = activity
    else:
        ids = sorted(str(group.get("id")) for group in groups if group.get("id"))
        granted = _granted(ids, grants, cache if cache is not None else {})
        product_access = {product: activity.get(product) for product in granted}
    return UserRecord(
        account_id=str(user["accountId"]),
        account_type=str(user.get("accountType") or "unknown"),
        name=user.get("name") or user.get("nickname") or None,
        email=email,
        email_domain=email.rsplit("@", 1)[-1].lower() if email and "@" in email else None,
        status=str(user.get("status") or "active"),
        account_status=str(user.get("accountStatus") or "active"),
        membership_status=user.get("membershipStatus"),
        claim_status=user.get("claimStatus"),
        management_source=user.get("managementSource") or None,
        added_to_org=format_timestamp(parse_timestamp(user.get("addedToOrg"))),
        platform_roles=sorted(str(role) for role in user.get("platformRoles") or []),
        groups=sorted(str(group.get("name")) for group in groups if group.get("name")),
        group_ids=sorted(str(group.get("id")) for group in groups if group.get("id")),
        product_access=product_access,
        last_active=max(active_times) if active_times else None,
        time_zone=user.get("timeZone") or None,
    )


def user_record_from_jira(user: Mapping[str, Any]) -> UserRecord:
    """Record for an account Jira knows but the org directory does not list.

    Portal-only customers and many bots never appear in the Admin API's directory search; they are
    still put in the plan (and the audit) so an auditor sees every account and why it was left
    alone. ``status`` is ``not_invited``: the v2 value for "no directory membership".
    """
    email = user.get("emailAddress") or None
    return UserRecord(
        account_id=str(user["accountId"]),
        account_type=str(user.get("accountType") or "unknown"),
        name=user.get("displayName") or None,
        email=email,
        email_domain=email.rsplit("@", 1)[-1].lower() if email and "@" in email else None,
        status="not_invited",
        account_status="active" if user.get("active", True) else "inactive",
        membership_status="no_membership",
        claim_status=None,
        management_source=None,
        added_to_org=None,
        platform_roles=[],
        groups=[],
        group_ids=[],
        product_access={},
        last_active=None,
        time_zone=user.get("timeZone") or None,
    )


#: What the planner may propose for a user.
PROPOSED_ACTIONS: tuple[str, ...] = action_kinds.PROPOSED_ACTIONS
#: Proposed actions that write to Atlassian (what the safety caps count).
WRITE_ACTIONS: frozenset[str] = frozenset(action_kinds.WRITE_ACTIONS)

#: Stages of the per-user state machine (see :mod:`atlassian_cleanup.actions.transitions`).
STAGES: tuple[str, ...] = ("active", "warned", "actioned", "pending_delete", "deleted", "restored")


@dataclass(frozen=True)
class UserHistory:
    """What the state store knows about one user (all times UTC-aware, ISO strings accepted).

    ``stage`` is one of :data:`STAGES`; ``last_warned_lead_days`` is the smallest lead-day bucket
    already sent in the current warning cycle and ``warned_at`` when the latest warning went out;
    ``actioned_at`` / ``actioned_action`` record this tool's last action, ``restored_at`` its last
    restore. From the journal of the current cycle (:meth:`StateStore.history` in ``actions.state``):
    ``delete_requested_at`` when this tool's deletion was accepted, ``deletion_kind`` how
    (``delete``: the lifecycle delete with Atlassian's 14-day cancel window; ``remove_from_directory``:
    removed from the directory instead, no window), ``delete_notice_at`` when the deletion notice
    e-mail went out. ``removed_products`` lists the
    products whose access this tool removed (``remove_product_access``), the latest removal at
    ``actioned_at``.
    """

    stage: str = "active"
    actioned_at: datetime | None = None
    actioned_action: str | None = None
    restored_at: datetime | None = None
    last_warned_lead_days: int | None = None
    warned_at: datetime | None = None
    first_warned_at: datetime | None = None
    delete_requested_at: datetime | None = None
    deletion_kind: str | None = None
    delete_notice_at: datetime | None = None
    removed_products: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"UserHistory.stage must be one of {', '.join(STAGES)} (got {self.stage!r})")
        for name in (
            "actioned_at",
            "restored_at",
            "warned_at",
            "first_warned_at",
            "delete_requested_at",
            "delete_notice_at",
        ):
            value = getattr(self, name)
            if isinstance(value, str):
                value = parse_timestamp(value)
            elif isinstance(value, datetime):
                if value.tzinfo is None:
                    raise ValueError(f"UserHistory.{name} must be timezone-aware (got {value!r})")
            elif value is not None:
                raise TypeError(f"UserHistory.{name} must be a datetime, ISO string or None")
            object.__setattr__(self, name, value)
        if isinstance(self.removed_products, str):
            raise TypeError("UserHistory.removed_products must be a list of products, not a string")
        removed = {canonical_product(str(product)) for product in self.removed_products}
        object.__setattr__(self, "removed_products", tuple(sorted(removed)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UserHistory:
        """Build from a mapping with the field names (unknown keys are ignored)."""
        names = (
            "stage",
            "actioned_at",
            "actioned_action",
            "restored_at",
            "last_warned_lead_days",
            "warned_at",
            "first_warned_at",
            "delete_requested_at",
            "deletion_kind",
            "delete_notice_at",
            "removed_products",
        )
        return cls(**{name: data[name] for name in names if name in data and data[name] is not None})

    def to_dict(self) -> dict[str, Any]:
        """JSON-native form (timestamps as ISO-8601 UTC strings)."""
        return {
            "stage": self.stage,
            "actioned_at": format_timestamp(self.actioned_at),
            "actioned_action": self.actioned_action,
            "restored_at": format_timestamp(self.restored_at),
            "last_warned_lead_days": self.last_warned_lead_days,
            "warned_at": format_timestamp(self.warned_at),
            "first_warned_at": format_timestamp(self.first_warned_at),
            "delete_requested_at": format_timestamp(self.delete_requested_at),
            "deletion_kind": self.deletion_kind,
            "delete_notice_at": format_timestamp(self.delete_notice_at),
            "removed_products": list(self.removed_products),
        }
