"""What the planner's rules read about every user: one numpy column per fact.

:class:`PlanFacts` turns the user table, the policy, the run's date and the state store's history
into columns (one value per user) and a long table of the users' products (one row per user and
product). The rules in :mod:`atlassian_cleanup.decisions.plan_rules` only combine these columns;
the reasons word them. Facts that only some policies need are computed when first asked for.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from functools import cached_property

import numpy as np
import pandas as pd

from atlassian_cleanup.action_kinds import LIFECYCLE_ACTIONS, REMOVE_PRODUCT_ACCESS
from atlassian_cleanup.days import days_between
from atlassian_cleanup.decisions.plan_arrays import Coded, Segments, first_match, isin, objects, whole_days
from atlassian_cleanup.decisions.policy import Policy
from atlassian_cleanup.decisions.products import canonical_product
from atlassian_cleanup.decisions.records import STAGES, UserHistory, is_idp_managed
from atlassian_cleanup.decisions.reviews import APPROVE, KEEP, ReviewDecision
from atlassian_cleanup.decisions.still_as_left import still_as_left
from atlassian_cleanup.decisions.user_table import UserTable

#: The platform roles that make an account an administrator, never touched.
ADMIN_ROLES: tuple[str, ...] = ("atlassian/org-admin", "atlassian/site-admin", "atlassian/user-access-admin")
#: Why ``deactivate`` becomes ``suspend`` for a user (0: it does not).
WHY_UNMANAGED, WHY_IDP, WHY_REFUSED = 1, 2, 3
_WHY_OF_REFUSAL = {"accountNotManaged": WHY_UNMANAGED, "externalDirectory.scim": WHY_IDP}
_EPOCH = pd.Timestamp(0, tz="UTC")


def _as_of_seconds(as_of: datetime) -> tuple[float, np.datetime64]:
    if not isinstance(as_of, datetime):
        raise TypeError(f"as_of must be a timezone-aware datetime (got {type(as_of).__name__})")
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError("as_of must be timezone-aware (pass the DAG run's logical date, which is UTC)")
    stamp = pd.Timestamp(as_of).tz_convert("UTC")
    return (stamp - _EPOCH) / pd.Timedelta(seconds=1), np.datetime64(stamp.date().isoformat(), "D")


class PlanFacts:
    """Every fact the rules and reasons read, per user (see :func:`~.planner.plan_actions`)."""

    def __init__(
        self,
        table: UserTable,
        policy: Policy,
        as_of: datetime,
        *,
        history: Mapping[str, UserHistory] | None,
        api_user_emails: Iterable[str],
        api_user_account_ids: Iterable[str],
        not_deactivatable: Mapping[str, str | None] | None,
        reviews: Mapping[str, ReviewDecision] | None = None,
    ) -> None:
        self.table, self.policy = table, policy
        self.as_of_s, self.today = _as_of_seconds(as_of)
        self.reviews = dict(reviews or {})
        self.n = len(table)
        self.ids = table.objects("account_id")
        self.raw_emails = table.objects("email")
        self.types = Coded(table, "account_type")
        self.statuses = Coded(table, "status")
        self.claims = Coded(table, "claim_status")
        self.type_names = objects([str(value or "unknown").lower() for value in self.types.values])
        self.status_names = [str(value or "active") for value in self.statuses.values]
        self.added_s = table.array("added_to_org")
        self.record_last_s = table.array("last_active")
        self.suspend_why = self._suspend_why(not_deactivatable)
        self._read_history(history)
        self._read_products()
        self.api_emails = {e.strip().lower() for e in api_user_emails if e}
        self.api_ids = {str(a) for a in api_user_account_ids if a}
        self.since_added = whole_days(self.as_of_s, self.added_s)
        self.since_restored = days_between(self.restored_at, self.as_of_s)
        self.is_remove = policy.action == REMOVE_PRODUCT_ACCESS

    # -- reading the inputs -------------------------------------------------------------------------

    def _suspend_why(self, not_deactivatable: Mapping[str, str | None] | None) -> np.ndarray:
        """Per user, why ``deactivate`` would be a suspension (``WHY_*``; 0: it would not)."""
        # Who manages the account decides whether Atlassian lets us deactivate it: only claimed
        # accounts that no identity provider provisions (SCIM).
        sources = Coded(self.table, "management_source")
        idp = sources.mask(is_idp_managed) if len(sources.codes) == self.n else np.zeros(self.n, dtype=bool)
        why = np.where(~self.managed, WHY_UNMANAGED, np.where(idp, WHY_IDP, 0)).astype(np.int8)
        if not_deactivatable:
            # What Atlassian's ``GET /users/{id}/manage`` answered for the accounts it would not let
            # us deactivate (checked by compute_inactivity before anyone is warned or deactivated).
            refused = pd.Index(list(not_deactivatable), dtype=object)
            rows = refused.get_indexer(pd.Index(self.ids, dtype=object)) >= 0
            reasons = [not_deactivatable[str(a)] for a in self.ids[rows].tolist()]
            why[rows] = np.array([_WHY_OF_REFUSAL.get(r or "", WHY_REFUSED) for r in reasons], dtype=np.int8)
        return why

    @cached_property
    def managed(self) -> np.ndarray:
        return self.claims.mask(lambda v: v == "managed")

    def _read_history(self, history: Mapping[str, UserHistory] | None) -> None:
        n = self.n
        self.stage_code = np.zeros(n, dtype=np.int8)  # index into STAGES; 0 = active
        self.act_code = np.zeros(n, dtype=np.int8)  # 0 None, 1.. index into acted + 1
        self.acted: list[str] = []
        self.removals: list[tuple[int, tuple[str, ...]]] = []  # (user, products this tool removed)
        self.last_warned = np.full(n, np.nan)
        self.actioned_at, self.restored_at, self.warned_at = (
            np.full(n, np.nan),
            np.full(n, np.nan),
            np.full(n, np.nan),
        )
        self.recorded_first_warned_at = np.full(n, np.nan)
        self.delete_at, self.notice_at = np.full(n, np.nan), np.full(n, np.nan)
        self.removed_from_directory = np.zeros(n, dtype=bool)
        if not history:
            return
        keys = list(history)
        found = pd.Index(keys, dtype=object).get_indexer(pd.Index(self.ids, dtype=object))
        rows = np.flatnonzero(found >= 0)
        entries = [history[keys[k]] for k in found[rows].tolist()]
        entries = [UserHistory.from_dict(h) if isinstance(h, Mapping) else h for h in entries]
        for row, h in zip(rows.tolist(), entries, strict=True):
            if h is None:
                continue
            self.stage_code[row] = STAGES.index(h.stage)
            if h.actioned_action is not None:
                if h.actioned_action not in self.acted:
                    self.acted.append(h.actioned_action)
                self.act_code[row] = self.acted.index(h.actioned_action) + 1
            if h.last_warned_lead_days is not None:
                self.last_warned[row] = h.last_warned_lead_days
            if h.actioned_at:
                self.actioned_at[row] = h.actioned_at.timestamp()
            if h.restored_at:
                self.restored_at[row] = h.restored_at.timestamp()
            if h.warned_at:
                self.warned_at[row] = h.warned_at.timestamp()
            if h.first_warned_at:
                self.recorded_first_warned_at[row] = h.first_warned_at.timestamp()
            if h.delete_requested_at:
                self.delete_at[row] = h.delete_requested_at.timestamp()
            if h.delete_notice_at:
                self.notice_at[row] = h.delete_notice_at.timestamp()
            self.removed_from_directory[row] = h.deletion_kind == "remove_from_directory"
            if h.removed_products:
                self.removals.append((row, h.removed_products))

    def _read_products(self) -> None:
        """The long table of the users' products, and what it says per user."""
        table, n = self.table, self.n
        pu = np.repeat(np.arange(n, dtype=np.int64), table.array("product_access.counts"))
        raw_keys = table.values("product_access")
        canon_of_raw = [canonical_product(str(key)) for key in raw_keys]
        self.products = products = sorted(set(canon_of_raw))  # canonical; a code orders like the name
        product_code = {product: code for code, product in enumerate(products)}
        to_canon = np.array([product_code[c] for c in canon_of_raw], dtype=np.int64)
        pc = to_canon[table.array("product_access.codes")] if len(pu) else np.empty(0, dtype=np.int64)
        plast = table.array("product_access.last")
        if (
            len(pu)
            and len(products) < len(raw_keys)
            and pd.Series(pu * len(products) + pc).duplicated().any()
        ):
            # Two aliases of one product (jira-software and jira) for one user: keep the latest.
            long = pd.DataFrame({"u": pu, "p": pc, "t": plast}).groupby(["u", "p"], sort=True)["t"].max()
            pu = long.index.get_level_values(0).to_numpy(dtype=np.int64)
            pc = long.index.get_level_values(1).to_numpy(dtype=np.int64)
            plast = long.to_numpy(dtype=float)
        self.pu, self.pc, self.plast, self.evidence = _without_removed_products(
            pu, pc, plast, products, self.removals, self.actioned_at, self.restored_at, table
        )
        self._measure_products()

    def _measure_products(self) -> None:
        """Days inactive per product and per user, and how far each is from its threshold."""
        pu, pc, plast, n = self.pu, self.pc, self.plast, self.n
        self.default_days = default_days = self.policy.inactivity.default_days
        thresholds = np.array(
            [float(self.policy.inactivity.products.get(p, default_days)) for p in self.products], dtype=float
        )
        self.pthreshold = thresholds[pc] if len(pc) else np.empty(0)
        pbase = np.where(np.isnan(plast), self.added_s[pu] if len(pu) else plast, plast)
        self.pdays = whole_days(self.as_of_s, pbase)  # NaN: nothing known
        self.puntil = np.where(np.isnan(self.pdays), -np.inf, self.pthreshold - self.pdays)
        self.pdue = pdue = self.puntil <= 0
        self.n_products = np.bincount(pu, minlength=n)
        self.n_due = np.bincount(pu, weights=pdue.astype(float), minlength=n).astype(np.int64)
        self.per_user = per_user = Segments(pu, n)
        self.max_until = per_user.reduce(np.fmax, self.puntil)
        self.min_until = per_user.reduce(np.fmin, self.puntil)
        self.max_until_due = per_user.reduce(np.fmax, np.where(pdue, self.puntil, np.nan))
        product_base_max = per_user.reduce(np.fmax, pbase)
        product_last_max = per_user.reduce(np.fmax, plast)
        self.last_any = np.fmax(product_last_max, self.record_last_s)  # latest real activity anywhere
        # Overall baseline: the latest product baseline; without products, activity or joining date.
        overall_base = np.fmax(
            np.fmax(product_base_max, self.record_last_s),
            np.where(self.n_products == 0, self.added_s, np.nan),
        )
        self.days_inactive = whole_days(self.as_of_s, overall_base)
        self.overall_until = np.where(
            np.isnan(self.days_inactive), -np.inf, default_days - self.days_inactive
        )
        # Which product the latest activity was on (for the reason text); ties: the later row wins.
        self.last_pc = np.full(n, -1, dtype=np.int64)
        latest = ~np.isnan(plast)
        if latest.any():
            latest &= plast == product_last_max[pu]
            self.last_pc[pu[latest]] = pc[latest]

    # -- protection -----------------------------------------------------------------------------------

    def status_is(self, name: str) -> np.ndarray:
        """Users whose Atlassian status is ``name`` (none reported: active)."""
        return self.statuses.mask(lambda v: str(v or "active") == name)

    def type_is(self, name: str) -> np.ndarray:
        return self.types.mask(lambda v: str(v or "unknown").lower() == name)

    @cached_property
    def other_type_hit(self) -> np.ndarray:
        """``account_type:<type>`` for accounts that are not normal user accounts, else None."""
        labels = [None if name == "atlassian" else f"account_type:{name}" for name in self.type_names]
        return objects(labels)[self.types.codes]

    # -- the review queue ----------------------------------------------------------------------------

    def review_of(self, i: int) -> ReviewDecision | None:
        """The admin's decision in force for user ``i`` (from the review store), if any."""
        return self.reviews.get(str(self.ids[i])) if self.reviews else None

    def reviews_by_row(self) -> list[tuple[int, ReviewDecision]]:
        """``(user row, decision)`` of every user with a decision passed in, in row order."""
        return self._decided

    @cached_property
    def _decided(self) -> list[tuple[int, ReviewDecision]]:
        rows = np.flatnonzero(self.id_in(self.reviews)) if self.reviews else np.zeros(0, dtype=np.int64)
        return [(i, self.reviews[str(self.ids[i])]) for i in rows.tolist()]

    @cached_property
    def kept_labels(self) -> np.ndarray:
        """``review_keep:<admin>`` for users an admin kept until today or later, None for the others.

        A keep protects whatever the rule's ``review`` says now: an admin decided for this person.
        """
        out = np.full(self.n, None, dtype=object)
        today = date.fromisoformat(str(self.today))
        for i, decision in self._decided:
            if decision.decision == KEEP and decision.keep_until is not None and decision.keep_until >= today:
                out[i] = decision.label()
        return out

    @cached_property
    def review_waits(self) -> np.ndarray:
        """Users whose first action waits for an admin: the rule has ``review`` on, no approve in force."""
        waits = np.full(self.n, bool(self.policy.review))
        if self.policy.review:
            waits[[i for i, decision in self._decided if decision.decision == APPROVE]] = False
        return waits

    def id_in(self, wanted: Iterable[str]) -> np.ndarray:
        return isin(self.ids, wanted, self.n)

    @cached_property
    def role_hit(self) -> np.ndarray:
        """Per user, ``role:<admin role>`` for the first admin role they hold, else None."""
        table = self.table
        uid = np.repeat(np.arange(self.n, dtype=np.int64), table.array("platform_roles.counts"))
        labels = [f"role:{r}" if r in ADMIN_ROLES else None for r in table.values("platform_roles")]
        return first_match(uid, table.array("platform_roles.codes"), labels, self.n)

    def _group_hit(self, label: Callable[[str], str | None]) -> np.ndarray:
        """Per user, ``label(group)`` of the first of their groups it gives one for, else None."""
        table = self.table
        uid = np.repeat(np.arange(self.n, dtype=np.int64), table.array("groups.counts"))
        labels = [label(str(g)) for g in table.values("groups")]
        return first_match(uid, table.array("groups.codes"), labels, self.n)

    @cached_property
    def admin_group_hit(self) -> np.ndarray:
        # Case-insensitive on purpose: a protection that misses "Site-Admins" is worse than one that
        # over-matches.
        patterns = [pattern.lower() for pattern in self.policy.admin_groups]
        return self._group_hit(
            lambda g: f"admin_group:{g}" if any(fnmatch.fnmatchcase(g.lower(), p) for p in patterns) else None
        )

    @cached_property
    def protected_group_hit(self) -> np.ndarray:
        wanted = {g.lower() for g in self.policy.protected.groups}
        return self._group_hit(lambda g: f"group:{g}" if g.lower() in wanted else None)

    @cached_property
    def email_keys(self) -> dict[int, str]:
        # E-mails compare stripped and in lower case; the table lists the few addresses whose key
        # differs from the address as reported, so no per-user string work is needed here.
        return self.table.email_keys()

    def email_key(self, i: int) -> str:
        return self.email_keys.get(i) or self.raw_emails[i] or ""

    def email_in(self, wanted: Iterable[str]) -> np.ndarray:
        hit = isin(self.raw_emails, wanted, self.n)
        wanted = set(wanted)
        for i, key in self.email_keys.items():
            hit[i] = key in wanted
        return hit

    def labelled(self, hit: np.ndarray, prefix: str, key: Callable[[int], str]) -> np.ndarray:
        """``prefix + key(user)`` for the users ``hit`` marks, None for the others."""
        out = np.full(self.n, None, dtype=object)
        rows = np.flatnonzero(hit)
        out[rows] = objects([f"{prefix}{key(i)}" for i in rows.tolist()])
        return out

    @cached_property
    def domain_hit(self) -> np.ndarray:
        """Per user, ``domain:<entry>`` for the protected.domains entry covering their e-mail domain."""
        entries = self.policy.protected.domains
        if not entries:
            return np.full(self.n, None, dtype=object)
        domains = Coded(self.table, "email_domain").take(lambda d: d.lower() if d else None)
        for i in np.flatnonzero(pd.isna(domains)).tolist():
            key = self.email_key(i)
            domains[i] = (key.rsplit("@", 1)[-1] if "@" in key else "").lower()
        codes, unique = pd.factorize(domains)
        labels: list[str | None] = []
        for domain in unique.tolist():
            labels.append(None)
            for entry in entries:
                if domain and (domain == entry or domain.endswith(f".{entry}")):
                    labels[-1] = f"domain:{entry}"
                    break
        return objects(labels)[codes] if len(labels) else np.full(self.n, None, dtype=object)

    # -- lifecycle ------------------------------------------------------------------------------------

    def stage_is(self, name: str) -> np.ndarray:
        return self.stage_code == STAGES.index(name)

    def acted_is(self, *names: str) -> np.ndarray:
        codes = [self.acted.index(name) + 1 for name in names if name in self.acted]
        return np.isin(self.act_code, codes) if codes else np.zeros(self.n, dtype=bool)

    @cached_property
    def reset_ref(self) -> np.ndarray:
        """The moment activity must come after to reset the cycle: our warning, or the warning or
        action that led to our action."""
        warned_at, actioned_at = self.warned_at, self.actioned_at
        action_ref = np.where(~np.isnan(warned_at) & (warned_at <= actioned_at), warned_at, actioned_at)
        return np.where(
            self.stage_is("warned"), warned_at, np.where(self.stage_is("actioned"), action_ref, np.nan)
        )

    @cached_property
    def waiting(self) -> np.ndarray:
        """Users this tool actioned who wait for deletion (a product removal that left products is
        judged on those products instead)."""
        removal_left = self.acted_is(REMOVE_PRODUCT_ACCESS) & (self.n_products > 0)
        return self.stage_is("actioned") & ~removal_left

    @cached_property
    def never_deleted(self) -> np.ndarray:
        """Actioned users deletion can never follow for: no action time, an action this tool does
        not record, restored since, or deletion switched off."""
        unknown = np.isnan(self.actioned_at) | ~self.acted_is(*LIFECYCLE_ACTIONS)
        off = np.full(self.n, self.policy.delete_after_days is None)
        return unknown | (self.restored_at >= self.actioned_at) | off

    @cached_property
    def in_place(self) -> np.ndarray:
        """Atlassian still shows the account as our action left it."""
        action = objects([None, *self.acted])[self.act_code]
        return still_as_left(action, objects(self.status_names)[self.statuses.codes], self.n_products > 0)

    @cached_property
    def since_action(self) -> np.ndarray:
        return days_between(self.actioned_at, self.as_of_s)

    @cached_property
    def noticed(self) -> np.ndarray:
        return ~np.isnan(self.notice_at)

    @cached_property
    def delete_days(self) -> np.ndarray:
        """Days until the deletion (inf when deletion is off)."""
        delete_after = self.policy.delete_after_days
        if delete_after is None:
            return np.full(self.n, np.inf)
        delete_days = delete_after - self.since_action
        notice = self.policy.delete_notice_days
        if notice:
            # Nobody is deleted without notice: the deletion comes `notice` days after the notice.
            after_notice = notice - days_between(self.notice_at, self.as_of_s)
            delete_days = np.where(self.noticed, np.fmax(delete_days, after_notice), delete_days)
        return delete_days

    @cached_property
    def deletion_notice_due(self) -> np.ndarray:
        """Users whose deletion is near enough for the deletion notice, not sent yet."""
        notice = self.policy.delete_notice_days
        if not notice:
            return np.zeros(self.n, dtype=bool)
        return ~self.noticed & (self.delete_days <= notice)

    # -- inactivity -------------------------------------------------------------------------------------

    @cached_property
    def due(self) -> np.ndarray:
        """Users due for the policy's action: past every product's threshold (with
        remove_product_access: past any product's)."""
        if self.is_remove:
            return self.n_due > 0
        has_products = self.n_products > 0
        return np.where(has_products, self.n_due == self.n_products, self.overall_until <= 0)

    @cached_property
    def until(self) -> np.ndarray:
        """Days until the user is due (negative: overdue)."""
        if self.is_remove:
            return np.where(self.due, self.max_until_due, self.min_until)
        return np.where(self.n_products > 0, self.max_until, self.overall_until)

    @cached_property
    def current_warning(self) -> np.ndarray:
        """Users warned in the current cycle (the warning and its bucket are known)."""
        return self.stage_is("warned") & ~np.isnan(self.warned_at) & ~np.isnan(self.last_warned)

    @cached_property
    def first_warned_at(self) -> np.ndarray:
        """The first warning of the current cycle; without a known first warning the latest one
        counts (a later start can only lengthen the notice)."""
        current = self.current_warning
        recorded = self.recorded_first_warned_at
        first = np.where(current & np.isnan(recorded), self.warned_at, recorded)
        first[~current] = np.nan
        return first

    @cached_property
    def effective(self) -> np.ndarray:
        """Days until the action may happen: when the user is due, and not before the notice is
        over (nobody is actioned sooner than ``notice`` days after the first warning of their
        cycle; a user not warned yet would be warned today)."""
        notice = self.policy.warning.notice_days
        since_first = days_between(self.first_warned_at, self.as_of_s)
        return np.maximum(self.until, np.where(self.current_warning, notice - since_first, notice))

    @cached_property
    def window(self) -> np.ndarray:
        """Users close enough to their action date to be warned (never without lead days)."""
        lead = self.policy.warning.lead_days
        if not lead:
            return np.zeros(self.n, dtype=bool)
        return (self.until <= max(lead)) & (self.effective > 0)

    @cached_property
    def window_bucket(self) -> np.ndarray:
        """The warning bucket of the days left: the smallest lead day at least that far."""
        lead = np.asarray(sorted(self.policy.warning.lead_days), dtype=float)
        if not len(lead):
            return np.full(self.n, np.nan)
        where = np.searchsorted(lead, np.where(self.window, self.effective, 0))
        return lead[np.clip(where, 0, len(lead) - 1)]

    @cached_property
    def sent(self) -> np.ndarray:
        """Users in the window who already got this bucket's warning (or a later one)."""
        return self.window & self.current_warning & (self.last_warned <= self.window_bucket)


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
