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

Writes are never replayed blindly. The hooks replay a state-changing call after an ambiguous failure
(a dropped connection, a 5xx) when the call is idempotent *in effect*, which is harmless for the
state but still sends a second successful write. Here every write hook gets a retry policy that
replays writes only when the server certainly did not process them (429, 503 with ``Retry-After``,
a connection never established); after any other failure the engine re-reads the account and
writes again only if the first call clearly did not happen. The lifecycle delete, which is not
idempotent at all, is never re-sent before such a re-read.

Users are processed by a bounded thread pool (``policy.safety.write_concurrency``), one hook (one
HTTP session) per worker thread. One user's failure is recorded and the others go on; an expired
credential (401) stops the batch at once, because every further call would fail the same way.

Calls are paced per endpoint (:class:`RatePacer`): Atlassian rate-limits each endpoint with a token
bucket and reports what is left in ``X-RateLimit-Remaining``. The workers share one pacer per
endpoint, which measures how fast the bucket refills and, once less than 3/4 of it is left, spaces
the calls at that rate, so a batch runs at the limit instead of bouncing off it with 429s (each of
which would cost a worker a second or more of ``Retry-After``).

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

import contextlib
import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from atlassian_cleanup.action_kinds import LIFECYCLE_ACTIONS, REMOVE_PRODUCT_ACCESS, WARN
from atlassian_cleanup.actions.journalled import Journal, WriteResult
from atlassian_cleanup.actions.transitions import can_apply
from atlassian_cleanup.client.retry import (
    AtlassianApiError,
    AtlassianAuthError,
    AtlassianNotFoundError,
    AtlassianPermissionError,
    cancel_atlassian_calls,
    paced_call,
    raise_if_cancelled,
)
from atlassian_cleanup.decisions.account_facts import DELETE_GRACE_DAYS
from atlassian_cleanup.decisions.products import PRODUCT_LABELS, canonical_product
from atlassian_cleanup.decisions.records import (
    parse_timestamp,
    plan_product_activity,
    product_grants,
    user_record_from_v2,
    valid_email_address,
)
from atlassian_cleanup.outcomes import (  # re-exported: callers import them from here too
    DONE,
    FAILED,
    REPORTED,
    RESULTS,
    SKIPPED_ALREADY_DONE,
    SKIPPED_CHANGED,
)
from atlassian_cleanup.progress import ProgressLog

if TYPE_CHECKING:
    from atlassian_cleanup.actions.state import StateStore
    from atlassian_cleanup.actions.state_records import Claim
    from atlassian_cleanup.client.hooks import AtlassianAdminHook

APPLY_ACTIONS: frozenset[str] = frozenset(LIFECYCLE_ACTIONS)
#: Shown by Atlassian to a deactivated user who tries to log in.
DEFAULT_DEACTIVATE_MESSAGE = (
    "Your Atlassian account was deactivated after a long period without activity. "
    "Contact your administrator if you need access again."
)
#: Users per concurrent re-read: one v2 search call each (the API's accountIds limit, which the hook
#: also enforces in ``get_users``).
READ_BATCH = 10
_USER_EXPAND = ("productAccess", "groups")


