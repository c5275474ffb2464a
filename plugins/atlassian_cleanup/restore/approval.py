"""Pure parts of the admin approval of restore requests that no rule allows.

A request no restore rule allows (verdict ``refused``) is, in a live run, *asked*: the restore
DAG journals an ``approval_asked`` entry for it (scoped to the request, so once per request) with
the evidence the admin needs. The approval DAG (``atlassian_restore_approval``) puts one prompt per
asked request in Airflow's Required Actions (human-in-the-loop) and journals the answer as one
``approval`` entry: approved or rejected, by whom and when, or that nobody answered in time.

The next restore runs read the request's entries (:func:`approval_state`) and decide:

- **approved**: restored the way any allowed request is (same journalled path, same cap, same dry
  run), and resolved with a comment naming the approver;
- **rejected**: answered with a comment and resolved;
- **no answer within** ``restore.approval_timeout_hours`` of the ask: answered once with a comment
  saying so, left open (no second prompt);
- **asked, not answered yet**: nothing is written again (no second comment, no second prompt).

A request closed in JSM meanwhile is never read again by the restore DAG (it reads open requests
only), so an approval given after that restores nothing.

No Airflow, no HTTP, no clock: times come from the journal and the run's logical date.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from atlassian_cleanup.decisions.records import format_timestamp, parse_timestamp

#: Journal action of "an admin was asked to approve this request" (restore DAG).
ASKED = "approval_asked"
#: Journal action of "the approval DAG put this request's prompt in the Airflow UI".
PROMPTED = "approval_prompted"
#: Journal action of the admin's answer (or of the timeout), once per request.
ANSWERED = "approval"

APPROVED = "approved"
REJECTED = "rejected"
TIMED_OUT = "timed_out"
#: Asked, no answer recorded yet, the time not over.
WAITING = "waiting"
DECISIONS: tuple[str, ...] = (APPROVED, REJECTED, TIMED_OUT)

#: Verdicts the restore DAG gives requests an admin was asked about (see :data:`rules.VERDICTS`).
AWAITING_APPROVAL = "awaiting_approval"
APPROVAL_REJECTED = "approval_rejected"
APPROVAL_TIMED_OUT = "approval_timed_out"

#: The options of the prompt (Airflow's ApprovalOperator uses the same words).
APPROVE_OPTION = "Approve"
REJECT_OPTION = "Reject"


@dataclass(frozen=True)
class ApprovalState:
    """Where one request's approval stands.

    :param status: :data:`WAITING`, :data:`APPROVED`, :data:`REJECTED` or :data:`TIMED_OUT`.
    :param asked_at: when the restore DAG asked (journal).
    :param by: the Airflow user who answered (None for a timeout).
    :param at: when the answer (or the timeout) was recorded.
    :param deadline: ``asked_at`` + ``restore.approval_timeout_hours`` as asked.
    """

    status: str
    asked_at: datetime | None
    deadline: datetime | None
    by: str | None = None
    at: datetime | None = None

    @property
    def approved(self) -> bool:
        return self.status == APPROVED


def _get(entry: Any, name: str) -> Any:
    return entry.get(name) if isinstance(entry, Mapping) else getattr(entry, name, None)


def _entries(journal: Sequence[Any], action: str, request_key: str) -> list[Any]:
    """Succeeded entries of ``action`` made for ``request_key`` (oldest first)."""
    found = []
    for entry in journal:
        evidence = _get(entry, "evidence")
        if (
            _get(entry, "action") == action
            and _get(entry, "outcome") == "succeeded"
            and isinstance(evidence, Mapping)
            and evidence.get("request_key") == request_key
        ):
            found.append(entry)
    return found


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    return parse_timestamp(value) if value else None


def deadline_of(asked_at: datetime, timeout_hours: int) -> datetime:
    """When an ask made at ``asked_at`` runs out."""
    return asked_at + timedelta(hours=timeout_hours)


def approval_state(journal: Sequence[Any], request_key: str, *, as_of: datetime) -> ApprovalState | None:
    """The request's approval as the journal has it at ``as_of``; ``None`` when never asked.

    An answer recorded by the approval DAG wins. Without one, the ask's own deadline (recorded
    with the ask, so a later policy change does not move it) decides between waiting and timed
    out, so a prompt that never reached the UI still ends.
    """
    asked = _entries(journal, ASKED, request_key)
    if not asked:
        return None
    evidence = _get(asked[0], "evidence")
    asked_at = _when(evidence.get("asked_at")) or _when(_get(asked[0], "intent_at"))
    deadline = _when(evidence.get("deadline"))
    answered = _entries(journal, ANSWERED, request_key)
    if answered:
        answer = _get(answered[0], "evidence")
        status = str(answer.get("decision"))
        if status in DECISIONS:
            return ApprovalState(
                status, asked_at, deadline, by=answer.get("by") or None, at=_when(answer.get("at"))
            )
    if deadline is not None and as_of >= deadline:
        return ApprovalState(TIMED_OUT, asked_at, deadline, at=deadline)
    return ApprovalState(WAITING, asked_at, deadline)


def ask_evidence(
    row: Mapping[str, Any], *, link: str | None, asked_at: datetime, timeout_hours: int
) -> dict[str, Any]:
    """What the ``approval_asked`` entry keeps: the admin's evidence and the deadline."""
    return {
        "request_key": row["request_key"],
        "link": link,
        "account_id": row.get("account_id"),
        "email": row.get("email"),
        "name": row.get("reporter_name"),
        "stage": row.get("stage"),
        "actioned_action": row.get("actioned_action"),
        "reason": row.get("reason"),
        "steps": list(row.get("steps") or []),
        "groups": [str(g.get("name") or g.get("id")) for g in row.get("groups_to_add") or []],
        "products": list(row.get("products") or []),
        "asked_at": format_timestamp(asked_at),
        "deadline": format_timestamp(deadline_of(asked_at, timeout_hours)),
        "timeout_hours": timeout_hours,
    }


