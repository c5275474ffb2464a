"""MIME messages and the SMTP session every e-mail of this tool goes through.

Every message is ``multipart/alternative`` (plain text first, HTML second, as RFC 2046 wants the
preferred part last). ``SmtpHook.send_email_smtp`` only sends HTML, so the MIME message is built
here with the stdlib and sent on the hook's own SMTP client: the connection, TLS and login stay
the provider's. One :class:`MailSession` is one SMTP session for a whole batch: a relay that
throttles new connections must not see one login per warned user.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from types import TracebackType
from typing import Any, Self

from atlassian_cleanup.actions.action_outcome import RecipientNotAddressable
from atlassian_cleanup.actions.email_templates import one_line
from atlassian_cleanup.decisions.policy_model import NotificationsPolicy

log = logging.getLogger(__name__)

#: Headers on every message. Auto-Submitted keeps out-of-office replies from flooding the sender
#: (RFC 3834); the X- headers let a mail filter (and the tests) tell the stages apart.
_AUTO_HEADERS = {"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All"}
HEADER_ACCOUNT = "X-Atlassian-Cleanup-Account"
HEADER_WARNING = "X-Atlassian-Cleanup-Warning-Lead-Days"
HEADER_KIND = "X-Atlassian-Cleanup-Kind"


class MissingEmailError(RecipientNotAddressable, ValueError):
    """The plan row has no e-mail address (Atlassian hides it, or the account has none)."""


class UndeliverableAddressError(RecipientNotAddressable, ValueError):
    """The address cannot be sent through this relay: an unencodable domain, or a local part that
    needs SMTPUTF8 (RFC 6531) from a relay that does not offer it. Reported, never guessed."""


class SmtpUnavailableError(RuntimeError):
    """The SMTP relay could not be reached; every send of this session fails fast with it."""


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
    message["Subject"] = one_line(subject)
    message["From"] = formataddr((from_name, from_email)) if from_name else from_email
    message["To"] = ", ".join(to)
    # The Date header is transport metadata, not a decision: the wall clock is right here.
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = from_email.rsplit("@", 1)[-1] if "@" in from_email else None
    message["Message-ID"] = make_msgid(domain=domain)
    for key, value in {**_AUTO_HEADERS, **(headers or {})}.items():
        message[key] = one_line(value)
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
        smtp_conn_id: str = NotificationsPolicy.smtp_conn_id,
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
