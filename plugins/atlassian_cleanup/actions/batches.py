"""How the engine works through a batch of users: a bounded pool, one hook per thread, paced reads.

Users are processed by a bounded thread pool (``policy.safety.write_concurrency``), one hook (one
HTTP session) per worker thread. One user's failure is recorded and the others go on; an expired
credential (401) stops the batch at once, because every further call would fail the same way.
When the batch ends with an exception the users still queued are dropped; the calls in flight
finish and are journalled, or stay uncertain for the next run to re-check.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from atlassian_cleanup.actions.action_outcome import ActionOutcome
from atlassian_cleanup.client.retry import (
    AtlassianApiError,
    AtlassianAuthError,
    cancel_atlassian_calls,
    paced_call,
    raise_if_cancelled,
)
from atlassian_cleanup.outcomes import FAILED, RESULTS
from atlassian_cleanup.progress import ProgressLog

if TYPE_CHECKING:
    from atlassian_cleanup.actions.journalled import Journal
    from atlassian_cleanup.actions.state import StateStore
    from atlassian_cleanup.client.hooks import AtlassianAdminHook

#: Users per concurrent re-read: one v2 search call each (the API's accountIds limit, which the hook
#: also enforces in ``get_users``).
READ_BATCH = 10
_USER_EXPAND = ("productAccess", "groups")


class UserBatches:
    """The :class:`~atlassian_cleanup.actions.enforcement.Enforcer`'s pool, hooks and re-reads."""

    hook_factory: Callable[[], AtlassianAdminHook]
    store: StateStore
    journal: Journal
    log: logging.Logger | logging.LoggerAdapter
    concurrency: int
    progress_interval: float
    _local: threading.local
    _hooks: list[Any]
    _hooks_lock: threading.Lock

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
