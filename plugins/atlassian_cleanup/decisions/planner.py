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

Rule ids (column ``rule``): the names in :data:`atlassian_cleanup.decisions.plan_rules.RULES`, the
ordered table of rules (the first that applies to a user decides). Protection: ``app_account``,
``customer_account``, ``unknown_account_type``, ``admin_role``, ``admin_group``, ``api_user``,
``protected_account``, ``protected_email``, ``protected_domain``, ``protected_group``,
``new_user_grace``, ``restored_grace``, ``kept_in_review`` (an admin's keep in the review queue,
until its last day); lifecycle ``deleted``, ``pending_delete``,
``already_for_deletion``, ``activity_seen``, ``already_actioned``, ``changed_outside_tool``,
``deletion_notice``, ``dormant_delete``, ``awaiting_delete``; status ``already_suspended``,
``already_deactivated``, ``not_invited``, ``unknown_status``; inactivity ``no_product_access``,
``notice_period``, ``already_warned``, ``final_warning``, ``warning_window``, ``awaiting_review``
(due, under a rule with ``review: true`` and no approve in force: nothing written, the user waits
in the review queue), ``inactive_product``,
``inactive_all_products``, ``inactive_no_product_access``, ``active``. Each rule's reason is worded
in :mod:`atlassian_cleanup.decisions.reasons`.

Scoped rules (column ``policy_rule``): a policy with ``rules`` gives each user the first rule whose
selector matches (:mod:`atlassian_cleanup.decisions.scopes`), and the user is planned under that
rule's effective policy (:func:`~atlassian_cleanup.decisions.policy_rules.effective_policy`): its
thresholds, action, lead days and deletion delay, the top level's everything else. Users no rule
selects are planned under the top level, named ``default``.
"""

from __future__ import annotations

import gc
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from atlassian_cleanup.decisions.plan_arrays import Coded, ProductSets, object_table, objects, unique_ints
from atlassian_cleanup.decisions.plan_facts import ADMIN_ROLES, PlanFacts
from atlassian_cleanup.decisions.plan_rules import RULE_CODE, RULE_NAMES, Decisions, decide
from atlassian_cleanup.decisions.policy import Policy
from atlassian_cleanup.decisions.policy_model import DEFAULT_RULE
from atlassian_cleanup.decisions.policy_rules import effective_policy
from atlassian_cleanup.decisions.reasons import NO_EMAIL_RULES, REMOVAL_RULES, ProductColumns, Reasons
from atlassian_cleanup.decisions.records import (
    PLAN_COLUMNS,
    PROPOSED_ACTIONS,
    STAGES,
    WRITE_ACTIONS,
    UserHistory,
    UserRecord,
    valid_email_address,
)
from atlassian_cleanup.decisions.reviews import APPROVE, AWAITING, ReviewDecision
from atlassian_cleanup.decisions.scopes import rule_names, rule_of_users
from atlassian_cleanup.decisions.user_table import UserTable

__all__ = ["ADMIN_ROLES", "PLAN_COLUMNS", "UserHistory", "plan_actions", "plan_to_records", "summarise_plan"]

#: The plan's columns (:data:`atlassian_cleanup.decisions.records.PLAN_COLUMNS`), in order, with their types:
#:
#: ``account_id`` str; ``email``, ``name`` str or None; ``account_type`` str; ``claim_status`` str or
#: None; ``status`` str (Atlassian's composite status); ``product_last_active`` str (JSON object,
#: product -> ISO timestamp or null); ``days_inactive`` Int64 (null when nothing is known);
#: ``inactive_products`` list[str] (canonical products past their threshold); ``action_date`` str
#: ``YYYY-MM-DD`` or None; ``days_until_action`` Int64 (negative = overdue); ``rule`` str (see the
#: module docstring); ``policy_rule`` str (the policy's scoped rule that applied to the user, or
#: ``default`` for the top-level settings); ``stage`` str (the state-store stage before this run,
#: ``active`` when unknown);
#: ``proposed_action`` str (``none|warn|suspend|deactivate|remove_product_access|delete|delete_notice``);
#: ``products_to_remove`` list[str] (for ``remove_product_access``, and for its warnings: the
#: products concerned); ``warning_lead_days`` Int64 (the bucket of a ``warn`` row); ``reason`` str
#: (a sentence for admins); ``protected_by`` str (``""`` or e.g. ``group:vip``, ``role:...``,
#: ``account_type:app``, ``api_user``, ``domain:acme.example``); ``planned_action`` str (the action
#: that follows at ``action_date``: equal to ``proposed_action`` on action rows, the coming action
#: on warning rows, ``none`` when nothing is planned); ``time_zone`` str or None (the user's IANA
#: zone from Atlassian, carried only to word dates in warning e-mails; decisions are in UTC);
#: ``review_decision`` str or None (``awaiting``: the first action waits for an admin; ``approve``
#: or ``keep``: the admin's decision in force), ``review_by``, ``review_at`` (``YYYY-MM-DD``),
#: ``review_reason`` and ``keep_until`` (a keep's last day) of that decision.


def plan_actions(
    users: Sequence[UserRecord] | pd.DataFrame | UserTable | Mapping[str, Any],
    policy: Policy,
    as_of: datetime,
    *,
    history: Mapping[str, UserHistory] | None = None,
    api_user_emails: Iterable[str] = (),
    api_user_account_ids: Iterable[str] = (),
    not_deactivatable: Mapping[str, str | None] | None = None,
    reviews: Mapping[str, ReviewDecision] | None = None,
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
    planned (and warned) for suspension. ``reviews`` maps account ids to the admins' decisions in
    force (the review store's ``decisions_in_force``): a keep protects until its last day, an
    approve lets a first action under a rule with ``review: true`` go ahead.
    """
    # Planning allocates many short-lived containers and no reference cycles; with a large user
    # table alive, the cyclic GC's full passes would cost a large share of the run time.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        table = UserTable.from_any(users)
        chosen = rule_of_users(table, policy.rules)
        names = objects(rule_names(policy))
        plans = []
        for index in np.unique(chosen).tolist() or [len(policy.rules)]:
            rule = policy.rules[index] if index < len(policy.rules) else None
            facts = PlanFacts(
                table,
                effective_policy(policy, rule),
                as_of,
                history=history,
                api_user_emails=api_user_emails,
                api_user_account_ids=api_user_account_ids,
                not_deactivatable=not_deactivatable,
                reviews=reviews,
            )
            # Each rule plans the whole table and keeps its own users: a user's row depends on that
            # user and the policy only, so this is the plan of the rule's population.
            plans.append((chosen == index, _plan(facts, names[chosen])))
        return _combined(plans)
    finally:
        if gc_was_enabled:
            gc.enable()


