"""Safety gates that stop a run before its first write (DESIGN.md §6, rules 3 and 4).

These questions are asked of every run, all as pure functions so they can be tested exhaustively and
called from any operator:

* :func:`sanity_problems` — does the input look wrong? A user count that collapsed compared with the
  previous run usually means a wrong org or directory, a narrowed API key or a truncated listing;
  last-active data missing for most users usually means the ``productAccess`` expansion was not
  returned. Acting on such input would suspend the wrong people, so the run stops.
  The count judged is the one the *directory itself* returned, before Jira's user list back-fills
  accounts the directory does not list: a back-fill can hide a collapsed directory listing.
* :func:`memory_problems` — is the state store the one earlier live runs used? A store that was
  deleted, truncated or swapped comes back empty, and planning against an empty memory warns
  everyone again; the run stops unless the admin acknowledges a fresh start for that one run.
* :func:`plausibility_warnings` — is the policy plausible (someone protected, periods under ten
  years, caps that do not allow more than half of the org)? Findings are warnings for the log and
  the digest, never a stop.
* :func:`check_caps` — would the run act on more users than the policy allows? A cap applies to
  each write action kind *and* to the total, as an absolute count (``max_actions_per_run``) and as
  a share of the org (``max_action_share``). What happens when a cap is exceeded (fail, or wait for
  an approval) is the caller's decision, taken from ``policy.safety.on_cap_exceeded``.

Nothing here imports Airflow, calls Atlassian or reads the clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from atlassian_cleanup import action_kinds
from atlassian_cleanup.decisions.policy import ACKNOWLEDGE_NEW_STATE_STORE, Policy
from atlassian_cleanup.decisions.policy import plausibility_warnings as policy_plausibility_warnings

#: Write action kinds in the order they are reported.
CAP_KINDS: tuple[str, ...] = action_kinds.WRITE_ACTIONS


# --------------------------------------------------------------------------------------------------
# Sanity of the input
# --------------------------------------------------------------------------------------------------


def missing_activity_share(users: Iterable[Mapping[str, Any]]) -> float:
    """
    Share of active Atlassian accounts without any last-active data.

    Only ``account_type == "atlassian"`` users with ``status == "active"`` count: apps, customers and
    already suspended accounts legitimately have no activity. A user has data when ``last_active``
    is set or any product in ``product_access`` carries a timestamp.

    :param users: :class:`~atlassian_cleanup.decisions.records.UserRecord` dicts.
    :return: a share in ``[0, 1]``; ``0.0`` when there is no such user.
    """
    counted = missing = 0
    for user in users:
        if user.get("account_type") != "atlassian" or user.get("status") != "active":
            continue
        counted += 1
        access = user.get("product_access") or {}
        if not user.get("last_active") and not any(access.values()):
            missing += 1
    return missing / counted if counted else 0.0


def sanity_problems(
    *,
    user_count: int,
    previous_user_count: int | None,
    missing_activity_share: float,
    policy: Policy,
    back_filled: int = 0,
) -> list[str]:
    """
    Reasons to distrust this run's input; an empty list means the input looks plausible.

    :param user_count: users the directory listed in this run, *before* any back-fill from Jira's
        user list (a back-fill must not hide a collapsed listing).
    :param previous_user_count: the same count of the previous run, ``None`` on the first run
        (then the collapse check is skipped).
    :param back_filled: accounts added from Jira's user list on top of ``user_count``; only named
        in the message, never counted.
    :param missing_activity_share: from :func:`missing_activity_share`.
    :param policy: the run's policy (``safety.min_user_count_ratio``, ``safety.max_missing_activity_share``).
    :return: one sentence per problem, naming the numbers and what to check.
    """
    safety = policy.safety
    problems: list[str] = []

    ratio = float(safety.min_user_count_ratio or 0.0)
    # ratio 0 switches the check off; no previous run means nothing to compare with.
    if ratio > 0 and previous_user_count and previous_user_count > 0:
        minimum = ratio * previous_user_count
        if user_count < minimum:
            extra = (
                f" (Jira's user list added {back_filled} accounts the directory did not list; they "
                "are not counted, and none of them is acted on either)"
                if back_filled
                else ""
            )
            problems.append(
                f"The directory listed {user_count} users, fewer than {ratio:.0%} of the "
                f"{previous_user_count} it listed in the previous run (at least {math.ceil(minimum)} "
                f"expected){extra}. Check that the Admin API connection points at the right org_id and "
                "directory_id, that the API key still sees the whole directory and that the listing "
                "was not cut short; if the drop is real, lower safety.min_user_count_ratio for one run."
            )

    limit = float(safety.max_missing_activity_share)
    # A limit of 1.0 (100 %) can never be exceeded, which is how the check is switched off.
    if missing_activity_share > limit:
        problems.append(
            f"{missing_activity_share:.0%} of the active Atlassian accounts have no last-active data "
            f"at all, more than the allowed {limit:.0%} (safety.max_missing_activity_share). Check that "
            "the user search returned the productAccess expansion and that Atlassian's last-active "
            "data is available for this org; acting now would treat active people as inactive."
        )
    return problems


# --------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreWitness:
    """A record, kept outside the state store, of a live run and the store it used.

    :param run_id: the live run.
    :param store_id: the identity of the state store that run used.
    :param source: where the record was found (an Airflow Variable, an audit manifest), for the
        message.
    """

    run_id: str
    store_id: str
    source: str


def memory_problems(
    *, store_id: str, store_knows_run: Callable[[str], bool], witness: StoreWitness | None
) -> list[str]:
    """
    Reasons to believe the state store lost the memory of earlier live runs.

    The witness is the latest live run recorded outside the store. The store must be the one that
    run used (same identity) and must still know that run: a deleted, truncated or recreated store
    has a new identity; a store restored from an older backup, or whose rows were removed, does not
    know the run. Either way planning now would warn (and later act on) people as if for the first
    time.

    :param store_id: the identity of the store this run opened.
    :param store_knows_run: whether this store recorded a given live run.
    :param witness: the latest live run recorded outside the store; ``None`` when no live run was
        ever witnessed (a new install, or only dry runs so far).
    :return: one paragraph per problem, with how to restore or acknowledge; empty when fine.
    """
    if witness is None:
        return []
    fix = (
        "Restore the state database from a backup taken after that run (or point "
        "state_store.conn_id at the database that run used), or, if starting again from an "
        f"empty memory is intended, trigger one run with the param {ACKNOWLEDGE_NEW_STATE_STORE} = "
        "true: people already warned may then be warned again."
    )
    if witness.store_id != store_id:
        return [
            f"The state store this run opened (id {store_id}) is not the one the last live run "
            f"{witness.run_id} used (id {witness.store_id}, recorded in {witness.source}): it was "
            f"deleted, emptied or replaced, so who was already warned or actioned is unknown. {fix}"
        ]
    if not store_knows_run(witness.run_id):
        return [
            f"The state store (id {store_id}) has no record of the last live run {witness.run_id} "
            f"(recorded in {witness.source}): it was restored from an older backup or rows were "
            f"removed, so what that run did is unknown. {fix}"
        ]
    return []


# --------------------------------------------------------------------------------------------------
# Caps
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CapDecision:
    """
    Whether the planned writes stay within the policy's caps.

    :param exceeded: at least one cap (per kind or total) is exceeded.
    :param counts: planned rows per write action kind (every kind of :data:`CAP_KINDS`, zeros included).
    :param total: all planned writes.
    :param limits: the caps applied: ``max_actions_per_run``, ``max_action_share``, ``user_count``,
        ``share_limit`` (``max_action_share × user_count``) and ``effective`` (the smaller of the two,
        rounded down: the largest count that passes).
    :param over: the kinds (and ``"total"``) whose cap is exceeded, in report order.
    :param lines: human sentences for the task log and the approval request.
    """

    exceeded: bool
    counts: dict[str, int]
    total: int
    limits: dict[str, Any]
    over: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-native form (for XCom and the approval message)."""
        return {
            "exceeded": self.exceeded,
            "counts": dict(self.counts),
            "total": self.total,
            "limits": dict(self.limits),
            "over": list(self.over),
            "lines": list(self.lines),
        }


