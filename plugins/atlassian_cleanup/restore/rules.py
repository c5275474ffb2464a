"""Pure decisions of the self-service restore DAG: one open request in, one decision out.

No Airflow, no HTTP, no clock: the caller passes the request, the requester's directory account
(as re-read right now, or ``None``), what the state store knows (history and journal), the policy
and the run's logical date. The operators (:mod:`atlassian_cleanup.operators.restore`) carry the
decision out.

Rules, in order
---------------
1. **Only the reporter counts.** The account judged and restored is the request's reporter,
   whatever the summary or description says: a request cannot be used to restore someone else.
2. **This request was already handled** (the journal has a succeeded ``restore`` for it): the
   decision is ``restore`` again, so that an interrupted run only finishes the answer.
3. **Removed from the directory** (the journal shows this tool's ``delete`` became a v2 removal
   from the directory, as for unmanaged accounts): no grace window applies; the answer says so
   and that a new invitation with the groups re-added (an admin's decision) is the way back; left
   open. **Deleted for good** (stage ``deleted``, the account gone from the directory, or a
   lifecycle deletion whose 14-day cancel window, counted from the deletion request, is over): a
   clear answer with the dates, nothing to restore; left open for an admin.
4. **Never actioned by this tool** (unknown to the store, or at a stage where we removed nothing):
   answered, not acted on; left open for an admin.
5. **Already restored** (stage ``restored``, or active again after a restore): answered, resolved.
6. **Allowed?** The requester's e-mail domain is in ``restore.allowed_domains`` (subdomains
   included), or one of the groups they had *before we acted* is in ``restore.allowed_groups``.
   Groups are read from the journal's ``before`` snapshot of the action entries, because a
   suspended or removed user may no longer show them. No rule configured means nobody is allowed.
   Not allowed: a comment that an admin will review, left open, and (live) an admin is asked to
   approve it in Airflow (:mod:`atlassian_cleanup.restore.approval`): approved, it is restored
   like an allowed one (rule ``approved:<admin>``); rejected, answered and resolved; no answer in
   time, answered once and left open. A restore **on demand** (an admin
   named the account in the trigger form, :mod:`atlassian_cleanup.restore.on_demand`) skips this
   rule: the admin who triggered the run decides; rules 2 to 5 still hold.
7. **Restore the way the user was actioned**: ``suspend`` → directory restore, ``deactivate`` →
   lifecycle enable, ``remove_product_access`` → re-add the groups the user had before and lacks
   now, pending deletion → ``cancel-delete`` first (then the above for the original action).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from atlassian_cleanup.action_kinds import KINDS, LIFECYCLE_ACTIONS
from atlassian_cleanup.actions.transitions import can_apply
from atlassian_cleanup.decisions.account_facts import (
    DEACTIVATE,
    DELETE_GRACE_DAYS,
    REMOVE_FROM_DIRECTORY,
    REMOVE_PRODUCT_ACCESS,
    SUSPEND,
    AccountFacts,
    admin_done_sentence,
    day,
    facts_from_journal,
    user_done_sentence,
    user_next_sentence,
)
from atlassian_cleanup.restore.approval import (
    APPROVAL_REJECTED,
    APPROVAL_TIMED_OUT,
    AWAITING_APPROVAL,
    ApprovalState,
    approved_texts,
    settled,
    settled_texts,
)

RESTORE = "restore"
ALREADY_RESTORED = "already_restored"
REFUSED = "refused"
NOT_ACTIONED = "not_actioned"
DELETED = "deleted"
#: Removed from the directory (an unmanaged account's "deletion"): no grace, only a re-invite helps.
REMOVED = "removed_from_directory"
#: Set by the operator, not by :func:`decide`: over ``max_restores_per_run``, left for the next run.
DEFERRED = "deferred"
VERDICTS: tuple[str, ...] = (
    RESTORE,
    ALREADY_RESTORED,
    REFUSED,
    NOT_ACTIONED,
    DELETED,
    REMOVED,
    DEFERRED,
    AWAITING_APPROVAL,
    APPROVAL_REJECTED,
    APPROVAL_TIMED_OUT,
)

#: Restore steps, in the order they are carried out.
STEPS: tuple[str, ...] = ("cancel_delete", "restore_user", "enable_user", "add_group_member")
#: The step that undoes each action an ``actioned`` stage records (from the action registry).
_STEP_FOR_ACTION = {name: KINDS[name].restore_step for name in LIFECYCLE_ACTIONS}


@dataclass(frozen=True)
class RestoreRequest:
    """One open request, reduced to what the decision needs (no description: it is never trusted)."""

    key: str
    reporter_account_id: str | None
    reporter_email: str | None = None
    reporter_name: str | None = None
    summary: str = ""
    created: str | None = None
    status: str | None = None
    #: Set for a restore on demand: the Airflow user who triggered the run (rule 6 does not apply).
    requested_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RestoreRequest:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})  # type: ignore[arg-type]


def request_from_issue(issue: Mapping[str, Any]) -> RestoreRequest:
    """A :class:`RestoreRequest` from a ``/rest/api/3/search/jql`` issue (``reporter`` field)."""
    fields = issue.get("fields") or {}
    reporter = fields.get("reporter") or {}
    status = fields.get("status") or {}
    return RestoreRequest(
        key=str(issue.get("key")),
        reporter_account_id=reporter.get("accountId") or None,
        reporter_email=reporter.get("emailAddress") or None,
        reporter_name=reporter.get("displayName") or None,
        summary=str(fields.get("summary") or ""),
        created=fields.get("created"),
        status=status.get("name") if isinstance(status, Mapping) else None,
    )


@dataclass(frozen=True)
class Decision:
    """What to do with one request; JSON-native through :meth:`to_dict` (it travels by XCom).

    :param verdict: one of :data:`VERDICTS`.
    :param steps: restore calls in order (subset of :data:`STEPS`): the restore's, or for a request
        no rule allows what a restore would do (shown to the admin asked to approve it).
    :param groups_to_add: ``[{"id", "name"}]`` for ``add_group_member``.
    :param rule: short machine-readable rule for the audit, e.g. ``domain:acme.example``.
    :param reason: one sentence an admin can check.
    :param comment: the public answer to the requester (the operator may append the outcome).
    :param resolve: resolve the request after answering (else it stays open for an admin).
    :param done_earlier: the journal shows this request's restore already succeeded.
    """

    request_key: str
    account_id: str | None
    verdict: str
    rule: str
    reason: str
    comment: str
    resolve: bool
    email: str | None = None
    stage: str | None = None
    actioned_action: str | None = None
    steps: tuple[str, ...] = ()
    groups_to_add: tuple[dict[str, str], ...] = field(default_factory=tuple)
    done_earlier: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = list(self.steps)
        data["groups_to_add"] = [dict(g) for g in self.groups_to_add]
        return data


def _entry_get(entry: Any, name: str) -> Any:
    return entry.get(name) if isinstance(entry, Mapping) else getattr(entry, name, None)


def _history_get(history: Any, name: str) -> Any:
    if history is None:
        return None
    return history.get(name) if isinstance(history, Mapping) else getattr(history, name, None)


def _groups_of(snapshot: Any) -> list[dict[str, str]]:
    if not isinstance(snapshot, Mapping):
        return []
    groups = []
    for group in snapshot.get("groups") or []:
        if isinstance(group, Mapping) and group.get("id"):
            groups.append({"id": str(group["id"]), "name": str(group.get("name") or group["id"])})
    return groups


def action_entries(journal: Sequence[Any]) -> list[Any]:
    """Succeeded action entries of the user's latest actioned cycle (oldest first)."""
    done = [
        e for e in journal if _entry_get(e, "outcome") == "succeeded" and _entry_get(e, "event") == "actioned"
    ]
    if not done:
        return []
    cycle = _entry_get(done[-1], "cycle")
    return [e for e in done if _entry_get(e, "cycle") == cycle]