def _plan(facts: PlanFacts, policy_rule: np.ndarray) -> pd.DataFrame:
    """Apply the rules to the facts and lay the plan out, one row per user."""
    decided = decide(facts)
    action_date = _action_dates(facts.today, decided.action_days)
    shown = _product_columns(facts, decided)
    reasons = Reasons(facts, decided, shown, action_date=action_date, no_email=_no_email(facts, decided))
    return _frame(facts, decided, shown, action_date, reasons.texts(), policy_rule)


def _combined(plans: list[tuple[np.ndarray, pd.DataFrame]]) -> pd.DataFrame:
    """One plan from the plans of several scoped rules, each row taken from the rule of its user."""
    if len(plans) == 1:
        return plans[0][1]
    parts = [plan[mine] for mine, plan in plans]
    return pd.concat(parts).sort_index(kind="stable").reset_index(drop=True)


def _action_dates(today: np.datetime64, action_days: np.ndarray) -> np.ndarray:
    """``YYYY-MM-DD`` of ``today`` plus each finite number of days (None elsewhere)."""
    action_date = np.full(len(action_days), None, dtype=object)
    finite = np.isfinite(action_days)
    if finite.any():
        unique, inverse = unique_ints(action_days[finite].astype("int64"))
        action_date[finite] = (today + unique).astype(str).astype(object)[inverse]
    return action_date


def _product_columns(facts: PlanFacts, decided: Decisions) -> ProductColumns:
    """The products past their threshold and, with remove_product_access, the products to remove."""
    n, pu = facts.n, facts.pu
    sets = ProductSets(facts.products, pu, facts.pc, n, facts.per_user)
    due = sets.masks(facts.pdue)
    remove_rows = np.zeros(len(pu), dtype=bool)
    to_remove, remove_lists = np.zeros(n, dtype=np.int64), None
    if facts.is_remove:
        remove_row = np.isin(decided.rule, [RULE_CODE[r] for r in REMOVAL_RULES])
        # Products due by the action date (for action rows: the products past their threshold).
        horizon = np.maximum(np.nan_to_num(decided.action_days, nan=0.0), 0.0)
        remove_rows = remove_row[pu] & (facts.puntil <= horizon[pu])
        to_remove = sets.masks(remove_rows)
        remove_lists = sets.lists(remove_rows, to_remove)
    return ProductColumns(sets, due, sets.lists(facts.pdue, due), to_remove, remove_lists, remove_rows)


