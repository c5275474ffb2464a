"""The planner's rules, in the order they are tried: the first rule that applies to a user decides.

:data:`RULES` is the whole decision in one table. Each :class:`Rule` names the users it applies to
(a mask over :class:`~atlassian_cleanup.decisions.plan_facts.PlanFacts`) and what it decides for
them (the proposed and planned action, the action date, the warning bucket, or the protection).
:func:`decide` applies the table to every user at once; a rule only sees the users no earlier rule
took. The reasons for each rule are worded in :mod:`atlassian_cleanup.decisions.reasons`.

To add a rule: write its mask from the facts, put it at its place in the table, word its reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from atlassian_cleanup.action_kinds import (
    DEACTIVATE,
    DELETE,
    DELETE_NOTICE,
    PROPOSED_ACTIONS,
    SUSPEND,
    WARN,
)
from atlassian_cleanup.decisions.plan_facts import PlanFacts

#: Action codes while planning: an index into ``PROPOSED_ACTIONS`` (0: none).
ACTION_CODE = {name: code for code, name in enumerate(PROPOSED_ACTIONS)}


@dataclass
class Decisions:
    """What the rules decided, per user (codes into :data:`RULE_NAMES` and ``PROPOSED_ACTIONS``)."""

    n: int
    rule: np.ndarray = field(init=False)
    protected_by: np.ndarray = field(init=False)
    proposed: np.ndarray = field(init=False)
    planned: np.ndarray = field(init=False)
    action_days: np.ndarray = field(init=False)  # days from as_of to the action date
    bucket: np.ndarray = field(init=False)  # the warning bucket of a warn row

    def __post_init__(self) -> None:
        self.rule = np.zeros(self.n, dtype=np.int8)
        self.protected_by = np.full(self.n, "", dtype=object)
        self.proposed = np.zeros(self.n, dtype=np.int8)
        self.planned = np.zeros(self.n, dtype=np.int8)
        self.action_days = np.full(self.n, np.nan)
        self.bucket = np.full(self.n, np.nan)


Effect = Callable[[PlanFacts, Decisions, np.ndarray], None]


@dataclass(frozen=True)
class Rule:
    """A named rule: the users it ``applies`` to and what it decides for them (``then``)."""

    name: str
    applies: Callable[[PlanFacts], np.ndarray]
    then: Effect | None = None


def _protect(name: str, labels: Callable[[PlanFacts], np.ndarray]) -> Rule:
    """A protection: ``labels`` gives each protected user's ``protected_by`` (None: not protected)."""

    def record(facts: PlanFacts, decided: Decisions, chosen: np.ndarray) -> None:
        decided.protected_by[chosen] = labels(facts)[chosen]

    return Rule(name, lambda facts: pd.notna(labels(facts)), record)


def _labels(mask: Callable[[PlanFacts], np.ndarray], label: str) -> Callable[[PlanFacts], np.ndarray]:
    """One label for every user ``mask`` marks."""
    return lambda facts: np.where(mask(facts), label, np.array(None, dtype=object))


# -- what the rules decide ---------------------------------------------------------------------------


def _policy_action(facts: PlanFacts) -> np.ndarray:
    """Per user, the code of the action the policy takes on them once due: deactivate falls back to
    suspend for accounts Atlassian does not let the organization deactivate."""
    action = facts.policy.action
    if action == DEACTIVATE:
        code = np.where(facts.suspend_why == 0, ACTION_CODE[DEACTIVATE], ACTION_CODE[SUSPEND])
        return code.astype(np.int8)
    return np.full(facts.n, ACTION_CODE[action], dtype=np.int8)


def _deletion_notice(facts: PlanFacts, decided: Decisions, chosen: np.ndarray) -> None:
    decided.proposed[chosen] = ACTION_CODE[DELETE_NOTICE]
    decided.planned[chosen] = ACTION_CODE[DELETE]
    decided.action_days[chosen] = np.fmax(facts.delete_days[chosen], facts.policy.delete_notice_days)


def _delete(facts: PlanFacts, decided: Decisions, chosen: np.ndarray) -> None:
    decided.proposed[chosen] = decided.planned[chosen] = ACTION_CODE[DELETE]
    decided.action_days[chosen] = facts.delete_days[chosen]


def _await_delete(facts: PlanFacts, decided: Decisions, chosen: np.ndarray) -> None:
    decided.planned[chosen] = ACTION_CODE[DELETE]
    decided.action_days[chosen] = facts.delete_days[chosen]


def _wait_for_notice(facts: PlanFacts, decided: Decisions, chosen: np.ndarray) -> None:
    decided.planned[chosen] = _policy_action(facts)[chosen]
    decided.action_days[chosen] = facts.effective[chosen]


def _warn(facts: PlanFacts, decided: Decisions, chosen: np.ndarray) -> None:
    _wait_for_notice(facts, decided, chosen)
    decided.proposed[chosen] = ACTION_CODE[WARN]
    decided.bucket[chosen] = facts.window_bucket[chosen]


def _act(facts: PlanFacts, decided: Decisions, chosen: np.ndarray) -> None:
    decided.proposed[chosen] = decided.planned[chosen] = _policy_action(facts)[chosen]
    decided.action_days[chosen] = facts.until[chosen]


