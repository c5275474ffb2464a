"""Removing product access: leave every group that grants the product, as one engine step.

The groups granting a product are found once per run from ``iter_groups`` and their role
assignments (never from group names). Groups synced from an identity provider are read-only in
Atlassian: they are reported, with what the admin must do in the identity provider.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from atlassian_cleanup.action_kinds import REMOVE_PRODUCT_ACCESS
from atlassian_cleanup.actions.journalled import WriteResult
from atlassian_cleanup.actions.live_account import GrantingGroup, group_refs
from atlassian_cleanup.client.retry import AtlassianNotFoundError, AtlassianPermissionError
from atlassian_cleanup.decisions.products import canonical_product, product_label
from atlassian_cleanup.decisions.records import product_grants
from atlassian_cleanup.outcomes import DONE, REPORTED, SKIPPED_CHANGED


class ProductAccessRemoval:
    """The :class:`~atlassian_cleanup.actions.enforcement.Enforcer`'s product-access step."""

    log: logging.Logger | logging.LoggerAdapter
    _groups_lock: threading.Lock
    _product_groups: dict[str, list[GrantingGroup]] | None
    _hook: Callable[[], Any]
    _write: Callable[..., int | None]
    _read_one: Callable[[str], dict[str, Any] | None]

    def _granting_groups(self) -> dict[str, list[GrantingGroup]]:
        """Canonical product -> groups granting any role on that product (discovered once per run)."""
        with self._groups_lock:
            if self._product_groups is not None:
                return self._product_groups
            hook = self._hook()
            mapping: dict[str, list[GrantingGroup]] = {}
            groups = list(hook.iter_groups_with_roles())
            grants = product_grants(groups)
            for group, _assignments in groups:
                info = GrantingGroup(
                    str(group["id"]), str(group.get("name") or group["id"]), bool(group.get("externalSynced"))
                )
                for product in sorted(grants.get(info.id, ())):
                    mapping.setdefault(product, []).append(info)
            self._product_groups = mapping
            self.log.info(
                "Product access groups (from %d groups): %s",
                len(groups),
                "; ".join(f"{product_label(p)}: {len(g)}" for p, g in sorted(mapping.items())) or "none",
            )
            return mapping

    def _granted_products(self, live: Mapping[str, Any]) -> set[str]:
        """The products the live user's groups grant."""
        member_of = {group["id"] for group in group_refs(live)}
        return {
            product
            for product, groups in self._granting_groups().items()
            if any(group.id in member_of for group in groups)
        }

    def _removal_targets(
        self, row: Mapping[str, Any], live: Mapping[str, Any]
    ) -> tuple[list[str], list[GrantingGroup], dict[str, list[GrantingGroup]]]:
        """The row's products, the granting groups the user is in, and the product -> groups map."""
        products = [canonical_product(str(p)) for p in row.get("products_to_remove") or []]
        by_product = self._granting_groups()
        member_of = {group["id"] for group in group_refs(live)}
        groups: dict[str, GrantingGroup] = {}
        for product in products:
            for group in by_product.get(product, []):
                if group.id in member_of:
                    groups[group.id] = group
        return products, sorted(groups.values(), key=lambda g: g.name), by_product

    def _remove_access(self, row: Mapping[str, Any], live: Mapping[str, Any]) -> WriteResult:
        """Remove the user from every group granting the row's products (IdP-synced ones are reported)."""
        account_id = str(row["account_id"])
        products, to_leave, by_product = self._removal_targets(row, live)
        if not to_leave:
            names = ", ".join(product_label(p) for p in products) or "the planned products"
            return WriteResult(
                "skipped", SKIPPED_CHANGED, "none",
                f"The user is no longer in any group granting {names}; nothing was changed.",
            )  # fmt: skip

        hook = self._hook()
        removed: list[GrantingGroup] = []
        not_removable: list[GrantingGroup] = []
        last_status: int | None = None
        for group in to_leave:
            if group.external_synced:
                not_removable.append(group)
                continue
            try:
                last_status = self._write(
                    "group/membership",
                    lambda group=group: hook.remove_group_member(group.id, account_id),
                    lambda group=group: (
                        group.id not in {g["id"] for g in group_refs(self._read_one(account_id) or {})}
                    ),
                )
            except AtlassianPermissionError:
                not_removable.append(group)  # synced or otherwise read-only: not fought
                continue
            except AtlassianNotFoundError:
                pass  # the membership is already gone
            removed.append(group)
        blocked = {p for p in products if any(g in not_removable for g in by_product.get(p, []))}
        return self._removal_result(row, products, removed, not_removable, last_status, blocked=blocked)

    def _removal_result(
        self,
        row: Mapping[str, Any],
        products: list[str],
        removed: list[GrantingGroup],
        not_removable: list[GrantingGroup],
        api_status: int | None,
        *,
        blocked: set[str] | None = None,
        recovered: bool = False,
    ) -> WriteResult:
        blocked = blocked or set()
        gone = [p for p in products if p not in blocked]
        removed_names = tuple(g.name for g in removed)
        blocked_names = tuple(g.name for g in not_removable)
        parts = []
        if recovered:
            parts.append(
                "Confirmed from Atlassian after an interrupted earlier attempt: the user is in no group "
                f"granting {', '.join(product_label(p) for p in products)} any more."
            )
        if removed_names:
            parts.append(
                f"Removed from {', '.join(removed_names)}: no more access to "
                f"{', '.join(product_label(p) for p in gone) or 'the products concerned'} "
                "through these groups."
            )
        if blocked_names:
            parts.append(
                f"Still in {', '.join(blocked_names)}, synced from the identity provider and read-only in "
                f"Atlassian, so {', '.join(product_label(p) for p in sorted(blocked))} access remains: "
                "remove the user from that group in the identity provider (Okta, Entra ID, Google, ...)."
            )
        detail = " ".join(parts)
        if removed or recovered:
            return WriteResult(
                "succeeded", DONE, REMOVE_PRODUCT_ACCESS, detail, api_status=api_status,
                event="actioned", event_data={"action": REMOVE_PRODUCT_ACCESS, "products": sorted(gone)},
                groups_removed=removed_names, groups_not_removable=blocked_names,
            )  # fmt: skip
        # Nothing could be done through the API: a report for the admin, no state change.
        return WriteResult(
            "skipped", REPORTED, "none", detail, api_status=None, groups_not_removable=blocked_names
        )
