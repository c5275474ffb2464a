"""The per-user state machine: the one place where state transitions are defined.

Atlassian cannot tell us when *we* warned, actioned or restored someone, so this tool keeps its own
stage per user (DESIGN §3). The machine is pure: :func:`apply_event` takes what the state store
knows (:class:`~atlassian_cleanup.decisions.planner.UserHistory`, ``None`` for a user never seen), an event,
the moment it happened (the run's logical date or the action time, passed by the caller, never the
wall clock) and the event's data, and returns the new history or raises :class:`InvalidTransition`.
The store (:mod:`atlassian_cleanup.actions.state`) persists the result in the same transaction as the
journal row that caused it.

::

                      warned (a tighter bucket)
                             ┌───┐
                             ▼   │
    (new) ─► ACTIVE ──warned──► WARNED ──actioned──► ACTIONED ──delete_requested──► PENDING_DELETE
              │ ▲ ▲                │                 ▲ │ ▲ │                          │  │  │
              │ │ └─activity_seen──┘                 │ │ │ └─ actioned | warned     │  │  │ deleted
              │ └───activity_seen────────────────────┼─┘ │    (after a partial      │  │  ▼
              │                                      │   │     product removal)     │  │ DELETED
              └──actioned (policy without warnings)──┘   └────delete_cancelled──────┘  │ (terminal)
                                                                                       │
    ACTIVE ◄─activity_seen── RESTORED ◄──restored── ACTIONED, PENDING_DELETE ◄─────────┘
                             │  │
                             │  └──actioned──► ACTIONED
                             └─────warned────► WARNED

Events and their data:

``warned`` (``lead_days``: int ≥ 1)
    active | restored -> warned: ``warned_at = first_warned_at = at``, ``last_warned_lead_days =
    lead_days``. warned -> warned: a later, tighter bucket; ``last_warned_lead_days = min(old, new)``,
    ``warned_at = at`` (``first_warned_at`` stays: the notice period runs from it). actioned ->
    warned only after ``remove_product_access`` (the removal goes on
    product by product, and the next product is warned about first, as the planner proposes); the
    facts of an earlier deletion (request, notice) are cleared then, as on every ``actioned``.
``actioned`` (``action``: ``suspend`` | ``deactivate`` | ``remove_product_access``; ``products``:
    optional list of the products removed)
    active | warned | restored -> actioned: ``actioned_at = at``, ``actioned_action = action``.
    active -> actioned happens when the policy sends no warnings. actioned -> actioned only for a
    further ``remove_product_access`` after an earlier one (the planner removes what became due).
``delete_requested``
    actioned -> pending_delete: Atlassian accepted the lifecycle delete; its 14-day grace runs.
    ``delete_requested_at = at``, ``deletion_kind = "delete"``.
``deleted``
    pending_delete -> deleted: the grace is over or the account is gone. Terminal. At the very
    moment of the request it is a removal from the directory (``deletion_kind =
    "remove_from_directory"``: no grace).
``delete_cancelled``
    pending_delete -> actioned: the deletion was cancelled during the grace.
``activity_seen``
    warned | actioned | restored -> active: the user came back; the warning fields are cleared
    and a new inactivity cycle starts.
``restored``
    actioned | pending_delete -> restored: ``restored_at = at``; the warning fields are cleared
    and a new inactivity cycle starts.

Everything else raises :class:`InvalidTransition`. ``actioned_at`` / ``actioned_action`` /
``restored_at`` are kept across later transitions: they record this tool's *last* action and
restore, which the planner needs (restore grace, "not restored since the action").

**Cycles.** :func:`starts_new_cycle` says which events open a new inactivity cycle
(``activity_seen`` and ``restored``). The store keeps a per-user cycle number and scopes its
idempotency keys to it, so a user is never warned or actioned twice for the same stage within one
cycle, yet can be warned again after coming back and going quiet again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from atlassian_cleanup.action_kinds import LIFECYCLE_ACTIONS
from atlassian_cleanup.decisions.records import UserHistory

#: Every event the machine knows, in lifecycle order.
EVENTS: tuple[str, ...] = (
    "warned",
    "actioned",
    "delete_requested",
    "deleted",
    "delete_cancelled",
    "activity_seen",
    "restored",
)
#: The write actions an ``actioned`` event may carry.
ACTIONED_ACTIONS: tuple[str, ...] = LIFECYCLE_ACTIONS
#: Stages from which nothing ever happens again.
TERMINAL_STAGES: frozenset[str] = frozenset({"deleted"})

# event -> {stage before: stage after}. Conditional edges (actioned -> actioned / warned after a
# product removal) are checked in apply_event, because they depend on data, not just the stage.
_EDGES: dict[str, dict[str, str]] = {
    "warned": {"active": "warned", "restored": "warned", "warned": "warned", "actioned": "warned"},
    "actioned": {"active": "actioned", "warned": "actioned", "restored": "actioned", "actioned": "actioned"},
    "delete_requested": {"actioned": "pending_delete"},
    "deleted": {"pending_delete": "deleted"},
    "delete_cancelled": {"pending_delete": "actioned"},
    "activity_seen": {"warned": "active", "actioned": "active", "restored": "active"},
    "restored": {"actioned": "restored", "pending_delete": "restored"},
}
_DATA_KEYS: dict[str, frozenset[str]] = {
    "warned": frozenset({"lead_days", "products"}),
    "actioned": frozenset({"action", "products"}),
}
_NEW_CYCLE_EVENTS = frozenset({"activity_seen", "restored"})


class InvalidTransition(ValueError):
    """An event that the state machine does not allow from the user's current stage."""

    def __init__(self, stage: str, event: str, why: str = "") -> None:
        self.stage = stage
        self.event = event
        allowed = ", ".join(allowed_events(stage)) or "none (terminal stage)"
        detail = f" ({why})" if why else ""
        super().__init__(
            f"event {event!r} is not allowed from stage {stage!r}{detail}; allowed from {stage!r}: {allowed}"
        )


