"""Carry out the restore DAG's decisions through the journalled write path.

Every write goes through :class:`~atlassian_cleanup.actions.journalled.Journal`, like the cleanup
engine's: claimed before the first call, an interrupted earlier attempt checked against the
account before anything is written again, each call made without blind replays, the result
recorded with the ``restored`` transition.

Exactly once per request: the restore and the answer (comment, then resolve) are claimed with a
*scoped* key (``jsm:<request key>``), not the user's cycle, because the restore itself starts a new
cycle. A re-run, a retry or the next scheduled run therefore neither restores nor comments twice;
a failed step is claimed and tried again by the next run.

No Airflow import: the operators (:mod:`atlassian_cleanup.operators.restore`) pass the hooks, the
journal and their log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from atlassian_cleanup.action_kinds import DEACTIVATE, DELETE, KINDS, REMOVE_PRODUCT_ACCESS, SUSPEND
from atlassian_cleanup.actions.journalled import Journal, WriteResult
from atlassian_cleanup.actions.live_account import group_refs
from atlassian_cleanup.actions.transitions import can_apply
from atlassian_cleanup.client.retry import AtlassianApiError, AtlassianNotFoundError
from atlassian_cleanup.outcomes import DONE, FAILED, SKIPPED_CHANGED
from atlassian_cleanup.restore.on_demand import is_on_demand
from atlassian_cleanup.restore.rules import RESTORE, Decision

#: The restore steps that give a status back, and the status each one undoes. Each step is the
#: admin hook's method of the same name, called with the account id.
_STATUS_UNDONE = {
    KINDS[DELETE].restore_step: "for_deletion",
    KINDS[SUSPEND].restore_step: "suspended",
    KINDS[DEACTIVATE].restore_step: "deactivated",
}
#: The journal's sentence when a request offers no transition that resolves it.
_NO_TRANSITION = "No resolving transition is offered."
#: The remaining step re-adds the groups of ``decision.groups_to_add``.
_GROUPS_STEP = KINDS[REMOVE_PRODUCT_ACCESS].restore_step


def request_scope(key: str) -> str:
    """The journal scope of one service request, or of one restore on demand (its key as it is)."""
    return key if is_on_demand(key) else f"jsm:{key}"


def read_accounts(admin: Any, account_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Directory users by id (with groups); absent ids are missing."""
    return admin.get_users(account_ids, expand=("groups",))


