"""The e-mails to users: the warning before an action, and the notice before a deletion.

Each is a context (the values its templates see, worded in the user's time zone) and a rendering
(subject, HTML, text) from the shipped templates or the policy's ``notifications.templates_dir``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from atlassian_cleanup.action_kinds import DEACTIVATE, KINDS, REMOVE_PRODUCT_ACCESS, SUSPEND
from atlassian_cleanup.actions.email_templates import (
    HTML_TEMPLATE,
    NOTICE_HTML_TEMPLATE,
    NOTICE_TEXT_TEMPLATE,
    TEXT_TEMPLATE,
    notice_templates_dir,
    one_line,
    render_pair,
)
from atlassian_cleanup.decisions.products import product_label
from atlassian_cleanup.decisions.records import parse_timestamp, plan_product_activity

log = logging.getLogger(__name__)

DEFAULT_SENDER_NAME = "Your Atlassian administrators"
#: What happens on the action date, as a phrase completing "your Atlassian account will be ...".
_OUTCOME_PHRASES = {name: kind.warning_phrase for name, kind in KINDS.items() if kind.warning_phrase}


def _long_date(value: date) -> str:
    # "Thursday 10 December 2026": unambiguous in every locale, unlike 10/12/2026.
    return f"{value:%A} {value.day} {value:%B %Y}"


def _as_date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    parsed = parse_timestamp(str(value))
    return parsed.date() if parsed else None


def _zone(name: Any) -> tuple[tzinfo, str]:
    """The user's time zone and its label; UTC when Atlassian gives none or an unknown one."""
    if name and isinstance(name, str):
        try:
            return ZoneInfo(name), name
        except (ZoneInfoNotFoundError, ValueError):
            log.debug("unknown time zone %r; dates are shown in UTC", name)
    return UTC, "UTC"


def int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value == value else None  # NaN != NaN
    except (TypeError, ValueError):
        return None


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def warning_context(
    row: Mapping[str, Any],
    *,
    org_name: str | None = None,
    restore_url: str | None = None,
    sender_name: str = DEFAULT_SENDER_NAME,
) -> dict[str, Any]:
    """
    The values the warning templates see, derived from one plan row.

    Dates are worded in the user's time zone (``time_zone`` of the row, from Atlassian's profile;
    UTC when unknown). The action happens on the run of ``action_date`` (00:00 UTC), so for a user
    west of UTC the local date is the day before; saying so avoids a "but it's still the 9th here".

    :param row: a ``warn`` plan row (``name``, ``email``, ``planned_action``, ``products_to_remove``,
        ``action_date``, ``days_inactive``, ``product_last_active``, ``warning_lead_days``,
        ``time_zone``).
    :param org_name: the organization's name for the greeting and subject.
    :param restore_url: where access can be requested back (policy ``request_access_url``).
    :param sender_name: who signs the message.
    :return: a dict for :meth:`jinja2.Template.render`.
    """
    planned = str(row.get("planned_action") or row.get("proposed_action") or SUSPEND)
    zone, zone_label = _zone(row.get("time_zone"))
    action_day = _as_date(row.get("action_date"))
    action_at = (
        datetime(action_day.year, action_day.month, action_day.day, tzinfo=UTC).astimezone(zone)
        if action_day
        else None
    )
    activity = {
        product: (value.astimezone(zone) if value else None)
        for product, value in plan_product_activity(row).items()
    }
    seen = [value for value in activity.values() if value is not None]
    last_active = max(seen) if seen else None
    removed = [product_label(p) for p in (row.get("products_to_remove") or [])]
    if planned == REMOVE_PRODUCT_ACCESS:
        what = f"your access to {_join(removed) or 'some Atlassian products'} will be removed"
        keep = removed or ["the product"]
    else:
        what = f"your Atlassian account will be {_OUTCOME_PHRASES.get(planned, planned.replace('_', ' '))}"
        keep = [product_label(p) for p in sorted(activity)] or ["any Atlassian product"]
    days_inactive = int_or_none(row.get("days_inactive"))
    if planned == REMOVE_PRODUCT_ACCESS:
        # Only the products being removed matter: the user may well be active on the others.
        concerned = {p: v for p, v in activity.items() if product_label(p) in removed}
        seen_removed = [v for v in concerned.values() if v is not None]
        if seen_removed:
            why = f"you have not used {_join(removed)} since {_long_date(max(seen_removed).date())}"
        else:
            why = f"you have never used {_join(removed) or 'these products'}"
    else:
        concerned = activity
        if days_inactive is not None:
            why = f"you have not used any Atlassian product for {days_inactive} days"
            why += f" (last activity on {_long_date(last_active.date())})" if last_active else ""
        elif last_active:
            why = f"you have not used any Atlassian product since {_long_date(last_active.date())}"
        else:
            why = "we have no record of you ever using an Atlassian product (no activity recorded)"
    products = [
        {
            "name": product_label(product),
            "last_active": f"last used {_long_date(value.date())}" if value else "never used",
        }
        for product, value in sorted(concerned.items())
    ]
    return {
        "name": row.get("name") or "there",
        "email": row.get("email") or "",
        "org_name": org_name or "",
        "planned_action": planned,
        "what_happens": what,
        "products_to_remove": removed,
        "keep_products": _join(keep),
        "action_date": _long_date(action_at.date()) if action_at else "soon",
        "action_date_iso": action_day.isoformat() if action_day else "",
        "action_time": f"{action_at:%H:%M}" if action_at else "",
        "time_zone": zone_label,
        "days_inactive": days_inactive,
        "why": why,
        "last_active": _long_date(last_active.date()) if last_active else None,
        "products": products,
        "lead_days": int_or_none(row.get("warning_lead_days")),
        "restore_url": restore_url or "",
        "sender_name": sender_name,
    }