@dataclass(frozen=True)
class ActionOutcome:
    """
    What happened to one plan row.

    :param account_id: the user.
    :param action: the planned action (``suspend``, ``deactivate``, ``remove_product_access``,
        ``delete``, ``warn``).
    :param performed: what was really done: the planned action, ``suspend`` when a deactivation
        fell back to suspending, ``remove_from_directory`` when a deletion fell back to removing,
        ``none`` when nothing was written.
    :param result: one of :data:`RESULTS`.
    :param api_status: HTTP status of the last write (200 with a body, 204 without), or of the
        error; ``None`` when no write was made or its effect was confirmed by re-reading.
    :param detail: one sentence for the audit CSV.
    :param groups_removed: names of the groups the user was removed from.
    :param groups_not_removable: names of the groups Atlassian would not let us change (IdP-synced).
    """

    account_id: str
    action: str
    performed: str
    result: str
    api_status: int | None = None
    detail: str = ""
    groups_removed: tuple[str, ...] = ()
    groups_not_removable: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-native form."""
        return {
            "account_id": self.account_id,
            "action": self.action,
            "performed": self.performed,
            "result": self.result,
            "api_status": self.api_status,
            "detail": self.detail,
            "groups_removed": list(self.groups_removed),
            "groups_not_removable": list(self.groups_not_removable),
        }


class RecipientNotAddressable(Exception):
    """A sender's way to say "this user cannot be reached, an admin must act" (not a failure).

    A warning for a user without a visible e-mail address is *reported*: retrying cannot make an
    address appear, so failing the task (and its retries) every day would only bury real errors.
    With ``warning.without_email: action_after_notice`` the user is listed to the admins in the
    digest and that listing is recorded as the warning (the notice runs from it); with ``hold`` the
    journal records it as skipped, so the next run reports it again until someone acts, and the
    planner keeps such a user at the final warning.
    """


# -- small helpers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Group:
    id: str
    name: str
    external_synced: bool


def _as_datetime(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("at must be timezone-aware (UTC)")
        return value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _live_activity(live: Mapping[str, Any]) -> dict[str, datetime | None]:
    record = user_record_from_v2(live)
    return {product: parse_timestamp(seen) for product, seen in record["product_access"].items()}


def _newer_activity(
    row: Mapping[str, Any], live: Mapping[str, Any], products: Iterable[str] | None = None
) -> str | None:
    """The first product used after the plan's evidence, as a sentence fragment, or None."""
    planned = plan_product_activity(row)
    wanted = {canonical_product(p) for p in products} if products is not None else None
    for product, seen in sorted(_live_activity(live).items()):
        if seen is None or (wanted is not None and product not in wanted):
            continue
        before = planned.get(product)
        if before is None or seen > before:
            return f"{_label(product)} was used on {seen:%Y-%m-%d %H:%M} UTC, after the plan's evidence"
    return None


def _label(product: str) -> str:
    return PRODUCT_LABELS.get(product, product)


def _group_refs(live: Mapping[str, Any]) -> list[dict[str, str]]:
    return [
        {"id": str(group.get("id")), "name": str(group.get("name"))}
        for group in live.get("groups") or []
        if group.get("id")
    ]


def _snapshot(live: Mapping[str, Any]) -> dict[str, Any]:
    """The account as it was before our write, for the journal (what a restore must give back)."""
    record = user_record_from_v2(live)
    return {
        "status": record["status"],
        "account_status": record["account_status"],
        "membership_status": record["membership_status"],
        "claim_status": record["claim_status"],
        "groups": _group_refs(live),
        "product_access": record["product_access"],
    }


def _evidence(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "product_last_active": {
            product: (seen.strftime("%Y-%m-%dT%H:%M:%SZ") if seen else None)
            for product, seen in sorted(plan_product_activity(row).items())
        },
        "days_inactive": _int_or_none(row.get("days_inactive")),
        "rule": row.get("rule"),
        "action_date": row.get("action_date"),
    }


def _skipped(detail: str) -> WriteResult:
    """Nothing written because the plan no longer holds for the user."""
    return WriteResult("skipped", SKIPPED_CHANGED, "none", detail)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value == value else None  # NaN != NaN
    except (TypeError, ValueError):
        return None


def _privilege(privileges: Mapping[str, Any], name: str) -> tuple[bool, str | None]:
    entry = privileges.get(name) or {}
    reason = entry.get("reason") or {}
    return bool(entry.get("allowed")), (reason.get("key") if isinstance(reason, Mapping) else str(reason))


# -- the engine ------------------------------------------------------------------------------------


