"""The pure planner: who is inactive, what to do with each user, and why.

:func:`plan_actions` takes the extracted users (:class:`~atlassian_cleanup.records.UserRecord`),
the :class:`~atlassian_cleanup.policy.Policy`, the run's date ``as_of`` and what the state store
knows about each user (:class:`UserHistory`), and returns one plan row per user (columns in
:data:`PLAN_COLUMNS`). It never calls Atlassian, never reads the clock and never changes its
inputs, so the same inputs always give the same plan. The work is done column-wise with pandas:
100,000 users plan in well under two seconds.

How a user is judged
--------------------

**Measuring inactivity.** Atlassian reports the last activity *per product*. For each product the
user has access to, the baseline is the last activity on that product; a product the user can use
but never opened is measured from the day the user was added to the org (so a never-logged-in user
counts from joining). If neither is known the product counts as inactive since forever and the
reason says "no activity ever recorded". Days are whole days between ``as_of`` and the baseline
(rounded down). A product is *past its threshold* when its days inactive reach the threshold
(``inactivity.products[product]``, else ``inactivity.default_days``): with a 90-day threshold, a
user last active exactly 90 days before ``as_of`` is due that day. ``days_inactive`` is counted
from the latest baseline over all products (the last time the user did anything anywhere).

**When a user is due.** With ``action: suspend`` or ``deactivate`` a user is due only when *every*
product they have access to is past its threshold (a user with no product access at all: when the
time since their last activity, or since joining, reaches ``default_days``); the action date is the
latest of the per-product due dates. With ``action: remove_product_access`` each product is judged
on its own: the products past their threshold are removed (e.g. Confluence removed, Jira kept) and
listed in ``products_to_remove``; the next action date is the earliest product due date.

**Warnings.** With ``warning.lead_days`` configured (say 14, 7, 1), a user whose action date is 1 to
14 days away gets a ``warn`` for the matching bucket: the smallest lead day that is at least the
days remaining (10 days away -> the 14-day warning, 3 days away -> the 7-day warning). A bucket is
not sent twice: when history says that bucket or a smaller one was already sent, the row is
``none`` / ``already_warned``. **Nobody is actioned without notice:** a user who is due but holds no
current warning (never warned, or warned in an earlier cycle) gets a final warning
(``final_warning``, lead ``min(lead_days)``) and the action date moves to ``as_of +
min(lead_days)``. A user whose current warning is younger than ``min(lead_days)`` days waits
(``notice_period``). Only a user warned at least ``min(lead_days)`` days ago is actioned. With
``lead_days: []`` users are actioned as soon as they are due.

**Deactivate needs a managed account.** Atlassian only deactivates managed accounts, so with
``action: deactivate`` an unmanaged (or unknown) account is suspended instead, and the reason says
so. ``planned_action`` is the action that will follow at ``action_date``, so warning e-mails can
name it.

**Deletion** is proposed only when history says this tool actioned the user (stage ``actioned``)
at least ``delete_after_days`` days before ``as_of``, the user shows no activity since (nor since
the warning that led to the action), was not restored since, Atlassian still shows the account as
we left it (suspended / deactivated, or without product access after ``remove_product_access``),
and the account is not already scheduled for deletion. Never otherwise: not from Atlassian data
alone, and never with ``delete_after_days: null``.

**Never touched** (``proposed_action`` ``none``, ``protected_by`` says why), checked in this order:
accounts whose type is not ``atlassian`` (apps, bots, portal-only customers, unknown), the platform
roles ``atlassian/org-admin``, ``atlassian/site-admin``, ``atlassian/user-access-admin``, members of a
group matching ``admin_groups`` (glob), the API user (``api_user_emails`` /
``api_user_account_ids``), protected account ids, e-mails, domains (subdomains included) and
groups, users added to the org fewer than ``new_user_grace_days`` days ago, and users restored by
this tool fewer than ``restored_grace_days`` days ago. E-mails, domains, group names and group
patterns are compared case-insensitively, so a protection is never lost to capitalisation.
Protection wins over everything, deletion included.

**Lifecycle.** Users the history marks ``deleted`` / ``pending_delete`` and accounts Atlassian already
shows as ``for_deletion`` get nothing. Activity seen after our warning or action (the last activity
is later than ``warned_at`` for a warned user, or later than the warning/action for an actioned
user) resets the cycle: ``none`` / ``activity_seen``, and the state store moves the user back to
active. Users Atlassian already shows as suspended, deactivated or not invited get no new warning
or action (``already_suspended`` ...), though the deletion stage above still applies to users we
actioned ourselves.

Plan rows
---------
``product_last_active`` is a JSON string (``{"confluence": null, "jira": "2026-07-15T09:00:00Z"}``,
sorted keys, ``null`` = access but never used) so the plan stays flat and CSV-friendly; the two
product columns are Python lists. Integers that may be missing use pandas' nullable ``Int64``.
:func:`plan_to_records` turns a plan into JSON-native dicts (for XCom) and :func:`summarise_plan`
counts it.

Rule ids (column ``rule``): protection ``app_account``, ``customer_account``,
``unknown_account_type``, ``admin_role``, ``admin_group``, ``api_user``, ``protected_account``,
``protected_email``, ``protected_domain``, ``protected_group``, ``new_user_grace``,
``restored_grace``; lifecycle ``deleted``, ``pending_delete``, ``already_for_deletion``,
``activity_seen``, ``dormant_delete``, ``awaiting_delete``, ``already_actioned``,
``changed_outside_tool``, ``already_suspended``, ``already_deactivated``, ``not_invited``,
``unknown_status``; inactivity ``inactive_all_products``, ``inactive_no_product_access``,
``inactive_product``, ``no_product_access``, ``final_warning``, ``notice_period``,
``warning_window``, ``already_warned``, ``active``.
"""