def starts_new_cycle(event: str) -> bool:
    """True for the events that open a new inactivity cycle (the user came back or was restored)."""
    _check_event(event)
    return event in _NEW_CYCLE_EVENTS


def allowed_events(stage: str) -> tuple[str, ...]:
    """Events that may be applied from ``stage`` (conditional edges included)."""
    return tuple(event for event in EVENTS if stage in _EDGES[event])


def can_apply(history: UserHistory | None, event: str, **data: Any) -> bool:
    """Whether :func:`apply_event` would accept the event (lets a caller check before an API write)."""
    try:
        apply_event(history, event, datetime(2000, 1, 1, tzinfo=UTC), **data)
    except InvalidTransition:
        return False
    return True


def apply_event(history: UserHistory | None, event: str, at: datetime, **data: Any) -> UserHistory:
    """Return the history after ``event`` happened at ``at``; raise :class:`InvalidTransition`.

    ``history`` ``None`` means a user this tool has never recorded (stage ``active``). ``at`` must
    be timezone-aware. Unknown events or malformed data raise :class:`ValueError` /
    :class:`TypeError`; an edge the machine does not have raises :class:`InvalidTransition`.
    """
    _check_event(event)
    at = _utc(at)
    current = history if history is not None else UserHistory()
    if isinstance(current, Mapping):
        current = UserHistory.from_dict(current)
    unknown = set(data) - _DATA_KEYS.get(event, frozenset())
    if unknown:
        raise TypeError(f"event {event!r} takes no data {sorted(unknown)}")
    stage = current.stage
    after = _EDGES[event].get(stage)
    if after is None:
        raise InvalidTransition(stage, event)

    if event == "warned":
        lead = _lead_days(data.get("lead_days"))
        if stage == "actioned" and current.actioned_action != "remove_product_access":
            raise InvalidTransition(
                stage, event, "only a user whose product access was partly removed is warned again"
            )
        if stage == "warned" and current.last_warned_lead_days is not None:
            lead = min(lead, current.last_warned_lead_days)
        # The notice period runs from the first warning of a warning cycle.
        first = current.first_warned_at if stage == "warned" else at
        warned = replace(
            current, stage=after, warned_at=at, last_warned_lead_days=lead, first_warned_at=first
        )
        return _without_deletion(warned) if stage == "actioned" else warned

    if event == "actioned":
        action = data.get("action")
        if action not in ACTIONED_ACTIONS:
            raise ValueError(f"event 'actioned' needs action in {ACTIONED_ACTIONS} (got {action!r})")
        _products(data.get("products"))
        if stage == "actioned" and not (
            action == "remove_product_access" and current.actioned_action == "remove_product_access"
        ):
            raise InvalidTransition(
                stage, event, "already actioned; only a further remove_product_access may follow one"
            )
        # A new action restarts the deletion clock: a notice or cancelled request before it is stale.
        actioned = replace(current, stage=after, actioned_at=at, actioned_action=action, first_warned_at=None)
        return _without_deletion(actioned)

    if event in ("activity_seen", "restored"):
        # A new cycle: an old warning must neither count as notice nor hold back a new warning.
        restored_at = at if event == "restored" else current.restored_at
        new_cycle = replace(
            current,
            stage=after,
            warned_at=None,
            last_warned_lead_days=None,
            first_warned_at=None,
            restored_at=restored_at,
        )
        return _without_deletion(new_cycle)

    if event == "delete_requested":
        return replace(current, stage=after, delete_requested_at=at, deletion_kind="delete")
    if event == "deleted" and current.delete_requested_at == at:
        # Final at the very moment it was requested: a removal from the directory (no grace).
        return replace(current, stage=after, deletion_kind="remove_from_directory")
    # deleted, delete_cancelled: the stage changes, the record of our action stays.
    return replace(current, stage=after)


def _without_deletion(history: UserHistory) -> UserHistory:
    """``history`` without the facts of an earlier deletion (request, kind, notice)."""
    return replace(history, delete_requested_at=None, deletion_kind=None, delete_notice_at=None)


def _check_event(event: str) -> None:
    if event not in _EDGES:
        raise ValueError(f"unknown event {event!r}; known events: {', '.join(EVENTS)}")


def _utc(at: datetime) -> datetime:
    if not isinstance(at, datetime):
        raise TypeError(f"at must be a timezone-aware datetime (got {type(at).__name__})")
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("at must be timezone-aware (pass the run's logical date or the action time, UTC)")
    return at.astimezone(UTC)


def _lead_days(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"event 'warned' needs lead_days, an integer ≥ 1 (got {value!r})")
    return int(value)


def _products(value: Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not all(isinstance(p, str) and p for p in value):
        raise TypeError(f"products must be a list of product names (got {value!r})")
    return sorted(set(value))