class Enforcer:
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
        self._product_groups: dict[str, list[_Group]] | None = None

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
                if any(row["proposed_action"] == "remove_product_access" for row in rows):
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
        self._check_actions(rows, frozenset({"delete"}), "delete")
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
        self._check_actions(rows, frozenset({"warn", "delete_notice"}), "warn")
        history = self._history(rows)
        handler = functools.partial(
            self._warn_one, sender=sender, history=history, list_unaddressable=list_unaddressable
        )
        with self._pool("notify_warnings", workers=1) as pool:
            return self._run("notify_warnings", rows, handler, pool)

    # -- plumbing ----------------------------------------------------------------------------------

    @staticmethod
    def _check_actions(rows: list[Mapping[str, Any]], allowed: frozenset[str], method: str) -> None:
        wrong = sorted({str(row.get("proposed_action")) for row in rows} - allowed)
        if wrong:
            raise ValueError(f"Enforcer.{method} handles {sorted(allowed)}, not {wrong}")

    @contextlib.contextmanager
    def _pool(self, label: str, workers: int | None = None) -> Iterator[ThreadPoolExecutor]:
        """One bounded pool per batch: the same worker threads (and hooks) read and then write.

        When the batch ends with an exception (the task is being stopped, the credential was
        rejected) the users still queued are dropped instead of being worked through; the calls in
        flight finish and are journalled, or stay uncertain for the next run to re-check.
        """
        pool = ThreadPoolExecutor(max_workers=workers or self.concurrency, thread_name_prefix=label)
        try:
            yield pool
        except BaseException as exc:
            if not isinstance(exc, Exception):
                # A timeout or a kill unwinds the task: wake the workers from back-off and pacing
                # sleeps rather than wait for them.
                cancel_atlassian_calls(f"{label} is being stopped")
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    def _hook(self) -> AtlassianAdminHook:
        hook = getattr(self._local, "hook", None)
        if hook is None:
            hook = self.journal.guard(self.hook_factory())
            self._local.hook = hook
            with self._hooks_lock:
                self._hooks.append(hook)
        return hook

    def _close_hooks(self) -> None:
        with self._hooks_lock:
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            try:
                hook.close()
            except Exception:  # closing a session must never hide the run's real outcome
                self.log.debug("closing a hook failed", exc_info=True)
        self._local = threading.local()

    def _paced(self, endpoint: str, call: Callable[[], Any]) -> Any:
        """Make one call to ``endpoint`` through the endpoint's shared pacer."""
        return paced_call(self._hook(), endpoint, call)

    def _history(self, rows: list[Mapping[str, Any]]) -> dict[str, Any]:
        if not rows:
            return {}
        with self.journal.lock:
            return dict(self.store.history([str(row["account_id"]) for row in rows]))

    def _read_users(self, account_ids: list[str], pool: ThreadPoolExecutor) -> dict[str, dict[str, Any]]:
        """Re-read users in batches of :data:`READ_BATCH` (concurrently); absent ids are missing."""
        unique = list(dict.fromkeys(account_ids))
        batches = [unique[i : i + READ_BATCH] for i in range(0, len(unique), READ_BATCH)]
        found: dict[str, dict[str, Any]] = {}

        def read(batch: list[str]) -> dict[str, dict[str, Any]]:
            return self._paced("users/search", lambda: self._hook().get_users(batch, expand=_USER_EXPAND))

        progress = ProgressLog(
            self.log, "re-reading planned users", total=len(unique), interval=self.progress_interval
        )
        for done, users in enumerate(pool.map(read, batches), start=1):
            found.update(users)
            progress.update(min(done * READ_BATCH, len(unique)))
        self.log.info("Re-read %d of %d planned users from Atlassian before writing", len(found), len(unique))
        return found

    def _read_one(self, account_id: str) -> dict[str, Any] | None:
        return self._read_users_quiet([account_id]).get(account_id)

    def _read_users_quiet(self, account_ids: list[str]) -> dict[str, dict[str, Any]]:
        return self._paced("users/search", lambda: self._hook().get_users(account_ids, expand=_USER_EXPAND))

    def _run(
        self,
        label: str,
        rows: list[Mapping[str, Any]],
        handler: Callable[[Mapping[str, Any]], ActionOutcome],
        pool: ThreadPoolExecutor,
    ) -> list[ActionOutcome]:
        started = time.monotonic()
        outcomes: list[ActionOutcome | None] = [None] * len(rows)
        progress = ProgressLog(self.log, label, total=len(rows), interval=self.progress_interval)
        abort = threading.Event()
        auth_errors: list[AtlassianAuthError] = []
        counter_lock = threading.Lock()
        finished = 0

        def work(index: int) -> None:
            nonlocal finished
            if abort.is_set():
                return
            raise_if_cancelled(f"{label} for the next user")  # the task is being stopped
            row = rows[index]
            try:
                outcome = handler(row)
            except AtlassianAuthError as exc:
                abort.set()
                auth_errors.append(exc)
                outcome = self._outcome(row, FAILED, "none", str(exc), exc.status)
            except Exception as exc:  # one user's failure must not stop the others
                self.log.warning("%s: %s failed: %s", label, row.get("account_id"), exc)
                status = exc.status if isinstance(exc, AtlassianApiError) else None
                outcome = self._outcome(row, FAILED, "none", str(exc) or type(exc).__name__, status)
            outcomes[index] = outcome
            with counter_lock:
                finished += 1
                progress.update(finished)

        list(pool.map(work, range(len(rows))))

        done = [outcome for outcome in outcomes if outcome is not None]
        counts = Counter(outcome.result for outcome in done)
        self.log.info(
            "%s: %d of %d users processed in %.1fs (%s)",
            label,
            len(done),
            len(rows),
            time.monotonic() - started,
            ", ".join(f"{result} {counts[result]}" for result in RESULTS if counts[result])
            or "nothing to do",
        )
        if auth_errors:
            raise auth_errors[0]
        return done

    @staticmethod
    def _outcome(
        row: Mapping[str, Any], result: str, performed: str, detail: str, api_status: int | None = None
    ) -> ActionOutcome:
        return ActionOutcome(
            account_id=str(row["account_id"]),
            action=str(row.get("proposed_action")),
            performed=performed,
            result=result,
            api_status=api_status,
            detail=detail,
        )

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
            evidence=_evidence(row),
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
        claim = self._claim(row, action, before=_snapshot(live) if live else None)
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
        products = row.get("products_to_remove") if action == "remove_product_access" else None
        newer = _newer_activity(row, live, products)
        if newer:
            return _skipped(f"{newer}; nothing was changed.")
        event_action = "suspend" if action == "deactivate" else action  # checked again after the fact
        if not can_apply(user_history, "actioned", action=event_action):
            stage = getattr(user_history, "stage", "unknown")
            return _skipped(f"The state store has the user at stage {stage}, where {action} is not allowed.")

        if action == "suspend":
            return self._suspend(account_id)
        if action == "deactivate":
            return self._deactivate(row)
        return self._remove_access(row, live)

    def _recover_apply(
        self, row: Mapping[str, Any], action: str, live: Mapping[str, Any]
    ) -> WriteResult | None:
        """For an interrupted earlier attempt: the result if Atlassian shows it happened, else None."""
        status = live.get("status")
        note = "Confirmed from Atlassian after an interrupted earlier attempt"
        if action in ("suspend", "deactivate") and status == "suspended":
            detail = f"{note}: the user is suspended."
            if action == "deactivate":
                detail += " Atlassian did not allow deactivating this account, so it was suspended instead."
            return WriteResult(
                "succeeded", DONE, "suspend", detail, event="actioned", event_data={"action": "suspend"}
            )
        if action == "deactivate" and status == "deactivated":
            return WriteResult(
                "succeeded", DONE, "deactivate", f"{note}: the account is deactivated.",
                event="actioned", event_data={"action": "deactivate"},
            )  # fmt: skip
        if action == "remove_product_access" and status == "active":
            products, groups, by_product = self._removal_targets(row, live)
            if not [group for group in groups if not group.external_synced]:
                synced = [group for group in groups if group.external_synced]
                blocked = {p for p in products if any(g in synced for g in by_product.get(p, []))}
                return self._removal_result(row, products, [], synced, None, blocked=blocked, recovered=True)
        return None

    def _suspend(self, account_id: str, detail: str = "Suspended in the directory") -> WriteResult:
        hook = self._hook()
        status = self._write(
            "suspend",
            lambda: hook.suspend_user(account_id),
            lambda: (self._read_one(account_id) or {}).get("status") == "suspended",
        )
        return WriteResult(
            "succeeded",
            DONE,
            "suspend",
            f"{detail}; groups and roles are kept, so a restore gives the same access back.",
            api_status=status,
            event="actioned",
            event_data={"action": "suspend"},
        )

    def _deactivate(self, row: Mapping[str, Any]) -> WriteResult:
        account_id = str(row["account_id"])
        hook = self._hook()
        privileges = self._paced("manage", lambda: hook.get_manage_privileges(account_id))
        allowed, reason = _privilege(privileges, "lifecycle.enablement")
        if not allowed:
            return self._suspend(account_id, _fallback_sentence(reason, "deactivated"))
        try:
            status = self._write(
                "lifecycle/disable",
                lambda: hook.disable_user(account_id, message=self.deactivate_message),
                lambda: (self._read_one(account_id) or {}).get("status") == "deactivated",
            )
        except AtlassianPermissionError as exc:
            # The privilege check said yes, the call said no (e.g. the account became SCIM-managed).
            return self._suspend(account_id, _fallback_sentence(exc.code or "forbidden", "deactivated"))
        return WriteResult(
            "succeeded",
            DONE,
            "deactivate",
            "Deactivated: the account can no longer log in to any Atlassian site; "
            "re-enable it (lifecycle/enable) to undo.",
            api_status=status,
            event="actioned",
            event_data={"action": "deactivate"},
        )

    # -- remove product access ---------------------------------------------------------------------

    def _granting_groups(self) -> dict[str, list[_Group]]:
        """Canonical product -> groups granting any role on that product (discovered once per run)."""
        with self._groups_lock:
            if self._product_groups is not None:
                return self._product_groups
            hook = self._hook()
            mapping: dict[str, list[_Group]] = {}
            groups = list(hook.iter_groups_with_roles())
            grants = product_grants(groups)
            for group, _assignments in groups:
                info = _Group(
                    str(group["id"]), str(group.get("name") or group["id"]), bool(group.get("externalSynced"))
                )
                for product in sorted(grants.get(info.id, ())):
                    mapping.setdefault(product, []).append(info)
            self._product_groups = mapping
            self.log.info(
                "Product access groups (from %d groups): %s",
                len(groups),
                "; ".join(f"{_label(p)}: {len(g)}" for p, g in sorted(mapping.items())) or "none",
            )
            return mapping

    def _granted_products(self, live: Mapping[str, Any]) -> set[str]:
        """The products the live user's groups grant."""
        member_of = {group["id"] for group in _group_refs(live)}
        return {
            product
            for product, groups in self._granting_groups().items()
            if any(group.id in member_of for group in groups)
        }

    def _removal_targets(
        self, row: Mapping[str, Any], live: Mapping[str, Any]
    ) -> tuple[list[str], list[_Group], dict[str, list[_Group]]]:
        """The row's products, the granting groups the user is in, and the product -> groups map."""
        products = [canonical_product(str(p)) for p in row.get("products_to_remove") or []]
        by_product = self._granting_groups()
        member_of = {group["id"] for group in _group_refs(live)}
        groups: dict[str, _Group] = {}
        for product in products:
            for group in by_product.get(product, []):
                if group.id in member_of:
                    groups[group.id] = group
        return products, sorted(groups.values(), key=lambda g: g.name), by_product

    def _remove_access(self, row: Mapping[str, Any], live: Mapping[str, Any]) -> WriteResult:
        """Remove the user from every group granting the row's products (IdP-synced ones are reported)."""
        account_id = str(row["account_id"])
        products, to_leave, by_product = self._removal_targets(row, live)
        if not to_leave:
            names = ", ".join(_label(p) for p in products) or "the planned products"
            return WriteResult(
                "skipped", SKIPPED_CHANGED, "none",
                f"The user is no longer in any group granting {names}; nothing was changed.",
            )  # fmt: skip

        hook = self._hook()
        removed: list[_Group] = []
        not_removable: list[_Group] = []
        last_status: int | None = None
        for group in to_leave:
            if group.external_synced:
                not_removable.append(group)
                continue
            try:
                last_status = self._write(
                    "group/membership",
                    lambda group=group: hook.remove_group_member(group.id, account_id),
                    lambda group=group: (
                        group.id not in {g["id"] for g in _group_refs(self._read_one(account_id) or {})}
                    ),
                )
            except AtlassianPermissionError:
                not_removable.append(group)  # synced or otherwise read-only: not fought
                continue
            except AtlassianNotFoundError:
                pass  # the membership is already gone
            removed.append(group)
        blocked = {p for p in products if any(g in not_removable for g in by_product.get(p, []))}
        return self._removal_result(row, products, removed, not_removable, last_status, blocked=blocked)

    def _removal_result(
        self,
        row: Mapping[str, Any],
        products: list[str],
        removed: list[_Group],
        not_removable: list[_Group],
        api_status: int | None,
        *,
        blocked: set[str] | None = None,
        recovered: bool = False,
    ) -> WriteResult:
        blocked = blocked or set()
        gone = [p for p in products if p not in blocked]
        removed_names = tuple(g.name for g in removed)
        blocked_names = tuple(g.name for g in not_removable)
        parts = []
        if recovered:
            parts.append(
                "Confirmed from Atlassian after an interrupted earlier attempt: the user is in no group "
                f"granting {', '.join(_label(p) for p in products)} any more."
            )
        if removed_names:
            parts.append(
                f"Removed from {', '.join(removed_names)}: no more access to "
                f"{', '.join(_label(p) for p in gone) or 'the products concerned'} through these groups."
            )
        if blocked_names:
            parts.append(
                f"Still in {', '.join(blocked_names)}, synced from the identity provider and read-only in "
                f"Atlassian, so {', '.join(_label(p) for p in sorted(blocked))} access remains: remove the "
                "user from that group in the identity provider (Okta, Entra ID, Google, ...)."
            )
        detail = " ".join(parts)
        if removed or recovered:
            return WriteResult(
                "succeeded", DONE, "remove_product_access", detail, api_status=api_status,
                event="actioned", event_data={"action": "remove_product_access", "products": sorted(gone)},
                groups_removed=removed_names, groups_not_removable=blocked_names,
            )  # fmt: skip
        # Nothing could be done through the API: a report for the admin, no state change.
        return WriteResult(
            "skipped", REPORTED, "none", detail, api_status=None, groups_not_removable=blocked_names
        )

    # -- delete ------------------------------------------------------------------------------------

    def _delete_one(
        self, row: Mapping[str, Any], live_by_id: Mapping[str, dict[str, Any]], history: Mapping[str, Any]
    ) -> ActionOutcome:
        account_id = str(row["account_id"])
        live = live_by_id.get(account_id)
        hook = self._hook()
        before: dict[str, Any] | None = _snapshot(live) if live else None
        if before is not None:
            # Removal from the directory drops groups and roles: keep what a re-invite must re-add.
            try:
                before["role_assignments"] = hook.get_user_role_assignments(account_id)
            except AtlassianAuthError:
                raise
            except AtlassianApiError as exc:
                before["role_assignments_error"] = str(exc)
        claim = self._claim(row, "delete", before=before)
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
        granted = self._granted_products(live) if acted not in ("suspend", "deactivate") else set()
        left_as = _left_as_we_did(live, acted, has_access=bool(granted))
        if left_as:
            return _skipped(f"{left_as}; not deleted.")
        newer = _newer_activity(row, live)
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
        allowed, reason = _privilege(privileges, "lifecycle.delete")
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
            "delete",
            f"{prefix} requested. Atlassian's {DELETE_GRACE_DAYS}-day grace period applies: the account "
            f"is deactivated now and permanently deleted after {grace_end}; until then cancel-delete "
            f"(POST /users/{account_id}/manage/lifecycle/cancel-delete) undoes it. Content the user "
            "created is kept.",
            api_status=status,
            event="delete_requested",
        )

    @staticmethod
    def _removed_result(status: int | None, reason: str, *, recovered: bool = False) -> WriteResult:
        why = _REASONS.get(reason, f"Atlassian does not allow deleting this account ({reason})")
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

    # -- warn --------------------------------------------------------------------------------------

    def _warn_one(
        self,
        row: Mapping[str, Any],
        sender: Callable[[Mapping[str, Any]], Any],
        history: Mapping[str, Any],
        list_unaddressable: bool = False,
    ) -> ActionOutcome:
        account_id = str(row["account_id"])
        if row.get("proposed_action") == "delete_notice":
            return self._notice_one(row, sender, history, list_unaddressable)
        lead_days = _int_or_none(row.get("warning_lead_days"))
        claim = self._claim(row, "warn", lead_days=lead_days)
        if claim.status == "done":
            return self._already_done(row)
        if lead_days is None or lead_days < 1:
            return self._finish(
                row, claim,
                WriteResult(
                    "failed", FAILED, "none", "The plan row has no warning bucket (warning_lead_days)."
                ),
            )  # fmt: skip
        products = [canonical_product(str(p)) for p in row.get("products_to_remove") or []]
        data: dict[str, Any] = {"lead_days": lead_days}
        if products:
            data["products"] = products
        if not can_apply(history.get(account_id), "warned", **data):
            stage = getattr(history.get(account_id), "stage", "unknown")
            return self._skip(row, claim, f"The state store has the user at stage {stage}; no warning sent.")
        try:
            sender(row)
        except RecipientNotAddressable as exc:
            detail = f"Warning e-mail not sent: {exc}"
            # warning.without_email is about addresses Atlassian does not show; an address the relay
            # cannot take is only reported (the admin can fix the relay or the address).
            if valid_email_address(row.get("email")) is None:
                if list_unaddressable:
                    detail += (
                        f". Listed to the admins in the digest instead ({lead_days}-day stage); the "
                        f"planned {row.get('planned_action')} follows after the notice period, counted "
                        "from the first listing (warning.without_email: action_after_notice)."
                    )
                    return self._finish(
                        row, claim,
                        WriteResult("succeeded", REPORTED, "none", detail, event="warned", event_data=data),
                    )  # fmt: skip
                detail += ". Held: never actioned without a warning (warning.without_email: hold)."
            return self._finish(row, claim, WriteResult("skipped", REPORTED, "none", detail))
        except Exception as exc:  # SMTP errors: this user only; the claim is retried next run
            detail = f"Warning e-mail not sent: {exc}"
            return self._finish(row, claim, WriteResult("failed", FAILED, "none", detail))
        # An interrupted earlier attempt may or may not have mailed: a second notice is better than
        # acting on someone who was never told.
        again = (
            " (an earlier attempt was interrupted, so it may be the second copy)"
            if claim.status != "new"
            else ""
        )
        detail = (
            f"{lead_days}-day warning e-mailed{again}; the planned {row.get('planned_action')} "
            f"is due on {row.get('action_date') or 'the action date'}."
        )
        return self._finish(
            row, claim, WriteResult("succeeded", DONE, "warn", detail, event="warned", event_data=data)
        )

    def _notice_one(
        self,
        row: Mapping[str, Any],
        sender: Callable[[Mapping[str, Any]], Any],
        history: Mapping[str, Any],
        list_unaddressable: bool = False,
    ) -> ActionOutcome:
        """E-mail the deletion notice once per cycle (journal action ``delete_notice``).

        A user without a visible address is treated like a warning (``warning.without_email``):
        listed to the admins, the listing journalled as the notice, so the deletion follows after
        the same notice period; or held (never deleted without a notice).
        """
        account_id = str(row["account_id"])
        claim = self._claim(row, "delete_notice")
        if claim.status == "done":
            return self._already_done(row)
        user_history = history.get(account_id)
        if not can_apply(user_history, "delete_requested"):
            stage = getattr(user_history, "stage", "active")
            return self._skip(
                row, claim, f"The state store has the user at stage {stage}; no deletion notice sent."
            )
        actioned_at = getattr(user_history, "actioned_at", None)
        facts = {
            "actioned_action": getattr(user_history, "actioned_action", None),
            "actioned_at": actioned_at.isoformat() if actioned_at else None,
        }
        try:
            sender({**row, **facts})
        except RecipientNotAddressable as exc:
            detail = f"Deletion notice not sent: {exc}"
            if valid_email_address(row.get("email")) is None:
                if list_unaddressable:
                    detail += (
                        ". Listed to the admins in the digest instead; the deletion follows after the "
                        "notice period, counted from this listing (warning.without_email: "
                        "action_after_notice)."
                    )
                    return self._finish(row, claim, WriteResult("succeeded", REPORTED, "none", detail))
                detail += ". Held: never deleted without a notice (warning.without_email: hold)."
            return self._finish(row, claim, WriteResult("skipped", REPORTED, "none", detail))
        except Exception as exc:  # SMTP errors: this user only; the claim is retried next run
            return self._finish(
                row, claim, WriteResult("failed", FAILED, "none", f"Deletion notice not sent: {exc}")
            )
        again = (
            " (an earlier attempt was interrupted, so it may be the second copy)"
            if claim.status != "new"
            else ""
        )
        due = row.get("action_date") or "a later run"
        detail = f"Deletion notice e-mailed{again}; the deletion is due on {due}."
        return self._finish(row, claim, WriteResult("succeeded", DONE, "delete_notice", detail))