from __future__ import annotations

import fnmatch
import gc
import json
import math
import operator
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from atlassian_cleanup.policy import Policy
from atlassian_cleanup.products import PRODUCT_LABELS, canonical_product
from atlassian_cleanup.records import (
    PLAN_COLUMNS,
    PROPOSED_ACTIONS,
    WRITE_ACTIONS,
    UserHistory,
    UserRecord,
)

#: The plan's columns (:data:`atlassian_cleanup.records.PLAN_COLUMNS`), in order, with their types:
#:
#: ``account_id`` str; ``email``, ``name`` str or None; ``account_type`` str; ``claim_status`` str or
#: None; ``status`` str (Atlassian's composite status); ``product_last_active`` str (JSON object,
#: product -> ISO timestamp or null); ``days_inactive`` Int64 (null when nothing is known);
#: ``inactive_products`` list[str] (canonical products past their threshold); ``action_date`` str
#: ``YYYY-MM-DD`` or None; ``days_until_action`` Int64 (negative = overdue); ``rule`` str (see the
#: module docstring); ``stage`` str (the state-store stage before this run, ``active`` when unknown);
#: ``proposed_action`` str (``none|warn|suspend|deactivate|remove_product_access|delete``);
#: ``products_to_remove`` list[str] (for ``remove_product_access``, and for its warnings: the
#: products concerned); ``warning_lead_days`` Int64 (the bucket of a ``warn`` row); ``reason`` str
#: (a sentence for admins); ``protected_by`` str (``""`` or e.g. ``group:vip``, ``role:...``,
#: ``account_type:app``, ``api_user``, ``domain:acme.example``); ``planned_action`` str (the action
#: that follows at ``action_date``: equal to ``proposed_action`` on action rows, the coming action
#: on warning rows, ``none`` when nothing is planned); ``time_zone`` str or None (the user's IANA
#: zone from Atlassian, carried only to word dates in warning e-mails; decisions are in UTC).

ADMIN_ROLES: tuple[str, ...] = ("atlassian/org-admin", "atlassian/site-admin", "atlassian/user-access-admin")

_DAY = 86_400.0
_JSON = json.JSONEncoder(sort_keys=True)
_EPOCH = pd.Timestamp(0, tz="UTC")
_USER_FIELDS = (
    "account_id",
    "email",
    "name",
    "account_type",
    "claim_status",
    "status",
    "added_to_org",
    "last_active",
    "email_domain",
    "platform_roles",
    "groups",
    "product_access",
    "time_zone",
)
_ACTION_VERBS = {
    "suspend": "Suspended",
    "deactivate": "Deactivated",
    "remove_product_access": "Product access removed",
}


# --------------------------------------------------------------------------------------------------
# Helpers (column-wise)
# --------------------------------------------------------------------------------------------------


def _as_of_seconds(as_of: datetime) -> tuple[float, np.datetime64]:
    if not isinstance(as_of, datetime):
        raise TypeError(f"as_of must be a timezone-aware datetime (got {type(as_of).__name__})")
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError("as_of must be timezone-aware (pass the DAG run's logical date, which is UTC)")
    stamp = pd.Timestamp(as_of).tz_convert("UTC")
    return (stamp - _EPOCH) / pd.Timedelta(seconds=1), np.datetime64(stamp.date().isoformat(), "D")


def _seconds(values: Sequence[Any]) -> np.ndarray:
    """ISO strings / datetimes / None -> float seconds since the epoch (NaN when missing)."""
    if len(values) == 0:
        return np.empty(0, dtype=float)
    stamps = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
    return ((stamps - _EPOCH) / pd.Timedelta(seconds=1)).to_numpy(dtype=float, na_value=np.nan)


def _dates(seconds: np.ndarray) -> np.ndarray:
    """Float seconds -> ``YYYY-MM-DD`` strings (None where NaN/inf)."""
    out = np.full(len(seconds), None, dtype=object)
    ok = np.isfinite(seconds)
    if ok.any():
        days = np.floor(seconds[ok] / _DAY).astype("int64").astype("datetime64[D]")
        out[ok] = days.astype(str)
    return out


def _whole_days(as_of_s: float, seconds: np.ndarray) -> np.ndarray:
    """Whole days from ``seconds`` to ``as_of`` (NaN stays NaN; the future counts as 0)."""
    return np.maximum(np.floor((as_of_s - seconds) / _DAY), 0.0)


def _label(product: str) -> str:
    return PRODUCT_LABELS.get(product) or product.replace("-", " ").title()


def _join_or(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} or {items[-1]}"


def _user_frame(users: Sequence[UserRecord] | pd.DataFrame) -> dict[str, list[Any]]:
    """The user fields as plain lists (never the caller's objects: nothing is mutated)."""
    if isinstance(users, pd.DataFrame):
        n = len(users)
        columns: dict[str, list[Any]] = {}
        for name in _USER_FIELDS:
            if name in users.columns:
                values = users[name].astype(object).tolist()
                columns[name] = [None if (isinstance(v, float) and math.isnan(v)) else v for v in values]
            else:
                columns[name] = [None] * n
        return columns
    columns = {}
    for name in _USER_FIELDS:
        try:
            columns[name] = list(map(operator.itemgetter(name), users))
        except KeyError:  # a hand-built record without every field
            columns[name] = [user.get(name) for user in users]
    return columns