def groups_before_action(journal: Sequence[Any]) -> list[dict[str, str]]:
    """Groups the user had before this tool acted: the ``before`` snapshots of the action entries.

    The first action entry of the cycle has the fullest picture (later product removals start
    from what the first one left); the union keeps every group any of them saw. Falls back to the
    delete entry's snapshot when no action entry is journalled.
    """
    entries = action_entries(journal)
    if not entries:
        entries = [
            e
            for e in journal
            if _entry_get(e, "outcome") == "succeeded" and _entry_get(e, "event") == "delete_requested"
        ][-1:]
    seen: dict[str, dict[str, str]] = {}
    for entry in entries:
        for group in _groups_of(_entry_get(entry, "before")):
            seen.setdefault(group["id"], group)
    return sorted(seen.values(), key=lambda g: (g["name"].lower(), g["id"]))


def restore_done_for(journal: Sequence[Any], request_key: str) -> bool:
    """Whether the journal has a succeeded restore made for this very request."""
    for entry in journal:
        evidence = _entry_get(entry, "evidence")
        if (
            _entry_get(entry, "action") == "restore"
            and _entry_get(entry, "outcome") == "succeeded"
            and isinstance(evidence, Mapping)
            and evidence.get("request_key") == request_key
        ):
            return True
    return False


