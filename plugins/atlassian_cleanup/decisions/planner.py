"""The pure planner: who is inactive, what to do with each user, and why.

:func:`plan_actions` takes the extracted users (:class:`~atlassian_cleanup.decisions.records.UserRecord`),
the :class:`~atlassian_cleanup.decisions.policy.Policy`, the run's date ``as_of`` and what the state store
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
reason says "no activity ever recorded". Days are calendar days from the UTC date of the baseline
to the UTC date of ``as_of`` (:mod:`atlassian_cleanup.days`, the one day arithmetic of every count
here: inactivity, grace periods, notice, deletion), so the count matches the dates in the reason. A
product is *past its threshold* when its days inactive reach the threshold
(``inactivity.products[product]``, else ``inactivity.default_days``): with a 90-day threshold, a
user last active exactly 90 days before ``as_of`` is due that day. ``days_inactive`` is counted
from the latest baseline over all products (the last time the user did anything anywhere).

**When a user is due.** With ``action: suspend`` or ``deactivate`` a user is due only when *every*
product they have access to is past its threshold (a user with no product access at all: when the
time since their last activity, or since joining, reaches ``default_days``); the action date is the
latest of the per-product due dates. With ``action: remove_product_access`` each product is judged
on its own: the products past their threshold are removed (e.g. Confluence removed, Jira kept) and
listed in ``products_to_remove``; the next action date is the earliest product due date.

**Warnings and the notice period.** With ``warning.lead_days`` configured (say 14, 7, 1), the
notice is ``warning.min_notice_days`` (default: the largest lead day, 14): **nobody is actioned
sooner than that many days after the first warning of their cycle** (the state store's
``first_warned_at``; the latest warning when it is not known). The action date is the later of the
day the user is due and the end of that notice; a user not warned yet would be warned today, so
their action date is at least ``as_of + notice``, also on a first run over a backlog. A user whose
inactivity puts them at most ``max(lead_days)`` days from due gets a ``warn`` for the bucket
matching the days left to that action date: the smallest lead day that is at least the days
remaining (10 days away -> the 14-day warning, 3 days away -> the 7-day warning). A bucket is not
sent twice: when history says that bucket or a smaller one was already sent, the row is ``none`` /
``already_warned`` (``notice_period`` when the user is already due and waits out the notice). A
user who is due but holds no current warning (never warned, or warned in an earlier cycle) gets
``final_warning``. Only a user first warned at least the notice ago is actioned. With
``lead_days: []`` users are actioned as soon as they are due.

**Users without a visible e-mail address** are planned like everyone else; ``notify_warnings``
lists them to the admins instead of e-mailing them and, with ``warning.without_email:
action_after_notice`` (the default), records that listing as their warning, so their notice runs
from the first listing; with ``hold`` nothing is recorded and they stay at ``final_warning``. The
reason says which applies.

**Deactivate needs an account the organization manages.** Atlassian only deactivates managed
accounts that no identity provider provisions, so with ``action: deactivate`` an unmanaged (or
unknown) account, and a managed one whose ``managementSource`` is SCIM / an identity provider, is
suspended instead, and the reason says which. ``planned_action`` is the action that will follow at
``action_date``, so warning e-mails name exactly that action.

**Deletion** is proposed only when history says this tool actioned the user (stage ``actioned``)
at least ``delete_after_days`` days before ``as_of``, the user shows no activity since (nor since
the warning that led to the action), was not restored since, Atlassian still shows the account as
we left it (suspended / deactivated, or without product access after ``remove_product_access``),
and the account is not already scheduled for deletion. Never otherwise: not from Atlassian data
alone, and never with ``delete_after_days: null``. With ``delete_notice_days`` (N > 0) the user
first gets a ``delete_notice`` (rule ``deletion_notice``) once the deletion is N days away or
less, and the deletion waits until N days after the notice (``history.delete_notice_at``), so
nobody is deleted with less notice, even when the key was switched on after they were due.

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
``activity_seen``, ``dormant_delete``, ``awaiting_delete``, ``deletion_notice``, ``already_actioned``,
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
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from atlassian_cleanup.action_kinds import KINDS, LIFECYCLE_ACTIONS
from atlassian_cleanup.days import SECONDS_PER_DAY, days_between, utc_day
from atlassian_cleanup.decisions.account_facts import DELETE_GRACE_DAYS
from atlassian_cleanup.decisions.policy import Policy
from atlassian_cleanup.decisions.products import canonical_product, product_label
from atlassian_cleanup.decisions.records import (
    PLAN_COLUMNS,
    PROPOSED_ACTIONS,
    STAGES,
    WRITE_ACTIONS,
    UserHistory,
    UserRecord,
    is_idp_managed,
    valid_email_address,
)
from atlassian_cleanup.decisions.still_as_left import still_as_left
from atlassian_cleanup.decisions.user_table import UserTable

#: The plan's columns (:data:`atlassian_cleanup.decisions.records.PLAN_COLUMNS`), in order, with their types:
#:
#: ``account_id`` str; ``email``, ``name`` str or None; ``account_type`` str; ``claim_status`` str or
#: None; ``status`` str (Atlassian's composite status); ``product_last_active`` str (JSON object,
#: product -> ISO timestamp or null); ``days_inactive`` Int64 (null when nothing is known);
#: ``inactive_products`` list[str] (canonical products past their threshold); ``action_date`` str
#: ``YYYY-MM-DD`` or None; ``days_until_action`` Int64 (negative = overdue); ``rule`` str (see the
#: module docstring); ``stage`` str (the state-store stage before this run, ``active`` when unknown);
#: ``proposed_action`` str (``none|warn|suspend|deactivate|remove_product_access|delete|delete_notice``);
#: ``products_to_remove`` list[str] (for ``remove_product_access``, and for its warnings: the
#: products concerned); ``warning_lead_days`` Int64 (the bucket of a ``warn`` row); ``reason`` str
#: (a sentence for admins); ``protected_by`` str (``""`` or e.g. ``group:vip``, ``role:...``,
#: ``account_type:app``, ``api_user``, ``domain:acme.example``); ``planned_action`` str (the action
#: that follows at ``action_date``: equal to ``proposed_action`` on action rows, the coming action
#: on warning rows, ``none`` when nothing is planned); ``time_zone`` str or None (the user's IANA
#: zone from Atlassian, carried only to word dates in warning e-mails; decisions are in UTC).

ADMIN_ROLES: tuple[str, ...] = ("atlassian/org-admin", "atlassian/site-admin", "atlassian/user-access-admin")

_EPOCH = pd.Timestamp(0, tz="UTC")
#: Rule ids, encoded as small integers while planning (0 = not decided yet).
_RULES: tuple[str, ...] = (
    "",
    "app_account",
    "customer_account",
    "unknown_account_type",
    "admin_role",
    "admin_group",
    "api_user",
    "protected_account",
    "protected_email",
    "protected_domain",
    "protected_group",
    "new_user_grace",
    "restored_grace",
    "deleted",
    "pending_delete",
    "already_for_deletion",
    "activity_seen",
    "already_actioned",
    "changed_outside_tool",
    "dormant_delete",
    "awaiting_delete",
    "deletion_notice",
    "already_suspended",
    "already_deactivated",
    "not_invited",
    "unknown_status",
    "no_product_access",
    "final_warning",
    "notice_period",
    "already_warned",
    "warning_window",
    "inactive_all_products",
    "inactive_no_product_access",
    "inactive_product",
    "active",
)
_R = {name: code for code, name in enumerate(_RULES)}
_ACTIONS: tuple[str, ...] = PROPOSED_ACTIONS  # none, warn, suspend, deactivate, remove_product_access, delete
_A = {name: code for code, name in enumerate(_ACTIONS)}
#: Products per user are kept as bit masks while planning when there are at most this many.
_MAX_MASK_PRODUCTS = 62


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


def _objects(values: Sequence[Any]) -> np.ndarray:
    """A 1-D object array of ``values`` (never a 2-D array, whatever the items are)."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def _object_table(items: Sequence[Any]) -> np.ndarray:
    """A 1-D object array holding ``items`` themselves (lists stay list objects, not a 2-D array)."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def _dates(seconds: np.ndarray) -> np.ndarray:
    """Float seconds -> ``YYYY-MM-DD`` strings (None where NaN/inf); equal dates share one string."""
    out = np.full(len(seconds), None, dtype=object)
    ok = np.isfinite(seconds)
    if ok.any():
        days = utc_day(seconds[ok]).astype("int64")
        low, high = int(days.min()), int(days.max())
        if high - low < 1_000_000:  # a table of every day in the range: no sorting
            table = np.arange(low, high + 1).astype("datetime64[D]").astype(str).astype(object)
            out[ok] = table[days - low]
        else:
            unique, inverse = np.unique(days, return_inverse=True)
            out[ok] = unique.astype("datetime64[D]").astype(str).astype(object)[inverse]
    return out


def _whole_days(as_of_s: float, seconds: np.ndarray) -> np.ndarray:
    """Calendar days from the UTC date of ``seconds`` to the run's date (NaN stays NaN; the future
    counts as 0): :func:`atlassian_cleanup.days.days_between`, the one day arithmetic."""
    return np.maximum(days_between(seconds, as_of_s), 0.0)


def _join_or(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} or {items[-1]}"


class _Segments:
    """Per-user reductions over a long table (one row per user and product, say)."""

    def __init__(self, uid: np.ndarray, n: int) -> None:
        self.uid, self.n = uid, n

    def reduce(self, ufunc: np.ufunc, values: np.ndarray, fill: Any = np.nan) -> np.ndarray:
        """Per user, ``ufunc`` over the user's rows (``np.fmax`` / ``np.fmin`` skip NaN); ``fill`` if none."""
        out = np.full(self.n, fill, dtype=np.asarray(values).dtype if fill is not np.nan else float)
        if len(self.uid):
            ufunc.at(out, self.uid, values)  # faster than reduceat when most users have 1-3 rows
        return out