def _first_match(
    uid: np.ndarray, values: np.ndarray, matched: Mapping[Any, str | None], n: int
) -> np.ndarray:
    """Per user, the first of their ``values`` that ``matched`` maps to a label (else None)."""
    out = np.full(n, None, dtype=object)
    if len(uid) == 0:
        return out
    labels = pd.Series(values, dtype=object).map(matched).to_numpy(dtype=object)
    hit = pd.notna(labels)
    if hit.any():
        # Reverse so the first match per user is the one that survives the fancy assignment.
        hit_uid, hit_labels = uid[hit][::-1], labels[hit][::-1]
        out[hit_uid] = hit_labels
    return out


def _lists_by_user(uid: np.ndarray, values: np.ndarray, keep: np.ndarray, n: int) -> list[list[Any]]:
    """Per user, the ``values`` whose ``keep`` is true, in the given order (rows grouped by user)."""
    out: list[list[Any]] = [[] for _ in range(n)]
    for user, value in zip(uid[keep].tolist(), values[keep].tolist(), strict=True):
        out[user].append(value)
    return out


def _explode(column: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """A list column -> (row index, value) pairs."""
    uid: list[int] = []
    values: list[Any] = []
    for i, items in enumerate(column):
        if items:
            uid.extend([i] * len(items))
            values.extend(items)
    return np.asarray(uid, dtype=np.int64), np.asarray(values, dtype=object)


# --------------------------------------------------------------------------------------------------
# The planner
# --------------------------------------------------------------------------------------------------


def plan_actions(
    users: Sequence[UserRecord] | pd.DataFrame,
    policy: Policy,
    as_of: datetime,
    *,
    history: Mapping[str, UserHistory] | None = None,
    api_user_emails: Iterable[str] = (),
    api_user_account_ids: Iterable[str] = (),
) -> pd.DataFrame:
    """Plan what to do with every user; one row per input user, in input order.

    ``as_of`` is the run's logical date (timezone-aware); ``history`` maps account ids to what the
    state store knows (``None``: every user is new to this tool). The API user this DAG runs as is
    passed in ``api_user_emails`` / ``api_user_account_ids`` and is never touched. See the module
    docstring for the rules and :data:`PLAN_COLUMNS` for the columns.
    """
    # Planning allocates about a million short-lived containers and no reference cycles; with a
    # large user list alive, the cyclic GC's full passes would cost a third of the run time.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _plan_actions(
            users,
            policy,
            as_of,
            history=history,
            api_user_emails=api_user_emails,
            api_user_account_ids=api_user_account_ids,
        )
    finally:
        if gc_was_enabled:
            gc.enable()