def _no_email(facts: PlanFacts, decided: Decisions) -> np.ndarray:
    """Users in the notice pipeline whose e-mail cannot be used: listed to the admins instead of
    e-mailed; the reason says what warning.without_email makes of them."""
    no_email = np.zeros(facts.n, dtype=bool)
    if facts.policy.warning.lead_days:
        rows = np.flatnonzero(np.isin(decided.rule, [RULE_CODE[r] for r in NO_EMAIL_RULES]))
        no_email[rows] = [valid_email_address(e) is None for e in facts.raw_emails[rows].tolist()]
    return no_email


def _frame(
    facts: PlanFacts,
    decided: Decisions,
    shown: ProductColumns,
    action_date: np.ndarray,
    reasons: np.ndarray,
    policy_rule: np.ndarray,
) -> pd.DataFrame:
    n, table = facts.n, facts.table

    def ints(values: np.ndarray) -> pd.arrays.IntegerArray:
        ok = np.isfinite(values)
        return pd.arrays.IntegerArray(np.where(ok, values, 0).astype(np.int64), ~ok)

    def column(values: Any) -> pd.Series:
        return pd.Series(values, dtype=object, copy=False)  # the arrays are this plan's own

    no_products = object_table([[]])[np.zeros(n, dtype=int)]
    return pd.DataFrame(
        {
            "account_id": column(facts.ids),
            "email": column(facts.raw_emails),
            "name": column(table.objects("name")),
            "account_type": column(facts.types.take(lambda v: "unknown" if v is None else v)),
            "claim_status": column(facts.claims.take()),
            "status": column(facts.statuses.take(lambda v: str(v or "active"))),
            "product_last_active": column(facts.evidence),
            "days_inactive": ints(facts.days_inactive),
            "inactive_products": column(shown.inactive_products),
            "action_date": column(action_date),
            "days_until_action": ints(decided.action_days),
            "rule": column(objects(RULE_NAMES)[decided.rule]),
            "policy_rule": column(policy_rule),
            "stage": column(objects(STAGES)[facts.stage_code]),
            "proposed_action": column(objects(PROPOSED_ACTIONS)[decided.proposed]),
            "products_to_remove": column(
                shown.remove_lists if shown.remove_lists is not None else no_products
            ),
            "warning_lead_days": ints(decided.bucket),
            "reason": column(reasons),
            "protected_by": column(decided.protected_by),
            "planned_action": column(objects(PROPOSED_ACTIONS)[decided.planned]),
            "time_zone": column(Coded(table, "time_zone").take()),
            **{name: column(values) for name, values in _review_columns(facts, decided).items()},
        },
        columns=list(PLAN_COLUMNS),
        copy=False,  # the columns are new arrays already; consolidating them would copy them all
    )


def _review_columns(facts: PlanFacts, decided: Decisions) -> dict[str, np.ndarray]:
    """The plan's review columns: the decision in force (who, when, why, a keep's last day), or
    ``awaiting`` for users whose first action waits for an admin."""
    names = ("review_decision", "review_by", "review_at", "review_reason", "keep_until")
    out = {name: np.full(facts.n, None, dtype=object) for name in names}
    out["review_decision"][decided.rule == RULE_CODE["awaiting_review"]] = AWAITING
    kept = facts.kept_labels
    for i, decision in facts.reviews_by_row():
        if decision.decision == APPROVE or kept[i] is not None:
            for name, value in decision.as_columns().items():
                out[name][i] = value
    return out


# Plan consumers


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

    ``{"total", "by_action": {action: n}, "by_rule": {rule: n}, "by_policy_rule": {scoped rule or
    default: n}, "writes": n, "protected": n,
    "protected_by_kind": {kind: n}}``; ``by_action`` lists every action (zeros included) and a
    protection kind is the part of ``protected_by`` before ``:`` (``group``, ``role``, ``api_user``).
    """

    def column(name: str) -> list[Any]:
        if isinstance(plan, pd.DataFrame):
            return plan[name].tolist() if name in plan.columns else [None] * len(plan)
        return [row.get(name) for row in plan]

    actions = Counter(action or "none" for action in column("proposed_action"))
    kinds = Counter(str(p).split(":", 1)[0] for p in column("protected_by") if p)
    return {
        "total": len(plan),
        "by_action": {action: int(actions.get(action, 0)) for action in PROPOSED_ACTIONS},
        "by_rule": dict(sorted(Counter(column("rule")).items())),
        "by_policy_rule": dict(
            sorted(Counter(rule or DEFAULT_RULE for rule in column("policy_rule")).items())
        ),
        "writes": int(sum(actions.get(a, 0) for a in WRITE_ACTIONS)),
        "protected": int(sum(kinds.values())),
        "protected_by_kind": dict(sorted(kinds.items())),
    }