def find_by_emails(admin: Any, emails: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Every directory user per e-mail (lower case), to tell none, one and several apart.

    One search per address (the v2 search's exact ``emails`` match), so a user whose profile hides
    the e-mail still counts.
    """
    return {
        email.lower(): list(admin.iter_directory_users(filters={"emails": [email]}, expand=("groups",)))
        for email in dict.fromkeys(e.lower() for e in emails)
    }


def _group_ids(account: Mapping[str, Any] | None) -> set[str]:
    return {group["id"] for group in group_refs(account or {})}


def _snapshot(account: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if account is None:
        return None
    return {"status": account.get("status"), "groups": group_refs(account)}


def _in_effect(step: str, account: Mapping[str, Any], decision: Decision) -> bool:
    """Whether ``step``'s effect is already there on ``account`` (read just now)."""
    if step in _STATUS_UNDONE:
        return str(account.get("status") or "") != _STATUS_UNDONE[step]
    if step == _GROUPS_STEP:
        current = _group_ids(account)
        return all(group["id"] in current for group in decision.groups_to_add)
    raise ValueError(f"unknown restore step {step!r}")


class RestoreWriter:
    """
    Restore accounts and answer requests, each write journalled (see the module docstring).

    :param journal: the run's journal (its ``run_id`` and ``at`` are the restore run's).
    :param log: where failures and restores are reported (request keys and counts only).
    """

    def __init__(self, journal: Journal, log: logging.Logger | logging.LoggerAdapter) -> None:
        self.journal = journal
        self.log = log

    # -- the restore -------------------------------------------------------------------------------

    def restore(self, admin: Any, decision: Decision) -> dict[str, Any]:
        """Carry out one ``restore`` decision; the fields the operator adds to its row."""
        admin = self.journal.guard(admin)
        account_id = str(decision.account_id)
        account = read_accounts(admin, [account_id]).get(account_id)
        claim = self.journal.claim(
            account_id,
            RESTORE,
            reason=decision.reason,
            evidence={
                "request_key": decision.request_key,
                "rule": decision.rule,
                "steps": list(decision.steps),
            },
            before=_snapshot(account),
            scope=request_scope(decision.request_key),
        )
        if claim.status == "done":
            return {"restore_outcome": "done earlier (journal); nothing was written again"}
        done: list[str] = []
        underway = list(decision.steps[:1])  # a failing first read is reported at the first step

        def failure(exc: AtlassianApiError) -> str:
            step = underway[-1] if underway else "the re-read"
            return f"Restore failed at {step} ({exc}); steps done: {', '.join(done) or 'none'}."

        result = self.journal.carry_out(
            account_id,
            claim,
            lambda: self._restore_steps(admin, decision, done, underway),
            recover=lambda: self._already_restored(admin, decision),
            failure_detail=failure,
        )
        if result.outcome == "skipped":
            return {"restore_outcome": f"skipped: {result.detail}"}
        if result.outcome == "failed":
            self.log.error("restore_access: %s failed: %s", decision.request_key, result.detail)
            return {"restore_outcome": f"failed: {result.detail}"}
        self.log.info("restore_access: %s: %s", decision.request_key, result.detail)
        return {"restore_outcome": f"restored: {result.detail}", "restore_steps_done": done}

    def _restorable(self, account_id: str) -> bool:
        # The stage may have changed since evaluate_rules (e.g. the daily DAG ran in between).
        with self.journal.lock:
            history = self.journal.store.history([account_id]).get(account_id)
        return can_apply(history, "restored")

    def _already_restored(self, admin: Any, decision: Decision) -> WriteResult | None:
        """For an interrupted earlier attempt: recorded as done when every step's effect is there."""
        account_id = str(decision.account_id)
        if not self._restorable(account_id):
            return None
        account = read_accounts(admin, [account_id]).get(account_id)
        if account is None or not all(_in_effect(step, account, decision) for step in decision.steps):
            return None
        return _restored(decision, [], None)

    def _restore_steps(
        self, admin: Any, decision: Decision, done: list[str], underway: list[str]
    ) -> WriteResult:
        account_id = str(decision.account_id)
        if not self._restorable(account_id):
            detail = "The state store no longer has the user at a restorable stage; nothing was changed."
            return WriteResult("skipped", SKIPPED_CHANGED, "none", detail)
        api_status: int | None = None
        for step in decision.steps:
            underway.append(step)
            wrote, status = self._step(admin, step, account_id, decision)
            if wrote:
                api_status = status if status is not None else api_status
                done.append(step)
        return _restored(decision, done, api_status)

    def _step(self, admin: Any, step: str, account_id: str, decision: Decision) -> tuple[bool, int | None]:
        """Make one restore call unless its effect is already there: (written, HTTP status)."""

        def account() -> dict[str, Any]:
            return read_accounts(admin, [account_id]).get(account_id) or {}

        if _in_effect(step, account(), decision):
            return False, None
        if step in _STATUS_UNDONE:
            call = getattr(admin, step)
            return True, self.journal.write(
                lambda: call(account_id), lambda: _in_effect(step, account(), decision)
            )
        wrote, last = False, None
        current = _group_ids(account())
        for group in decision.groups_to_add:
            if group["id"] in current:
                continue
            try:
                last = self.journal.write(
                    lambda group=group: admin.add_group_member(group["id"], account_id),
                    lambda group=group: group["id"] in _group_ids(account()),
                )
            except AtlassianNotFoundError:
                continue  # the group was deleted since: nothing to give back
            wrote = True
        return wrote, last

    # -- the answer --------------------------------------------------------------------------------

    def answer(self, site: Any, row: Mapping[str, Any]) -> str:
        """Comment on one decided request once, and resolve it once when the decision says so."""
        key = row["request_key"]
        account_id = row.get("account_id") or f"unknown-reporter:{key}"
        comment = str(row["comment"])
        scope = request_scope(key)
        parts = []
        answer = self.journal.claim(
            account_id,
            f"answer:{row['verdict']}",
            reason=row["reason"],
            evidence={"request_key": key, "verdict": row["verdict"], "rule": row["rule"]},
            scope=scope,
        )
        if answer.status == "done":
            parts.append("answered earlier")
        else:

            def post() -> WriteResult:
                site.add_request_comment(key, comment, public=True)
                return WriteResult("succeeded", DONE, "comment", f"Commented: {comment}", api_status=201)

            posted = self.journal.carry_out(account_id, answer, post)
            if posted.outcome == "failed":
                self.log.error("comment_and_resolve: %s: comment failed: %s", key, posted.detail)
                return f"failed: comment not posted ({posted.detail})"
            parts.append("commented")
        if not row["resolve"]:
            return "answered: " + ", ".join(parts) + "; left open for an admin"
        resolve = self.journal.claim(
            account_id, "resolve", reason=row["reason"], evidence={"request_key": key}, scope=scope
        )
        if resolve.status == "done":
            return "answered: " + ", ".join([*parts, "resolved earlier"])

        def transition() -> WriteResult:
            how = resolve_request(site, key)
            if how is None:
                return WriteResult("failed", FAILED, "none", _NO_TRANSITION)
            return WriteResult("succeeded", DONE, "resolve", how)

        resolved = self.journal.carry_out(account_id, resolve, transition)
        if resolved.outcome == "succeeded":
            return "answered: " + ", ".join([*parts, resolved.detail])
        if resolved.detail == _NO_TRANSITION:
            return "failed: " + ", ".join(parts) + "; no resolving transition offered"
        self.log.error("comment_and_resolve: %s: resolve failed: %s", key, resolved.detail)
        return "failed: " + ", ".join(parts) + f"; not resolved ({resolved.detail})"


def _restored(decision: Decision, done: list[str], api_status: int | None) -> WriteResult:
    detail = (
        f"Restored ({', '.join(done)})."
        if done
        else "Atlassian already showed the access restored; recorded."
    )
    if decision.groups_to_add:
        detail += f" Groups: {', '.join(g['name'] for g in decision.groups_to_add)}."
    return WriteResult("succeeded", DONE, RESTORE, detail, api_status=api_status, event="restored")


def resolve_request(site: Any, key: str) -> str | None:
    """Resolve through the customer transition, else the Jira workflow; what was done, or None."""
    for transition in site.get_request_transitions(key):
        if "resolve" in str(transition.get("name") or "").lower():
            site.transition_request(key, str(transition["id"]))
            return f"resolved ({transition.get('name')})"
    for transition in site.get_issue_transitions(key):
        target = (transition.get("to") or {}).get("statusCategory") or {}
        if target.get("key") == "done" and "cancel" not in str(transition.get("name") or "").lower():
            site.transition_issue(key, str(transition["id"]))
            return f"resolved through the Jira workflow ({transition.get('name')})"
    return None