def _plan_actions(
    users: Sequence[UserRecord] | pd.DataFrame,
    policy: Policy,
    as_of: datetime,
    *,
    history: Mapping[str, UserHistory] | None,
    api_user_emails: Iterable[str],
    api_user_account_ids: Iterable[str],
) -> pd.DataFrame:
    as_of_s, today = _as_of_seconds(as_of)
    cols = _user_frame(users)
    n = len(cols["account_id"])
    account_ids = [str(a) for a in cols["account_id"]]
    emails_lower = np.array([str(e).strip().lower() if e else "" for e in cols["email"]], dtype=object)
    statuses = np.array([str(s or "active") for s in cols["status"]], dtype=object)
    account_types = np.array([str(t or "unknown").lower() for t in cols["account_type"]], dtype=object)
    claim = np.array([c or None for c in cols["claim_status"]], dtype=object)
    added_s = _seconds(cols["added_to_org"])
    record_last_s = _seconds(cols["last_active"])

    # --- per-product long table ------------------------------------------------------------------
    accesses = [json.loads(a) if isinstance(a, str) else (a or {}) for a in cols["product_access"]]
    access_json = [_JSON.encode(access) for access in accesses]
    triples = [(i, product, seen) for i, access in enumerate(accesses) for product, seen in access.items()]
    p_uid, p_raw, p_last = (list(t) for t in zip(*triples, strict=True)) if triples else ([], [], [])
    canon = {key: canonical_product(str(key)) for key in set(p_raw)}
    p_product = [canon[key] for key in p_raw]
    pu = np.asarray(p_uid, dtype=np.int64)
    pp = np.asarray(p_product, dtype=object)
    plast = _seconds(p_last)
    if len(pu) and pd.DataFrame({"u": pu, "p": pp}).duplicated().any():
        # Two aliases of one product (jira-software and jira) in a raw frame: keep the latest.
        long = pd.DataFrame({"u": pu, "p": pp, "t": plast}).groupby(["u", "p"], sort=True)["t"].max()
        pu = long.index.get_level_values(0).to_numpy(dtype=np.int64)
        pp = long.index.get_level_values(1).to_numpy(dtype=object)
        plast = long.to_numpy(dtype=float)
    default_days = policy.inactivity.default_days
    pthreshold = (
        pd.Series(pp, dtype=object).map(dict(policy.inactivity.products)).fillna(default_days).to_numpy(float)
        if len(pp)
        else np.empty(0)
    )
    pbase = np.where(np.isnan(plast), added_s[pu] if len(pu) else plast, plast)
    pdays = _whole_days(as_of_s, pbase)  # NaN: nothing known
    puntil = np.where(np.isnan(pdays), -np.inf, pthreshold - pdays)
    pdue = puntil <= 0

    n_products = np.bincount(pu, minlength=n)
    n_due = np.bincount(pu, weights=pdue.astype(float), minlength=n).astype(np.int64)
    by_user = pd.DataFrame({"u": pu, "until": puntil, "base": pbase, "last": plast})
    grouped = by_user.groupby("u")
    max_until = grouped["until"].max().reindex(range(n)).to_numpy(float)
    min_until = grouped["until"].min().reindex(range(n)).to_numpy(float)
    max_until_due = by_user["until"].where(pdue).groupby(by_user["u"]).max().reindex(range(n)).to_numpy(float)
    product_base_max = grouped["base"].max().reindex(range(n)).to_numpy(float)
    product_last_max = grouped["last"].max().reindex(range(n)).to_numpy(float)
    last_any = np.fmax(product_last_max, record_last_s)  # latest real activity anywhere
    # Overall baseline: the latest product baseline; without products, activity or joining date.
    overall_base = np.fmax(
        np.fmax(product_base_max, record_last_s), np.where(n_products == 0, added_s, np.nan)
    )
    days_inactive = _whole_days(as_of_s, overall_base)
    overall_until = np.where(np.isnan(days_inactive), -np.inf, default_days - days_inactive)
    # Which product the latest activity was on (for the reason text).
    last_product = np.full(n, None, dtype=object)
    has_last = ~np.isnan(plast)
    if has_last.any():
        order = np.lexsort((plast[has_last], pu[has_last]))
        last_product[pu[has_last][order]] = pp[has_last][order]  # the latest per user wins

    # --- history ---------------------------------------------------------------------------------
    hist = [history.get(a) for a in account_ids] if history else [None] * n
    hist = [UserHistory.from_dict(h) if isinstance(h, Mapping) else h for h in hist]
    stage = np.array([h.stage if h else "active" for h in hist], dtype=object)
    actioned_action = np.array([h.actioned_action if h else None for h in hist], dtype=object)
    last_warned = np.array(
        [h.last_warned_lead_days if h and h.last_warned_lead_days is not None else np.nan for h in hist],
        dtype=float,
    )

    def _hist_seconds(name: str) -> np.ndarray:
        return np.array(
            [getattr(h, name).timestamp() if h and getattr(h, name) else np.nan for h in hist], dtype=float
        )

    actioned_at, restored_at, warned_at = (
        _hist_seconds(k) for k in ("actioned_at", "restored_at", "warned_at")
    )

    # --- decisions ---------------------------------------------------------------------------------
    rule = np.full(n, "", dtype=object)
    protected_by = np.full(n, "", dtype=object)
    proposed = np.full(n, "none", dtype=object)
    planned = np.full(n, "none", dtype=object)
    action_days = np.full(n, np.nan)  # days from as_of to action_date
    bucket = np.full(n, np.nan)

    def decide(mask: np.ndarray, rule_id: str, by: Any = None) -> np.ndarray:
        chosen = mask & (rule == "")
        rule[chosen] = rule_id
        if by is not None:
            protected_by[chosen] = by[chosen] if isinstance(by, np.ndarray) else by
        return chosen

    # 1. Protection, most fundamental first.
    decide(account_types == "app", "app_account", "account_type:app")
    decide(account_types == "customer", "customer_account", "account_type:customer")
    decide(account_types != "atlassian", "unknown_account_type", "account_type:" + account_types)

    r_uid, r_val = _explode(cols["platform_roles"])
    role_hit = _first_match(r_uid, r_val, {r: f"role:{r}" for r in ADMIN_ROLES}, n)
    decide(pd.notna(role_hit), "admin_role", role_hit)

    g_uid, g_val = _explode(cols["groups"])
    unique_groups = set(g_val.tolist())
    # Case-insensitive on purpose: a protection that misses "Site-Admins" is worse than one that
    # over-matches.
    admin_patterns = [pattern.lower() for pattern in policy.admin_groups]
    admin_map = {
        g: f"admin_group:{g}"
        for g in unique_groups
        if any(fnmatch.fnmatchcase(str(g).lower(), pattern) for pattern in admin_patterns)
    }
    admin_hit = _first_match(g_uid, g_val, admin_map, n)
    decide(pd.notna(admin_hit), "admin_group", admin_hit)

    api_emails = {e.strip().lower() for e in api_user_emails if e}
    api_ids = {str(a) for a in api_user_account_ids if a}
    ids = np.array(account_ids, dtype=object)
    decide(np.isin(emails_lower, list(api_emails)) | np.isin(ids, list(api_ids)), "api_user", "api_user")
    decide(np.isin(ids, list(policy.protected.account_ids)), "protected_account", "account_id:" + ids)
    decide(np.isin(emails_lower, list(policy.protected.emails)), "protected_email", "email:" + emails_lower)

    domains = [
        (d or (e.rsplit("@", 1)[-1] if "@" in e else "")).lower()
        for d, e in zip(cols["email_domain"], emails_lower, strict=True)
    ]
    domain_map: dict[str, str | None] = {}
    for domain in set(domains):
        for protected in policy.protected.domains:
            if domain and (domain == protected or domain.endswith(f".{protected}")):
                domain_map[domain] = f"domain:{protected}"
                break
    domain_hit = pd.Series(domains, dtype=object).map(domain_map).to_numpy(dtype=object)
    decide(pd.notna(domain_hit), "protected_domain", domain_hit)

    protected_groups = {g.lower() for g in policy.protected.groups}
    group_map = {g: f"group:{g}" for g in unique_groups if str(g).lower() in protected_groups}
    group_hit = _first_match(g_uid, g_val, group_map, n)
    decide(pd.notna(group_hit), "protected_group", group_hit)

    since_added = _whole_days(as_of_s, added_s)
    decide(since_added < policy.new_user_grace_days, "new_user_grace", "new_user_grace")  # NaN -> False
    since_restored = np.floor((as_of_s - restored_at) / _DAY)
    decide(since_restored < policy.restored_grace_days, "restored_grace", "restored_grace")

    # 2. Lifecycle: finished, reset by activity, deletion.
    decide(stage == "deleted", "deleted")
    decide(stage == "pending_delete", "pending_delete")
    decide(statuses == "for_deletion", "already_for_deletion")

    # Activity after our warning (or after the warning/action that led to our action) resets.
    action_ref = np.where(~np.isnan(warned_at) & (warned_at <= actioned_at), warned_at, actioned_at)
    reset_ref = np.where(stage == "warned", warned_at, np.where(stage == "actioned", action_ref, np.nan))
    decide(last_any > reset_ref, "activity_seen")  # NaN compares False: no activity, no reset

    actioned = (stage == "actioned") & (rule == "")
    removal_left = actioned & (actioned_action == "remove_product_access") & (n_products > 0)
    in_place = np.where(
        actioned_action == "suspend",
        np.isin(statuses, ["suspended", "deactivated"]),
        np.where(actioned_action == "deactivate", statuses == "deactivated", n_products == 0),
    )
    known_action = np.isin(actioned_action, list(_ACTION_VERBS))
    delete_after = policy.delete_after_days
    waiting = actioned & ~removal_left
    decide(waiting & (np.isnan(actioned_at) | ~known_action), "already_actioned")
    decide(waiting & (restored_at >= actioned_at), "already_actioned")
    if delete_after is None:
        decide(waiting, "already_actioned")
    else:
        # Atlassian no longer shows the account as we left it: someone restored it by hand.
        decide(waiting & ~in_place, "changed_outside_tool")
        delete_days = np.ceil((actioned_at + delete_after * _DAY - as_of_s) / _DAY)
        since_action = np.floor((as_of_s - actioned_at) / _DAY)
        chosen = decide(waiting & (since_action >= delete_after), "dormant_delete")
        proposed[chosen] = planned[chosen] = "delete"
        action_days[chosen] = delete_days[chosen]
        chosen = decide(waiting, "awaiting_delete")
        planned[chosen] = "delete"
        action_days[chosen] = delete_days[chosen]

    # 3. Atlassian status: no new warning or action for users who are not plainly active.
    decide(statuses == "suspended", "already_suspended")
    decide(statuses == "deactivated", "already_deactivated")
    decide(statuses == "not_invited", "not_invited")
    decide(statuses != "active", "unknown_status")

    # 4. Inactivity.
    if policy.action == "remove_product_access":
        decide(n_products == 0, "no_product_access")
        due = n_due > 0
        until = np.where(due, max_until_due, min_until)
        act_rule = np.full(n, "inactive_product", dtype=object)
        act = np.full(n, "remove_product_access", dtype=object)
    else:
        has_products = n_products > 0
        due = np.where(has_products, n_due == n_products, overall_until <= 0)
        until = np.where(has_products, max_until, overall_until)
        act_rule = np.where(has_products, "inactive_all_products", "inactive_no_product_access").astype(
            object
        )
        if policy.action == "deactivate":
            act = np.where(claim == "managed", "deactivate", "suspend").astype(object)
        else:
            act = np.full(n, "suspend", dtype=object)
    open_ = rule == ""
    action_days[open_] = until[open_]
    planned[open_ & due] = act[open_ & due]

    lead = sorted(policy.warning.lead_days)
    if lead:
        min_lead, max_lead = lead[0], lead[-1]
        current_warning = (stage == "warned") & ~np.isnan(warned_at) & ~np.isnan(last_warned)
        notice_ok = current_warning & (as_of_s - warned_at >= min_lead * _DAY)
        chosen = decide(open_ & due & ~current_warning, "final_warning")
        proposed[chosen] = "warn"
        bucket[chosen] = min_lead
        action_days[chosen] = min_lead
        chosen = decide(open_ & due & ~notice_ok, "notice_period")
        action_days[chosen] = np.ceil((warned_at[chosen] + min_lead * _DAY - as_of_s) / _DAY)
        window = open_ & ~due & (until > 0) & (until <= max_lead)
        lead_arr = np.asarray(lead, dtype=float)
        window_bucket = lead_arr[
            np.clip(np.searchsorted(lead_arr, np.where(window, until, 0)), 0, len(lead) - 1)
        ]
        chosen = decide(window & current_warning & (last_warned <= window_bucket), "already_warned")
        planned[chosen] = act[chosen]
        chosen = decide(window, "warning_window")
        proposed[chosen] = "warn"
        planned[chosen] = act[chosen]
        bucket[chosen] = window_bucket[chosen]
    # Due, and warned long enough ago (or warnings are off): act.
    chosen = open_ & due & (rule == "")
    rule[chosen] = act_rule[chosen]
    proposed[chosen] = act[chosen]
    decide(open_, "active")

    # --- presentation ------------------------------------------------------------------------------
    action_date = np.full(n, None, dtype=object)
    finite = np.isfinite(action_days)
    if finite.any():
        action_date[finite] = (today + action_days[finite].astype("int64")).astype(str)

    is_remove = policy.action == "remove_product_access"
    order = np.lexsort((pp, pu))  # by user, then product: the lists come out sorted
    inactive_products = _lists_by_user(pu[order], pp[order], pdue[order], n)
    remove_lists = [[] for _ in range(n)]
    if is_remove:
        remove_row = np.isin(
            rule, ["inactive_product", "final_warning", "notice_period", "warning_window", "already_warned"]
        )
        # Products due by the action date (for action rows: the products past their threshold).
        horizon = np.maximum(np.nan_to_num(action_days, nan=0.0), 0.0)
        concerned = remove_row[pu] & (puntil <= horizon[pu])
        remove_lists = _lists_by_user(pu[order], pp[order], concerned[order], n)

    reasons = _reasons(
        n=n,
        rule=rule,
        protected_by=protected_by,
        policy=policy,
        planned=planned,
        account_types=account_types,
        statuses=statuses,
        stage=stage,
        actioned_action=actioned_action,
        days_inactive=days_inactive,
        since_added=since_added,
        since_restored=since_restored,
        added=_dates(added_s),
        last_any=_dates(last_any),
        last_product=last_product,
        action_date=action_date,
        action_days=action_days,
        bucket=bucket,
        last_warned=last_warned,
        warned=_dates(warned_at),
        actioned=_dates(actioned_at),
        restored=_dates(restored_at),
        reset_ref=reset_ref,
        warned_at=warned_at,
        product_rows=(order, pu, pp, pdays, pthreshold, plast),
        inactive_products=inactive_products,
        remove_lists=remove_lists,
    )

    def ints(values: np.ndarray) -> pd.arrays.IntegerArray:
        return pd.array(np.where(np.isfinite(values), values, np.nan), dtype="Float64").astype("Int64")

    plan = pd.DataFrame(
        {
            "account_id": pd.Series(account_ids, dtype=object),
            "email": pd.Series(cols["email"], dtype=object),
            "name": pd.Series(cols["name"], dtype=object),
            "account_type": pd.Series(cols["account_type"], dtype=object).fillna("unknown"),
            "claim_status": pd.Series(cols["claim_status"], dtype=object),
            "status": pd.Series(statuses, dtype=object),
            "product_last_active": pd.Series(access_json, dtype=object),
            "days_inactive": ints(days_inactive),
            "inactive_products": pd.Series(inactive_products, dtype=object),
            "action_date": pd.Series(action_date, dtype=object),
            "days_until_action": ints(action_days),
            "rule": pd.Series(rule, dtype=object),
            "stage": pd.Series(stage, dtype=object),
            "proposed_action": pd.Series(proposed, dtype=object),
            "products_to_remove": pd.Series(remove_lists, dtype=object),
            "warning_lead_days": ints(bucket),
            "reason": pd.Series(reasons, dtype=object),
            "protected_by": pd.Series(protected_by, dtype=object),
            "planned_action": pd.Series(planned, dtype=object),
            "time_zone": pd.Series(cols["time_zone"], dtype=object),
        },
        columns=list(PLAN_COLUMNS),
    )
    return plan


