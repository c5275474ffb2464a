"""Warning e-mails: render one per plan row, send them through one SMTP session.

Rendering uses an autoescaping Jinja2 environment (Airflow's ``EmailOperator`` does not escape
HTML, and user names come from Atlassian profiles anyone can edit: ``Siobhán O'Brien <script>``
must arrive as text) with ``StrictUndefined``, so a template that names a missing value fails at
render time instead of mailing "Dear ,". Templates live in ``include/templates/`` next to the DAGs
so an admin can reword them without touching code.

Sending goes through Airflow's ``SmtpHook`` (the customer's own relay, configured as an Airflow
connection). One :class:`WarningSender` opens one SMTP session for the whole batch: a relay that
throttles new connections must not see one login per warned user.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from atlassian_cleanup.products import PRODUCT_LABELS, canonical_product
from atlassian_cleanup.records import parse_timestamp

log = logging.getLogger(__name__)

#: Where the e-mail templates live: ``<repo>/include/templates``.
TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "include" / "templates"
HTML_TEMPLATE = "warning_email.html"
TEXT_TEMPLATE = "warning_email.txt"
DEFAULT_SENDER_NAME = "Your Atlassian administrators"

#: What happens on the action date, as a phrase completing "your Atlassian account will be ...".
_OUTCOME_PHRASES = {
    "suspend": "suspended: you will no longer be able to use Jira, Confluence or other Atlassian "
    "products of this organization",
    "deactivate": "deactivated: you will no longer be able to log in to any Atlassian product",
    "delete": "scheduled for deletion",
}


class MissingEmailError(ValueError):
    """The plan row has no e-mail address (Atlassian hides it, or the account has none)."""


_environment: Environment | None = None


def template_environment() -> Environment:
    """The shared Jinja2 environment (HTML autoescaped, undefined names are errors)."""
    global _environment
    if _environment is None:
        _environment = Environment(
            loader=FileSystemLoader(str(TEMPLATE_DIR)),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )
    return _environment


def _label(product: str) -> str:
    key = canonical_product(product)
    return PRODUCT_LABELS.get(key, key.replace("-", " ").title())


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


def _product_activity(row: Mapping[str, Any]) -> dict[str, datetime | None]:
    raw = row.get("product_last_active")
    if isinstance(raw, str):
        raw = json.loads(raw) if raw.strip() else {}
    activity: dict[str, datetime | None] = {}
    for product, seen in (raw or {}).items():
        activity[canonical_product(str(product))] = parse_timestamp(seen) if seen else None
    return activity


def _int_or_none(value: Any) -> int | None:
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
    The values the templates see, derived from one plan row.

    :param row: a ``warn`` plan row (``name``, ``email``, ``planned_action``, ``products_to_remove``,
        ``action_date``, ``days_inactive``, ``product_last_active``, ``warning_lead_days``).
    :param org_name: the organization's name for the greeting and subject.
    :param restore_url: the service desk page where access can be requested back.
    :param sender_name: who signs the message.
    :return: a dict for :meth:`jinja2.Template.render`.
    """
    planned = str(row.get("planned_action") or row.get("proposed_action") or "suspend")
    action_date = _as_date(row.get("action_date"))
    activity = _product_activity(row)
    seen = [value for value in activity.values() if value is not None]
    last_active = max(seen) if seen else None
    removed = [_label(p) for p in (row.get("products_to_remove") or [])]
    if planned == "remove_product_access":
        what = f"your access to {_join(removed) or 'some Atlassian products'} will be removed"
        keep = removed or ["the product"]
    else:
        what = f"your Atlassian account will be {_OUTCOME_PHRASES.get(planned, planned.replace('_', ' '))}"
        keep = [_label(p) for p in sorted(activity)] or ["any Atlassian product"]
    days_inactive = _int_or_none(row.get("days_inactive"))
    if planned == "remove_product_access":
        # Only the products being removed matter: the user may well be active on the others.
        concerned = {p: v for p, v in activity.items() if _label(p) in removed}
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
            "name": _label(product),
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
        "action_date": _long_date(action_date) if action_date else "soon",
        "action_date_iso": action_date.isoformat() if action_date else "",
        "days_inactive": days_inactive,
        "why": why,
        "last_active": _long_date(last_active.date()) if last_active else None,
        "products": products,
        "lead_days": row.get("warning_lead_days"),
        "restore_url": restore_url or "",
        "sender_name": sender_name,
    }