def _proposed_actions(plan_rows: Any) -> list[str]:
    # A pandas plan is accepted without importing pandas: read its column directly.
    if hasattr(plan_rows, "columns") and "proposed_action" in plan_rows.columns:
        return [str(action) for action in plan_rows["proposed_action"]]
    return [str(row.get("proposed_action") or "none") for row in plan_rows]


def check_caps(plan_rows: Any, *, user_count: int, policy: Policy) -> CapDecision:
    """
    Count the planned writes and compare each kind, and the total, with the caps.

    A count passes when it is at most ``max_actions_per_run`` *and* at most
    ``max_action_share × user_count``; reaching a limit exactly is allowed.

    :param plan_rows: plan rows (dicts with ``proposed_action``) or a plan DataFrame.
    :param user_count: users in the org this run (the base of the share cap).
    :param policy: the run's policy.
    :return: the decision.
    """
    safety = policy.safety
    actions = _proposed_actions(plan_rows)
    counts = {kind: 0 for kind in CAP_KINDS}
    for action in actions:
        if action in counts:
            counts[action] += 1
    total = sum(counts.values())

    max_count = safety.max_actions_per_run
    share = safety.max_action_share
    share_limit = share * user_count if share is not None else None
    candidates = [value for value in (max_count, share_limit) if value is not None]
    effective = math.floor(min(candidates)) if candidates else None
    limits: dict[str, Any] = {
        "max_actions_per_run": max_count,
        "max_action_share": share,
        "user_count": user_count,
        "share_limit": share_limit,
        "effective": effective,
    }

    def breaches(count: int) -> list[str]:
        reasons = []
        if max_count is not None and count > max_count:
            reasons.append(f"the cap of {max_count} actions per run (safety.max_actions_per_run)")
        if share_limit is not None and count > share_limit:
            reasons.append(
                f"{share:.0%} of the {user_count} users = {share_limit:g} (safety.max_action_share)"
            )
        return reasons

    over: list[str] = []
    lines: list[str] = []
    for kind, count in [*counts.items(), ("total", total)]:
        reasons = breaches(count)
        label = "all writes together" if kind == "total" else kind
        if reasons:
            over.append(kind)
            lines.append(f"{label}: {count} planned, more than {' and '.join(reasons)}.")
        elif count:
            lines.append(f"{label}: {count} planned, within the limit of {effective}.")

    exceeded = bool(over)
    if exceeded:
        lines.append(
            "No write has been made. Review the plan; if it is right, approve this run "
            "(safety.on_cap_exceeded: approve) or raise the caps for one run."
        )
    elif not total:
        lines.append("No writes planned.")
    return CapDecision(exceeded=exceeded, counts=counts, total=total, limits=limits, over=over, lines=lines)


