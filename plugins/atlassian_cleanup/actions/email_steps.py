"""Warning e-mails and deletion notices, as engine steps: once per bucket (or cycle), journalled."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from atlassian_cleanup.action_kinds import DELETE_NOTICE, WARN
from atlassian_cleanup.actions.action_outcome import ActionOutcome, RecipientNotAddressable
from atlassian_cleanup.actions.journalled import WriteResult
from atlassian_cleanup.actions.live_account import int_or_none
from atlassian_cleanup.actions.transitions import can_apply
from atlassian_cleanup.decisions.products import canonical_product
from atlassian_cleanup.decisions.records import valid_email_address
from atlassian_cleanup.outcomes import DONE, FAILED, REPORTED


class WarningMailing:
    """The :class:`~atlassian_cleanup.actions.enforcement.Enforcer`'s e-mail steps."""

    _claim: Callable[..., Any]
    _finish: Callable[..., ActionOutcome]
    _skip: Callable[..., ActionOutcome]
    _already_done: Callable[[Mapping[str, Any]], ActionOutcome]

    def _warn_one(
        self,
        row: Mapping[str, Any],
        sender: Callable[[Mapping[str, Any]], Any],
        history: Mapping[str, Any],
        list_unaddressable: bool = False,
    ) -> ActionOutcome:
        account_id = str(row["account_id"])
        if row.get("proposed_action") == DELETE_NOTICE:
            return self._notice_one(row, sender, history, list_unaddressable)
        lead_days = int_or_none(row.get("warning_lead_days"))
        claim = self._claim(row, WARN, lead_days=lead_days)
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
            row, claim, WriteResult("succeeded", DONE, WARN, detail, event="warned", event_data=data)
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
        claim = self._claim(row, DELETE_NOTICE)
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
        return self._finish(row, claim, WriteResult("succeeded", DONE, DELETE_NOTICE, detail))
