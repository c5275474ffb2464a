"""Billable seats before and after a run, and what the reclaimed seats are worth.

Atlassian bills per user and product: an active Atlassian account (``account_type`` ``atlassian``,
v2 ``status`` ``active``) with access to a product takes one seat of that product. Bots and apps
(``app``), JSM portal-only customers (``customer``) and accounts that are already suspended,
deactivated or pending deletion take none. The figures are computed from the plan rows (which carry
each user's product access) and the run's result per user, so the audit page, the digest and the
manifest all tell the same story as the audit CSV.

A dry run projects "after" as if every planned write succeeded, and says so (``projected``); a live
run only counts writes that were done. Prices come from the policy's ``licensing`` section:

* ``monthly`` billing: a freed seat saves its price from the next monthly bill;
* ``annual`` billing: the seat is paid until renewal, so the saving is realised when the
  subscription renews at the lower count (``saving_realised`` says which).

This module imports neither Airflow nor pandas.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from atlassian_cleanup.action_kinds import KINDS
from atlassian_cleanup.decisions.policy import LicensingPolicy
from atlassian_cleanup.decisions.products import canonical_product
from atlassian_cleanup.decisions.records import plan_product_activity
from atlassian_cleanup.outcomes import DONE, PLANNED

#: Actions after which an account holds no seat at all (a deleted account is deactivated first).
_FREES_ALL_SEATS = frozenset(name for name, kind in KINDS.items() if kind.seats == "all")


def _is_billable(row: Mapping[str, Any]) -> bool:
    return row.get("account_type") == "atlassian" and row.get("status") == "active"


def _products(row: Mapping[str, Any]) -> set[str]:
    return set(plan_product_activity(row))


def seats_freed(row: Mapping[str, Any], result: str) -> set[str]:
    """Products whose seat this row's action frees, given its result.

    :param result: ``done`` (live write succeeded) or ``planned`` (dry run) free seats; anything
        else (failed, skipped, reported, no action) frees none.
    """
    if result not in (DONE, PLANNED) or not _is_billable(row):
        return set()
    action = row.get("proposed_action")
    held = _products(row)
    if action in _FREES_ALL_SEATS:
        return held
    if action in KINDS and KINDS[str(action)].seats == "listed_products":
        return held & {canonical_product(str(p)) for p in row.get("products_to_remove") or ()}
    return set()


def seat_figures(
    rows: Iterable[Mapping[str, Any]],
    results: Mapping[str, str],
    licensing: LicensingPolicy,
    *,
    dry_run: bool,
) -> dict[str, Any]:
    """Seats per product before and after the run, seats reclaimed and the estimated saving.

    :param rows: plan rows (``account_id``, ``account_type``, ``status``, ``product_last_active``,
        ``proposed_action``, ``products_to_remove``).
    :param results: account id -> result (``done``, ``planned``, ``failed``, ...); missing = none.
    :return: JSON-native figures; money is rounded to cents.
    """
    before: Counter[str] = Counter()
    reclaimed: Counter[str] = Counter()
    for row in rows:
        if not _is_billable(row):
            continue
        before.update(_products(row))
        reclaimed.update(seats_freed(row, results.get(str(row.get("account_id")), "")))
    products = sorted(before)
    after = {product: before[product] - reclaimed[product] for product in products}
    per_period = sum(reclaimed[product] * licensing.price_for(product) for product in products)
    monthly = per_period if licensing.billing == "monthly" else per_period / 12
    annual = per_period * 12 if licensing.billing == "monthly" else per_period
    priced = any(licensing.price_for(product) > 0 for product in products) or licensing.seat_price > 0
    return {
        "projected": dry_run,
        "before": {product: before[product] for product in products},
        "after": after,
        "reclaimed": {product: reclaimed[product] for product in products},
        "total_before": sum(before.values()),
        "total_after": sum(after.values()),
        "total_reclaimed": sum(reclaimed.values()),
        "billing": licensing.billing,
        "currency": licensing.currency,
        "priced": priced,
        "estimated_saving_per_month": round(monthly, 2) if priced else None,
        "estimated_saving_per_year": round(annual, 2) if priced else None,
        "saving_realised": "next monthly bill" if licensing.billing == "monthly" else "at renewal",
    }