# --------------------------------------------------------------------------------------------------
# Reasons
# --------------------------------------------------------------------------------------------------

_FIXED_TEXT = {
    "app_account": "Protected: app account (apps, bots and integrations are never warned or actioned).",
    "customer_account": "Protected: customer account (portal-only JSM customers are never actioned).",
    "api_user": "Protected: this is the API user the DAG runs as.",
    "protected_account": "Protected: account id listed in protected.account_ids.",
    "protected_email": "Protected: e-mail address listed in protected.emails.",
    "deleted": "Deleted by this tool earlier (stage deleted); nothing to do.",
    "pending_delete": "Deletion already requested by this tool; Atlassian's 14-day cancellable grace "
    "period is running.",
    "already_for_deletion": "Atlassian already shows the account as scheduled for deletion "
    "(status for_deletion); nothing to do.",
    "already_suspended": "Already suspended in Atlassian (status suspended); no new warning or action.",
    "already_deactivated": "Already deactivated in Atlassian (status deactivated); no new warning or action.",
    "not_invited": "Not a member of the directory (status not_invited); no warning or action.",
    "no_product_access": "No product access to remove.",
}
_ACTION_WORDS = {
    "suspend": "suspension",
    "deactivate": "deactivation",
    "remove_product_access": "product access removal",
    "delete": "deletion",
}
# Rules whose reason lists the products one by one.
_DETAIL_RULES = (
    "inactive_all_products",
    "inactive_product",
    "final_warning",
    "notice_period",
    "warning_window",
    "already_warned",
)