def _first_match(uid: np.ndarray, codes: np.ndarray, labels: Sequence[str | None], n: int) -> np.ndarray:
    """Per user, the label of the first of their values that has one (``labels[code]``), else None."""
    out = np.full(n, None, dtype=object)
    hit_label = np.array([label is not None for label in labels], dtype=bool)
    if len(uid) == 0 or not hit_label.any():
        return out
    hit = hit_label[codes]
    if hit.any():
        # Reverse so the first match per user is the one that survives the fancy assignment.
        out[uid[hit][::-1]] = _objects(labels)[codes[hit]][::-1]
    return out


def _isin(values: np.ndarray, wanted: Iterable[Any], n: int) -> np.ndarray:
    """Which of ``values`` (an object array) are in ``wanted``."""
    wanted = set(wanted)
    if not wanted:
        return np.zeros(n, dtype=bool)
    if len(wanted) <= 8:  # element-wise equality runs in C; hashing a million strings does not
        hit = np.zeros(n, dtype=bool)
        for value in wanted:
            hit |= values == value
        return hit
    return np.fromiter(map(wanted.__contains__, values), dtype=bool, count=len(values))


def _unique_ints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` for integers, without sorting when their range is small."""
    if len(values) == 0:
        return values[:0], values[:0].astype(np.int64)
    low, high = int(values.min()), int(values.max())
    if high - low > 4_000_000:
        unique, inverse = np.unique(values, return_inverse=True)
        return unique, inverse.reshape(-1)
    shifted = (values - low).astype(np.int64)
    present = np.flatnonzero(np.bincount(shifted, minlength=high - low + 1))
    lookup = np.zeros(high - low + 1, dtype=np.int64)
    lookup[present] = np.arange(len(present))
    return (present + low).astype(values.dtype), lookup[shifted]


def _groups(parts: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Group rows whose ``parts`` (integral numbers, NaN allowed) are all equal.

    :return: ``(group of each row, first row of each group)``.
    """
    size = len(parts[0])
    key = np.zeros(size, dtype=np.int64)
    radix = 1
    for part in parts:
        values = np.asarray(part, dtype=float)
        known = ~np.isnan(values)
        low = values[known].min() if known.any() else 0.0
        span = int(values[known].max() - low) + 2 if known.any() else 1
        if radix * span >= 2**62:  # re-number the groups so far before the key overflows
            key = pd.factorize(key)[0].astype(np.int64)
            radix = int(key.max()) + 1 if size else 1
        key = key * span + np.where(known, values - low + 1, 0).astype(np.int64)
        radix *= span
    group, unique = pd.factorize(key)
    first = np.empty(len(unique), dtype=np.int64)
    first[group[::-1]] = np.arange(size - 1, -1, -1)  # the last write per group is its first row
    return group, first


def _by_key(keys: np.ndarray, make: Callable[[Any], Any]) -> np.ndarray:
    """``make(key)`` for every element of ``keys``, computed once per distinct key."""
    if len(keys) == 0:
        return np.empty(0, dtype=object)
    if np.issubdtype(keys.dtype, np.integer):
        unique, inverse = _unique_ints(keys)
    else:
        unique, inverse = np.unique(keys, return_inverse=True)
    return _objects([make(key) for key in unique.tolist()])[inverse]


# --------------------------------------------------------------------------------------------------
# The planner
# --------------------------------------------------------------------------------------------------


def plan_actions(
    users: Sequence[UserRecord] | pd.DataFrame | UserTable | Mapping[str, Any],
    policy: Policy,
    as_of: datetime,
    *,
    history: Mapping[str, UserHistory] | None = None,
    api_user_emails: Iterable[str] = (),
    api_user_account_ids: Iterable[str] = (),
    not_deactivatable: Mapping[str, str | None] | None = None,
) -> pd.DataFrame:
    """Plan what to do with every user; one row per input user, in input order.

    ``users`` is a :class:`~atlassian_cleanup.decisions.user_table.UserTable` (what ``extract_users``
    produces), its JSON form, a list of :class:`UserRecord` dicts or a DataFrame of them.
    ``as_of`` is the run's logical date (timezone-aware); ``history`` maps account ids to what the
    state store knows (``None``: every user is new to this tool). The API user this DAG runs as is
    passed in ``api_user_emails`` / ``api_user_account_ids`` and is never touched. See the module
    docstring for the rules and :data:`PLAN_COLUMNS` for the columns. ``not_deactivatable`` maps
    the account ids Atlassian's user-management API refuses to deactivate to its reason key
    (``accountNotManaged``, ``externalDirectory.scim``, ...): with ``action: deactivate`` they are
    planned (and warned) for suspension.
    """
    # Planning allocates many short-lived containers and no reference cycles; with a large user
    # table alive, the cyclic GC's full passes would cost a large share of the run time.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _plan_actions(
            UserTable.from_any(users),
            policy,
            as_of,
            history=history,
            api_user_emails=api_user_emails,
            api_user_account_ids=api_user_account_ids,
            not_deactivatable=not_deactivatable,
        )
    finally:
        if gc_was_enabled:
            gc.enable()


def _without_removed_products(
    pu: np.ndarray,
    pc: np.ndarray,
    plast: np.ndarray,
    products: Sequence[str],
    removals: Sequence[tuple[int, tuple[str, ...]]],
    actioned_at: np.ndarray,
    restored_at: np.ndarray,
    table: UserTable,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Drop the product rows this tool already removed, until the access comes back.

    A product removed by ``remove_product_access`` is gone for that user even if an Atlassian read
    still lists it (a stale group read, an activity-only entry): planning it again would warn about
    a product the user no longer has and keep the user from ever reaching deletion. It counts again
    when the access evidently came back: this tool restored the user after the removal, or the user
    was active on that product after it. ``removals`` lists ``(user index, removed products)``; the
    latest removal is at ``actioned_at[user]``. Returns the kept rows and the plan's evidence column
    (the removed products left out of it too).
    """
    evidence = table.objects("product_last_active")
    if not removals or not len(pu):
        return pu, pc, plast, evidence
    code = {product: i for i, product in enumerate(products)}
    width = max(len(products), 1)
    wanted: dict[int, float] = {}  # user * width + product code -> removal time
    for user, removed in removals:
        at = actioned_at[user]
        if np.isnan(at) or restored_at[user] >= at:
            continue  # no removal time, or restored since: the groups (and the access) came back
        for product in removed:
            if product in code:
                wanted[user * width + code[product]] = at
    if not wanted:
        return pu, pc, plast, evidence
    wanted_keys = np.fromiter(wanted, dtype=np.int64, count=len(wanted))
    cutoffs = np.fromiter(wanted.values(), dtype=float, count=len(wanted))
    position = pd.Index(wanted_keys).get_indexer(pu * width + pc)
    hit = position >= 0
    drop = hit & ~(plast > np.where(hit, cutoffs[np.maximum(position, 0)], np.inf))  # NaN: never used
    if not drop.any():
        return pu, pc, plast, evidence
    evidence = evidence.copy()
    gone: dict[int, set[str]] = {}
    for user, product in zip(pu[drop].tolist(), pc[drop].tolist(), strict=True):
        gone.setdefault(user, set()).add(products[product])
    for user, names in gone.items():
        seen = json.loads(evidence[user] or "{}")
        evidence[user] = json.dumps(
            {k: v for k, v in seen.items() if canonical_product(str(k)) not in names}, sort_keys=True
        )
    keep = ~drop
    return pu[keep], pc[keep], plast[keep], evidence


class _Coded:
    """A dictionary-encoded column of the user table as numpy codes + the distinct values."""

    def __init__(self, table: UserTable, name: str) -> None:
        self.codes = table.array(name)
        self.values = list(table.values(name))

    def mask(self, test: Callable[[Any], bool]) -> np.ndarray:
        return np.array([bool(test(value)) for value in self.values], dtype=bool)[self.codes]

    def take(self, convert: Callable[[Any], Any] = lambda value: value) -> np.ndarray:
        return _objects([convert(value) for value in self.values])[self.codes]


def _plan_actions(
    table: UserTable,
    policy: Policy,
    as_of: datetime,
    *,
    history: Mapping[str, UserHistory] | None,
    api_user_emails: Iterable[str],
    api_user_account_ids: Iterable[str],
    not_deactivatable: Mapping[str, str | None] | None = None,
) -> pd.DataFrame:
    as_of_s, today = _as_of_seconds(as_of)
    n = len(table)
    ids = table.objects("account_id")
    raw_emails = table.objects("email")
    types = _Coded(table, "account_type")
    statuses = _Coded(table, "status")
    claims = _Coded(table, "claim_status")
    # Who manages the account decides whether Atlassian lets us deactivate it: only claimed accounts
    # that no identity provider provisions (SCIM). 0 = deactivatable, 1 = unmanaged, 2 = SCIM.
    sources = _Coded(table, "management_source")
    idp = sources.mask(is_idp_managed) if len(sources.codes) == n else np.zeros(n, dtype=bool)
    suspend_why = np.where(
        ~claims.mask(lambda v: v == "managed"), _WHY_UNMANAGED, np.where(idp, _WHY_IDP, 0)
    ).astype(np.int8)
    if not_deactivatable:
        # What Atlassian's ``GET /users/{id}/manage`` answered for the accounts it would not let us
        # deactivate (checked by compute_inactivity before anyone is warned or deactivated).
        refused = pd.Index(list(not_deactivatable), dtype=object)
        rows = refused.get_indexer(pd.Index(ids, dtype=object)) >= 0
        reasons = [not_deactivatable[str(a)] for a in ids[rows].tolist()]
        suspend_why[rows] = np.array(
            [_WHY_OF_REFUSAL.get(r or "", _WHY_REFUSED) for r in reasons], dtype=np.int8
        )
    type_names = [str(value or "unknown").lower() for value in types.values]
    status_names = [str(value or "active") for value in statuses.values]
    status_is = {name: statuses.mask(lambda v, name=name: str(v or "active") == name) for name in (
        "active", "suspended", "deactivated", "not_invited", "for_deletion")}  # fmt: skip
    added_s = table.array("added_to_org")
    record_last_s = table.array("last_active")

    # --- history ---------------------------------------------------------------------------------
    stage_code = np.zeros(n, dtype=np.int8)  # index into STAGES; 0 = active
    act_code = np.zeros(n, dtype=np.int8)  # 0 None, 1.. index into acted + 1
    acted: list[str] = []
    removals: list[tuple[int, tuple[str, ...]]] = []  # (user, products this tool removed)
    last_warned = np.full(n, np.nan)
    actioned_at, restored_at, warned_at = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    first_warned_at = np.full(n, np.nan)
    delete_at, notice_at = np.full(n, np.nan), np.full(n, np.nan)
    removed_from_directory = np.zeros(n, dtype=bool)
    if history:
        keys = list(history)
        found = pd.Index(keys, dtype=object).get_indexer(pd.Index(ids, dtype=object))
        rows = np.flatnonzero(found >= 0)
        entries = [history[keys[k]] for k in found[rows].tolist()]
        entries = [UserHistory.from_dict(h) if isinstance(h, Mapping) else h for h in entries]
        for row, h in zip(rows.tolist(), entries, strict=True):
            if h is None:
                continue
            stage_code[row] = STAGES.index(h.stage)
            if h.actioned_action is not None:
                if h.actioned_action not in acted:
                    acted.append(h.actioned_action)
                act_code[row] = acted.index(h.actioned_action) + 1
            if h.last_warned_lead_days is not None:
                last_warned[row] = h.last_warned_lead_days
            if h.actioned_at:
                actioned_at[row] = h.actioned_at.timestamp()
            if h.restored_at:
                restored_at[row] = h.restored_at.timestamp()
            if h.warned_at:
                warned_at[row] = h.warned_at.timestamp()
            if h.first_warned_at:
                first_warned_at[row] = h.first_warned_at.timestamp()
            if h.delete_requested_at:
                delete_at[row] = h.delete_requested_at.timestamp()
            if h.delete_notice_at:
                notice_at[row] = h.delete_notice_at.timestamp()
            removed_from_directory[row] = h.deletion_kind == "remove_from_directory"
            if h.removed_products:
                removals.append((row, h.removed_products))

    # --- per-product long table ------------------------------------------------------------------
    pu = np.repeat(np.arange(n, dtype=np.int64), table.array("product_access.counts"))
    raw_keys = table.values("product_access")
    canon_of_raw = [canonical_product(str(key)) for key in raw_keys]
    products = sorted(set(canon_of_raw))  # canonical products; a code orders like the name
    product_code = {product: code for code, product in enumerate(products)}
    to_canon = np.array([product_code[c] for c in canon_of_raw], dtype=np.int64)
    pc = to_canon[table.array("product_access.codes")] if len(pu) else np.empty(0, dtype=np.int64)
    plast = table.array("product_access.last")
    if len(pu) and len(products) < len(raw_keys) and pd.Series(pu * len(products) + pc).duplicated().any():
        # Two aliases of one product (jira-software and jira) for one user: keep the latest.
        long = pd.DataFrame({"u": pu, "p": pc, "t": plast}).groupby(["u", "p"], sort=True)["t"].max()
        pu = long.index.get_level_values(0).to_numpy(dtype=np.int64)
        pc = long.index.get_level_values(1).to_numpy(dtype=np.int64)
        plast = long.to_numpy(dtype=float)
    pu, pc, plast, evidence = _without_removed_products(
        pu, pc, plast, products, removals, actioned_at, restored_at, table
    )
    default_days = policy.inactivity.default_days
    thresholds = np.array(
        [float(policy.inactivity.products.get(product, default_days)) for product in products], dtype=float
    )
    pthreshold = thresholds[pc] if len(pc) else np.empty(0)
    pbase = np.where(np.isnan(plast), added_s[pu] if len(pu) else plast, plast)
    pdays = _whole_days(as_of_s, pbase)  # NaN: nothing known
    puntil = np.where(np.isnan(pdays), -np.inf, pthreshold - pdays)
    pdue = puntil <= 0

    n_products = np.bincount(pu, minlength=n)
    n_due = np.bincount(pu, weights=pdue.astype(float), minlength=n).astype(np.int64)
    per_user = _Segments(pu, n)
    max_until = per_user.reduce(np.fmax, puntil)
    min_until = per_user.reduce(np.fmin, puntil)
    max_until_due = per_user.reduce(np.fmax, np.where(pdue, puntil, np.nan))
    product_base_max = per_user.reduce(np.fmax, pbase)
    product_last_max = per_user.reduce(np.fmax, plast)
    last_any = np.fmax(product_last_max, record_last_s)  # latest real activity anywhere
    # Overall baseline: the latest product baseline; without products, activity or joining date.
    overall_base = np.fmax(
        np.fmax(product_base_max, record_last_s), np.where(n_products == 0, added_s, np.nan)
    )
    days_inactive = _whole_days(as_of_s, overall_base)
    overall_until = np.where(np.isnan(days_inactive), -np.inf, default_days - days_inactive)
    # Which product the latest activity was on (for the reason text); ties: the later row wins.
    last_pc = np.full(n, -1, dtype=np.int64)
    latest = ~np.isnan(plast)
    if latest.any():
        latest &= plast == product_last_max[pu]
        last_pc[pu[latest]] = pc[latest]

    def stage_is(name: str) -> np.ndarray:
        return stage_code == STAGES.index(name)

    def acted_is(*names: str) -> np.ndarray:
        codes = [acted.index(name) + 1 for name in names if name in acted]
        return np.isin(act_code, codes) if codes else np.zeros(n, dtype=bool)

    # --- decisions ---------------------------------------------------------------------------------
    rule = np.zeros(n, dtype=np.int8)
    protected_by = np.full(n, "", dtype=object)
    proposed = np.zeros(n, dtype=np.int8)
    planned = np.zeros(n, dtype=np.int8)
    action_days = np.full(n, np.nan)  # days from as_of to action_date
    bucket = np.full(n, np.nan)

    def decide(mask: np.ndarray, rule_id: str, by: Any = None) -> np.ndarray:
        chosen = mask & (rule == 0)
        rule[chosen] = _R[rule_id]
        if by is not None and chosen.any():
            if callable(by):
                protected_by[chosen] = by(chosen)
            elif isinstance(by, np.ndarray):
                protected_by[chosen] = by[chosen]
            else:
                protected_by[chosen] = by
        return chosen

    # 1. Protection, most fundamental first.
    type_code = types.codes
    type_names_arr = _objects(type_names)
    decide(types.mask(lambda v: str(v or "unknown").lower() == "app"), "app_account", "account_type:app")
    decide(
        types.mask(lambda v: str(v or "unknown").lower() == "customer"),
        "customer_account",
        "account_type:customer",
    )
    decide(
        types.mask(lambda v: str(v or "unknown").lower() != "atlassian"),
        "unknown_account_type",
        lambda chosen: "account_type:" + type_names_arr[type_code[chosen]],
    )

    r_uid = np.repeat(np.arange(n, dtype=np.int64), table.array("platform_roles.counts"))
    role_hit = _first_match(
        r_uid,
        table.array("platform_roles.codes"),
        [f"role:{r}" if r in ADMIN_ROLES else None for r in table.values("platform_roles")],
        n,
    )
    decide(pd.notna(role_hit), "admin_role", role_hit)

    g_uid = np.repeat(np.arange(n, dtype=np.int64), table.array("groups.counts"))
    group_names = table.values("groups")
    g_codes = table.array("groups.codes")
    # Case-insensitive on purpose: a protection that misses "Site-Admins" is worse than one that
    # over-matches.
    admin_patterns = [pattern.lower() for pattern in policy.admin_groups]
    admin_hit = _first_match(
        g_uid,
        g_codes,
        [
            f"admin_group:{g}"
            if any(fnmatch.fnmatchcase(str(g).lower(), pattern) for pattern in admin_patterns)
            else None
            for g in group_names
        ],
        n,
    )
    decide(pd.notna(admin_hit), "admin_group", admin_hit)

    # E-mails compare stripped and in lower case; the table lists the few addresses whose key
    # differs from the address as reported, so no per-user string work is needed here.
    api_emails = {e.strip().lower() for e in api_user_emails if e}
    api_ids = {str(a) for a in api_user_account_ids if a}
    protected = policy.protected
    email_keys = table.email_keys()

    def email_key(i: int) -> str:
        return email_keys.get(i) or raw_emails[i] or ""

    def email_in(wanted: Iterable[str]) -> np.ndarray:
        hit = _isin(raw_emails, wanted, n)
        wanted = set(wanted)
        for i, key in email_keys.items():
            hit[i] = key in wanted
        return hit

    def with_prefix(prefix: str, key: Callable[[int], str]) -> Callable[[np.ndarray], np.ndarray]:
        return lambda chosen: _objects([f"{prefix}{key(i)}" for i in np.flatnonzero(chosen).tolist()])

    decide(email_in(api_emails) | _isin(ids, api_ids, n), "api_user", "api_user")
    account_hit = _isin(ids, protected.account_ids, n)
    decide(account_hit, "protected_account", with_prefix("account_id:", ids.__getitem__))
    decide(email_in(protected.emails), "protected_email", with_prefix("email:", email_key))

    if protected.domains:
        given = _Coded(table, "email_domain")
        domains = given.take(lambda d: d.lower() if d else None)
        for i in np.flatnonzero(pd.isna(domains)).tolist():
            key = email_key(i)
            domains[i] = (key.rsplit("@", 1)[-1] if "@" in key else "").lower()
        codes, unique = pd.factorize(domains)
        labels: list[str | None] = []
        for domain in unique.tolist():
            labels.append(None)
            for entry in protected.domains:
                if domain and (domain == entry or domain.endswith(f".{entry}")):
                    labels[-1] = f"domain:{entry}"
                    break
        domain_hit = _objects(labels)[codes] if len(labels) else np.full(n, None, dtype=object)
        decide(pd.notna(domain_hit), "protected_domain", domain_hit)

    protected_groups = {g.lower() for g in protected.groups}
    group_hit = _first_match(
        g_uid,
        g_codes,
        [f"group:{g}" if str(g).lower() in protected_groups else None for g in group_names],
        n,
    )
    decide(pd.notna(group_hit), "protected_group", group_hit)

    since_added = _whole_days(as_of_s, added_s)
    decide(since_added < policy.new_user_grace_days, "new_user_grace", "new_user_grace")  # NaN -> False
    since_restored = days_between(restored_at, as_of_s)
    decide(since_restored < policy.restored_grace_days, "restored_grace", "restored_grace")

    # 2. Lifecycle: finished, reset by activity, deletion.
    decide(stage_is("deleted"), "deleted")
    decide(stage_is("pending_delete"), "pending_delete")
    decide(status_is["for_deletion"], "already_for_deletion")

    # Activity after our warning (or after the warning/action that led to our action) resets.
    action_ref = np.where(~np.isnan(warned_at) & (warned_at <= actioned_at), warned_at, actioned_at)
    reset_ref = np.where(stage_is("warned"), warned_at, np.where(stage_is("actioned"), action_ref, np.nan))
    decide(last_any > reset_ref, "activity_seen")  # NaN compares False: no activity, no reset

    actioned = stage_is("actioned") & (rule == 0)
    removal_left = actioned & acted_is("remove_product_access") & (n_products > 0)
    in_place = still_as_left(
        _objects([None, *acted])[act_code], _objects(status_names)[statuses.codes], n_products > 0
    )
    known_action = acted_is(*LIFECYCLE_ACTIONS)
    delete_after = policy.delete_after_days
    waiting = actioned & ~removal_left
    decide(waiting & (np.isnan(actioned_at) | ~known_action), "already_actioned")
    decide(waiting & (restored_at >= actioned_at), "already_actioned")
    if delete_after is None:
        decide(waiting, "already_actioned")
    else:
        # Atlassian no longer shows the account as we left it: someone restored it by hand.
        decide(waiting & ~in_place, "changed_outside_tool")
        since_action = days_between(actioned_at, as_of_s)
        delete_days = delete_after - since_action
        notice = policy.delete_notice_days
        if notice:
            # Nobody is deleted without notice: the deletion comes `notice` days after the notice.
            noticed = ~np.isnan(notice_at)
            after_notice = notice - days_between(notice_at, as_of_s)
            delete_days = np.where(noticed, np.fmax(delete_days, after_notice), delete_days)
            chosen = decide(waiting & ~noticed & (delete_days <= notice), "deletion_notice")
            proposed[chosen] = _A["delete_notice"]
            planned[chosen] = _A["delete"]
            action_days[chosen] = np.fmax(delete_days[chosen], notice)
        chosen = decide(waiting & (delete_days <= 0), "dormant_delete")
        proposed[chosen] = planned[chosen] = _A["delete"]
        action_days[chosen] = delete_days[chosen]
        chosen = decide(waiting, "awaiting_delete")
        planned[chosen] = _A["delete"]
        action_days[chosen] = delete_days[chosen]

    # 3. Atlassian status: no new warning or action for users who are not plainly active.
    decide(status_is["suspended"], "already_suspended")
    decide(status_is["deactivated"], "already_deactivated")
    decide(status_is["not_invited"], "not_invited")
    decide(~status_is["active"], "unknown_status")

    # 4. Inactivity.
    if policy.action == "remove_product_access":
        decide(n_products == 0, "no_product_access")
        due = n_due > 0
        until = np.where(due, max_until_due, min_until)
        act_rule = np.full(n, _R["inactive_product"], dtype=np.int8)
        act = np.full(n, _A["remove_product_access"], dtype=np.int8)
    else:
        has_products = n_products > 0
        due = np.where(has_products, n_due == n_products, overall_until <= 0)
        until = np.where(has_products, max_until, overall_until)
        act_rule = np.where(
            has_products, _R["inactive_all_products"], _R["inactive_no_product_access"]
        ).astype(np.int8)
        if policy.action == "deactivate":
            act = np.where(suspend_why == 0, _A["deactivate"], _A["suspend"]).astype(np.int8)
        else:
            act = np.full(n, _A["suspend"], dtype=np.int8)
    open_ = rule == 0
    action_days[open_] = until[open_]
    planned[open_ & due] = act[open_ & due]

    lead = sorted(policy.warning.lead_days)
    # The notice period, in one place: nobody is actioned sooner than ``notice`` days after the
    # first warning of their cycle. Without a known first warning the latest one counts (a later
    # start can only lengthen the notice); a user not warned yet would be warned today.
    notice = policy.warning.notice_days
    current_warning = stage_is("warned") & ~np.isnan(warned_at) & ~np.isnan(last_warned)
    first_warned_at = np.where(current_warning & np.isnan(first_warned_at), warned_at, first_warned_at)
    first_warned_at[~current_warning] = np.nan
    if lead:
        max_lead = lead[-1]
        notice_left = np.where(current_warning, notice - days_between(first_warned_at, as_of_s), notice)
        # Days until the action may happen: when the user is due, and not before the notice is over.
        effective = np.maximum(until, notice_left)
        window = open_ & (until <= max_lead) & (effective > 0)
        lead_arr = np.asarray(lead, dtype=float)
        window_bucket = lead_arr[
            np.clip(np.searchsorted(lead_arr, np.where(window, effective, 0)), 0, len(lead) - 1)
        ]
        sent = window & current_warning & (last_warned <= window_bucket)
        chosen = decide(sent & due, "notice_period")
        action_days[chosen] = effective[chosen]
        chosen = decide(sent, "already_warned")
        planned[chosen] = act[chosen]
        action_days[chosen] = effective[chosen]
        chosen = decide(window & due & ~current_warning, "final_warning")
        proposed[chosen] = _A["warn"]
        bucket[chosen] = window_bucket[chosen]
        action_days[chosen] = effective[chosen]
        chosen = decide(window, "warning_window")
        proposed[chosen] = _A["warn"]
        planned[chosen] = act[chosen]
        bucket[chosen] = window_bucket[chosen]
        action_days[chosen] = effective[chosen]
    # Due, and warned long enough ago (or warnings are off): act.
    chosen = open_ & due & (rule == 0)
    rule[chosen] = act_rule[chosen]
    proposed[chosen] = act[chosen]
    decide(open_, "active")

    # --- presentation ------------------------------------------------------------------------------
    action_date = np.full(n, None, dtype=object)
    finite = np.isfinite(action_days)
    if finite.any():
        offsets = action_days[finite].astype("int64")
        unique, inverse = _unique_ints(offsets)
        action_date[finite] = (today + unique).astype(str).astype(object)[inverse]

    is_remove = policy.action == "remove_product_access"
    masks = _ProductSets(products, pu, pc, n, per_user)
    due_masks = masks.masks(pdue)
    inactive_products = masks.lists(pdue, due_masks)
    remove_lists: np.ndarray | None = None
    remove_masks = np.zeros(n, dtype=np.int64)  # the same products as remove_lists, as bit masks
    if is_remove:
        removal_rules = ("inactive_product", "final_warning", "notice_period", "warning_window")
        removal_rules += ("already_warned",)
        remove_row = np.isin(rule, [_R[r] for r in removal_rules])
        # Products due by the action date (for action rows: the products past their threshold).
        horizon = np.maximum(np.nan_to_num(action_days, nan=0.0), 0.0)
        concerned = remove_row[pu] & (puntil <= horizon[pu])
        remove_masks = masks.masks(concerned)
        remove_lists = masks.lists(concerned, remove_masks)

    # Users in the notice pipeline whose e-mail cannot be used: listed to the admins instead of
    # e-mailed; the reason says what warning.without_email makes of them.
    no_email = np.zeros(n, dtype=bool)
    if lead:
        rows = np.flatnonzero(np.isin(rule, [_R[r] for r in _NO_EMAIL_RULES]))
        no_email[rows] = [valid_email_address(e) is None for e in raw_emails[rows].tolist()]

    planned_names = _objects(_ACTIONS)[planned]
    reasons = _Reasons(
        n=n,
        policy=policy,
        rule=rule,
        protected_by=protected_by,
        planned=planned,
        planned_names=planned_names,
        suspend_why=suspend_why,
        account_types=type_names_arr[type_code] if n else np.empty(0, dtype=object),
        statuses=_objects(status_names)[statuses.codes] if n else np.empty(0, dtype=object),
        stage=stage_code,
        acted=acted,
        act_code=act_code,
        days_inactive=days_inactive,
        since_added=since_added,
        since_restored=since_restored,
        added=_dates(added_s),
        added_s=added_s,
        last_any=_dates(last_any),
        last_any_s=last_any,
        last_pc=last_pc,
        products=products,
        action_date=action_date,
        action_days=action_days,
        bucket=bucket,
        last_warned=last_warned,
        warned=_dates(warned_at),
        actioned=_dates(actioned_at),
        restored=_dates(restored_at),
        since_action=days_between(actioned_at, as_of_s),
        managed=claims.mask(lambda v: v == "managed"),
        delete_requested=_dates(delete_at),
        grace_ends=_dates(delete_at + DELETE_GRACE_DAYS * SECONDS_PER_DAY),
        grace_over=days_between(delete_at, as_of_s) >= DELETE_GRACE_DAYS,
        removed_from_directory=removed_from_directory,
        noticed=_dates(notice_at),
        reset_ref=reset_ref,
        warned_at=warned_at,
        first_warned_at=first_warned_at,
        first_warned=_dates(first_warned_at),
        no_email=no_email,
        product_rows=(pu, pc, pdays, pthreshold, plast),
        masks=masks,
        due_masks=due_masks,
        inactive_products=inactive_products,
        remove_lists=remove_lists,
        remove_masks=remove_masks,
    ).texts()

    def ints(values: np.ndarray) -> pd.arrays.IntegerArray:
        ok = np.isfinite(values)
        return pd.arrays.IntegerArray(np.where(ok, values, 0).astype(np.int64), ~ok)

    def column(values: Any) -> pd.Series:
        return pd.Series(values, dtype=object, copy=False)  # the arrays are this plan's own

    plan = pd.DataFrame(
        {
            "account_id": column(ids),
            "email": column(raw_emails),
            "name": column(table.objects("name")),
            "account_type": column(types.take(lambda v: "unknown" if v is None else v)),
            "claim_status": column(claims.take()),
            "status": column(statuses.take(lambda v: str(v or "active"))),
            "product_last_active": column(evidence),
            "days_inactive": ints(days_inactive),
            "inactive_products": column(inactive_products),
            "action_date": column(action_date),
            "days_until_action": ints(action_days),
            "rule": column(_objects(_RULES)[rule]),
            "stage": column(_objects(STAGES)[stage_code]),
            "proposed_action": column(_objects(_ACTIONS)[proposed]),
            "products_to_remove": column(
                remove_lists if remove_lists is not None else _object_table([[]])[np.zeros(n, dtype=int)]
            ),
            "warning_lead_days": ints(bucket),
            "reason": column(reasons),
            "protected_by": column(protected_by),
            "planned_action": column(planned_names),
            "time_zone": column(_Coded(table, "time_zone").take()),
        },
        columns=list(PLAN_COLUMNS),
        copy=False,  # the columns are new arrays already; consolidating them would copy them all
    )
    return plan


class _ProductSets:
    """Per-user sets of canonical products (bit masks while there are few products)."""

    def __init__(
        self, products: list[str], pu: np.ndarray, pc: np.ndarray, n: int, per_user: _Segments
    ) -> None:
        self.products, self.pu, self.pc, self.n = products, pu, pc, n
        self.per_user = per_user
        self.use_masks = len(products) <= _MAX_MASK_PRODUCTS

    def masks(self, keep: np.ndarray | None = None) -> np.ndarray:
        """Per user, the bit mask of their products (those where ``keep`` is true)."""
        out = np.zeros(self.n, dtype=np.int64)
        if not self.use_masks or not len(self.pu):
            return out
        bits = np.left_shift(np.int64(1), self.pc)
        if keep is not None:
            bits = np.where(keep, bits, 0)
        return self.per_user.reduce(np.bitwise_or, bits, fill=np.int64(0))

    def names(self, mask: int) -> list[str]:
        return [product for bit, product in enumerate(self.products) if mask >> bit & 1]

    def lists(self, keep: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        """Per user, the sorted list of their products where ``keep`` is true.

        Users with the same products share one list object (a million users have a handful of
        distinct product sets): plan cells are read-only.
        """
        if not self.use_masks:
            out: list[list[str]] = [[] for _ in range(self.n)]
            order = np.lexsort((self.pc, self.pu))
            rows = order[keep[order]]
            for user, code in zip(self.pu[rows].tolist(), self.pc[rows].tolist(), strict=True):
                out[user].append(self.products[code])
            return _object_table(out)
        masks = self.masks(keep) if masks is None else masks
        unique, inverse = _unique_ints(masks)
        return _object_table([self.names(mask) for mask in unique.tolist()])[inverse]


# --------------------------------------------------------------------------------------------------
# Reasons
# --------------------------------------------------------------------------------------------------

_FIXED_TEXT = {
    "app_account": "Protected: app account (apps, bots and integrations are never warned or actioned).",
    "customer_account": "Protected: customer account (portal-only JSM customers are never actioned).",
    "api_user": "Protected: this is the API user the DAG runs as.",
    "protected_account": "Protected: account id listed in protected.account_ids.",
    "protected_email": "Protected: e-mail address listed in protected.emails.",
    "already_for_deletion": "Atlassian already shows the account as scheduled for deletion "
    "(status for_deletion); nothing to do.",
    "already_suspended": "Already suspended in Atlassian (status suspended); no new warning or action.",
    "already_deactivated": "Already deactivated in Atlassian (status deactivated); no new warning or action.",
    "not_invited": "Not a member of the directory (status not_invited); no warning or action.",
    "no_product_access": "No product access to remove.",
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
# Rules of users being warned, waiting out their notice or actioned after it (warning.without_email).
_WARN_RULES = ("final_warning", "warning_window")
_NO_EMAIL_RULES = (
    *_WARN_RULES,
    "notice_period",
    "already_warned",
    "inactive_all_products",
    "inactive_no_product_access",
    "inactive_product",
)
_NO_EMAIL_NOTES = {
    ("action_after_notice", True): " No visible e-mail address: listed to the admins in the digest instead "
    "of e-mailed; actioned after the same notice, counted from the first listing "
    "(warning.without_email: action_after_notice).",
    ("action_after_notice", False): " No visible e-mail address: listed to the admins in the digest "
    "instead of e-mailed (warning.without_email: action_after_notice).",
    ("hold", True): " No visible e-mail address: reported to the admins and held; never actioned without "
    "a warning (warning.without_email: hold).",
}
_UNMANAGED = " Unmanaged account: Atlassian only allows deactivating managed accounts; suspending instead."
_IDP_MANAGED = (
    " Account managed by the identity provider (SCIM): Atlassian does not let the organization "
    "deactivate it; suspending instead."
)
_REFUSED = " Atlassian's user management API does not allow deactivating this account; suspending instead."
#: Why ``deactivate`` becomes ``suspend`` for a user (0: it does not).
_WHY_UNMANAGED, _WHY_IDP, _WHY_REFUSED = 1, 2, 3
_WHY_OF_REFUSAL = {"accountNotManaged": _WHY_UNMANAGED, "externalDirectory.scim": _WHY_IDP}


def _noun(action: str) -> str:
    """The action as a noun in reasons ("suspension"); an action without one is named as it is."""
    kind = KINDS.get(action)
    return (kind.noun if kind else None) or action


def _days(value: float) -> str:
    count = int(value)
    return f"{count} day" if count == 1 else f"{count} days"


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _labels_and(products: Iterable[str]) -> str:
    """Products as people read them, joined by "and" ("Jira and Confluence")."""
    return _join_and([product_label(p) for p in products])


def _labels_or(products: Iterable[str]) -> str:
    """Products as people read them, joined by "or" ("Jira or Confluence")."""
    return _join_or([product_label(p) for p in products])


def _join_and(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


class _Reasons:
    """One sentence per user saying why, with the numbers and dates an admin checks.

    The frequent rules are worded column-wise: each varying part (a date, a day count, a product
    list) is worded once per distinct value and the sentences are joined in one pass per rule. With
    ``remove_product_access`` a sentence lists each product to remove with its own days and date,
    so nearly every user's sentence differs: each product's detail is worded once per distinct
    detail on the long table and the details are joined per user (:meth:`removal_sentences`). The
    rarer rules (protections, lifecycle) are worded row by row; :meth:`_text` is the reference
    wording every column-wise sentence must equal.
    """

    def __init__(self, **arrays: Any) -> None:
        self.__dict__.update(arrays)
        policy: Policy = self.policy
        self.all_masks = self.masks.masks()
        # Day numbers stand for the dates in the sentences (equal day, equal date text).
        self.last_day = utc_day(self.last_any_s)
        self.added_day_if_never = np.where(np.isnan(self.last_day), utc_day(self.added_s), np.nan)
        self.warned_day = utc_day(self.warned_at)
        self.first_warned_day = utc_day(self.first_warned_at)
        self.default_days = policy.inactivity.default_days
        self.is_remove = policy.action == "remove_product_access"
        self.notice = policy.warning.notice_days
        self.email_notes = self._email_notes()
        self.delete_after = policy.delete_after_days

    # -- shared pieces ------------------------------------------------------------------------------

    def _email_notes(self) -> np.ndarray:
        """Per user, the sentence added for a user without a visible e-mail address ("" for others)."""
        notes = np.full(self.n, "", dtype=object)
        choice = self.policy.warning.without_email
        for code in np.unique(self.rule[self.no_email]).tolist():
            rows = np.flatnonzero(self.no_email & (self.rule == code))
            notes[rows] = _NO_EMAIL_NOTES.get((choice, _RULES[code] in _WARN_RULES), "")
        return notes

    def _deletion_kind(self, i: int) -> str:
        """What a deletion will be for this account (Atlassian deletes managed accounts only)."""
        if self.managed[i]:
            return f"Atlassian keeps it cancellable for {DELETE_GRACE_DAYS} days from the deletion request"
        return (
            "an unmanaged account: Atlassian does not delete it, it is removed from the directory "
            "instead, with no grace period"
        )

    def _label_of(self, code: int) -> str | None:
        return product_label(self.products[code]) if code >= 0 else None

    def _thresholds(self, products: Sequence[str]) -> str:
        values = {int(self.policy.inactivity.products.get(p, self.default_days)) for p in products} or {
            self.default_days
        }
        if len(values) == 1:
            return f"threshold {values.pop()}"
        return "thresholds " + ", ".join(
            f"{product_label(p)} {int(self.policy.inactivity.products.get(p, self.default_days))}"
            for p in products
        )

    def _fallback(self, key: int) -> str:
        """The fallback sentence for ``planned code * 4 + suspend_why`` (see :meth:`fallbacks`)."""
        planned_code, why = divmod(int(key), 4)
        if self.policy.action == "deactivate" and planned_code == _A["suspend"]:
            return {_WHY_IDP: _IDP_MANAGED, _WHY_REFUSED: _REFUSED}.get(why, _UNMANAGED)
        return ""

    # -- column-wise pieces (``rows`` are user indexes) ---------------------------------------------

    def last_texts(self, rows: np.ndarray) -> list[str]:
        where = _by_key(self.last_pc[rows], lambda code: f" in {self._label_of(code)}" if code >= 0 else "")
        return [
            f"last active {last}{w}"
            if last
            else (f"never active since joining on {added}" if added else "no activity ever recorded")
            for last, w, added in zip(
                self.last_any[rows].tolist(), where.tolist(), self.added[rows].tolist(), strict=True
            )
        ]

    def day_texts(self, values: np.ndarray) -> list[str | None]:
        """``_days`` of each value; None where NaN."""
        ok = ~np.isnan(values)
        out = np.full(len(values), None, dtype=object)
        if ok.any():
            out[ok] = _by_key(values[ok].astype(np.int64), _days)
        return out.tolist()

    def all_products(self, rows: np.ndarray) -> list[str]:
        """The reason core when every product counts (suspend / deactivate)."""
        masks = self.all_masks[rows]
        names = _by_key(masks, lambda m: _labels_or(self.masks.names(m)) if m else None)
        thresholds = _by_key(masks, lambda m: self._thresholds(self.masks.names(m)))
        no_access = f"(threshold {self.default_days})"
        return [
            (
                (f"No activity ever recorded in {name} ({thr})." if days is None
                 else f"No activity in {name} for {days} ({thr}); {last}.")
                if name is not None
                else (f"No product access and no activity ever recorded {no_access}." if days is None
                      else f"No product access and no activity for {days} {no_access}; {last}.")
            )
            for name, thr, days, last in zip(
                names.tolist(),
                thresholds.tolist(),
                self.day_texts(self.days_inactive[rows]),
                self.last_texts(rows),
                strict=True,
            )
        ]  # fmt: skip

    def comings(self, rows: np.ndarray) -> list[str]:
        if self.is_remove:  # what goes is the products, so the words follow the products to remove
            return _by_key(self.remove_masks[rows], self._removal_of).tolist()
        words = _by_key(self.planned[rows], lambda code: _noun(_ACTIONS[code]))
        return words.tolist()

    def _removal_of(self, mask: int) -> str:
        return f"removal of {_labels_and(self.masks.names(mask))} access"

    def removal_sentences(
        self, rows: np.ndarray, before: np.ndarray, after: np.ndarray, *, first_lower: bool
    ) -> np.ndarray:
        """Per row: ``before``, the products to remove worded one by one and joined by "; ", ``after``.

        The details are worded as ``_text`` words them: each distinct product detail (product, days,
        last active or joining date) once, the first detail with an upper case letter (or, with
        ``first_lower``, lower case again), in product order. Every row must have a product to remove.
        No Python code runs per user: a user's details go to one column per place in their list and
        each sentence is joined once, in C.
        """
        pu, pc, pdays, pthreshold, plast = self.product_rows
        row_of = np.full(self.n, -1, dtype=np.int64)  # user -> index into rows (-1: not asked for)
        row_of[rows] = np.arange(len(rows))
        picked = np.flatnonzero((row_of[pu] >= 0) & ((self.remove_masks[pu] >> pc) & 1).astype(bool))
        users, codes, days, last = row_of[pu[picked]], pc[picked], pdays[picked], plast[picked]
        # The joining date is worded only for a product never used (and then only if days are known).
        added_day = np.where(np.isnan(last), utc_day(self.added_s[pu[picked]]), np.nan)
        group, first = _groups([codes, days, utc_day(last), added_day])
        last_dates = _dates(last[first])
        parts = []
        for k, j in enumerate(first.tolist()):
            label, threshold = product_label(self.products[codes[j]]), int(pthreshold[picked[j]])
            if math.isnan(days[j]):
                parts.append(f"no activity ever recorded in {label} (threshold {threshold})")
                continue
            if last_dates[k]:
                since = f"last active {last_dates[k]}"
            else:
                since = f"never used since joining on {self.added[pu[picked[j]]]}"
            parts.append(f"no activity in {label} for {_days(days[j])} (threshold {threshold}, {since})")
        heads = [_upper_first(part) for part in parts]
        if first_lower:
            heads = [head[:1].lower() + head[1:] for head in heads]
        # A detail's place in its user's list: products in code order (the order of their names).
        place = np.zeros(len(picked), dtype=np.int64)
        seen = np.zeros(len(rows), dtype=np.int64)
        for code in np.flatnonzero(np.bincount(codes, minlength=len(self.products))).tolist():
            these = np.flatnonzero(codes == code)
            place[these] = seen[users[these]]
            seen[users[these]] += 1
        columns = np.full((int(seen.max(initial=0)), len(rows)), "", dtype=object)
        lead = place == 0
        columns[0, users[lead]] = _objects(heads)[group[lead]]
        columns[place[~lead], users[~lead]] = _objects([f"; {part}" for part in parts])[group[~lead]]
        sentences = map("".join, zip(before, *columns, after, strict=True))
        return np.fromiter(sentences, dtype=object, count=len(rows))

    def fallbacks(self, rows: np.ndarray) -> list[str]:
        keys = self.planned[rows].astype(np.int64) * 4 + self.suspend_why[rows]
        return _by_key(keys, self._fallback).tolist()

    # -- the sentences ------------------------------------------------------------------------------

    def texts(self) -> np.ndarray:
        out = np.full(self.n, None, dtype=object)
        fast = {
            "active": self._active,
            "inactive_all_products": self._inactive,
            "inactive_no_product_access": self._inactive,
            "final_warning": self._final_warning,
            "notice_period": self._notice_period,
            "warning_window": self._warning_window,
            "already_warned": self._already_warned,
        }
        listed: dict[str, Callable[[np.ndarray], tuple[list[str], list[str]]]] = {}
        if self.is_remove:  # the products to remove are listed one by one, with their own numbers
            fast = {"active": self._active, "already_warned": self._already_warned}
            listed = {
                "inactive_product": self._inactive_product,
                "final_warning": self._final_warning_frame,
                "notice_period": self._notice_period_frame,
                "warning_window": self._warning_window_frame,
            }
        if not self.masks.use_masks:
            fast, listed = {}, {}
        slow: list[np.ndarray] = []
        for code in np.flatnonzero(np.bincount(self.rule, minlength=len(_RULES))).tolist():
            rule = _RULES[code]
            rows = np.flatnonzero(self.rule == code)
            if rule in _FIXED_TEXT:
                out[rows] = _FIXED_TEXT[rule]
            elif rule in fast:
                # Word each distinct combination of inputs once; equal sentences share one string.
                group, first = _groups([part[rows] for part in self._inputs(rule)])
                out[rows] = _objects(fast[rule](rows[first]))[group]
            elif rule in listed:
                # The product details differ from user to user; the words around them do not.
                some = self.remove_masks[rows] != 0
                if not some.all():  # no product to list (not expected): left to the reference wording
                    slow.append(rows[~some])
                    rows = rows[some]
                if len(rows):
                    group, first = _groups([part[rows] for part in self._inputs(rule)])
                    heads, tails = listed[rule](rows[first])
                    before, after = _objects(heads)[group], _objects(tails)[group]
                    out[rows] = self.removal_sentences(
                        rows, before, after, first_lower=rule == "warning_window"
                    )
            else:
                slow.append(rows)
        noted = self.email_notes != ""
        if slow:
            rows = np.sort(np.concatenate(slow))
            out[rows] = _objects(self._row_by_row(rows))  # with their notes
            noted[rows] = False
        rows = np.flatnonzero(noted)
        notes = self.email_notes[rows]
        out[rows] = _objects([f"{text}{note}" for text, note in zip(out[rows], notes, strict=True)])
        return out

    def _inputs(self, rule: str) -> list[np.ndarray]:
        """Everything the column-wise wording of ``rule`` depends on, per user."""
        last = [self.last_day, self.last_pc, self.added_day_if_never]
        # With remove_product_access the core is the product details, worded apart (removal_sentences),
        # and what comes next names the products to remove.
        core = [] if self.is_remove else [self.all_masks, self.days_inactive, *last]
        when = [self.planned, self.action_days, *([self.remove_masks] if self.is_remove else [])]
        return {
            "active": [*last, self.days_inactive, self.due_masks, self.action_days],
            # With remove_product_access: the words around the product details (removal_sentences).
            "inactive_product": [self.remove_masks, self.all_masks],
            "inactive_all_products": [*core, self.planned, self.stage, self.warned_day, self.last_warned],
            "inactive_no_product_access": [
                *core,
                self.planned,
                self.stage,
                self.warned_day,
                self.last_warned,
            ],
            "final_warning": [*core, *when, self.bucket],
            "notice_period": [*core, *when, self.first_warned_day],
            "warning_window": [*core, *when, self.bucket],
            "already_warned": [*when, self.last_warned, self.warned_day],
        }[rule]

    # -- remove_product_access: the words before and after the product details, per row ---------------

    def _inactive_product(self, rows: np.ndarray) -> tuple[list[str], list[str]]:
        def removing(remove: int, every: int) -> str:
            kept = self.masks.names(every & ~remove)
            keep = f" Keeping {_labels_and(kept)}." if kept else ""
            return f". Removing {_labels_and(self.masks.names(remove))} access.{keep}"

        tails = [
            removing(remove, every)
            for remove, every in zip(
                self.remove_masks[rows].tolist(), self.all_masks[rows].tolist(), strict=True
            )
        ]
        return [""] * len(rows), tails

    def _final_warning_frame(self, rows: np.ndarray) -> tuple[list[str], list[str]]:
        notice = _days(self.notice)
        tails = [
            f". Not warned yet: sending the {int(bucket)}-day warning; {coming} on {date} at the "
            f"earliest ({notice} of notice).{fallback}"
            for bucket, coming, date, fallback in zip(
                self.bucket[rows].tolist(),
                self.comings(rows),
                self.action_date[rows].tolist(),
                self.fallbacks(rows),
                strict=True,
            )
        ]
        return [""] * len(rows), tails

    def _notice_period_frame(self, rows: np.ndarray) -> tuple[list[str], list[str]]:
        notice = _days(self.notice)
        tails = [
            f". First warned on {warned}; {coming} waits until {date} so the user has at least {notice} "
            f"of notice.{fallback}"
            for warned, coming, date, fallback in zip(
                self.first_warned[rows].tolist(),
                self.comings(rows),
                self.action_date[rows].tolist(),
                self.fallbacks(rows),
                strict=True,
            )
        ]
        return [""] * len(rows), tails

    def _warning_window_frame(self, rows: np.ndarray) -> tuple[list[str], list[str]]:
        heads = [
            f"{_upper_first(coming)} due on {date} (in {days}): "
            for coming, date, days in zip(
                self.comings(rows),
                self.action_date[rows].tolist(),
                self.day_texts(self.action_days[rows]),
                strict=True,
            )
        ]
        tails = [
            f". Sending the {int(bucket)}-day warning.{fallback}"
            for bucket, fallback in zip(self.bucket[rows].tolist(), self.fallbacks(rows), strict=True)
        ]
        return heads, tails

    def _inactive(self, rows: np.ndarray) -> list[str]:
        warned_texts = [""] * len(rows)
        stage_warned = self.stage[rows] == STAGES.index("warned")
        for k in np.flatnonzero(stage_warned).tolist():
            i = rows[k]
            if self.warned[i]:
                last = self.last_warned[i]
                bucket = "" if math.isnan(last) else f" ({int(last)}-day warning)"
                warned_texts[k] = f" Warned on {self.warned[i]}{bucket}."
        return [
            f"{core}{warned} Proposing {planned}.{fallback}"
            for core, warned, planned, fallback in zip(
                self.all_products(rows),
                warned_texts,
                self.planned_names[rows].tolist(),
                self.fallbacks(rows),
                strict=True,
            )
        ]

    def _around_all_products(
        self,
        rows: np.ndarray,
        frame: Callable[[np.ndarray], tuple[list[str], list[str]]],
        *,
        first_lower: bool = False,
    ) -> list[str]:
        """The all-products core (its final period dropped) in the words ``frame`` puts around it;
        the same frames surround the per-product details under remove_product_access."""
        heads, tails = frame(rows)
        cores = self.all_products(rows)
        if first_lower:  # the core goes mid-sentence, after a colon
            cores = [core[:1].lower() + core[1:] for core in cores]
        return [f"{head}{core[:-1]}{tail}" for head, core, tail in zip(heads, cores, tails, strict=True)]

    def _final_warning(self, rows: np.ndarray) -> list[str]:
        return self._around_all_products(rows, self._final_warning_frame)

    def _notice_period(self, rows: np.ndarray) -> list[str]:
        return self._around_all_products(rows, self._notice_period_frame)

    def _warning_window(self, rows: np.ndarray) -> list[str]:
        return self._around_all_products(rows, self._warning_window_frame, first_lower=True)

    def _already_warned(self, rows: np.ndarray) -> list[str]:
        return [
            f"{int(bucket)}-day warning already sent on {warned}; {coming} due on {date} (in {days})."
            for bucket, warned, coming, date, days in zip(
                self.last_warned[rows].tolist(),
                self.warned[rows].tolist(),
                self.comings(rows),
                self.action_date[rows].tolist(),
                self.day_texts(self.action_days[rows]),
                strict=True,
            )
        ]

    def _active(self, rows: np.ndarray) -> list[str]:
        action = self.policy.action

        def still(mask: int) -> str:
            past = self.masks.names(mask)
            if past and not self.is_remove:
                return (
                    f" Past the threshold on {_labels_and(past)} only; {action} needs every product inactive."
                )
            return ""

        stills = _by_key(self.due_masks[rows], still).tolist()
        return [
            (f"Not inactive long enough: {last}.{when}" if days is None
             else f"Active: {last} ({days} ago).{past}{when}")
            for last, days, past, when in zip(
                self.last_texts(rows),
                self.day_texts(self.days_inactive[rows]),
                stills,
                [
                    f" Earliest action date {date} (in {days})." if date else ""
                    for date, days in zip(
                        self.action_date[rows].tolist(), self.day_texts(self.action_days[rows]), strict=True
                    )
                ],
                strict=True,
            )
        ]  # fmt: skip

    # -- row by row ---------------------------------------------------------------------------------

    def _row_by_row(self, rows: np.ndarray) -> list[str]:
        # (product, days or None, threshold, last active date or None), for the rows that need them.
        pu, pc, pdays, pthreshold, plast = self.product_rows
        details: dict[int, list[tuple[str, int | None, int, str | None]]] = {}
        wanted = np.zeros(self.n, dtype=bool)
        wanted[rows] = np.isin(self.rule[rows], [_R[r] for r in _DETAIL_RULES])
        if len(pu) and wanted.any():
            order = np.lexsort((pc, pu))
            picked = order[wanted[pu[order]]]
            last_dates = _dates(plast[picked])
            for user, code, days, threshold, last in zip(
                pu[picked].tolist(),
                pc[picked].tolist(),
                pdays[picked].tolist(),
                pthreshold[picked].tolist(),
                last_dates,
                strict=True,
            ):
                entry = (self.products[code], None if math.isnan(days) else int(days), int(threshold), last)
                details.setdefault(user, []).append(entry)
        return [self._text(i, details) + self.email_notes[i] for i in rows.tolist()]

    def _text(self, i: int, details: Mapping[int, list[tuple[str, int | None, int, str | None]]]) -> str:
        policy = self.policy
        default_days = self.default_days
        is_remove = self.is_remove
        notice = self.notice
        delete_after = self.delete_after
        added, warned, actioned, restored = self.added, self.warned, self.actioned, self.restored
        action_date, action_days, days_inactive = self.action_date, self.action_days, self.days_inactive
        planned = self.planned_names
        remove_lists = self.remove_lists
        products = details

        def last_text(i: int) -> str:
            if self.last_any[i]:
                code = self.last_pc[i]
                where = f" in {self._label_of(code)}" if code >= 0 else ""
                return f"last active {self.last_any[i]}{where}"
            if added[i]:
                return f"never active since joining on {added[i]}"
            return "no activity ever recorded"

        def thresholds(rows: Sequence[tuple[Any, ...]]) -> str:
            values = {row[2] for row in rows} or {default_days}
            if len(values) == 1:
                return f"threshold {values.pop()}"
            return "thresholds " + ", ".join(f"{product_label(row[0])} {row[2]}" for row in rows)

        def all_products(i: int) -> str:
            rows = products.get(i, [])
            if not rows:
                if math.isnan(days_inactive[i]):
                    return f"No product access and no activity ever recorded (threshold {default_days})."
                return (
                    f"No product access and no activity for {_days(days_inactive[i])} "
                    f"(threshold {default_days}); {last_text(i)}."
                )
            names = _join_or([product_label(row[0]) for row in rows])
            if math.isnan(days_inactive[i]):
                return f"No activity ever recorded in {names} ({thresholds(rows)})."
            return (
                f"No activity in {names} for {_days(days_inactive[i])} ({thresholds(rows)}); {last_text(i)}."
            )

        def some_products(i: int, names: Sequence[str]) -> str:
            parts = []
            for product, days, threshold, last in products.get(i, []):
                if product not in names:
                    continue
                if days is None:
                    parts.append(
                        f"no activity ever recorded in {product_label(product)} (threshold {threshold})"
                    )
                    continue
                since = f"last active {last}" if last else f"never used since joining on {added[i]}"
                label = product_label(product)
                parts.append(f"no activity in {label} for {_days(days)} (threshold {threshold}, {since})")
            return _upper_first("; ".join(parts)) + "."

        def removal(i: int) -> list[str]:
            return remove_lists[i] if remove_lists is not None else []

        def coming(i: int) -> str:
            """What happens next: the action, or the products whose access goes."""
            if is_remove:
                return f"removal of {_labels_and(removal(i))} access"
            return _noun(str(planned[i]))

        def fallback(i: int) -> str:
            return self._fallback(int(self.planned[i]) * 4 + int(self.suspend_why[i]))

        def core(i: int) -> str:
            return some_products(i, removal(i)) if is_remove else all_products(i)

        def verb(i: int) -> str:
            code = int(self.act_code[i])
            kind = KINDS.get(self.acted[code - 1]) if code else None
            return (kind.done_label if kind else None) or "Actioned"

        r = _RULES[self.rule[i]]
        by = str(self.protected_by[i]).split(":", 1)[-1]
        if r == "unknown_account_type":
            return (
                f"Protected: account type '{self.account_types[i]}' is not a normal user account; "
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
                f"New user: added to the org on {added[i]} ({_days(self.since_added[i])} ago), within the "
                f"{policy.new_user_grace_days}-day new-user grace period."
            )
        if r == "restored_grace":
            return (
                f"Restored by this tool on {restored[i]} ({_days(max(self.since_restored[i], 0))} ago), "
                f"within the {policy.restored_grace_days}-day grace period after a restore."
            )
        if r == "activity_seen":
            if self.reset_ref[i] == self.warned_at[i]:
                event = f"the warning sent on {warned[i]}"
            else:
                event = f"this tool's action on {actioned[i]}"
            return f"Activity seen ({last_text(i)}) after {event}; access kept, the user is active again."
        if r == "deleted":
            if self.removed_from_directory[i] and self.delete_requested[i]:
                return (
                    f"{verb(i)} by this tool on {actioned[i]}, then removed from the directory on "
                    f"{self.delete_requested[i]} (not a deletion: no grace period; only a re-invite brings "
                    "the user back); nothing to do."
                )
            if self.delete_requested[i]:
                return (
                    f"{verb(i)} by this tool on {actioned[i]}; deletion requested on "
                    f"{self.delete_requested[i]}, final since {self.grace_ends[i]}; nothing to do."
                )
            return "Deleted by this tool earlier (stage deleted); nothing to do."
        if r == "pending_delete":
            if not self.delete_requested[i]:
                return (
                    f"Deletion already requested by this tool; Atlassian's {DELETE_GRACE_DAYS}-day "
                    "cancellable grace period is running."
                )
            window = (
                f"Atlassian's {DELETE_GRACE_DAYS}-day window to cancel it ended on {self.grace_ends[i]}: "
                "deleted for good"
                if self.grace_over[i]
                else f"Atlassian's {DELETE_GRACE_DAYS}-day window to cancel it ends on {self.grace_ends[i]}"
            )
            return (
                f"{verb(i)} by this tool on {actioned[i]}; deletion requested on {self.delete_requested[i]}; "
                f"{window}."
            )
        if r == "dormant_delete":
            notice = f", deletion notice e-mailed on {self.noticed[i]}" if self.noticed[i] else ""
            return (
                f"{verb(i)} by this tool on {actioned[i]} ({_days(self.since_action[i])} ago, delete after "
                f"{delete_after}){notice}, no activity since and not restored: proposing deletion "
                f"({self._deletion_kind(i)})."
            )
        if r == "deletion_notice":
            return (
                f"{verb(i)} by this tool on {actioned[i]}, no activity since and not restored: sending the "
                f"deletion notice {_days(policy.delete_notice_days)} ahead; deletion on {action_date[i]} "
                f"(in {_days(action_days[i])}) at the earliest ({self._deletion_kind(i)})."
            )
        if r == "awaiting_delete":
            notice = f" Deletion notice e-mailed on {self.noticed[i]}." if self.noticed[i] else ""
            return (
                f"{verb(i)} by this tool on {actioned[i]}; if still inactive it will be proposed for "
                f"deletion on {action_date[i]} (in {_days(action_days[i])}).{notice}"
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
                f"{verb(i)} by this tool on {actioned[i]}, but Atlassian now shows status "
                f"{self.statuses[i]}: changed outside this tool, so it is not deleted."
            )
        if r == "unknown_status":
            return f"Atlassian status '{self.statuses[i]}' is not 'active'; no warning or action."
        if r in ("inactive_all_products", "inactive_no_product_access"):
            warned_text = ""
            if self.stage[i] == STAGES.index("warned") and warned[i]:
                last_warned = self.last_warned[i]
                bucket_text = "" if math.isnan(last_warned) else f" ({int(last_warned)}-day warning)"
                warned_text = f" Warned on {warned[i]}{bucket_text}."
            return f"{all_products(i)}{warned_text} Proposing {planned[i]}.{fallback(i)}"
        if r == "inactive_product":
            kept = [product for product, *_ in products.get(i, []) if product not in removal(i)]
            keep = f" Keeping {_labels_and(kept)}." if kept else ""
            return f"{core(i)} Removing {_labels_and(removal(i))} access.{keep}"
        if r == "final_warning":
            return (
                f"{core(i)} Not warned yet: sending the {int(self.bucket[i])}-day warning; {coming(i)} on "
                f"{action_date[i]} at the earliest ({_days(notice)} of notice).{fallback(i)}"
            )
        if r == "notice_period":
            return (
                f"{core(i)} First warned on {self.first_warned[i]}; {coming(i)} waits until "
                f"{action_date[i]} so the user has at least {_days(notice)} of notice.{fallback(i)}"
            )
        if r == "warning_window":
            detail = core(i)
            return (
                f"{_upper_first(coming(i))} due on {action_date[i]} (in {_days(action_days[i])}): "
                f"{detail[:1].lower()}{detail[1:-1]}. Sending the {int(self.bucket[i])}-day warning."
                f"{fallback(i)}"
            )
        if r == "already_warned":
            return (
                f"{int(self.last_warned[i])}-day warning already sent on {warned[i]}; {coming(i)} due on "
                f"{action_date[i]} (in {_days(action_days[i])})."
            )
        # active
        when = (
            f" Earliest action date {action_date[i]} (in {_days(action_days[i])})." if action_date[i] else ""
        )
        if math.isnan(days_inactive[i]):
            return f"Not inactive long enough: {last_text(i)}.{when}"
        past = self.inactive_products[i]
        still = ""
        if past and not is_remove:
            still = (
                f" Past the threshold on {_labels_and(past)} only; "
                f"{policy.action} needs every product inactive."
            )
        return f"Active: {last_text(i)} ({_days(days_inactive[i])} ago).{still}{when}"


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