# --------------------------------------------------------------------------------------------------
# Plausibility of the caps
# --------------------------------------------------------------------------------------------------


def cap_plausibility_warnings(policy: Policy, *, user_count: int) -> list[str]:
    """
    A warning when the caps let one run action more than half of the org (accepted, not an error).

    Which share of the org the caps allow depends on its size, so this is asked where the caps are
    checked; the policy-only plausibility warnings are
    :func:`atlassian_cleanup.decisions.policy.plausibility_warnings`.

    :param policy: the run's policy (``safety.max_actions_per_run``, ``safety.max_action_share``).
    :param user_count: users in the org this run.
    :return: one sentence, or an empty list.
    """
    safety = policy.safety
    if user_count <= 0:
        return []
    allowed = min(safety.max_actions_per_run, math.floor(safety.max_action_share * user_count))
    if allowed * 2 <= user_count:
        return []
    return [
        f"safety caps: one run may action up to {allowed} of the {user_count} users, more than half "
        f"of the org (safety.max_actions_per_run {safety.max_actions_per_run}, "
        f"safety.max_action_share {safety.max_action_share:g}); lower them unless that is meant."
    ]


def plausibility_warnings(policy: Policy, *, user_count: int) -> list[str]:
    """Every plausibility warning of a run: the policy's own and the caps' against the org size."""
    return [*policy_plausibility_warnings(policy), *cap_plausibility_warnings(policy, user_count=user_count)]
