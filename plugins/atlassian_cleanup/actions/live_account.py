"""Pure reads of a live (just re-read) account and of a plan row, shared by the engine's steps.

What the journal keeps of an account before a write, the plan's evidence, the activity that makes a
plan stale, the privileges Atlassian grants on an account, and how a refusal is worded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from atlassian_cleanup.decisions.products import canonical_product, product_label
from atlassian_cleanup.decisions.records import parse_timestamp, plan_product_activity, user_record_from_v2


@dataclass(frozen=True)
class GrantingGroup:
    """A group that grants a role on a product (found from its role assignments, never its name)."""

    id: str
    name: str
    external_synced: bool


def _live_activity(live: Mapping[str, Any]) -> dict[str, datetime | None]:
    record = user_record_from_v2(live)
    return {product: parse_timestamp(seen) for product, seen in record["product_access"].items()}


def newer_activity(
    row: Mapping[str, Any], live: Mapping[str, Any], products: Iterable[str] | None = None
) -> str | None:
    """The first product used after the plan's evidence, as a sentence fragment, or None."""
    planned = plan_product_activity(row)
    wanted = {canonical_product(p) for p in products} if products is not None else None
    for product, seen in sorted(_live_activity(live).items()):
        if seen is None or (wanted is not None and product not in wanted):
            continue
        before = planned.get(product)
        if before is None or seen > before:
            used = f"{product_label(product)} was used on {seen:%Y-%m-%d %H:%M} UTC"
            return f"{used}, after the plan's evidence"
    return None


def group_refs(live: Mapping[str, Any]) -> list[dict[str, str]]:
    """The account's groups as ``{"id", "name"}`` (groups without an id are left out)."""
    return [
        {"id": str(group.get("id")), "name": str(group.get("name"))}
        for group in live.get("groups") or []
        if group.get("id")
    ]


def account_snapshot(live: Mapping[str, Any]) -> dict[str, Any]:
    """The account as it was before our write, for the journal (what a restore must give back)."""
    record = user_record_from_v2(live)
    return {
        "status": record["status"],
        "account_status": record["account_status"],
        "membership_status": record["membership_status"],
        "claim_status": record["claim_status"],
        "groups": group_refs(live),
        "product_access": record["product_access"],
    }


def plan_evidence(row: Mapping[str, Any]) -> dict[str, Any]:
    """What the plan row's decision rested on, for the journal's ``evidence``."""
    return {
        "product_last_active": {
            product: (seen.strftime("%Y-%m-%dT%H:%M:%SZ") if seen else None)
            for product, seen in sorted(plan_product_activity(row).items())
        },
        "days_inactive": int_or_none(row.get("days_inactive")),
        "rule": row.get("rule"),
        "action_date": row.get("action_date"),
    }


def int_or_none(value: Any) -> int | None:
    """A plan cell as an int; None for an empty, NaN or non-numeric cell."""
    try:
        return int(value) if value is not None and value == value else None  # NaN != NaN
    except (TypeError, ValueError):
        return None


def privilege(privileges: Mapping[str, Any], name: str) -> tuple[bool, str | None]:
    """Whether ``GET /users/{id}/manage`` allows ``name``, and Atlassian's reason key when not."""
    entry = privileges.get(name) or {}
    reason = entry.get("reason") or {}
    return bool(entry.get("allowed")), (reason.get("key") if isinstance(reason, Mapping) else str(reason))


#: Atlassian's reason keys for refusing a deletion, worded for the audit.
DELETE_REFUSALS = {
    "accountNotManaged": "Unmanaged account (not on a verified domain of the organization), "
    "which Atlassian does not let us delete",
    "externalDirectory.scim": "Account managed by the identity provider (SCIM), "
    "which Atlassian does not let us delete",
}


def deactivation_refusals(hook: Any, account_ids: Iterable[str]) -> dict[str, str | None]:
    """Account id -> Atlassian's reason key, for each account it will not let us deactivate.

    Asks ``GET /users/{id}/manage`` for ``lifecycle.enablement`` (the privilege ``lifecycle/disable``
    needs), so the plan and the warning e-mail promise what ``apply_actions`` will be able to do.
    """
    refused: dict[str, str | None] = {}
    for account_id in dict.fromkeys(str(a) for a in account_ids):
        allowed, reason = privilege(hook.get_manage_privileges(account_id), "lifecycle.enablement")
        if not allowed:
            refused[account_id] = reason
    return refused


def fallback_sentence(reason: str | None, verb: str) -> str:
    if reason == "accountNotManaged":
        return f"Unmanaged account: suspended instead of {verb}"
    if reason == "externalDirectory.scim":
        return f"Account managed by the identity provider (SCIM): suspended instead of {verb}"
    why = reason or "no reason given"
    return f"Atlassian does not allow this account to be {verb} ({why}): suspended instead"
