"""Warning e-mails to users and the per-run digest to admins, through the customer's own SMTP relay.

Rendering uses an autoescaping Jinja2 environment (Airflow's ``EmailOperator`` does not escape
HTML, and user names come from Atlassian profiles anyone can edit: ``Siobhán O'Brien <script>``
must arrive as text) with ``StrictUndefined``, so a template that names a missing value fails
instead of mailing "Dear ,". Templates live in ``include/templates/``; a customer may point
``notifications.templates_dir`` at a copy. :func:`check_templates` validates a template set
(every file present, every placeholder known, a sample render) before anything is sent.

Every message is ``multipart/alternative`` (plain text first, HTML second, as RFC 2046 wants the
preferred part last). ``SmtpHook.send_email_smtp`` only sends HTML, so the MIME message is built
here with the stdlib and sent on the hook's own SMTP client: the connection, TLS and login stay
the provider's. One :class:`MailSession` is one SMTP session for a whole batch: a relay that
throttles new connections must not see one login per warned user.
"""

from __future__ import annotations

import functools
import json
import logging
import smtplib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, tzinfo
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateSyntaxError,
    UndefinedError,
    meta,
    select_autoescape,
)

from atlassian_cleanup.action_kinds import KINDS
from atlassian_cleanup.actions.enforcement import RecipientNotAddressable
from atlassian_cleanup.decisions.products import PRODUCT_LABELS, canonical_product
from atlassian_cleanup.decisions.records import parse_timestamp, plan_product_activity, valid_email_address
from atlassian_cleanup.outcomes import (
    DONE,
    DRY_RUN_WORDS,
    FAILED,
    NOT_RUN_WORDS,
    REPORTED,
    SKIPPED_ALREADY_DONE,
    SKIPPED_CHANGED,
    StageOutcome,
)

log = logging.getLogger(__name__)

_REPO_TEMPLATES = Path(__file__).resolve().parents[3] / "include" / "templates"
#: Where the shipped e-mail templates live: ``<repo>/include/templates``, or the copy an installed
#: distribution carries as ``atlassian_cleanup/templates`` (pyproject.toml maps the one to the other).
_WHEEL_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
TEMPLATE_DIR = _REPO_TEMPLATES if _REPO_TEMPLATES.is_dir() else _WHEEL_TEMPLATES
HTML_TEMPLATE = "warning_email.html"
TEXT_TEMPLATE = "warning_email.txt"
DIGEST_HTML_TEMPLATE = "admin_digest.html"
DIGEST_TEXT_TEMPLATE = "admin_digest.txt"
WARNING_TEMPLATES: tuple[str, ...] = (HTML_TEMPLATE, TEXT_TEMPLATE)
NOTICE_HTML_TEMPLATE = "deletion_notice.html"
NOTICE_TEXT_TEMPLATE = "deletion_notice.txt"
#: The deletion notice. A customer's ``templates_dir`` without these files uses the shipped ones.
NOTICE_TEMPLATES: tuple[str, ...] = (NOTICE_HTML_TEMPLATE, NOTICE_TEXT_TEMPLATE)
DIGEST_TEMPLATES: tuple[str, ...] = (DIGEST_HTML_TEMPLATE, DIGEST_TEXT_TEMPLATE)
#: The files a customer's ``templates_dir`` must hold (copy ``include/templates`` and edit).
TEMPLATE_FILES: tuple[str, ...] = WARNING_TEMPLATES + DIGEST_TEMPLATES
DEFAULT_SENDER_NAME = "Your Atlassian administrators"

#: Headers on every message. Auto-Submitted keeps out-of-office replies from flooding the sender
#: (RFC 3834); the X- headers let a mail filter (and the tests) tell the stages apart.
_AUTO_HEADERS = {"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All"}
HEADER_ACCOUNT = "X-Atlassian-Cleanup-Account"
HEADER_WARNING = "X-Atlassian-Cleanup-Warning-Lead-Days"
HEADER_KIND = "X-Atlassian-Cleanup-Kind"

