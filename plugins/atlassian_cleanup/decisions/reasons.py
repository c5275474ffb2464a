"""The reason sentences of the plan: one per user, with the numbers and dates an admin checks.

:class:`Reasons` words the rules of :mod:`atlassian_cleanup.decisions.plan_rules` for every user
of a plan. The frequent rules are worded column-wise, each distinct combination of inputs once;
the rarer ones (protections, lifecycle) one user at a time. tests/unit/test_planner_reasons.py
words every rule again row by row, independently, and checks that both agree word for word.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from atlassian_cleanup.action_kinds import DEACTIVATE, PROPOSED_ACTIONS, SUSPEND
from atlassian_cleanup.days import SECONDS_PER_DAY, days_between, utc_day
from atlassian_cleanup.decisions.account_facts import DELETE_GRACE_DAYS
from atlassian_cleanup.decisions.plan_arrays import ProductSets, by_key, dates, groups, objects
from atlassian_cleanup.decisions.plan_facts import WHY_IDP, WHY_REFUSED, PlanFacts
from atlassian_cleanup.decisions.plan_rules import ACTION_CODE, RULE_NAMES, Decisions
from atlassian_cleanup.decisions.products import product_label
from atlassian_cleanup.decisions.reasons_by_user import OneUserWording
from atlassian_cleanup.decisions.records import STAGES
from atlassian_cleanup.decisions.words import days_text, labels_and, labels_or, noun, upper_first

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
#: Rules whose rows list the products to remove, with remove_product_access.
REMOVAL_RULES = ("inactive_product", "final_warning", "notice_period", "warning_window", "already_warned")
# Rules of users being warned, waiting out their notice or actioned after it (warning.without_email).
_WARN_RULES = ("final_warning", "warning_window")
#: Rules of users in the notice pipeline, whose reason says what warning.without_email does.
NO_EMAIL_RULES = (
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


@dataclass(frozen=True)
class ProductColumns:
    """The plan's product sets, as keys of ``sets`` (:class:`ProductSets`), per user."""

    sets: ProductSets
    due: np.ndarray  # the products past their threshold
    inactive_products: np.ndarray  # the same, as lists
    to_remove: np.ndarray  # the products to remove (0: none)
    remove_lists: np.ndarray | None  # the same, as lists (None: the policy removes no products)
    remove_rows: np.ndarray  # which rows of the long product table are to be removed