def domain_allowed(email: str | None, domains: Iterable[str]) -> str | None:
    """The allowed domain the address belongs to (subdomains included), or ``None``."""
    if not email or "@" not in email:
        return None
    domain = email.rsplit("@", 1)[1].strip().lower()
    for allowed in domains:
        allowed = allowed.strip().lower()
        if allowed and (domain == allowed or domain.endswith("." + allowed)):
            return allowed
    return None


def group_allowed(groups: Iterable[Mapping[str, str]], allowed_groups: Iterable[str]) -> str | None:
    """The first allowed group (case ignored) among ``groups``, or ``None``."""
    wanted = {g.strip().lower(): g for g in allowed_groups if g.strip()}
    for group in groups:
        name = str(group.get("name") or "").lower()
        if name in wanted:
            return wanted[name]
    return None


def decide(
    request: RestoreRequest,
    *,
    account: Mapping[str, Any] | None,
    history: Any,
    journal: Sequence[Any],
    restore_policy: Any,
    as_of: datetime,
    restored_grace_days: int = 30,
    approval: ApprovalState | None = None,
) -> Decision:
    """Decide what to do with one request (see the module docstring for the rules).

    Every answer and reason states what this tool really did to the account and when, as the
    journal recorded it (:func:`~atlassian_cleanup.decisions.account_facts.facts_from_journal`), and what
    can be done next.

    :param account: the reporter's directory user (v2 shape, with ``groups``) read now, or ``None``
        when the directory does not list them.
    :param history: the store's :class:`~atlassian_cleanup.decisions.planner.UserHistory` (or its dict), or
        ``None`` for a user the store never recorded.
    :param journal: the reporter's journal entries, oldest first.
    :param restore_policy: ``policy.restore`` (``allowed_domains``, ``allowed_groups``).
    :param as_of: the run's logical date (timezone-aware): decides whether the delete grace is over.
    :param approval: where an admin's approval of this request stands
        (:func:`~atlassian_cleanup.restore.approval.approval_state`), for a request no rule allows.
    """
    key = request.key
    account_id = request.reporter_account_id
    email = (account or {}).get("email") or request.reporter_email
    stage = _history_get(history, "stage")
    actioned_action = _history_get(history, "actioned_action")
    base = {"request_key": key, "account_id": account_id, "email": email, "stage": stage,
            "actioned_action": actioned_action}  # fmt: skip
    admin_review = "An administrator will review your request."

    if not account_id:
        return Decision(
            **base, verdict=NOT_ACTIONED, rule="no_reporter", resolve=False,
            reason="The request has no reporter account; nothing can be restored automatically.",
            comment=f"We could not tell which account this request is for. {admin_review}",
        )  # fmt: skip

    if restore_done_for(journal, key):
        return Decision(
            **base, verdict=RESTORE, rule="done_earlier", resolve=True, done_earlier=True,
            reason="This request's restore was already made by an earlier run (journal).",
            comment="Your access has been restored.",
        )  # fmt: skip

    facts = facts_from_journal(journal, history)
    told = user_done_sentence(facts)
    noted = admin_done_sentence(facts)
    deletion = facts.deletion

    if (
        stage in ("pending_delete", "deleted")
        and deletion is not None
        and deletion.kind == REMOVE_FROM_DIRECTORY
    ):
        return Decision(
            **base, verdict=REMOVED, rule="removed_from_directory", resolve=False,
            reason=(
                f"{noted} A removal from the directory is not a deletion and has no grace window; only a "
                "new invitation with the groups re-added (journal) gives access back."
            ),
            comment=f"{told} {user_next_sentence(facts, as_of)} {admin_review}",
        )  # fmt: skip

    grace_over = stage == "pending_delete" and facts.grace_over(as_of)
    if stage == "deleted" or grace_over or (stage == "pending_delete" and account is None):
        if facts.touched:
            next_step = user_next_sentence(facts, as_of, account_listed=account is not None)
            comment = f"{told} {next_step} {admin_review}"
            reason = f"{noted} {next_step}"
        else:
            comment = (
                "This tool's records show your account as deleted, so it cannot be restored "
                f"automatically. {admin_review} If access is approved, you will be invited again."
            )
            reason = "The state store has the account as deleted (no journal entry of the deletion)."
        return Decision(
            **base, verdict=DELETED, rule="deleted", resolve=False, reason=reason, comment=comment,
        )  # fmt: skip

    restored_at = _history_get(history, "restored_at")
    actioned_at = _history_get(history, "actioned_at")
    if stage == "restored" or (
        stage in ("active", "warned")
        and restored_at is not None
        and actioned_at is not None
        and restored_at >= actioned_at
    ):
        return Decision(
            **base, verdict=ALREADY_RESTORED, rule="already_restored", resolve=True,
            reason=_text(noted, f"Access was already restored on {day(restored_at)}."),
            comment=_text(
                told,
                f"Your access was already restored on {day(restored_at)}; nothing else was needed. "
                "Please try logging in again.",
            ),
        )  # fmt: skip

    if not can_apply(history, "restored"):
        if facts.touched:
            why = f"{noted} The account has been active again since (stage {stage}); nothing is left to undo."
            comment = (
                f"{told} The account has been active again since, so this tool has nothing left to undo "
                f"and nothing was changed automatically. {admin_review}"
            )
        else:
            why = (
                "This tool has no record of this account."
                if history is None
                else f"This tool did not change this account (its state is {stage})."
            )
            warned = _history_get(history, "warned_at") if stage == "warned" else None
            only = f" It only sent you a warning e-mail on {day(warned)}." if warned else ""
            comment = (
                "The inactive-user cleanup has not suspended, deactivated, removed or deleted your "
                f"account, so nothing was changed automatically.{only} {admin_review}"
            )
        return Decision(
            **base, verdict=NOT_ACTIONED, rule="not_actioned", resolve=False,
            reason=f"{why} Nothing was restored automatically.", comment=comment,
        )  # fmt: skip

    groups_before = groups_before_action(journal)
    steps, groups_to_add = _restore_plan(stage, actioned_action, account, groups_before)
    rule = None
    by_domain = domain_allowed(email, restore_policy.allowed_domains)
    if request.requested_by:
        rule = f"on_demand:{request.requested_by}"
    elif by_domain:
        rule = f"domain:{by_domain}"
    else:
        by_group = group_allowed(groups_before, restore_policy.allowed_groups)
        if by_group:
            rule = f"group:{by_group}"
    if rule is None and approval is not None and approval.approved:
        rule = f"approved:{approval.by or 'an administrator'}"
    if rule is None:
        refused = Decision(
            **base, verdict=REFUSED, rule="no_rule", resolve=False, steps=tuple(steps),
            groups_to_add=tuple(groups_to_add),
            reason=_text(
                noted,
                "No restore rule allows this account (neither its e-mail domain nor the groups it had "
                "before the action are listed in restore.allowed_domains / restore.allowed_groups).",
            ),
            comment=_text(
                "Your request cannot be granted automatically.", told, user_next_sentence(facts, as_of),
                admin_review,
            ),
        )  # fmt: skip
        return _after_ask(refused, approval, noted)

    grace = (
        f"The inactive-user cleanup will leave your account alone for {restored_grace_days} days."
        if restored_grace_days
        else ""
    )
    approved = approved_texts(approval) if approval is not None and rule.startswith("approved:") else ("", "")
    return Decision(
        **base, verdict=RESTORE, rule=rule, resolve=True, steps=tuple(steps),
        groups_to_add=tuple(groups_to_add),
        reason=_text(
            approved[0] or _allowed_by(request, rule), noted, f"Restore with {', '.join(steps) or 'no call'}."
        ),
        comment=_text(
            "Your access has been restored.", approved[1], told, _undone(facts, groups_to_add), grace
        ),
    )  # fmt: skip