def _days(value: float) -> str:
    count = int(value)
    return f"{count} day" if count == 1 else f"{count} days"


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _join_and(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def _reasons(
    *,
    n: int,
    rule: np.ndarray,
    protected_by: np.ndarray,
    policy: Policy,
    planned: np.ndarray,
    account_types: np.ndarray,
    statuses: np.ndarray,
    stage: np.ndarray,
    actioned_action: np.ndarray,
    days_inactive: np.ndarray,
    since_added: np.ndarray,
    since_restored: np.ndarray,
    added: np.ndarray,
    last_any: np.ndarray,
    last_product: np.ndarray,
    action_date: np.ndarray,
    action_days: np.ndarray,
    bucket: np.ndarray,
    last_warned: np.ndarray,
    warned: np.ndarray,
    actioned: np.ndarray,
    restored: np.ndarray,
    reset_ref: np.ndarray,
    warned_at: np.ndarray,
    product_rows: tuple[Any, ...],
    inactive_products: list[list[str]],
    remove_lists: list[list[str]],
) -> list[str]:
    """One sentence per user saying why, with the numbers and dates an admin checks."""
    order, pu, pp, pdays, pthreshold, plast = product_rows
    # (product, days or None, threshold, last active date or None), only for rows that need them.
    products: dict[int, list[tuple[str, int | None, int, str | None]]] = {}
    wanted = np.isin(rule, _DETAIL_RULES)
    if len(pu):
        rows = order[wanted[pu[order]]]
        last_dates = _dates(plast[rows])
        for user, product, days, threshold, last in zip(
            pu[rows].tolist(),
            pp[rows].tolist(),
            pdays[rows].tolist(),
            pthreshold[rows].tolist(),
            last_dates,
            strict=True,
        ):
            entry = (product, None if math.isnan(days) else int(days), int(threshold), last)
            products.setdefault(user, []).append(entry)

    default_days = policy.inactivity.default_days
    is_remove = policy.action == "remove_product_access"
    min_lead = min(policy.warning.lead_days) if policy.warning.lead_days else 0
    delete_after = policy.delete_after_days

    def last_text(i: int) -> str:
        if last_any[i]:
            where = f" in {_label(last_product[i])}" if last_product[i] else ""
            return f"last active {last_any[i]}{where}"
        if added[i]:
            return f"never active since joining on {added[i]}"
        return "no activity ever recorded"

    def thresholds(rows: Sequence[tuple[Any, ...]]) -> str:
        values = {row[2] for row in rows} or {default_days}
        if len(values) == 1:
            return f"threshold {values.pop()}"
        return "thresholds " + ", ".join(f"{_label(row[0])} {row[2]}" for row in rows)

    def all_products(i: int) -> str:
        rows = products.get(i, [])
        if not rows:
            if math.isnan(days_inactive[i]):
                return f"No product access and no activity ever recorded (threshold {default_days})."
            return (
                f"No product access and no activity for {_days(days_inactive[i])} "
                f"(threshold {default_days}); {last_text(i)}."
            )
        names = _join_or([_label(row[0]) for row in rows])
        if math.isnan(days_inactive[i]):
            return f"No activity ever recorded in {names} ({thresholds(rows)})."
        return f"No activity in {names} for {_days(days_inactive[i])} ({thresholds(rows)}); {last_text(i)}."

    def some_products(i: int, names: Sequence[str]) -> str:
        parts = []
        for product, days, threshold, last in products.get(i, []):
            if product not in names:
                continue
            if days is None:
                parts.append(f"no activity ever recorded in {_label(product)} (threshold {threshold})")
                continue
            since = f"last active {last}" if last else f"never used since joining on {added[i]}"
            parts.append(
                f"no activity in {_label(product)} for {_days(days)} (threshold {threshold}, {since})"
            )
        return _upper_first("; ".join(parts)) + "."

    def coming(i: int) -> str:
        """What happens next: the action, or the products whose access goes."""
        if is_remove:
            return f"removal of {_join_and([_label(p) for p in remove_lists[i]])} access"
        return _ACTION_WORDS.get(planned[i], str(planned[i]))

    def fallback(i: int) -> str:
        if policy.action == "deactivate" and planned[i] == "suspend":
            return (
                " Unmanaged account: Atlassian only allows deactivating managed accounts; suspending instead."
            )
        return ""

    def core(i: int) -> str:
        return some_products(i, remove_lists[i]) if is_remove else all_products(i)

    def verb(i: int) -> str:
        return _ACTION_VERBS.get(actioned_action[i] or "", "Actioned")

    def text(i: int) -> str:
        r = rule[i]
        by = str(protected_by[i]).split(":", 1)[-1]
        if r == "unknown_account_type":
            return (
                f"Protected: account type '{account_types[i]}' is not a normal user account; "
                "only 'atlassian' accounts are actioned."
            )
        if r == "admin_role":
            return f"Protected: holds the admin role {by}."
        if r == "admin_group":
            return f"Protected: member of admin group {by} (matches admin_groups)."
        if r == "protected_domain":
            return f"Protected: e-mail domain is covered by protected.domains entry {by}."
        if r == "protected_group":
            return f"Protected: member of protected group {by}."
        if r == "new_user_grace":
            return (
                f"New user: added to the org on {added[i]} ({_days(since_added[i])} ago), within the "
                f"{policy.new_user_grace_days}-day new-user grace period."
            )
        if r == "restored_grace":
            return (
                f"Restored by this tool on {restored[i]} ({_days(max(since_restored[i], 0))} ago), within "
                f"the {policy.restored_grace_days}-day grace period after a restore."
            )
        if r == "activity_seen":
            if reset_ref[i] == warned_at[i]:
                event = f"the warning sent on {warned[i]}"
            else:
                event = f"this tool's action on {actioned[i]}"
            return f"Activity seen ({last_text(i)}) after {event}; access kept, the user is active again."
        if r == "dormant_delete":
            return (
                f"{verb(i)} by this tool on {actioned[i]} ({_days(delete_after - action_days[i])} ago, "
                f"delete after {delete_after}), no activity since and not restored: proposing deletion "
                "(Atlassian keeps it cancellable for 14 days)."
            )
        if r == "awaiting_delete":
            return (
                f"{verb(i)} by this tool on {actioned[i]}; if still inactive it will be proposed for "
                f"deletion on {action_date[i]} (in {_days(action_days[i])})."
            )
        if r == "already_actioned":
            when = actioned[i] or "an unknown date"
            if delete_after is None:
                why = "deletion is off (delete_after_days is null)"
            elif restored[i] and actioned[i] and restored[i] >= actioned[i]:
                why = f"restored on {restored[i]}, so it is not deleted"
            else:
                why = "the action or its date is not recorded, so it is never deleted automatically"
            return f"{verb(i)} by this tool on {when}; {why}."
        if r == "changed_outside_tool":
            return (
                f"{verb(i)} by this tool on {actioned[i]}, but Atlassian now shows status {statuses[i]}: "
                "changed outside this tool, so it is not deleted."
            )
        if r == "unknown_status":
            return f"Atlassian status '{statuses[i]}' is not 'active'; no warning or action."
        if r in ("inactive_all_products", "inactive_no_product_access"):
            warned_text = ""
            if stage[i] == "warned" and warned[i]:
                bucket_text = "" if math.isnan(last_warned[i]) else f" ({int(last_warned[i])}-day warning)"
                warned_text = f" Warned on {warned[i]}{bucket_text}."
            return f"{all_products(i)}{warned_text} Proposing {planned[i]}.{fallback(i)}"
        if r == "inactive_product":
            kept = [product for product, *_ in products.get(i, []) if product not in remove_lists[i]]
            keep = f" Keeping {_join_and([_label(p) for p in kept])}." if kept else ""
            return f"{core(i)} Removing {_join_and([_label(p) for p in remove_lists[i]])} access.{keep}"
        if r == "final_warning":
            return (
                f"{core(i)} Not warned yet: sending the final {min_lead}-day warning; {coming(i)} on "
                f"{action_date[i]} at the earliest.{fallback(i)}"
            )
        if r == "notice_period":
            return (
                f"{core(i)} Warned on {warned[i]}; {coming(i)} waits until {action_date[i]} so the user "
                f"has at least {_days(min_lead)} of notice.{fallback(i)}"
            )
        if r == "warning_window":
            detail = core(i)
            return (
                f"{_upper_first(coming(i))} due on {action_date[i]} (in {_days(action_days[i])}): "
                f"{detail[:1].lower()}{detail[1:-1]}. Sending the {int(bucket[i])}-day warning.{fallback(i)}"
            )
        if r == "already_warned":
            return (
                f"{int(last_warned[i])}-day warning already sent on {warned[i]}; {coming(i)} due on "
                f"{action_date[i]} (in {_days(action_days[i])})."
            )
        # active
        when = (
            f" Earliest action date {action_date[i]} (in {_days(action_days[i])})." if action_date[i] else ""
        )
        if math.isnan(days_inactive[i]):
            return f"Not inactive long enough: {last_text(i)}.{when}"
        past = inactive_products[i]
        still = ""
        if past and not is_remove:
            still = (
                f" Past the threshold on {_join_and([_label(p) for p in past])} only; "
                f"{policy.action} needs every product inactive."
            )
        return f"Active: {last_text(i)} ({_days(days_inactive[i])} ago).{still}{when}"

    return [_FIXED_TEXT[r] if r in _FIXED_TEXT else text(i) for i, r in enumerate(rule.tolist())]


# --------------------------------------------------------------------------------------------------
# Plan consumers
# --------------------------------------------------------------------------------------------------


def _native(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return _native(value.item())
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_native(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _native(v) for k, v in value.items()}
    return value


def plan_to_records(plan: pd.DataFrame) -> list[dict[str, Any]]:
    """The plan as JSON-native dicts (no numpy/pandas scalars, no NaN), in row order."""
    columns: dict[str, list[Any]] = {}
    for name in plan.columns:
        series = plan[name]
        if isinstance(series.dtype, pd.Int64Dtype):
            columns[name] = [None if v is pd.NA else int(v) for v in series.tolist()]
        else:
            plain = (str, bool, int, type(None))
            columns[name] = [v if type(v) in plain else _native(v) for v in series.astype(object).tolist()]
    names = list(columns)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # see plan_actions: many new containers, no cycles
    try:
        return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]
    finally:
        if gc_was_enabled:
            gc.enable()


def summarise_plan(plan: pd.DataFrame | Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts for logs and run summaries, from a plan frame or its records (the XCom form).

    ``{"total", "by_action": {action: n}, "by_rule": {rule: n}, "writes": n, "protected": n,
    "protected_by_kind": {kind: n}}``; ``by_action`` lists every action (zeros included) and a
    protection kind is the part of ``protected_by`` before ``:`` (``group``, ``role``, ``api_user``).
    """

    def column(name: str) -> list[Any]:
        if isinstance(plan, pd.DataFrame):
            return plan[name].tolist()
        return [row.get(name) for row in plan]

    actions = Counter(action or "none" for action in column("proposed_action"))
    kinds = Counter(str(p).split(":", 1)[0] for p in column("protected_by") if p)
    return {
        "total": len(plan),
        "by_action": {action: int(actions.get(action, 0)) for action in PROPOSED_ACTIONS},
        "by_rule": dict(sorted(Counter(column("rule")).items())),
        "writes": int(sum(actions.get(a, 0) for a in WRITE_ACTIONS)),
        "protected": int(sum(kinds.values())),
        "protected_by_kind": dict(sorted(kinds.items())),
    }
