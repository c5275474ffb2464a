"""What this tool actually did to one account, and when, read from the state store's journal.

Pure: no Airflow, no HTTP, no clock. :func:`facts_from_journal` turns a user's journal (and the
store's :class:`~atlassian_cleanup.decisions.records.UserHistory`) into :class:`AccountFacts`: each write
this tool made in the user's latest actioned cycle, with the Atlassian call it used and the time
the journal recorded its result. The ``*_sentence`` functions word those facts for the person
(restore answers) and for admins (audit reasons), so every answer says what was really done,
when, and what can be done next, instead of guessing from the stage.

What each write means (the API contract, §4.1-4.5):

* ``suspend`` (v2 directory suspend): no access to this organization's products; groups and
  roles are kept, a directory restore gives the same access back.
* ``deactivate`` (user-management ``lifecycle/disable``, managed accounts only): no login to any
  Atlassian product; ``lifecycle/enable`` undoes it.
* ``remove_product_access`` (v2 group membership removals): no access to those products; re-adding
  the groups gives it back.
* ``delete`` (user-management ``lifecycle/delete``, managed accounts only): Atlassian keeps the
  account for :data:`DELETE_GRACE_DAYS` days **counted from the deletion request**, during which
  ``cancel-delete`` undoes it; after that it is gone for good.
* ``remove_from_directory`` (v2 remove user from directory, what an unmanaged account gets instead
  of a deletion): immediate, no grace window. The Atlassian account itself still exists; it is no
  longer in the organization and lost its groups and roles, so getting back in means a new
  invitation and the groups re-added (the journal keeps them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from atlassian_cleanup import action_kinds
from atlassian_cleanup.decisions.products import PRODUCT_LABELS, canonical_product

#: Atlassian keeps a deleted managed account this many days after the request; cancel-delete works meanwhile.
DELETE_GRACE_DAYS = 14

SUSPEND = action_kinds.SUSPEND
DEACTIVATE = action_kinds.DEACTIVATE
REMOVE_PRODUCT_ACCESS = action_kinds.REMOVE_PRODUCT_ACCESS
LIFECYCLE_DELETE = action_kinds.DELETE
REMOVE_FROM_DIRECTORY = "remove_from_directory"

#: The Atlassian call behind each kind of write (for admins; the contract's names).
API_CALLS: dict[str, str] = {
    **{kind.name: kind.api_call for kind in action_kinds.KINDS.values() if kind.api_call},
    REMOVE_FROM_DIRECTORY: "v2 remove user from directory (DELETE …/directories/{directory}/users/{account})",
}


@dataclass(frozen=True)
class Step:
    """One write this tool made to the account.

    :param kind: one of the module's kinds (``suspend`` ... ``remove_from_directory``).
    :param at: when the journal recorded its result (the run's time).
    :param products: the products concerned (``remove_product_access``).
    :param instead_of: the planned action when Atlassian did not allow it (``deactivate`` that
        became a suspension, ``delete`` that became a removal from the directory).
    """

    kind: str
    at: datetime | None
    products: tuple[str, ...] = ()
    instead_of: str | None = None

    @property
    def api_call(self) -> str:
        return API_CALLS[self.kind]


@dataclass(frozen=True)
class AccountFacts:
    """The writes of the latest cycle in which this tool acted on the account, oldest first."""

    access: tuple[Step, ...] = ()
    deletion: Step | None = None

    @property
    def touched(self) -> bool:
        return bool(self.access) or self.deletion is not None

    def grace_ends(self) -> datetime | None:
        """End of Atlassian's cancel window of a lifecycle deletion (``None`` for anything else)."""
        if self.deletion is None or self.deletion.kind != LIFECYCLE_DELETE or self.deletion.at is None:
            return None
        return self.deletion.at + timedelta(days=DELETE_GRACE_DAYS)

    def grace_over(self, as_of: datetime) -> bool:
        """Whether a lifecycle deletion can no longer be cancelled on ``as_of``."""
        # Imported here: days needs numpy, which DAG files must not load while they are parsed.
        from atlassian_cleanup.days import calendar_days

        if self.grace_ends() is None or self.deletion is None or self.deletion.at is None:
            return False
        return calendar_days(self.deletion.at, as_of) >= DELETE_GRACE_DAYS


def _get(entry: Any, name: str) -> Any:
    if entry is None:
        return None
    return entry.get(name) if isinstance(entry, Mapping) else getattr(entry, name, None)


def _when(entry: Any) -> datetime | None:
    value = _get(entry, "result_at") or _get(entry, "intent_at")
    return value if isinstance(value, datetime) else None


def _succeeded(entry: Any, event: str) -> bool:
    return bool(_get(entry, "outcome") == "succeeded" and _get(entry, "event") == event)


def facts_from_journal(journal: Sequence[Any], history: Any = None) -> AccountFacts:
    """The writes of the user's latest actioned cycle (see :class:`AccountFacts`).

    ``journal`` is the user's entries, oldest first (:class:`~atlassian_cleanup.actions.state.JournalEntry`
    or their dicts). ``history`` (optional) is the store's record of the user: its
    ``actioned_action`` is the action that took effect, which tells a ``deactivate`` entry that
    Atlassian turned into a suspension apart from a real deactivation.
    """
    acted = [e for e in journal if _succeeded(e, "actioned")]
    deletes = [e for e in journal if _succeeded(e, "delete_requested")]
    if acted:
        cycle = _get(acted[-1], "cycle")
    elif deletes:
        cycle = _get(deletes[-1], "cycle")
    else:
        return AccountFacts()
    effective = _get(history, "actioned_action")
    access = []
    for entry in (e for e in acted if _get(e, "cycle") == cycle):
        kind = str(_get(entry, "action"))
        instead_of = None
        if kind == DEACTIVATE and _suspended_instead(entry, effective):
            kind, instead_of = SUSPEND, DEACTIVATE
        if kind not in API_CALLS:
            continue
        products = tuple(sorted(canonical_product(str(p)) for p in _get(entry, "products") or ()))
        access.append(Step(kind, _when(entry), products if kind == REMOVE_PRODUCT_ACCESS else (), instead_of))
    deletion = None
    cycle_deletes = [e for e in deletes if _get(e, "cycle") == cycle]
    if cycle_deletes:
        entry = cycle_deletes[-1]
        at = _when(entry)
        removed = any(
            is_removal(e, at) for e in journal if _get(e, "cycle") == cycle and _succeeded(e, "deleted")
        )
        if removed:
            deletion = Step(REMOVE_FROM_DIRECTORY, at, instead_of=LIFECYCLE_DELETE)
        else:
            deletion = Step(LIFECYCLE_DELETE, at)
    return AccountFacts(tuple(access), deletion)


def _suspended_instead(entry: Any, effective: str | None) -> bool:
    if effective is not None:
        return effective == SUSPEND
    detail = str(_get(entry, "detail") or "")
    return "suspended instead" in detail or "the user is suspended" in detail


def is_removal(deleted_entry: Any, delete_at: datetime | None) -> bool:
    """A ``deleted`` observation that records a removal from the directory (no grace to wait for)."""
    evidence = _get(deleted_entry, "evidence")
    if isinstance(evidence, Mapping) and evidence.get("performed"):
        return bool(evidence["performed"] == REMOVE_FROM_DIRECTORY)
    # Journals written before the evidence said so: the removal is recorded as deleted at the very
    # moment of the delete request (a lifecycle deletion only ends after its grace).
    return delete_at is not None and _when(deleted_entry) == delete_at


# --------------------------------------------------------------------------------------------------
# Wording
# --------------------------------------------------------------------------------------------------


def day(value: datetime | date | None) -> str:
    """``YYYY-MM-DD`` (UTC), or ``an unrecorded date``."""
    if value is None:
        return "an unrecorded date"
    return (value.date() if isinstance(value, datetime) else value).isoformat()


def _products(products: Sequence[str]) -> str:
    names = [PRODUCT_LABELS.get(p, p.replace("-", " ").title()) for p in products]
    if not names:
        return "some products"
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _user_step(step: Step) -> str:
    when = day(step.at)
    if step.kind == SUSPEND:
        return f"your account was suspended in the organization's directory on {when}"
    if step.kind == DEACTIVATE:
        return f"your Atlassian account was deactivated on {when}"
    if step.kind == REMOVE_PRODUCT_ACCESS:
        return f"your access to {_products(step.products)} was removed on {when}"
    if step.kind == LIFECYCLE_DELETE:
        return f"the deletion of your account was requested on {when}"
    return f"your account was removed from the organization's directory on {when}"


def _admin_step(step: Step) -> str:
    when = day(step.at)
    verb = {
        SUSPEND: "suspended",
        DEACTIVATE: "deactivated",
        REMOVE_PRODUCT_ACCESS: f"{_products(step.products)} access removed",
        LIFECYCLE_DELETE: "deletion requested",
        REMOVE_FROM_DIRECTORY: "removed from the directory",
    }[step.kind]
    instead = (
        f", as Atlassian did not allow {'deactivating' if step.instead_of == DEACTIVATE else 'deleting'} it"
    )
    return f"{verb} on {when} with the {step.api_call}{instead if step.instead_of else ''}"


def user_done_sentence(facts: AccountFacts) -> str:
    """What was done to the account and when, told to its owner: one sentence, or ``""``."""
    if not facts.touched:
        return ""
    parts = [_user_step(s) for s in facts.access]
    if facts.deletion is not None:
        deletion = _user_step(facts.deletion)
        if parts and facts.deletion.kind == LIFECYCLE_DELETE:
            deletion = f"its deletion was requested on {day(facts.deletion.at)}"
        elif parts:
            deletion = f"then removed from the organization's directory on {day(facts.deletion.at)}"
        parts.append(deletion)
    text = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
    return f"After a long period without activity, {text}."


def admin_done_sentence(facts: AccountFacts) -> str:
    """What was done to the account and when, with the Atlassian calls, for the audit: or ``""``."""
    steps = [*facts.access, *([facts.deletion] if facts.deletion else [])]
    if not steps:
        return ""
    return "This tool: " + "; ".join(_admin_step(s) for s in steps) + "."


def user_next_sentence(facts: AccountFacts, as_of: datetime, *, account_listed: bool = True) -> str:
    """What the person (with an administrator) can do next, given what was done."""
    deletion = facts.deletion
    if deletion is not None and deletion.kind == REMOVE_FROM_DIRECTORY:
        return (
            "This was not a deletion and no 14-day window applies: your Atlassian account still "
            "exists, but it is no longer a member of the organization and lost its groups and roles, "
            "so it cannot be restored automatically. If access is approved, an administrator will "
            "invite you again and re-add your groups (this tool recorded them)."
        )
    if deletion is not None:
        ends = day(facts.grace_ends())
        if not account_listed:
            return (
                "Atlassian no longer lists the account, so the deletion can no longer be cancelled and "
                "the account cannot be restored. If access is approved, you will be invited again."
            )
        if facts.grace_over(as_of):
            return (
                f"Atlassian's {DELETE_GRACE_DAYS}-day window to cancel the deletion ended on {ends}, so "
                "the account is deleted for good and cannot be restored. If access is approved, you "
                "will be invited again."
            )
        return (
            f"Atlassian keeps the account until {ends} ({DELETE_GRACE_DAYS} days after the deletion "
            "request); until then the deletion can be cancelled and your access given back."
        )
    kinds = {s.kind for s in facts.access}
    if DEACTIVATE in kinds:
        return "An administrator can re-activate the account; nothing was deleted."
    if SUSPEND in kinds:
        return (
            "Your groups and roles were kept, so an administrator can give the same access back in one step."
        )
    if REMOVE_PRODUCT_ACCESS in kinds:
        return "Your account is still active; re-adding you to the groups you were in gives the access back."
    return ""