def _restore_plan(
    stage: Any, actioned_action: Any, account: Mapping[str, Any] | None, groups_before: list[dict[str, str]]
) -> tuple[list[str], list[dict[str, str]]]:
    """The restore steps (in order) and the groups to re-add, undoing what the journal recorded."""
    steps: list[str] = []
    if stage == "pending_delete":
        steps.append("cancel_delete")
    step = _STEP_FOR_ACTION.get(str(actioned_action))
    if step:
        steps.append(step)
    groups_to_add: list[dict[str, str]] = []
    if step == "add_group_member":
        current = {str(g.get("id")) for g in (account or {}).get("groups") or [] if g.get("id")}
        groups_to_add = [g for g in groups_before if g["id"] not in current]
    return steps, groups_to_add


def _after_ask(refused: Decision, approval: ApprovalState | None, noted: str) -> Decision:
    """A refused request an admin was asked about: waiting, rejected or timed out (else as is)."""
    verdict = settled(approval)
    if verdict is None or approval is None:
        return refused
    reason, comment = settled_texts(approval, noted=noted)
    return replace(
        refused, verdict=verdict, reason=reason, comment=comment, resolve=verdict == APPROVAL_REJECTED
    )


def _allowed_by(request: RestoreRequest, rule: str) -> str:
    if request.requested_by:
        return f"Restore on demand by {request.requested_by}: {request.summary.strip().rstrip('.')}."
    return f"Allowed by {rule}."