_STEP_WORDS = {
    "cancel_delete": "cancel the pending deletion",
    "restore_user": "lift the suspension (directory restore: groups and roles come back)",
    "enable_user": "re-activate the account (lifecycle enable)",
    "add_group_member": "re-add the groups it had before",
}


def prompt(ask: Mapping[str, Any]) -> tuple[str, str]:
    """The prompt's subject and Markdown body from an ``approval_asked`` entry's evidence."""
    key = str(ask.get("request_key"))
    who = ask.get("name") or ask.get("email") or ask.get("account_id")
    subject = f"Restore access for {who}? ({key})"
    link = f"[{key}]({ask['link']})" if ask.get("link") else key
    steps = [_STEP_WORDS.get(str(s), str(s)) for s in ask.get("steps") or []]
    lines = [
        f"**{who}** asks for their access back in {link}.",
        "",
        f"- Account: `{ask.get('account_id')}`, e-mail {ask.get('email') or 'unknown'}",
        f"- State in this tool: {ask.get('stage') or 'unknown'}"
        + (f" (actioned: {ask['actioned_action']})" if ask.get("actioned_action") else ""),
        f"- Why no rule allowed it: {ask.get('reason') or 'no restore rule matched'}",
        f"- What **Approve** does: {'; '.join(steps) or 'record the restore (nothing to call)'}",
    ]
    if ask.get("groups"):
        lines.append(f"- Groups re-added: {', '.join(str(g) for g in ask['groups'])}")
    if ask.get("products"):
        lines.append(f"- Products the cleanup removed: {', '.join(str(p) for p in ask['products'])}")
    lines += [
        "",
        f"**Approve**: the next restore run restores the account through the journalled path "
        f"(same cap and dry run as every restore) and resolves {key} with a comment naming you. "
        f"**Reject**: {key} is answered and resolved, nothing is restored. No answer by "
        f"{ask.get('deadline')} ({ask.get('timeout_hours')} hours after the ask): {key} stays "
        "open with a comment saying no administrator answered in time. A request closed in JSM "
        "meanwhile is not restored.",
    ]
    return subject, "\n".join(lines)


def answer_record(
    chosen: Sequence[str] | None, *, by: str | None, at: datetime | None, timed_out: bool
) -> dict[str, Any]:
    """The ``approval`` entry's evidence from a human-in-the-loop response (or its timeout)."""
    if timed_out or not chosen:
        decision, by = TIMED_OUT, None
    elif APPROVE_OPTION in chosen:
        decision = APPROVED
    elif REJECT_OPTION in chosen:
        decision = REJECTED
    else:
        raise ValueError(f"unknown approval answer {list(chosen)!r}")
    return {"decision": decision, "by": by, "at": format_timestamp(at)}


def settled(state: ApprovalState | None) -> str | None:
    """The verdict an asked request gets from its approval state, or None (decide as usual)."""
    if state is None or state.approved:
        return None
    return {
        WAITING: AWAITING_APPROVAL,
        REJECTED: APPROVAL_REJECTED,
        TIMED_OUT: APPROVAL_TIMED_OUT,
    }[state.status]


def settled_texts(state: ApprovalState, *, noted: str) -> tuple[str, str]:
    """The audit reason and the public comment of a request an admin was asked about."""
    admin = state.by or "an administrator"
    when = format_timestamp(state.at) or "an unrecorded time"
    if state.status == REJECTED:
        return (
            f"{noted} Rejected in Airflow by {admin} at {when}.".strip(),
            "An administrator reviewed your request and did not approve restoring your access. "
            "Please contact your IT team if you still need it.",
        )
    if state.status == TIMED_OUT:
        deadline = format_timestamp(state.deadline) or when
        return (
            f"{noted} No administrator answered the approval in Airflow by {deadline}.".strip(),
            "No administrator answered your request in time, so your access was not restored. "
            "The request stays open for an administrator.",
        )
    asked = format_timestamp(state.asked_at) or "an unrecorded time"
    deadline = format_timestamp(state.deadline) or "no deadline"
    return (
        f"{noted} Waiting for an administrator's approval in Airflow (asked {asked}, until "
        f"{deadline}).".strip(),
        "",
    )


def approved_texts(state: ApprovalState) -> tuple[str, str]:
    """The audit sentence and the comment sentence of an approved restore (naming the approver)."""
    when = format_timestamp(state.at) or "an unrecorded time"
    return (
        f"Approved in Airflow by {state.by or 'an administrator'} at {when}.",
        f"Your request was approved by {state.by or 'an administrator'}.",
    )
