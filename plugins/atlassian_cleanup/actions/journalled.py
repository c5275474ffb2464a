"""The one journalled write path: how every write of this tool reaches Atlassian (DESIGN.md §3).

The cleanup engine (:mod:`~atlassian_cleanup.actions.enforcement`) and the restore flow
(:mod:`~atlassian_cleanup.restore.carry_out`) both go through :class:`Journal`:

1. **Claim** the write: the intent is committed to the state store's journal before any call.
2. A claim already **done** (in this cycle, or for this request) is not written again; the caller
   says so in its own words.
3. A claim left **uncertain** (an earlier attempt claimed it and never recorded a result: a crash,
   a kill) is first checked against Atlassian (``recover``): when the write's effect is there, that
   is recorded as the result (``result_source = recheck``) and nothing is written again.
4. Otherwise **act**: check the preconditions and make the writes, each one through
   :meth:`Journal.write`, so that an ambiguous failure (no answer, a 5xx) is followed by a look at
   the account, never by a blind replay (:func:`~atlassian_cleanup.client.retry.write_unless_done`).
5. **Record** the result: a new claim is completed, an uncertain one resolved, in one transaction
   with its state-machine event. An API error is recorded as failed; a rejected credential is then
   raised, because every further call would fail the same way.

No Airflow import here: the callers pass the store and the hooks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from atlassian_cleanup.client.retry import (
    AtlassianApiError,
    AtlassianAuthError,
    guard_write_replays,
    write_unless_done,
)
from atlassian_cleanup.outcomes import FAILED

if TYPE_CHECKING:
    from atlassian_cleanup.actions.state import StateStore
    from atlassian_cleanup.actions.state_records import Claim


@dataclass
class WriteResult:
    """What one journalled write came to; recorded in the journal and reported to the caller."""

    outcome: str  # succeeded | failed | skipped (the journal's vocabulary)
    result: str  # one of outcomes.RESULTS
    performed: str
    detail: str
    api_status: int | None = None
    event: str | None = None
    event_data: dict[str, Any] | None = None
    groups_removed: tuple[str, ...] = ()
    groups_not_removable: tuple[str, ...] = ()
    also_deleted: bool = False  # a removal from the directory ends the lifecycle at once


def body_status(body: Any) -> int:
    """The HTTP status of a write from what the hook returned: None for 204 / an empty body."""
    return 200 if body else 204


class Journal:
    """
    Claim, check, write and record through one :class:`StateStore`, for one run.

    Thread-safe: claims and records are serialised by :attr:`lock` (the store's own thread-safety
    is its business; the lock keeps the callers correct with any store).

    :param store: the state store (journal + per-user state).
    :param run_id: the Airflow run id, recorded with every journal entry.
    :param at: the action time (the run's logical date), recorded as the time of every write.
    :param write_attempts: attempts per write after ambiguous failures (each one after a re-read).
    """

    def __init__(self, store: StateStore, *, run_id: str, at: datetime, write_attempts: int = 3) -> None:
        self.store = store
        self.run_id = run_id
        self.at = at
        self.write_attempts = max(1, int(write_attempts))
        self.lock = threading.Lock()

    @staticmethod
    def guard(hook: Any) -> Any:
        """``hook`` with its own replay of ambiguous writes switched off: :meth:`write` decides."""
        return guard_write_replays(hook)

    def claim(
        self,
        account_id: str,
        action: str,
        *,
        reason: str = "",
        evidence: Any = None,
        before: Any = None,
        lead_days: int | None = None,
        products: list[str] | None = None,
        scope: str | None = None,
    ) -> Claim:
        """Step 1: commit the intent (see :meth:`StateStore.claim` for the key and the statuses)."""
        with self.lock:
            return self.store.claim(
                run_id=self.run_id,
                account_id=account_id,
                action=action,
                at=self.at,
                lead_days=lead_days,
                reason=reason,
                evidence=evidence,
                before=before,
                products=products,
                scope=scope,
            )

    def carry_out(
        self,
        account_id: str,
        claim: Claim,
        act: Callable[[], WriteResult],
        *,
        recover: Callable[[], WriteResult | None] | None = None,
        failure_detail: Callable[[AtlassianApiError], str] = str,
    ) -> WriteResult:
        """Steps 3 to 5 for a claim that is not done: recover or act, then record.

        :param act: checks the preconditions and writes (through :meth:`write`); returns the result.
        :param recover: for an uncertain claim: reads Atlassian and returns the result when the
            write already took effect, else None (then ``act`` runs).
        :param failure_detail: the journal's sentence for an API error raised by ``recover`` or ``act``.
        :raises AtlassianAuthError: the credential was rejected (the failure is recorded first).
        """
        try:
            result = recover() if claim.status == "uncertain" and recover is not None else None
            if result is None:
                result = act()
        except AtlassianApiError as exc:
            failed = WriteResult("failed", FAILED, "none", failure_detail(exc), api_status=exc.status)
            self.record(account_id, claim, failed)
            if isinstance(exc, AtlassianAuthError):
                raise
            return failed
        self.record(account_id, claim, result)
        return result

    def write(self, write: Callable[[], Any], happened: Callable[[], bool]) -> int | None:
        """
        Make one write; after an ambiguous failure look (``happened``), and write again only if not.

        :return: the write's HTTP status, or ``None`` when its effect was confirmed by re-reading.
        """
        return write_unless_done(lambda: body_status(write()), happened, attempts=self.write_attempts)

    def record(self, account_id: str, claim: Claim, result: WriteResult) -> None:
        """Step 5: complete a new claim, resolve an uncertain one (with the state transition)."""
        record = self.store.complete if claim.status == "new" else self.store.resolve
        try:
            with self.lock:
                record(
                    claim.entry_id,
                    outcome=result.outcome,
                    at=self.at,
                    api_status=result.api_status,
                    detail=result.detail,
                    event=result.event,
                    event_data=result.event_data,
                )
                if result.also_deleted:
                    self.store.record_event(
                        account_id,
                        "deleted",
                        at=self.at,
                        run_id=self.run_id,
                        reason="removed from the directory: there is no grace period to wait for",
                        evidence={"performed": result.performed},
                    )
        except Exception as exc:
            # The write is done but unrecorded: the entry stays open, so the next run re-checks
            # Atlassian and resolves it instead of writing again.
            raise RuntimeError(
                f"{result.detail} The journal could not record it ({exc}); the next run will "
                "re-check the account before doing anything."
            ) from exc