#: What happens on the action date, as a phrase completing "your Atlassian account will be ...".
_OUTCOME_PHRASES = {name: kind.warning_phrase for name, kind in KINDS.items() if kind.warning_phrase}


class MissingEmailError(RecipientNotAddressable, ValueError):
    """The plan row has no e-mail address (Atlassian hides it, or the account has none)."""


class UndeliverableAddressError(RecipientNotAddressable, ValueError):
    """The address cannot be sent through this relay: an unencodable domain, or a local part that
    needs SMTPUTF8 (RFC 6531) from a relay that does not offer it. Reported, never guessed."""


class SmtpUnavailableError(RuntimeError):
    """The SMTP relay could not be reached; every send of this session fails fast with it."""


class TemplateError(ValueError):
    """A template set is unusable: a file is missing, does not parse, or names unknown values."""


# --------------------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------------------


def resolve_templates_dir(templates_dir: str | Path | None, policy_path: str | Path | None = None) -> Path:
    """The template directory: the shipped one, or the policy's (relative to the policy file)."""
    if not templates_dir:
        return TEMPLATE_DIR
    path = Path(templates_dir).expanduser()
    if not path.is_absolute() and policy_path:
        # Relative to the policy file, so a policy and its templates can be moved together.
        path = Path(policy_path).resolve().parent / path
    return path