def render_warning(
    row: Mapping[str, Any],
    *,
    org_name: str | None = None,
    restore_url: str | None = None,
    sender_name: str = DEFAULT_SENDER_NAME,
) -> tuple[str, str, str]:
    """
    Render the warning e-mail for one plan row.

    :param row: a ``warn`` plan row.
    :param org_name: the organization's name (subject prefix and greeting).
    :param restore_url: the service desk page where access can be requested back; omitted when None.
    :param sender_name: who signs the message.
    :return: ``(subject, html, text)``.
    """
    context = warning_context(row, org_name=org_name, restore_url=restore_url, sender_name=sender_name)
    env = template_environment()
    html = env.get_template(HTML_TEMPLATE).render(**context)
    text = env.get_template(TEXT_TEMPLATE).render(**context)
    prefix = f"[{org_name}] " if org_name else ""
    when = context["action_date"]
    planned = context["planned_action"]
    if planned == "remove_product_access":
        products = _join(context["products_to_remove"]) or "product"
        subject = f"{prefix}Action needed: your {products} access will be removed on {when}"
    elif planned == "deactivate":
        subject = f"{prefix}Action needed: your Atlassian account will be deactivated on {when}"
    else:
        verb = {"suspend": "suspended"}.get(planned, planned.replace("_", " "))
        subject = f"{prefix}Action needed: your Atlassian access will be {verb} on {when}"
    # A subject is one header line: a newline from a product label must not inject headers.
    subject = " ".join(subject.split())
    return subject, html, text


class WarningSender:
    """
    Send warning e-mails through one ``SmtpHook`` session.

    Use as a context manager; inside, call the sender with a plan row::

        with WarningSender(smtp_conn_id="smtp_default") as send:
            send(row)

    :param smtp_conn_id: Airflow SMTP connection (the customer's relay).
    :param from_email: sender address; default: the connection's ``from_email`` extra.
    :param org_name: passed to :func:`render_warning`.
    :param restore_url: passed to :func:`render_warning`.
    :param sender_name: passed to :func:`render_warning`.
    """

    def __init__(
        self,
        smtp_conn_id: str = "smtp_default",
        *,
        from_email: str | None = None,
        org_name: str | None = None,
        restore_url: str | None = None,
        sender_name: str = DEFAULT_SENDER_NAME,
    ) -> None:
        self.smtp_conn_id = smtp_conn_id
        self.from_email = from_email
        self.org_name = org_name
        self.restore_url = restore_url
        self.sender_name = sender_name
        self.sent = 0
        self._hook: Any = None

    def __enter__(self) -> Self:
        # Imported here so the pure modules and unit tests never need the SMTP provider.
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        hook = SmtpHook(smtp_conn_id=self.smtp_conn_id)
        hook.__enter__()
        self._hook = hook
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        hook, self._hook = self._hook, None
        if hook is not None:
            hook.__exit__(exc_type, exc, tb)
        log.info("Warning e-mails: %d sent through connection '%s'", self.sent, self.smtp_conn_id)

    def __call__(self, row: Mapping[str, Any]) -> str:
        return self.send(row)

    def send(self, row: Mapping[str, Any]) -> str:
        """
        Render and send the warning for one plan row.

        :param row: a ``warn`` plan row with an ``email``.
        :return: the recipient address.
        :raises MissingEmailError: the row has no e-mail address.
        :raises RuntimeError: the sender is used outside its ``with`` block.
        """
        if self._hook is None:
            raise RuntimeError("WarningSender must be used inside a 'with' block (one SMTP session)")
        email = str(row.get("email") or "").strip()
        if not email or "@" not in email:
            raise MissingEmailError(
                f"no e-mail address for account {row.get('account_id')}: Atlassian hides it or the "
                "account has none, so no warning was sent; warn this user another way or make the "
                "e-mail visible to the organization admin"
            )
        subject, html, _text = render_warning(
            row, org_name=self.org_name, restore_url=self.restore_url, sender_name=self.sender_name
        )
        self._hook.send_email_smtp(
            to=email,
            subject=subject,
            html_content=html,
            from_email=self.from_email,
            # Auto-Submitted keeps out-of-office replies from flooding the sender (RFC 3834).
            custom_headers={"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All"},
        )
        self.sent += 1
        return email