def _text(*sentences: str) -> str:
    """Sentences joined by one space, empty ones left out."""
    return " ".join(s for s in sentences if s)


def _undone(facts: AccountFacts, groups_to_add: Sequence[Mapping[str, str]]) -> str:
    """What the restore gives back, for the answer (the restore steps follow the facts)."""
    parts = []
    if facts.deletion is not None:
        parts.append(
            f"The deletion was cancelled within Atlassian's {DELETE_GRACE_DAYS}-day window, which would "
            f"have ended on {day(facts.grace_ends())}."
        )
    kinds = {s.kind for s in facts.access}
    if SUSPEND in kinds:
        parts.append("The suspension was lifted: your groups and roles are back as they were.")
    elif DEACTIVATE in kinds:
        parts.append("Your account was re-activated.")
    elif REMOVE_PRODUCT_ACCESS in kinds:
        names = ", ".join(g["name"] for g in groups_to_add)
        parts.append(f"You were added back to {names}." if names else "You are back in your groups.")
    return " ".join(parts)


def decision_from_dict(data: Mapping[str, Any]) -> Decision:
    """Inverse of :meth:`Decision.to_dict` (XCom round trip)."""
    values = {k: data.get(k) for k in Decision.__dataclass_fields__ if k in data}
    values["steps"] = tuple(data.get("steps") or ())
    values["groups_to_add"] = tuple(dict(g) for g in data.get("groups_to_add") or ())
    values["done_earlier"] = bool(data.get("done_earlier"))
    values["resolve"] = bool(data.get("resolve"))
    return Decision(**values)