def render_warning(
    row: Mapping[str, Any],
    *,
    org_name: str | None = None,
    restore_url: str | None = None,
    sender_name: str = DEFAULT_SENDER_NAME,
    templates_dir: str | Path | None = None,
) -> tuple[str, str, str]:
    """
    Render the warning e-mail for one plan row.

    :param row: a ``warn`` plan row.
    :param org_name: the organization's name (subject prefix and greeting).
    :param restore_url: where access can be requested back; omitted when None.
    :param sender_name: who signs the message.
    :param templates_dir: the customer's template directory (None: the shipped templates).
    :return: ``(subject, html, text)``.
    """
    context = warning_context(row, org_name=org_name, restore_url=restore_url, sender_name=sender_name)
    html, text = render_pair(templates_dir, HTML_TEMPLATE, TEXT_TEMPLATE, context)
    prefix = f"[{org_name}] " if org_name else ""
    when = context["action_date"]
    planned = context["planned_action"]
    if planned == REMOVE_PRODUCT_ACCESS:
        products = _join(context["products_to_remove"]) or "product"
        subject = f"{prefix}Action needed: your {products} access will be removed on {when}"
    elif planned == DEACTIVATE:
        subject = f"{prefix}Action needed: your Atlassian account will be deactivated on {when}"
    else:
        verb = {SUSPEND: "suspended"}.get(planned, planned.replace("_", " "))
        subject = f"{prefix}Action needed: your Atlassian access will be {verb} on {when}"
    return one_line(subject), html, text


#: What this tool did, as a phrase completing "your Atlassian account / access ...".
_DONE_PHRASES = {name: kind.done_phrase for name, kind in KINDS.items() if kind.done_phrase}


def deletion_notice_context(
    row: Mapping[str, Any],
    *,
    org_name: str | None = None,
    restore_url: str | None = None,
    sender_name: str = DEFAULT_SENDER_NAME,
) -> dict[str, Any]:
    """
    The values the deletion notice templates see, from a ``delete_notice`` plan row.

    The row carries the state store's record of what this tool did (``actioned_action``,
    ``actioned_at``, added by the sender's caller) and the deletion date (``action_date``).
    Atlassian deletes managed accounts only (14 days cancellable from the request); an unmanaged
    account is removed from the directory instead, with no grace period, and the notice says so.

    :return: a dict for :meth:`jinja2.Template.render`.
    """
    zone, zone_label = _zone(row.get("time_zone"))
    day = _as_date(row.get("action_date"))
    at = datetime(day.year, day.month, day.day, tzinfo=UTC).astimezone(zone) if day else None
    actioned_at = parse_timestamp(str(row.get("actioned_at") or "")) if row.get("actioned_at") else None
    actioned = actioned_at.astimezone(zone).date() if actioned_at else None
    action = str(row.get("actioned_action") or "")
    done = _DONE_PHRASES.get(action, "your Atlassian access was removed")
    if actioned:
        done += f" on {_long_date(actioned)}"
    done = f"At {org_name}, {done}" if org_name else done[:1].upper() + done[1:]
    managed = row.get("claim_status") == "managed"
    if managed:
        what = "your Atlassian account will be deleted"
        after = (
            "Atlassian keeps a deleted account for 14 days, during which an administrator can still "
            "cancel the deletion; after that it is gone for good"
        )
    else:
        what = "your account will be removed from the organization's directory"
        after = (
            "you will lose your groups and roles in this organization, and only a new invitation from "
            "an administrator can bring you back"
        )
    return {
        "name": row.get("name") or "there",
        "email": row.get("email") or "",
        "org_name": org_name or "",
        "what_was_done": done,
        "what_happens": what,
        "after": after,
        "deleted": managed,
        "action_date": _long_date(at.date()) if at else "soon",
        "action_date_iso": day.isoformat() if day else "",
        "action_time": f"{at:%H:%M}" if at else "",
        "time_zone": zone_label,
        "restore_url": restore_url or "",
        "sender_name": sender_name,
    }


def render_deletion_notice(
    row: Mapping[str, Any],
    *,
    org_name: str | None = None,
    restore_url: str | None = None,
    sender_name: str = DEFAULT_SENDER_NAME,
    templates_dir: str | Path | None = None,
) -> tuple[str, str, str]:
    """
    Render the deletion notice for one ``delete_notice`` plan row: ``(subject, html, text)``.

    :param templates_dir: the customer's template directory; without the notice files in it, the
        shipped notice is used (:func:`notice_templates_dir`).
    """
    context = deletion_notice_context(
        row, org_name=org_name, restore_url=restore_url, sender_name=sender_name
    )
    html, text = render_pair(
        notice_templates_dir(templates_dir), NOTICE_HTML_TEMPLATE, NOTICE_TEXT_TEMPLATE, context
    )
    prefix = f"[{org_name}] " if org_name else ""
    what = "will be deleted" if context["deleted"] else "will be removed from the directory"
    subject = f"{prefix}Action needed: your Atlassian account {what} on {context['action_date']}"
    return one_line(subject), html, text