@functools.lru_cache(maxsize=8)
def _environment(directory: str) -> Environment:
    return Environment(
        loader=FileSystemLoader(directory),
        # Only .html is escaped: a text/plain part escaped as HTML would mail "O&#39;Brien".
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def notice_templates_dir(templates_dir: str | Path | None) -> Path:
    """Where the deletion notice templates are: the customer's directory when it has both, else shipped.

    Template sets made before the notice existed keep working: only the notice comes from
    ``include/templates``.
    """
    directory = resolve_templates_dir(templates_dir)
    if all((directory / name).is_file() for name in NOTICE_TEMPLATES):
        return directory
    return TEMPLATE_DIR


def template_environment(templates_dir: str | Path | None = None) -> Environment:
    """The Jinja2 environment of a template directory (HTML autoescaped, undefined names are errors)."""
    return _environment(str(resolve_templates_dir(templates_dir)))


def check_templates(templates_dir: str | Path | None = None, names: Sequence[str] = TEMPLATE_FILES) -> None:
    """
    Validate a template set before anything is sent.

    Each file must exist, parse, use only the placeholders its e-mail provides, and render against a
    sample context (so ``{{ product.nmae }}`` inside a loop is caught too).

    :param templates_dir: the directory (None: the shipped templates).
    :param names: the files to check.
    :raises TemplateError: naming every problem: the file and the placeholder.
    """
    directory = resolve_templates_dir(templates_dir)
    env = _environment(str(directory))
    problems: list[str] = []
    if not directory.is_dir():
        raise TemplateError(
            f"E-mail template directory {directory} (policy notifications.templates_dir) does not "
            "exist; nothing was sent. Copy include/templates there, or set templates_dir: null."
        )
    for name in names:
        path = directory / name
        if not path.is_file():
            problems.append(f"{path}: missing. Copy include/templates/{name} there and edit it.")
            continue
        context = _sample_context(name)
        try:
            parsed = env.parse(path.read_text(encoding="utf-8"))
        except TemplateSyntaxError as exc:
            problems.append(f"{path}, line {exc.lineno}: {exc.message}")
            continue
        unknown = sorted(meta.find_undeclared_variables(parsed) - set(context))
        for placeholder in unknown:
            problems.append(
                f"{path}: unknown placeholder '{placeholder}'. Known: {', '.join(sorted(context))}."
            )
        if unknown:
            continue
        try:
            env.get_template(name).render(**context)
        except (UndefinedError, TypeError, ValueError) as exc:
            problems.append(f"{path}: {exc}")
    if problems:
        raise TemplateError(
            f"E-mail templates in {directory} are not usable; nothing was sent:\n- " + "\n- ".join(problems)
        )


_SAMPLE_ROW: dict[str, Any] = {
    "account_id": "557058:sample",
    "email": "sample.user@example.com",
    "name": "Sample User",
    "proposed_action": "warn",
    "planned_action": "suspend",
    "products_to_remove": ["confluence"],
    "action_date": "2026-12-10",
    "days_inactive": 120,
    "product_last_active": json.dumps({"confluence": None, "jira": "2026-07-18T09:30:00Z"}),
    "warning_lead_days": 7,
    "time_zone": "Europe/Paris",
}


def _sample_context(name: str) -> dict[str, Any]:
    if name in DIGEST_TEMPLATES:
        plan = [
            {**_SAMPLE_ROW, "protected_by": ""},
            {**_SAMPLE_ROW, "account_id": "557058:p", "proposed_action": "none", "protected_by": "api_user"},
            {**_SAMPLE_ROW, "account_id": "557058:n", "email": None, "protected_by": ""},
        ]
        return digest_context(
            plan=plan,
            outcomes={"557058:sample": StageOutcome(FAILED, "sample")},
            run_id="scheduled__2026-11-26",
            as_of="2026-11-26",
            mode="live",
            audit_file="atlassian-user-audit_2026-11-26.csv",
            audit_page_url="https://airflow.example.com/audit",
            failed_tasks=["notify_warnings"],
            policy_warnings=["protected: nobody is protected beyond the built-in protections."],
            run={
                "triggered_by": "admin",
                "overrides": {"mode": "live", "max_actions_per_run": 200},
                "approval": {"required": True, "summary": "approved by admin at 2026-11-26T09:00:00Z"},
            },
            seats={
                "projected": False,
                "total_before": 120,
                "total_after": 100,
                "total_reclaimed": 20,
                "priced": True,
                "currency": "USD",
                "estimated_saving_per_month": 172.0,
                "estimated_saving_per_year": 2064.0,
                "billing": "monthly",
                "saving_realised": "next monthly bill",
            },
        )
    if name in NOTICE_TEMPLATES:
        row = {**_SAMPLE_ROW, "proposed_action": "delete_notice", "planned_action": "delete",
               "claim_status": "managed", "actioned_action": "suspend",
               "actioned_at": "2026-11-20T00:00:00Z"}  # fmt: skip
        return deletion_notice_context(row, org_name="Sample", restore_url="https://help.example.com/restore")
    return warning_context(_SAMPLE_ROW, org_name="Sample", restore_url="https://help.example.com/restore")


# --------------------------------------------------------------------------------------------------
# The warning e-mail
# --------------------------------------------------------------------------------------------------


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


def _zone(name: Any) -> tuple[tzinfo, str]:
    """The user's time zone and its label; UTC when Atlassian gives none or an unknown one."""
    if name and isinstance(name, str):
        try:
            return ZoneInfo(name), name
        except (ZoneInfoNotFoundError, ValueError):
            log.debug("unknown time zone %r; dates are shown in UTC", name)
    return UTC, "UTC"


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
    planned = str(row.get("planned_action") or row.get("proposed_action") or "suspend")
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
        "action_date": _long_date(action_at.date()) if action_at else "soon",
        "action_date_iso": action_day.isoformat() if action_day else "",
        "action_time": f"{action_at:%H:%M}" if action_at else "",
        "time_zone": zone_label,
        "days_inactive": days_inactive,
        "why": why,
        "last_active": _long_date(last_active.date()) if last_active else None,
        "products": products,
        "lead_days": _int_or_none(row.get("warning_lead_days")),
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
    html, text = _render_pair(templates_dir, HTML_TEMPLATE, TEXT_TEMPLATE, context)
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
    return _one_line(subject), html, text


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
    html, text = _render_pair(
        notice_templates_dir(templates_dir), NOTICE_HTML_TEMPLATE, NOTICE_TEXT_TEMPLATE, context
    )
    prefix = f"[{org_name}] " if org_name else ""
    what = "will be deleted" if context["deleted"] else "will be removed from the directory"
    subject = f"{prefix}Action needed: your Atlassian account {what} on {context['action_date']}"
    return _one_line(subject), html, text


def _render_pair(
    templates_dir: str | Path | None, html_name: str, text_name: str, context: Mapping[str, Any]
) -> tuple[str, str]:
    """The HTML and plain-text parts of one e-mail, from the same context."""
    env = template_environment(templates_dir)
    return env.get_template(html_name).render(**context), env.get_template(text_name).render(**context)


def _one_line(value: str) -> str:
    # A header is one line: a newline from a product label or a name must not inject headers.
    return " ".join(str(value).split())


# --------------------------------------------------------------------------------------------------
# MIME and SMTP
# --------------------------------------------------------------------------------------------------


def build_message(
    *,
    to: Sequence[str],
    subject: str,
    text: str,
    html: str,
    from_email: str,
    from_name: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """
    A ``multipart/alternative`` message: text/plain first, text/html second (the preferred part).

    :param to: recipients (shown in ``To``).
    :param subject: one line.
    :param text: the plain-text body.
    :param html: the HTML body.
    :param from_email: the envelope and header sender.
    :param from_name: display name for ``From``.
    :param headers: extra headers (single-line values).
    :return: the message, ready for ``smtplib.SMTP.send_message``.
    """
    message = EmailMessage()
    message["Subject"] = _one_line(subject)
    message["From"] = formataddr((from_name, from_email)) if from_name else from_email
    message["To"] = ", ".join(to)
    # The Date header is transport metadata, not a decision: the wall clock is right here.
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = from_email.rsplit("@", 1)[-1] if "@" in from_email else None
    message["Message-ID"] = make_msgid(domain=domain)
    for key, value in {**_AUTO_HEADERS, **(headers or {})}.items():
        message[key] = _one_line(value)
    message.set_content(text, subtype="plain", charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    return message


def smtp_address(address: str) -> tuple[str, bool]:
    """
    The form of ``address`` to hand to the relay, and whether it needs SMTPUTF8.

    The domain is IDNA-encoded (UTS #46 mapping, IDNA 2008: ``jürgen@bücher.example`` goes out to
    ``jürgen@xn--bcher-kva.example``), which every relay accepts. A local part with non-ASCII
    characters has no ASCII form: it can only travel with the SMTPUTF8 extension.

    :raises UndeliverableAddressError: the domain is not a valid internationalised domain name.
    """
    local, _, domain = address.rpartition("@")
    if not domain.isascii():
        try:
            domain = _idna_encode(domain)
        except UnicodeError as exc:
            raise UndeliverableAddressError(
                f"the e-mail address's domain cannot be encoded for sending (IDNA: {exc}); not sent, "
                "correct the address in the user's Atlassian profile"
            ) from None
    return f"{local}@{domain}", not local.isascii()


def _idna_encode(domain: str) -> str:
    # IDNA 2008 with UTS #46 mapping (a declared dependency): the standard library's codec is
    # IDNA 2003, which maps "straße.de" to "strasse.de", another domain.
    import idna

    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise UnicodeError(str(exc)) from None


_valid_address = valid_email_address


class MailSession:
    """
    One SMTP session on an Airflow SMTP connection, through the provider's ``SmtpHook``.

    A relay that cannot be reached does not raise on entry: :meth:`send_message` then fails fast for every
    message with :class:`SmtpUnavailableError`, so each warning is recorded as failed (and retried
    next run) instead of the batch dying before anything is journalled.

    :param smtp_conn_id: Airflow SMTP connection (the customer's relay).
    :param from_email: sender address; default: the connection's ``from_email`` extra.
    :param from_name: display name of the sender.
    """

    def __init__(
        self,
        smtp_conn_id: str = "smtp_default",
        *,
        from_email: str | None = None,
        from_name: str | None = None,
    ) -> None:
        self.smtp_conn_id = smtp_conn_id
        self.from_email = from_email
        self.from_name = from_name
        self.sent = 0
        self._hook: Any = None
        self._unavailable: str | None = None

    def __enter__(self) -> Self:
        # Imported here so the pure modules and unit tests never need the SMTP provider.
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        hook = SmtpHook(smtp_conn_id=self.smtp_conn_id)
        self._hook = hook
        try:
            hook.get_conn()
        except Exception as exc:  # refused, DNS, TLS, login: the relay cannot take mail now
            self._unavailable = (
                f"SMTP relay of connection '{self.smtp_conn_id}' unavailable "
                f"({type(exc).__name__}: {exc or 'no detail'})"
            )
            log.error("%s; every e-mail of this batch is recorded as failed", self._unavailable)
        if not self.from_email:
            self.from_email = hook.from_email
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        hook, self._hook = self._hook, None
        if hook is not None:
            try:
                hook.__exit__(exc_type, exc, tb)
            except Exception:  # closing a dead session must not hide the batch's outcome
                log.debug("closing the SMTP session failed", exc_info=True)

    def recipient(self, address: str) -> str:
        """
        ``address`` as this session can send it: the domain IDNA-encoded; a non-ASCII local part
        only when the relay offers SMTPUTF8 (smtplib then sends the message with it).

        :raises SmtpUnavailableError: the relay could not be reached.
        :raises UndeliverableAddressError: the address cannot be sent through this relay.
        """
        if self._hook is None:
            raise RuntimeError(f"{type(self).__name__} must be used inside a 'with' block (one SMTP session)")
        if self._unavailable:
            raise SmtpUnavailableError(self._unavailable)
        encoded, needs_smtputf8 = smtp_address(address)
        if needs_smtputf8 and not self._offers_smtputf8():
            raise UndeliverableAddressError(
                "the e-mail address has non-ASCII characters before the @, which need SMTPUTF8, and "
                f"the relay of connection '{self.smtp_conn_id}' does not offer SMTPUTF8; not sent: "
                "warn this user another way or use a relay with SMTPUTF8"
            )
        return encoded

    def send_message(self, message: EmailMessage, recipients: Sequence[str]) -> None:
        """
        Send one message; on a dropped session reconnect once and send again.

        :raises SmtpUnavailableError: the relay could not be reached.
        :raises RuntimeError: used outside its ``with`` block.
        """
        if self._hook is None:
            raise RuntimeError(f"{type(self).__name__} must be used inside a 'with' block (one SMTP session)")
        if self._unavailable:
            raise SmtpUnavailableError(self._unavailable)
        if not self.from_email:
            raise SmtpUnavailableError(
                f"no sender address: set notifications.from_email in the policy or the from_email extra "
                f"of connection '{self.smtp_conn_id}'"
            )
        try:
            self._client().send_message(message, from_addr=self.from_email, to_addrs=list(recipients))
        except smtplib.SMTPServerDisconnected:
            # Relays close idle sessions; the message was not accepted, so one resend is safe.
            self._hook._smtp_client = None
            try:
                self._hook.get_conn()
            except Exception as exc:
                self._unavailable = (
                    f"SMTP relay of connection '{self.smtp_conn_id}' dropped the session ({exc})"
                )
                raise SmtpUnavailableError(self._unavailable) from exc
            self._client().send_message(message, from_addr=self.from_email, to_addrs=list(recipients))
        self.sent += 1

    def _offers_smtputf8(self) -> bool:
        client = self._client()
        client.ehlo_or_helo_if_needed()  # the relay's extensions are known after EHLO
        return bool(client.has_extn("smtputf8"))

    def _client(self) -> smtplib.SMTP:
        # The provider keeps the logged-in smtplib client here (get_conn returns the hook itself).
        return self._hook._smtp_client


class WarningSender(MailSession):
    """
    Send warning e-mails through one SMTP session.

    Use as a context manager; inside, call the sender with a plan row::

        with WarningSender(smtp_conn_id="smtp_default") as send:
            send(row)

    :param smtp_conn_id: Airflow SMTP connection (the customer's relay).
    :param from_email: sender address; default: the connection's ``from_email`` extra.
    :param org_name: passed to :func:`render_warning`.
    :param restore_url: passed to :func:`render_warning` (policy ``request_access_url``).
    :param sender_name: passed to :func:`render_warning` (signs the message).
    :param templates_dir: the customer's template directory (validated on entry).
    """

    def __init__(
        self,
        smtp_conn_id: str = "smtp_default",
        *,
        from_email: str | None = None,
        org_name: str | None = None,
        restore_url: str | None = None,
        sender_name: str = DEFAULT_SENDER_NAME,
        templates_dir: str | Path | None = None,
    ) -> None:
        # The bare address in From: the sender name signs the body; relays that rewrite or check
        # From (DMARC) are least surprised by the address the connection is configured with.
        super().__init__(smtp_conn_id, from_email=from_email)
        self.org_name = org_name
        self.restore_url = restore_url
        self.sender_name = sender_name
        self.templates_dir = templates_dir

    def __enter__(self) -> Self:
        # Before the session opens: a broken template must stop the batch before any e-mail.
        check_templates(self.templates_dir, WARNING_TEMPLATES)
        check_templates(notice_templates_dir(self.templates_dir), NOTICE_TEMPLATES)
        return super().__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        super().__exit__(exc_type, exc, tb)
        log.info("Warning e-mails: %d sent through connection '%s'", self.sent, self.smtp_conn_id)

    def __call__(self, row: Mapping[str, Any]) -> str:
        return self.send(row)

    def send(self, row: Mapping[str, Any]) -> str:
        """
        Render and send the warning for one plan row.

        :param row: a ``warn`` plan row with an ``email``.
        :return: the recipient address.
        :raises MissingEmailError: the row has no usable e-mail address (reported, never guessed).
        :raises SmtpUnavailableError: the relay could not be reached.
        :raises RuntimeError: the sender is used outside its ``with`` block.
        """
        if self._hook is None:
            raise RuntimeError("WarningSender must be used inside a 'with' block (one SMTP session)")
        email = _valid_address(row.get("email"))
        if email is None:
            raise MissingEmailError(
                f"no e-mail address for account {row.get('account_id')}: Atlassian hides it or the "
                "account has none, so no warning was sent; warn this user another way or make the "
                "e-mail visible to the organization admin"
            )
        email = self.recipient(email)
        notice = row.get("proposed_action") == "delete_notice"
        render = render_deletion_notice if notice else render_warning
        subject, html, text = render(
            row,
            org_name=self.org_name,
            restore_url=self.restore_url,
            sender_name=self.sender_name,
            templates_dir=self.templates_dir,
        )
        kind = "deletion_notice" if notice else "warning"
        headers = {HEADER_KIND: kind, HEADER_ACCOUNT: str(row.get("account_id") or "")}
        lead_days = _int_or_none(row.get("warning_lead_days"))
        if lead_days is not None:
            headers[HEADER_WARNING] = str(lead_days)
        message = build_message(
            to=[email],
            subject=subject,
            text=text,
            html=html,
            from_email=self.from_email or "",
            from_name=self.from_name,
            headers=headers,
        )
        self.send_message(message, [email])
        return email


# --------------------------------------------------------------------------------------------------
# The admin digest
# --------------------------------------------------------------------------------------------------

#: Order of the outcome columns in the digest (the stages' result words, then the fallbacks).
OUTCOME_ORDER: tuple[str, ...] = (
    DONE,
    DRY_RUN_WORDS,
    SKIPPED_ALREADY_DONE,
    SKIPPED_CHANGED,
    REPORTED,
    FAILED,
    NOT_RUN_WORDS,
)


def outcome_kind(outcome: StageOutcome | None) -> str:
    """The digest's column for one outcome: its result (``dry run`` in a dry run); ``not run`` when absent."""
    return outcome.heading if outcome is not None else NOT_RUN_WORDS


def digest_context(
    *,
    plan: Iterable[Mapping[str, Any]],
    outcomes: Mapping[str, StageOutcome],
    run_id: str,
    as_of: str,
    mode: str,
    audit_file: str | None,
    audit_page_url: str | None = None,
    failed_tasks: Sequence[str] = (),
    seats: Mapping[str, Any] | None = None,
    without_email: str = "action_after_notice",
    policy_warnings: Sequence[str] = (),
    run: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """
    The figures of one run for the admin digest (counts; the names are in the audit CSV, except
    for the users who cannot be e-mailed, whom the digest lists because it is their warning).

    :param plan: the plan rows of the run.
    :param outcomes: ``{account_id: outcome}`` from the stages.
    :param run_id: the Airflow run id.
    :param as_of: the run's date (ISO).
    :param mode: ``dry_run`` or ``live``.
    :param audit_file: the audit CSV's file name.
    :param audit_page_url: link to the audit page (policy ``audit_page_url``).
    :param failed_tasks: tasks of the run that failed.
    :param seats: the run's billable-seat figures (:func:`atlassian_cleanup.reports.seats.seat_figures`).
    :param without_email: the policy's ``warning.without_email`` (how those users are treated).
    :param policy_warnings: plausibility warnings about the run's policy.
    :param run: who and how (:func:`atlassian_cleanup.operators.cleanup.run_record`): ``triggered_by``,
        ``overrides`` (param -> value) and ``approval`` (its ``summary`` is shown when an approval
        was required).
    :return: a dict for the digest templates.
    """
    rows = list(plan)
    approval = (run or {}).get("approval") or {}
    actions: Counter[str] = Counter()
    by_action: dict[str, Counter[str]] = {}
    protected = no_email = undeliverable = 0
    for row in rows:
        action = str(row.get("proposed_action") or "none")
        actions[action] += 1
        if row.get("protected_by"):
            protected += 1
        if action == "none":
            continue
        kind = outcome_kind(outcomes.get(str(row.get("account_id"))))
        if action in ("warn", "delete_notice") and _valid_address(row.get("email")) is None:
            no_email += 1
        elif action in ("warn", "delete_notice") and kind == REPORTED:
            # An address the relay cannot take (SMTPUTF8 missing, an unencodable domain).
            undeliverable += 1
        by_action.setdefault(action, Counter())[kind] += 1
    outcome_rows = [
        {"action": action, "outcomes": [{"kind": k, "count": counts[k]} for k in _ordered(counts)]}
        for action, counts in sorted(by_action.items())
    ]
    failed_users = sum(counts[FAILED] for counts in by_action.values())
    unaddressable = [
        {"account_id": str(row.get("account_id")), "name": row.get("name") or "no name", "what": what}
        for row in rows
        if (what := _unaddressable_stage(row, without_email))
    ]
    return {
        "run_id": run_id,
        "as_of": as_of,
        "mode": mode,
        "dry_run": mode != "live",
        "users": len(rows),
        "actions": [{"action": a, "count": actions[a]} for a in sorted(actions)],
        "outcomes": outcome_rows,
        "protected": protected,
        "no_email": no_email,
        "undeliverable": undeliverable,
        "failed_users": failed_users,
        "failed_tasks": list(failed_tasks),
        "errors": failed_users + len(failed_tasks),
        "audit_file": audit_file or "",
        "audit_page_url": audit_page_url or "",
        "seats": dict(seats or {}),
        "without_email": without_email,
        "unaddressable_count": len(unaddressable),
        "unaddressable": unaddressable[:DIGEST_MAX_LISTED],
        "unaddressable_more": max(len(unaddressable) - DIGEST_MAX_LISTED, 0),
        "policy_warnings": list(policy_warnings),
        "triggered_by": str((run or {}).get("triggered_by") or "unknown"),
        "overrides": [
            {"param": name, "value": json.dumps(value) if not isinstance(value, str) else value}
            for name, value in ((run or {}).get("overrides") or {}).items()
        ],
        "approval": str(approval.get("summary") or "") if approval.get("required") else "",
    }


#: Most users without an e-mail address listed by name in one digest (the rest are in the audit CSV).
DIGEST_MAX_LISTED = 200


def _unaddressable_stage(row: Mapping[str, Any], without_email: str) -> str:
    """Where a user who cannot be e-mailed stands in the notice period ("" when nowhere).

    From the first warning stage on, such a user is listed in every digest until actioned.
    """
    if row.get("protected_by") or _valid_address(row.get("email")) is not None:
        return ""
    action = str(row.get("proposed_action") or "none")
    planned = str(row.get("planned_action") or "none")
    date = row.get("action_date") or "the action date"
    if action == "warn":
        if without_email == "hold":
            return f"held: no {planned} without a warning (warning.without_email: hold)"
        return f"{row.get('warning_lead_days')}-day warning stage; {planned} on {date} at the earliest"
    if action == "delete_notice":
        if without_email == "hold":
            return "held: no deletion without a notice (warning.without_email: hold)"
        return f"deletion notice stage; deletion on {date} at the earliest"
    if action in ("suspend", "deactivate", "remove_product_access"):
        return f"{action} in this run, after the notice period"
    if row.get("rule") in ("notice_period", "already_warned"):
        return f"notice period running; {planned} on {date} at the earliest"
    return ""


def _ordered(counts: Mapping[str, int]) -> list[str]:
    known = [k for k in OUTCOME_ORDER if counts.get(k)]
    return known + sorted(k for k in counts if k not in OUTCOME_ORDER and counts[k])


def render_digest(
    context: Mapping[str, Any], templates_dir: str | Path | None = None
) -> tuple[str, str, str]:
    """
    Render the admin digest.

    :return: ``(subject, html, text)``.
    """
    env = template_environment(templates_dir)
    html = env.get_template(DIGEST_HTML_TEMPLATE).render(**context)
    text = env.get_template(DIGEST_TEXT_TEMPLATE).render(**context)
    mode = "DRY RUN" if context["dry_run"] else "live"
    planned = sum(a["count"] for a in context["actions"] if a["action"] != "none")
    subject = (
        f"Atlassian user cleanup {context['as_of']} ({mode}): {planned} planned, "
        f"{context['errors']} error{'s' if context['errors'] != 1 else ''}"
    )
    return _one_line(subject), html, text


def send_digest(
    context: Mapping[str, Any],
    *,
    to: Sequence[str],
    smtp_conn_id: str = "smtp_default",
    from_email: str | None = None,
    templates_dir: str | Path | None = None,
) -> str:
    """
    Validate the digest templates, render and send the digest in one SMTP session.

    :return: the subject sent.
    :raises TemplateError: the templates are unusable (nothing sent).
    :raises SmtpUnavailableError: the relay could not be reached.
    """
    check_templates(templates_dir, DIGEST_TEMPLATES)
    subject, html, text = render_digest(context, templates_dir)
    valid = [address for address in (_valid_address(a) for a in to) if address]
    with MailSession(smtp_conn_id, from_email=from_email, from_name="Atlassian user cleanup") as session:
        recipients = []
        for address in valid:
            try:
                recipients.append(session.recipient(address))
            except UndeliverableAddressError as exc:
                log.error("admin digest: one of notifications.admin_emails is skipped: %s", exc)
        if not recipients:
            raise SmtpUnavailableError("no admin address in notifications.admin_emails can be sent to")
        message = build_message(
            to=recipients,
            subject=subject,
            text=text,
            html=html,
            from_email=session.from_email or "",
            from_name=session.from_name,
            headers={HEADER_KIND: "digest"},
        )
        session.send_message(message, recipients)
    return subject
