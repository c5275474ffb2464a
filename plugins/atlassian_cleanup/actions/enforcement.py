"""The enforcement engine: carry out the planner's rows against Atlassian, once each, crash-safely.

Every write follows the journal protocol of the state store (DESIGN.md §3):

1. **Re-read** the users (v2 ``users/search``, 10 account ids per call) right before acting. A user
   whose status changed, or who was active again after the plan's evidence, is skipped
   (``skipped_changed``): the plan is minutes old, the person may just have logged in.
2. **Claim**: the intent (with the re-read groups/status as ``before``) is committed before the
   API call. A claim already ``done`` in this cycle is skipped without a call. A claim left
   ``uncertain`` by a crash is resolved from Atlassian's live state (the re-read of step 1): the
   effect is there → resolved as succeeded without writing again; it is not → the write is made.
3. **Write**, then **complete** the journal entry with the result and the state-machine event, in
   one transaction.

Every claim, recovery, write and record goes through the one journalled write path
(:mod:`~atlassian_cleanup.actions.journalled`), which the restore flow uses too: writes are never
replayed blindly, and calls are paced per endpoint (both in :mod:`atlassian_cleanup.client.retry`).
The batch plumbing (pool, one hook per thread, re-reads) is :mod:`~atlassian_cleanup.actions.batches`;
the product-access step :mod:`~atlassian_cleanup.actions.product_access`; the e-mail steps
:mod:`~atlassian_cleanup.actions.email_steps`.

What each action calls:

* ``suspend``: ``suspend_user``.
* ``deactivate``: ``get_manage_privileges``; with ``lifecycle.enablement`` allowed ``disable_user``,
  else (unmanaged or IdP-managed accounts) ``suspend_user`` instead, said in the outcome.
* ``remove_product_access``: the user is removed from every group that grants the product's role
  on its resource, found once per run from ``iter_groups`` + ``get_group_role_assignments`` (never
  from group names). Groups synced from an identity provider are read-only in Atlassian: they are
  reported, with what the admin must do in the identity provider.
* ``delete``: ``get_manage_privileges``; with ``lifecycle.delete`` allowed ``delete_user``
  (Atlassian's 14-day grace applies, ``cancel-delete`` undoes it), else ``remove_user`` from the
  directory.
* ``warn``: one e-mail through the caller's sender.

No Airflow import here: hooks come from the caller's factory.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from atlassian_cleanup.action_kinds import (
    DEACTIVATE,
    DELETE,
    DELETE_NOTICE,
    LIFECYCLE_ACTIONS,
    REMOVE_PRODUCT_ACCESS,
    SUSPEND,
    WARN,
)
from atlassian_cleanup.actions.action_outcome import ActionOutcome, RecipientNotAddressable
from atlassian_cleanup.actions.batches import UserBatches
from atlassian_cleanup.actions.email_steps import WarningMailing
from atlassian_cleanup.actions.journalled import Journal, WriteResult
from atlassian_cleanup.actions.live_account import (
    DELETE_REFUSALS,
    GrantingGroup,
    account_snapshot,
    deactivation_refusals,
    fallback_sentence,
    newer_activity,
    plan_evidence,
    privilege,
)
from atlassian_cleanup.actions.product_access import ProductAccessRemoval
from atlassian_cleanup.actions.transitions import can_apply
from atlassian_cleanup.client.retry import (
    AtlassianApiError,
    AtlassianAuthError,
    AtlassianPermissionError,
)
from atlassian_cleanup.decisions.account_facts import DELETE_GRACE_DAYS
from atlassian_cleanup.decisions.products import canonical_product
from atlassian_cleanup.decisions.still_as_left import changed_since_left
from atlassian_cleanup.outcomes import (
    DONE,
    SKIPPED_ALREADY_DONE,
    SKIPPED_CHANGED,
)

if TYPE_CHECKING:
    from atlassian_cleanup.actions.state import StateStore
    from atlassian_cleanup.actions.state_records import Claim
    from atlassian_cleanup.client.hooks import AtlassianAdminHook

# What callers import from the engine, wherever it is defined.
__all__ = ["ActionOutcome", "Enforcer", "RecipientNotAddressable", "deactivation_refusals"]

APPLY_ACTIONS: frozenset[str] = frozenset(LIFECYCLE_ACTIONS)
#: Shown by Atlassian to a deactivated user who tries to log in.
DEFAULT_DEACTIVATE_MESSAGE = (
    "Your Atlassian account was deactivated after a long period without activity. "
    "Contact your administrator if you need access again."
)


def _as_datetime(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("at must be timezone-aware (UTC)")
        return value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _skipped(detail: str) -> WriteResult:
    """Nothing written because the plan no longer holds for the user."""
    return WriteResult("skipped", SKIPPED_CHANGED, "none", detail)


# -- the engine ------------------------------------------------------------------------------------


class Enforcer(UserBatches, ProductAccessRemoval, WarningMailing):
    """
    Execute plan rows against Atlassian through the journal of a :class:`StateStore`.

    :param hook_factory: returns a new :class:`AtlassianAdminHook`; called once per worker thread
        (a hook holds one ``requests.Session``, which is not shared between threads).
    :param store: the state store (journal + per-user state).
    :param run_id: the Airflow run id, recorded with every journal entry.
    :param at: the action time (the run's logical date), recorded as the time of every write.
    :param log: where progress and summary lines go.
    :param concurrency: worker threads for writes (``policy.safety.write_concurrency``).
    :param deactivate_message: shown by Atlassian to a deactivated user at login.
    :param write_attempts: attempts per write after ambiguous failures (each one after a re-read).
    :param progress_interval: seconds between progress lines.
    """

    def __init__(
        self,
        hook_factory: Callable[[], AtlassianAdminHook],
        store: StateStore,
        *,
        run_id: str,
        at: datetime | date,
        log: logging.Logger | logging.LoggerAdapter | None = None,
        concurrency: int = 4,
        deactivate_message: str | None = DEFAULT_DEACTIVATE_MESSAGE,
        write_attempts: int = 3,
        progress_interval: float = 10.0,
    ) -> None:
        self.hook_factory = hook_factory
        self.store = store
        self.run_id = run_id
        self.at = _as_datetime(at)
        self.log = log or logging.getLogger(__name__)
        self.concurrency = max(1, int(concurrency))
        self.deactivate_message = deactivate_message
        self.progress_interval = progress_interval
        self._local = threading.local()
        self._hooks: list[Any] = []
        self._hooks_lock = threading.Lock()
        self.journal = Journal(store, run_id=run_id, at=self.at, write_attempts=write_attempts)
        self._groups_lock = threading.Lock()
        self._product_groups: dict[str, list[GrantingGroup]] | None = None

    # -- public API --------------------------------------------------------------------------------

    def apply(self, rows: Sequence[Mapping[str, Any]]) -> list[ActionOutcome]:
        """
        Suspend, deactivate or remove product access for ``rows`` (other actions are rejected).

        :param rows: plan rows with ``proposed_action`` in ``suspend|deactivate|remove_product_access``.
        :return: one outcome per row, in input order.
        :raises AtlassianAuthError: the credential was rejected; outcomes so far are journalled.
        """
        rows = list(rows)
        self._check_actions(rows, APPLY_ACTIONS, "apply")
        try:
            with self._pool("apply_actions") as pool:
                if any(row["proposed_action"] == REMOVE_PRODUCT_ACCESS for row in rows):
                    pool.submit(self._granting_groups).result()  # once per run, before any write
                live = self._read_users([str(row["account_id"]) for row in rows], pool)
                history = self._history(rows)
                handler = functools.partial(self._apply_one, live_by_id=live, history=history)
                return self._run("apply_actions", rows, handler, pool)
        finally:
            self._close_hooks()

    def delete(self, rows: Sequence[Mapping[str, Any]]) -> list[ActionOutcome]:
        """
        Delete (or, when Atlassian does not allow it, remove from the directory) dormant accounts.

        :param rows: plan rows with ``proposed_action == "delete"``.
        :return: one outcome per row, in input order.
        :raises AtlassianAuthError: the credential was rejected; outcomes so far are journalled.
        """
        rows = list(rows)
        self._check_actions(rows, frozenset({DELETE}), "delete")
        try:
            with self._pool("delete_dormant") as pool:
                live = self._read_users([str(row["account_id"]) for row in rows], pool)
                history = self._history(rows)
                handler = functools.partial(self._delete_one, live_by_id=live, history=history)
                return self._run("delete_dormant", rows, handler, pool)
        finally:
            self._close_hooks()

    def warn(
        self,
        rows: Sequence[Mapping[str, Any]],
        sender: Callable[[Mapping[str, Any]], Any],
        *,
        list_unaddressable: bool = False,
    ) -> list[ActionOutcome]:
        """
        Send one warning e-mail per row through ``sender`` and record the ``warned`` event.

        ``delete_notice`` rows (the notice before a deletion) are claimed as ``delete_notice``, once
        per cycle, with no state transition: the journal row is what the planner reads back
        (``UserHistory.delete_notice_at``). The sender gets the row with the store's record of the
        action (``actioned_action``, ``actioned_at``), so the notice says what was done and when.

        Sequential: the sender holds one SMTP session, which is not shared between threads.

        :param rows: plan rows with ``proposed_action == "warn"`` and ``warning_lead_days``, or
            ``delete_notice``.
        :param sender: sends the e-mail for one row; raises on failure.
        :param list_unaddressable: policy ``warning.without_email: action_after_notice``: a user the
            sender cannot reach (:class:`RecipientNotAddressable`) is listed to the admins in the
            digest instead, and that listing is recorded as their warning (result ``reported``,
            event ``warned``), so their notice period starts now and survives reruns. False
            (``hold``): only reported, nothing recorded, so they are never actioned.
        :return: one outcome per row, in input order.
        """
        rows = list(rows)
        self._check_actions(rows, frozenset({WARN, DELETE_NOTICE}), "warn")
        history = self._history(rows)
        handler = functools.partial(
            self._warn_one, sender=sender, history=history, list_unaddressable=list_unaddressable
        )
        with self._pool("notify_warnings", workers=1) as pool:
            return self._run("notify_warnings", rows, handler, pool)

    def _claim(
        self,
        row: Mapping[str, Any],
        action: str,
        *,
        before: Any = None,
        lead_days: int | None = None,
    ) -> Claim:
        # Product-by-product removal (and its warnings) may happen more than once per cycle, one
        # product set at a time: the products join the idempotency key so each set is claimed once.
        products = [canonical_product(str(p)) for p in row.get("products_to_remove") or []]
        return self.journal.claim(
            str(row["account_id"]),
            action,
            lead_days=lead_days,
            reason=str(row.get("reason") or ""),
            evidence=plan_evidence(row),
            before=before,
            products=products if action in (REMOVE_PRODUCT_ACCESS, WARN) and products else None,
        )

    def _finish(self, row: Mapping[str, Any], claim: Claim, result: WriteResult) -> ActionOutcome:
        """Record the result in the journal (complete a new claim, resolve an uncertain one)."""
        self.journal.record(str(row["account_id"]), claim, result)
        return self._reported(row, result)

    def _journalled(
        self,
        row: Mapping[str, Any],
        claim: Claim,
        act: Callable[[], WriteResult],
        recover: Callable[[], WriteResult | None] | None = None,
    ) -> ActionOutcome:
        """Recover an uncertain claim or ``act``, and record the result (:meth:`Journal.carry_out`)."""
        return self._reported(
            row, self.journal.carry_out(str(row["account_id"]), claim, act, recover=recover)
        )

    @staticmethod
    def _reported(row: Mapping[str, Any], result: WriteResult) -> ActionOutcome:
        return ActionOutcome(
            account_id=str(row["account_id"]),
            action=str(row.get("proposed_action")),
            performed=result.performed,
            result=result.result,
            api_status=result.api_status,
            detail=result.detail,
            groups_removed=result.groups_removed,
            groups_not_removable=result.groups_not_removable,
        )

    def _write(self, endpoint: str, write: Callable[[], Any], happened: Callable[[], bool]) -> int | None:
        """
        Make one paced write, never replayed blindly (:meth:`Journal.write`).

        :param endpoint: names the endpoint for pacing (one rate-limit bucket).
        :return: the write's HTTP status, or ``None`` when its effect was confirmed by re-reading.
        """
        return self.journal.write(lambda: self._paced(endpoint, write), happened)

    def _skip(self, row: Mapping[str, Any], claim: Claim, detail: str) -> ActionOutcome:
        return self._finish(row, claim, _skipped(detail))

    @staticmethod
    def _already_done(row: Mapping[str, Any]) -> ActionOutcome:
        return ActionOutcome(
            account_id=str(row["account_id"]),
            action=str(row.get("proposed_action")),
            performed="none",
            result=SKIPPED_ALREADY_DONE,
            detail="Already done earlier in this cycle (journal); nothing was written again.",
        )

    # -- apply -------------------------------------------------------------------------------------

    def _apply_one(
        self, row: Mapping[str, Any], live_by_id: Mapping[str, dict[str, Any]], history: Mapping[str, Any]
    ) -> ActionOutcome:
        account_id = str(row["account_id"])
        action = str(row["proposed_action"])
        live = live_by_id.get(account_id)
        claim = self._claim(row, action, before=account_snapshot(live) if live else None)
        if claim.status == "done":
            return self._already_done(row)
        recover = None if live is None else functools.partial(self._recover_apply, row, action, live)
        act = functools.partial(self._apply_checked, row, action, live, history.get(account_id))
        return self._journalled(row, claim, act, recover)

    def _apply_checked(
        self, row: Mapping[str, Any], action: str, live: Mapping[str, Any] | None, user_history: Any
    ) -> WriteResult:
        """The write, when the plan still holds for this user; else why not, as a skip."""
        account_id = str(row["account_id"])
        if live is None:
            return _skipped("The user is no longer in the directory; nothing was changed.")
        status = str(live.get("status") or "active")
        if status != "active":
            return _skipped(f"Atlassian now shows the user as {status}; nothing was changed.")
        products = row.get("products_to_remove") if action == REMOVE_PRODUCT_ACCESS else None
        newer = newer_activity(row, live, products)
        if newer:
            return _skipped(f"{newer}; nothing was changed.")
        event_action = SUSPEND if action == DEACTIVATE else action  # checked again after the fact
        if not can_apply(user_history, "actioned", action=event_action):
            stage = getattr(user_history, "stage", "unknown")
            return _skipped(f"The state store has the user at stage {stage}, where {action} is not allowed.")

        if action == SUSPEND:
            return self._suspend(account_id)
        if action == DEACTIVATE:
            return self._deactivate(row)
        return self._remove_access(row, live)

    def _recover_apply(
        self, row: Mapping[str, Any], action: str, live: Mapping[str, Any]
    ) -> WriteResult | None:
        """For an interrupted earlier attempt: the result if Atlassian shows it happened, else None."""
        status = live.get("status")
        note = "Confirmed from Atlassian after an interrupted earlier attempt"
        if action in (SUSPEND, DEACTIVATE) and status == "suspended":
            detail = f"{note}: the user is suspended."
            if action == DEACTIVATE:
                detail += " Atlassian did not allow deactivating this account, so it was suspended instead."
            return WriteResult(
                "succeeded", DONE, SUSPEND, detail, event="actioned", event_data={"action": SUSPEND}
            )
        if action == DEACTIVATE and status == "deactivated":
            return WriteResult(
                "succeeded", DONE, DEACTIVATE, f"{note}: the account is deactivated.",
                event="actioned", event_data={"action": DEACTIVATE},
            )  # fmt: skip
        if action == REMOVE_PRODUCT_ACCESS and status == "active":
            products, groups, by_product = self._removal_targets(row, live)
            if not [group for group in groups if not group.external_synced]:
                synced = [group for group in groups if group.external_synced]
                blocked = {p for p in products if any(g in synced for g in by_product.get(p, []))}
                return self._removal_result(row, products, [], synced, None, blocked=blocked, recovered=True)
        return None

    def _suspend(self, account_id: str, detail: str = "Suspended in the directory") -> WriteResult:
        hook = self._hook()
        status = self._write(
            "suspend",  # the endpoint, for pacing
            lambda: hook.suspend_user(account_id),
            lambda: (self._read_one(account_id) or {}).get("status") == "suspended",
        )
        return WriteResult(
            "succeeded",
            DONE,
            SUSPEND,
            f"{detail}; groups and roles are kept, so a restore gives the same access back.",
            api_status=status,
            event="actioned",
            event_data={"action": SUSPEND},
        )

    def _deactivate(self, row: Mapping[str, Any]) -> WriteResult:
        account_id = str(row["account_id"])
        hook = self._hook()
        privileges = self._paced("manage", lambda: hook.get_manage_privileges(account_id))
        allowed, reason = privilege(privileges, "lifecycle.enablement")
        if not allowed:
            return self._suspend(account_id, fallback_sentence(reason, "deactivated"))
        try:
            status = self._write(
                "lifecycle/disable",
                lambda: hook.disable_user(account_id, message=self.deactivate_message),
                lambda: (self._read_one(account_id) or {}).get("status") == "deactivated",
            )
        except AtlassianPermissionError as exc:
            # The privilege check said yes, the call said no (e.g. the account became SCIM-managed).
            return self._suspend(account_id, fallback_sentence(exc.code or "forbidden", "deactivated"))
        return WriteResult(
            "succeeded",
            DONE,
            DEACTIVATE,
            "Deactivated: the account can no longer log in to any Atlassian site; "
            "re-enable it (lifecycle/enable) to undo.",
            api_status=status,
            event="actioned",
            event_data={"action": DEACTIVATE},
        )

    # -- delete ------------------------------------------------------------------------------------

    def _delete_one(
        self, row: Mapping[str, Any], live_by_id: Mapping[str, dict[str, Any]], history: Mapping[str, Any]
    ) -> ActionOutcome:
        account_id = str(row["account_id"])
        live = live_by_id.get(account_id)
        hook = self._hook()
        before: dict[str, Any] | None = account_snapshot(live) if live else None
        if before is not None:
            # Removal from the directory drops groups and roles: keep what a re-invite must re-add.
            try:
                before["role_assignments"] = hook.get_user_role_assignments(account_id)
            except AtlassianAuthError:
                raise
            except AtlassianApiError as exc:
                before["role_assignments_error"] = str(exc)
        claim = self._claim(row, DELETE, before=before)
        if claim.status == "done":
            return self._already_done(row)

        recover = functools.partial(self._recover_delete, account_id, live)
        act = functools.partial(self._delete_checked, row, live, history.get(account_id))
        return self._journalled(row, claim, act, recover)

    def _recover_delete(self, account_id: str, live: Mapping[str, Any] | None) -> WriteResult | None:
        # delete is not idempotent: never re-POST before looking at what the last attempt did.
        status = str((live or {}).get("status") or "gone")
        if status == "for_deletion":
            return self._deleted_result(account_id, None, recovered=True)
        if live is None or status == "not_invited":
            return self._removed_result(None, "", recovered=True)
        return None

    def _delete_checked(
        self, row: Mapping[str, Any], live: Mapping[str, Any] | None, user_history: Any
    ) -> WriteResult:
        """The deletion, when the account is still as this tool left it; else why not, as a skip."""
        account_id = str(row["account_id"])
        if live is None:
            return _skipped("The user is no longer in the directory; nothing was changed.")
        if str(live.get("status") or "gone") == "for_deletion":
            return _skipped("Atlassian already shows the account as scheduled for deletion.")
        acted = getattr(user_history, "actioned_action", None)
        # Access is what the groups grant; productAccess would miss a product never opened.
        granted = self._granted_products(live) if acted not in (SUSPEND, DEACTIVATE) else set()
        left_as = changed_since_left(acted, str(live.get("status") or "active"), bool(granted))
        if left_as:
            return _skipped(f"{left_as}; not deleted.")
        newer = newer_activity(row, live)
        if newer:
            return _skipped(f"{newer}; not deleted.")
        if not can_apply(user_history, "delete_requested"):
            stage = getattr(user_history, "stage", "active")
            return _skipped(
                f"The state store has the user at stage {stage}; only actioned users are deleted."
            )
        return self._delete(account_id)

    def _delete(self, account_id: str) -> WriteResult:
        hook = self._hook()
        privileges = self._paced("manage", lambda: hook.get_manage_privileges(account_id))
        allowed, reason = privilege(privileges, "lifecycle.delete")
        if allowed:
            status = self._write(
                "lifecycle/delete",
                lambda: hook.delete_user(account_id),
                lambda: (self._read_one(account_id) or {}).get("status") == "for_deletion",
            )
            return self._deleted_result(account_id, status)

        def gone() -> bool:
            user = self._read_one(account_id)
            return user is None or user.get("status") == "not_invited"

        status = self._write("directory/remove", lambda: hook.remove_user(account_id), gone)
        return self._removed_result(status, reason or "not allowed")

    def _deleted_result(self, account_id: str, status: int | None, *, recovered: bool = False) -> WriteResult:
        grace_end = (self.at + timedelta(days=DELETE_GRACE_DAYS)).date().isoformat()
        prefix = (
            "Confirmed from Atlassian after an interrupted earlier attempt: deletion"
            if recovered
            else "Deletion"
        )
        return WriteResult(
            "succeeded",
            DONE,
            DELETE,
            f"{prefix} requested. Atlassian's {DELETE_GRACE_DAYS}-day grace period applies: the account "
            f"is deactivated now and permanently deleted after {grace_end}; until then cancel-delete "
            f"(POST /users/{account_id}/manage/lifecycle/cancel-delete) undoes it. Content the user "
            "created is kept.",
            api_status=status,
            event="delete_requested",
        )

    @staticmethod
    def _removed_result(status: int | None, reason: str, *, recovered: bool = False) -> WriteResult:
        why = DELETE_REFUSALS.get(reason, f"Atlassian does not allow deleting this account ({reason})")
        if recovered:
            detail = (
                "Confirmed from Atlassian after an interrupted earlier attempt: the user is no longer in "
                "the directory."
            )
        else:
            detail = (
                f"{why}: removed the user from the directory instead, with immediate effect and no grace "
                "period. Their groups and roles are saved in the journal; to undo, re-invite the user "
                "and re-add them."
            )
            if reason == "externalDirectory.scim":
                detail += " Also remove the user in the identity provider, or it will provision them again."
        return WriteResult(
            "succeeded", DONE, "remove_from_directory", detail, api_status=status,
            event="delete_requested", also_deleted=True,
        )  # fmt: skip
