"""Warning e-mails to users and the per-run digest to admins, through the customer's own SMTP relay.

This module validates a template set (:func:`check_templates`: every file present, every
placeholder known, a sample render) and sends: :class:`WarningSender` for the warnings and
deletion notices of a batch, :func:`send_digest` for the digest. The pieces live beside it:
``email_templates`` (where templates are, how they render), ``warning_emails`` and
``admin_digest`` (what each e-mail says), ``mail`` (MIME and the SMTP session). Callers import
everything from here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from jinja2 import TemplateSyntaxError, UndefinedError, meta

from atlassian_cleanup.action_kinds import DELETE, DELETE_NOTICE, NONE, SUSPEND, WARN
from atlassian_cleanup.actions.admin_digest import (
    DIGEST_MAX_LISTED,
    OUTCOME_ORDER,
    digest_context,
    outcome_kind,
    render_digest,
)
from atlassian_cleanup.actions.email_templates import (
    DIGEST_HTML_TEMPLATE,
    DIGEST_TEMPLATES,
    DIGEST_TEXT_TEMPLATE,
    HTML_TEMPLATE,
    NOTICE_HTML_TEMPLATE,
    NOTICE_TEMPLATES,
    NOTICE_TEXT_TEMPLATE,
    TEMPLATE_DIR,
    TEMPLATE_FILES,
    TEXT_TEMPLATE,
    WARNING_TEMPLATES,
    TemplateError,
    notice_templates_dir,
    resolve_templates_dir,
    template_environment,
)
from atlassian_cleanup.actions.mail import (
    HEADER_ACCOUNT,
    HEADER_KIND,
    HEADER_WARNING,
    MailSession,
    MissingEmailError,
    SmtpUnavailableError,
    UndeliverableAddressError,
    build_message,
    smtp_address,
)
from atlassian_cleanup.actions.warning_emails import (
    DEFAULT_SENDER_NAME,
    deletion_notice_context,
    int_or_none,
    render_deletion_notice,
    render_warning,
    warning_context,
)
from atlassian_cleanup.decisions.records import valid_email_address
from atlassian_cleanup.outcomes import FAILED, StageOutcome

__all__ = [
    "DEFAULT_SENDER_NAME",
    "DIGEST_HTML_TEMPLATE",
    "DIGEST_MAX_LISTED",
    "DIGEST_TEMPLATES",
    "DIGEST_TEXT_TEMPLATE",
    "HEADER_ACCOUNT",
    "HEADER_KIND",
    "HEADER_WARNING",
    "HTML_TEMPLATE",
    "NOTICE_HTML_TEMPLATE",
    "NOTICE_TEMPLATES",
    "NOTICE_TEXT_TEMPLATE",
    "OUTCOME_ORDER",
    "TEMPLATE_DIR",
    "TEMPLATE_FILES",
    "TEXT_TEMPLATE",
    "WARNING_TEMPLATES",
    "MailSession",
    "MissingEmailError",
    "SmtpUnavailableError",
    "TemplateError",
    "UndeliverableAddressError",
    "WarningSender",
    "build_message",
    "check_templates",
    "check_warning_templates",
    "deletion_notice_context",
    "digest_context",
    "notice_templates_dir",
    "outcome_kind",
    "render_deletion_notice",
    "render_digest",
    "render_warning",
    "resolve_templates_dir",
    "send_digest",
    "smtp_address",
    "template_environment",
    "warning_context",
]

log = logging.getLogger(__name__)


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
    env = template_environment(directory)
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


def check_warning_templates(templates_dir: str | Path | None = None) -> None:
    """Validate what a warning batch sends: the warning, and the deletion notice (shipped or the
    customer's, see :func:`notice_templates_dir`).

    :raises TemplateError: naming every problem of the first set found unusable.
    """
    check_templates(templates_dir, WARNING_TEMPLATES)
    check_templates(notice_templates_dir(templates_dir), NOTICE_TEMPLATES)


_SAMPLE_ROW: dict[str, Any] = {
    "account_id": "557058:sample",
    "email": "sample.user@example.com",
    "name": "Sample User",
    "proposed_action": WARN,
    "planned_action": SUSPEND,
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
            {**_SAMPLE_ROW, "account_id": "557058:p", "proposed_action": NONE, "protected_by": "api_user"},
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
        row = {**_SAMPLE_ROW, "proposed_action": DELETE_NOTICE, "planned_action": DELETE,
               "claim_status": "managed", "actioned_action": SUSPEND,
               "actioned_at": "2026-11-20T00:00:00Z"}  # fmt: skip
        return deletion_notice_context(row, org_name="Sample", restore_url="https://help.example.com/restore")
    return warning_context(_SAMPLE_ROW, org_name="Sample", restore_url="https://help.example.com/restore")


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
        check_warning_templates(self.templates_dir)
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
        email = valid_email_address(row.get("email"))
        if email is None:
            raise MissingEmailError(
                f"no e-mail address for account {row.get('account_id')}: Atlassian hides it or the "
                "account has none, so no warning was sent; warn this user another way or make the "
                "e-mail visible to the organization admin"
            )
        email = self.recipient(email)
        notice = row.get("proposed_action") == DELETE_NOTICE
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
        lead_days = int_or_none(row.get("warning_lead_days"))
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
    valid = [address for address in (valid_email_address(a) for a in to) if address]
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