def _await_review(facts: PlanFacts, decided: Decisions, chosen: np.ndarray) -> None:
    decided.planned[chosen] = _policy_action(facts)[chosen]
    decided.action_days[chosen] = facts.until[chosen]


def _not_yet(facts: PlanFacts, decided: Decisions, chosen: np.ndarray) -> None:
    decided.action_days[chosen] = facts.until[chosen]


def _everyone(facts: PlanFacts) -> np.ndarray:
    return np.ones(facts.n, dtype=bool)


# -- the table ---------------------------------------------------------------------------------------

RULES: tuple[Rule, ...] = (
    # 1. Protection, most fundamental first: never touched, deletion included.
    _protect("app_account", _labels(lambda f: f.type_is("app"), "account_type:app")),
    _protect("customer_account", _labels(lambda f: f.type_is("customer"), "account_type:customer")),
    _protect("unknown_account_type", lambda f: f.other_type_hit),
    _protect("admin_role", lambda f: f.role_hit),
    _protect("admin_group", lambda f: f.admin_group_hit),
    _protect("api_user", _labels(lambda f: f.email_in(f.api_emails) | f.id_in(f.api_ids), "api_user")),
    _protect("protected_account", lambda f: f.labelled(
        f.id_in(f.policy.protected.account_ids), "account_id:", f.ids.__getitem__)),
    _protect("protected_email", lambda f: f.labelled(
        f.email_in(f.policy.protected.emails), "email:", f.email_key)),
    _protect("protected_domain", lambda f: f.domain_hit),
    _protect("protected_group", lambda f: f.protected_group_hit),
    _protect("new_user_grace", _labels(
        lambda f: f.since_added < f.policy.new_user_grace_days, "new_user_grace")),  # NaN -> False
    _protect("restored_grace", _labels(
        lambda f: f.since_restored < f.policy.restored_grace_days, "restored_grace")),
    _protect("kept_in_review", lambda f: f.kept_labels),  # an admin's keep, until its last day
    # 2. Lifecycle: finished, reset by activity (NaN compares False: no activity, no reset), deletion.
    Rule("deleted", lambda f: f.stage_is("deleted")),
    Rule("pending_delete", lambda f: f.stage_is("pending_delete")),
    Rule("already_for_deletion", lambda f: f.status_is("for_deletion")),
    Rule("activity_seen", lambda f: f.last_any > f.reset_ref),
    Rule("already_actioned", lambda f: f.waiting & f.never_deleted),
    # Atlassian no longer shows the account as we left it: someone restored it by hand.
    Rule("changed_outside_tool", lambda f: f.waiting & ~f.in_place),
    Rule("deletion_notice", lambda f: f.waiting & f.deletion_notice_due, _deletion_notice),
    Rule("dormant_delete", lambda f: f.waiting & (f.delete_days <= 0), _delete),
    Rule("awaiting_delete", lambda f: f.waiting, _await_delete),
    # 3. Atlassian status: no new warning or action for users who are not plainly active.
    Rule("already_suspended", lambda f: f.status_is("suspended")),
    Rule("already_deactivated", lambda f: f.status_is("deactivated")),
    Rule("not_invited", lambda f: f.status_is("not_invited")),
    Rule("unknown_status", lambda f: ~f.status_is("active")),
    # 4. Inactivity: warn ahead of the action date, wait out the notice, then act.
    Rule("no_product_access", lambda f: f.is_remove & (f.n_products == 0)),
    Rule("notice_period", lambda f: f.sent & f.due, _wait_for_notice),
    Rule("already_warned", lambda f: f.sent, _wait_for_notice),
    Rule("final_warning", lambda f: f.window & f.due & ~f.current_warning, _warn),
    Rule("warning_window", lambda f: f.window, _warn),
    # Due, and warned long enough ago (or warnings are off): act, or with review on, wait for an
    # admin's approve (every rule below acts on exactly the users due here).
    Rule("awaiting_review", lambda f: f.review_waits & f.due, _await_review),
    Rule("inactive_product", lambda f: f.is_remove & f.due, _act),
    Rule("inactive_all_products", lambda f: f.due & (f.n_products > 0) & (not f.is_remove), _act),
    Rule("inactive_no_product_access", lambda f: f.due & (not f.is_remove), _act),
    Rule("active", _everyone, _not_yet),
)  # fmt: skip

#: Rule ids by code (0: not decided yet); the plan's ``rule`` column holds the names.
RULE_NAMES: tuple[str, ...] = ("", *(rule.name for rule in RULES))
RULE_CODE = {name: code for code, name in enumerate(RULE_NAMES)}


def decide(facts: PlanFacts) -> Decisions:
    """Apply :data:`RULES` in order: each user gets the first rule that applies to them."""
    decided = Decisions(facts.n)
    for code, rule in enumerate(RULES, start=1):
        open_ = decided.rule == 0
        if not open_.any():
            break
        applies = rule.applies(facts)
        if applies.dtype != bool:  # an integer mask would index users by number
            raise TypeError(f"rule {rule.name} must give a boolean mask (got {applies.dtype})")
        chosen = applies & open_
        if chosen.any():
            decided.rule[chosen] = code
            if rule.then is not None:
                rule.then(facts, decided, chosen)
    return decided