class Reasons(OneUserWording):
    """One sentence per user saying why, with the numbers and dates an admin checks.

    The frequent rules are worded column-wise: each varying part (a date, a day count, a product
    list) is worded once per distinct value and the sentences are joined in one pass per rule. With
    ``remove_product_access`` a sentence lists each product to remove with its own days and date,
    so nearly every user's sentence differs: each product's detail is worded once per distinct
    detail on the long table and the details are joined per user (:meth:`removal_sentences`). The
    rarer rules (protections, lifecycle) are worded row by row (:class:`OneUserWording`). Every
    sentence must equal the independent row-by-row oracle in tests/unit/test_planner_reasons.py.
    """

    def __init__(
        self,
        facts: PlanFacts,
        decided: Decisions,
        shown: ProductColumns,
        *,
        action_date: np.ndarray,
        no_email: np.ndarray,
    ) -> None:
        self.n, self.policy, self.products = facts.n, facts.policy, facts.products
        self.rule, self.protected_by, self.planned = decided.rule, decided.protected_by, decided.planned
        self.action_days, self.bucket, self.action_date = decided.action_days, decided.bucket, action_date
        self.planned_names = objects(PROPOSED_ACTIONS)[decided.planned]
        self.suspend_why, self.stage, self.managed = facts.suspend_why, facts.stage_code, facts.managed
        codes = (facts.types.codes, facts.statuses.codes)
        self.account_types = facts.type_names[codes[0]] if self.n else np.empty(0, dtype=object)
        self.statuses = objects(facts.status_names)[codes[1]] if self.n else np.empty(0, dtype=object)
        self.acted, self.act_code, self.last_warned = facts.acted, facts.act_code, facts.last_warned
        self.days_inactive, self.since_action = facts.days_inactive, facts.since_action
        self.since_added, self.since_restored = facts.since_added, facts.since_restored
        self.added_s, self.last_any_s, self.last_pc = facts.added_s, facts.last_any, facts.last_pc
        self.reset_ref, self.warned_at = facts.reset_ref, facts.warned_at
        self.first_warned_at = facts.first_warned_at
        self.removed_from_directory = facts.removed_from_directory
        self.added, self.last_any, self.warned = (
            dates(facts.added_s),
            dates(facts.last_any),
            dates(facts.warned_at),
        )
        self.actioned, self.restored = dates(facts.actioned_at), dates(facts.restored_at)
        self.delete_requested, self.noticed = dates(facts.delete_at), dates(facts.notice_at)
        self.grace_ends = dates(facts.delete_at + DELETE_GRACE_DAYS * SECONDS_PER_DAY)
        self.grace_over = days_between(facts.delete_at, facts.as_of_s) >= DELETE_GRACE_DAYS
        self.first_warned = dates(self.first_warned_at)
        self.no_email = no_email
        self.product_rows = (facts.pu, facts.pc, facts.pdays, facts.pthreshold, facts.plast)
        self.masks, self.due_masks, self.remove_masks = shown.sets, shown.due, shown.to_remove
        self.inactive_products, self.remove_lists = shown.inactive_products, shown.remove_lists
        self.remove_rows = shown.remove_rows
        self.all_masks = self.masks.masks()
        # Day numbers stand for the dates in the sentences (equal day, equal date text).
        self.last_day = utc_day(self.last_any_s)
        self.added_day_if_never = np.where(np.isnan(self.last_day), utc_day(self.added_s), np.nan)
        self.warned_day = utc_day(self.warned_at)
        self.first_warned_day = utc_day(self.first_warned_at)
        self.default_days = self.policy.inactivity.default_days
        self.is_remove = facts.is_remove
        self.notice = self.policy.warning.notice_days
        self.email_notes = self._email_notes()
        self.delete_after = self.policy.delete_after_days
        self.review_of = facts.review_of

    # -- shared pieces ------------------------------------------------------------------------------

    def _email_notes(self) -> np.ndarray:
        """Per user, the sentence added for a user without a visible e-mail address ("" for others)."""
        notes = np.full(self.n, "", dtype=object)
        choice = self.policy.warning.without_email
        for code in np.unique(self.rule[self.no_email]).tolist():
            rows = np.flatnonzero(self.no_email & (self.rule == code))
            notes[rows] = _NO_EMAIL_NOTES.get((choice, RULE_NAMES[code] in _WARN_RULES), "")
        return notes

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
        if self.policy.action == DEACTIVATE and planned_code == ACTION_CODE[SUSPEND]:
            return {WHY_IDP: _IDP_MANAGED, WHY_REFUSED: _REFUSED}.get(why, _UNMANAGED)
        return ""

    # -- column-wise pieces (``rows`` are user indexes) ---------------------------------------------

    def last_texts(self, rows: np.ndarray) -> list[str]:
        where = by_key(self.last_pc[rows], lambda code: f" in {self._label_of(code)}" if code >= 0 else "")
        return [
            f"last active {last}{w}"
            if last
            else (f"never active since joining on {added}" if added else "no activity ever recorded")
            for last, w, added in zip(
                self.last_any[rows].tolist(), where.tolist(), self.added[rows].tolist(), strict=True
            )
        ]

    def day_texts(self, values: np.ndarray) -> list[str | None]:
        """``days_text`` of each value; None where NaN."""
        ok = ~np.isnan(values)
        out = np.full(len(values), None, dtype=object)
        if ok.any():
            out[ok] = by_key(values[ok].astype(np.int64), days_text)
        return out.tolist()

    def all_products(self, rows: np.ndarray) -> list[str]:
        """The reason core when every product counts (suspend / deactivate)."""
        masks = self.all_masks[rows]
        names = by_key(masks, lambda m: labels_or(self.masks.names(m)) if m else None)
        thresholds = by_key(masks, lambda m: self._thresholds(self.masks.names(m)))
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
            return by_key(self.remove_masks[rows], self._removal_of).tolist()
        words = by_key(self.planned[rows], lambda code: noun(PROPOSED_ACTIONS[code]))
        return words.tolist()

    def _removal_of(self, mask: int) -> str:
        return f"removal of {labels_and(self.masks.names(mask))} access"

    def removal_sentences(
        self, rows: np.ndarray, before: np.ndarray, after: np.ndarray, *, first_lower: bool
    ) -> np.ndarray:
        """Per row: ``before``, the products to remove worded one by one and joined by "; ", ``after``.

        Each distinct product detail (product, days, last active or joining date) is worded once,
        the first detail with an upper case letter (or, with ``first_lower``, lower case again), in
        product order. A row without a product to remove gets ``before`` and ``after`` only.
        No Python code runs per user: a user's details go to one column per place in their list and
        each sentence is joined once, in C.
        """
        pu, pc, pdays, pthreshold, plast = self.product_rows
        row_of = np.full(self.n, -1, dtype=np.int64)  # user -> index into rows (-1: not asked for)
        row_of[rows] = np.arange(len(rows))
        picked = np.flatnonzero((row_of[pu] >= 0) & self.remove_rows)
        users, codes, days, last = row_of[pu[picked]], pc[picked], pdays[picked], plast[picked]
        # The joining date is worded only for a product never used (and then only if days are known).
        added_day = np.where(np.isnan(last), utc_day(self.added_s[pu[picked]]), np.nan)
        group, first = groups([codes, days, utc_day(last), added_day])
        last_dates = dates(last[first])
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
            parts.append(f"no activity in {label} for {days_text(days[j])} (threshold {threshold}, {since})")
        heads = [upper_first(part) for part in parts]
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
        columns[0, users[lead]] = objects(heads)[group[lead]]
        columns[place[~lead], users[~lead]] = objects([f"; {part}" for part in parts])[group[~lead]]
        sentences = map("".join, zip(before, *columns, after, strict=True))
        return np.fromiter(sentences, dtype=object, count=len(rows))

    def fallbacks(self, rows: np.ndarray) -> list[str]:
        keys = self.planned[rows].astype(np.int64) * 4 + self.suspend_why[rows]
        return by_key(keys, self._fallback).tolist()

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
        one_by_one = self._one_by_one()
        for code in np.flatnonzero(np.bincount(self.rule, minlength=len(RULE_NAMES))).tolist():
            rule = RULE_NAMES[code]
            rows = np.flatnonzero(self.rule == code)
            if rule in _FIXED_TEXT:
                out[rows] = _FIXED_TEXT[rule]
            elif rule in fast:
                # Word each distinct combination of inputs once; equal sentences share one string.
                group, first = groups([part[rows] for part in self._inputs(rule)])
                out[rows] = objects(fast[rule](rows[first]))[group]
            elif rule in listed:
                # The product details differ from user to user; the words around them do not.
                group, first = groups([part[rows] for part in self._inputs(rule)])
                heads, tails = listed[rule](rows[first])
                before, after = objects(heads)[group], objects(tails)[group]
                out[rows] = self.removal_sentences(rows, before, after, first_lower=rule == "warning_window")
            else:
                word = one_by_one[rule]
                out[rows] = objects([word(i, rule) for i in rows.tolist()])
        rows = np.flatnonzero(self.email_notes != "")
        notes = self.email_notes[rows]
        out[rows] = objects([f"{text}{note}" for text, note in zip(out[rows], notes, strict=True)])
        return out

    def _inputs(self, rule: str) -> list[np.ndarray]:
        """Everything the column-wise wording of ``rule`` depends on, per user."""
        last = [self.last_day, self.last_pc, self.added_day_if_never]
        # With remove_product_access the core is the product details, worded apart (removal_sentences),
        # and what comes next names the products to remove.
        core = [] if self.is_remove else [self.all_masks, self.days_inactive, *last]
        # The planned action with why it may be a suspension (the fallback sentence), and when.
        when = [
            self.planned,
            self.suspend_why,
            self.action_days,
            *([self.remove_masks] if self.is_remove else []),
        ]
        return {
            "active": [*last, self.days_inactive, self.due_masks, self.action_days],
            # With remove_product_access: the words around the product details (removal_sentences).
            "inactive_product": [self.remove_masks, self.all_masks],
            "inactive_all_products": [*core, *when[:2], self.stage, self.warned_day, self.last_warned],
            "inactive_no_product_access": [
                *core,
                *when[:2],
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
            removed = self.masks.names(remove)
            kept = [product for product in self.masks.names(every) if product not in removed]
            keep = f" Keeping {labels_and(kept)}." if kept else ""
            return f". Removing {labels_and(self.masks.names(remove))} access.{keep}"

        tails = [
            removing(remove, every)
            for remove, every in zip(
                self.remove_masks[rows].tolist(), self.all_masks[rows].tolist(), strict=True
            )
        ]
        return [""] * len(rows), tails

    def _final_warning_frame(self, rows: np.ndarray) -> tuple[list[str], list[str]]:
        notice = days_text(self.notice)
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
        notice = days_text(self.notice)
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
            f"{upper_first(coming)} due on {date} (in {days}): "
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
                    f" Past the threshold on {labels_and(past)} only; {action} needs every product inactive."
                )
            return ""

        stills = by_key(self.due_masks[rows], still).tolist()
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