_REASONS = {
    "accountNotManaged": "Unmanaged account (not on a verified domain of the organization), "
    "which Atlassian does not let us delete",
    "externalDirectory.scim": "Account managed by the identity provider (SCIM), "
    "which Atlassian does not let us delete",
}


def deactivation_refusals(hook: Any, account_ids: Iterable[str]) -> dict[str, str | None]:
    """Account id -> Atlassian's reason key, for each account it will not let us deactivate.

    Asks ``GET /users/{id}/manage`` for ``lifecycle.enablement`` (the privilege ``lifecycle/disable``
    needs), so the plan and the warning e-mail promise what ``apply_actions`` will be able to do.
    """
    refused: dict[str, str | None] = {}
    for account_id in dict.fromkeys(str(a) for a in account_ids):
        allowed, reason = _privilege(hook.get_manage_privileges(account_id), "lifecycle.enablement")
        if not allowed:
            refused[account_id] = reason
    return refused


def _fallback_sentence(reason: str | None, verb: str) -> str:
    if reason == "accountNotManaged":
        return f"Unmanaged account: suspended instead of {verb}"
    if reason == "externalDirectory.scim":
        return f"Account managed by the identity provider (SCIM): suspended instead of {verb}"
    why = reason or "no reason given"
    return f"Atlassian does not allow this account to be {verb} ({why}): suspended instead"


def _left_as_we_did(live: Mapping[str, Any], actioned_action: str | None, *, has_access: bool) -> str | None:
    """Why the account no longer looks the way our action left it, or None when it still does.

    :param has_access: whether the user's groups grant any product now.
    """
    status = str(live.get("status") or "active")
    if actioned_action == "suspend":
        ok = status in ("suspended", "deactivated")
    elif actioned_action == "deactivate":
        ok = status == "deactivated"
    elif actioned_action == "remove_product_access":
        ok = not has_access
    else:
        ok = status in ("suspended", "deactivated") or not has_access
    if ok:
        return None
    if actioned_action == "remove_product_access":
        return "The user has product access again (someone restored it)"
    return f"Atlassian shows the user as {status}, not as this tool left them (someone restored them)"
