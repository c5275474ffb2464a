"""The exceptions of every Atlassian call, and how an error response becomes one of them.

Atlassian answers errors in half a dozen envelopes (Admin, user management, Jira, JSM, the API
gateway); :func:`error_from_response` reads any of them into one :class:`AtlassianApiError`
subclass per status, naming the request and, for a rejected credential, where to replace it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import requests
from airflow.sdk.exceptions import AirflowException, AirflowFailException

#: Where an expired or wrong credential is replaced, per API family.
ADMIN_KEY_HELP = (
    "the organization Admin API key is wrong or expired (keys last at most one year). "
    "Create a new one at admin.atlassian.com → Settings → API keys and store it as the "
    "connection password"
)
SITE_TOKEN_HELP = (
    "the Atlassian API token (or the e-mail it belongs to) is wrong or expired (tokens last at most "
    "one year). Create a new one at id.atlassian.com → Security → API tokens and store it as the "
    "connection password, with the token owner's e-mail as the login"
)

_MAX_MESSAGE_CHARS = 500


class AtlassianApiError(AirflowException):
    """
    An Atlassian API call failed.

    :param message: human-readable text, usually taken from Atlassian's error envelope.
    :param status: HTTP status code, ``None`` when no response was received.
    :param code: Atlassian error code (``ADMIN-404-8``, ``forbidden.action``, a JSM i18n key) or ``None``.
    :param method: HTTP method of the failed request.
    :param path: URL path of the failed request (never the query string).
    :param detail: optional extra sentence appended to the exception text (what to do next).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        method: str | None = None,
        path: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.method = method
        self.path = path
        self.detail = detail
        super().__init__(self._summary())

    def _summary(self) -> str:
        where = " ".join(part for part in (self.method, self.path) if part)
        status = f"{self.status}" if self.status is not None else "no response"
        code = f" {self.code}" if self.code else ""
        text = f"Atlassian API {where} failed ({status}{code}): {self.message}" if where else self.message
        return f"{text}. {self.detail}" if self.detail else text

    def with_detail(self, detail: str) -> AtlassianApiError:
        """
        A copy of this error with another closing sentence.

        :param detail: the sentence telling the reader what happens next.
        :return: a new error of the same class.
        """
        return type(self)(
            self.message,
            status=self.status,
            code=self.code,
            method=self.method,
            path=self.path,
            detail=detail,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructor arguments are not in ``self.args``; keep the error picklable.
        state = {
            "status": self.status,
            "code": self.code,
            "method": self.method,
            "path": self.path,
            "detail": self.detail,
        }
        return (_rebuild_error, (type(self), self.message, state))


def _rebuild_error(cls: type[AtlassianApiError], message: str, state: dict[str, Any]) -> AtlassianApiError:
    return cls(message, **state)


class AtlassianAuthError(AtlassianApiError, AirflowFailException):
    """401: the credential is wrong or expired. Never retried, and fails the task without Airflow retries."""


class AtlassianPermissionError(AtlassianApiError):
    """403: the credential may not do this (e.g. an IdP-synced user or group, a missing scope)."""


class AtlassianNotFoundError(AtlassianApiError):
    """404: the organization, directory, user or group does not exist (or is not visible)."""


class AtlassianConflictError(AtlassianApiError):
    """409: e.g. a product's seat limit is reached (``ADMIN-409-3``) or a group is not empty."""


class AtlassianRetryExhausted(AtlassianApiError):
    """Attempts ran out, or Atlassian asked for a longer wait than the policy allows inside a task."""


class AtlassianPaginationError(AtlassianApiError):
    """A paged list cannot be trusted: a repeated cursor, endless empty pages, more than its total.

    ``path`` is the listing's ``METHOD /path``; the text names it, with what was seen.
    """

    def _summary(self) -> str:
        where = " ".join(part for part in (self.method, self.path) if part)
        text = f"Atlassian API {where}: paging stopped: {self.message}" if where else self.message
        return f"{text}. {self.detail}" if self.detail else text


class AtlassianConfigurationError(AirflowFailException):
    """An Airflow connection is incomplete or ambiguous; retrying the task cannot fix it."""


# --------------------------------------------------------------------------------------------------
# Reading error responses
# --------------------------------------------------------------------------------------------------


def _truncate(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE_CHARS else text[: _MAX_MESSAGE_CHARS - 1] + "…"


def parse_error_body(body: Any) -> tuple[str | None, str | None]:
    """
    Extract ``(code, message)`` from any of Atlassian's error envelopes.

    Recognised shapes: Admin ``{"errors": [{"code", "title", "detail"}]}``, user management
    ``{"key": "forbidden.action", "context": {...}}`` and ``[{"code", "message"}]``, Jira
    ``{"errorMessages": [...], "errors": {field: msg}}``, JSM ``{"errorMessage", "i18nErrorMessage"}``,
    and the API gateway's ``{"code": 401, "message": "..."}``.

    :param body: the decoded JSON body of an error response.
    :return: the Atlassian error code (or ``None``) and a human message (or ``None``).
    """
    if isinstance(body, list):
        entries = [entry for entry in body if isinstance(entry, Mapping)]
        codes = [str(entry["code"]) for entry in entries if entry.get("code")]
        messages = [str(entry.get("message") or entry.get("title") or "") for entry in entries]
        text = "; ".join(message for message in messages if message)
        return (codes[0] if codes else None), (text or None)
    if not isinstance(body, Mapping):
        return None, None

    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        entries = [entry for entry in errors if isinstance(entry, Mapping)]
        codes = [str(entry["code"]) for entry in entries if entry.get("code")]
        parts = []
        for entry in entries:
            title, detail = entry.get("title"), entry.get("detail")
            parts.append(": ".join(str(part) for part in (title, detail) if part))
        text = "; ".join(part for part in parts if part)
        return (codes[0] if codes else None), (text or None)

    if "errorMessages" in body or isinstance(errors, Mapping):
        messages = [str(message) for message in body.get("errorMessages") or []]
        if isinstance(errors, Mapping):
            messages += [f"{field_name}: {message}" for field_name, message in errors.items()]
        return None, "; ".join(messages) or None

    if "errorMessage" in body:
        i18n = body.get("i18nErrorMessage")
        code = i18n.get("i18nKey") if isinstance(i18n, Mapping) else None
        return (str(code) if code else None), str(body["errorMessage"])

    if "key" in body:
        context = body.get("context")
        message = body.get("message")
        if message is None and isinstance(context, Mapping):
            reason = context.get("reason") or context.get("message")
            if isinstance(reason, Mapping):
                reason = reason.get("message") or reason.get("key")
            message = reason
        if message is None and context:
            message = str(context)
        return str(body["key"]), (str(message) if message else None)

    code = body.get("code")
    message = body.get("message") or body.get("error_description") or body.get("error")
    return (str(code) if isinstance(code, str) else None), (str(message) if message else None)


def _decode_error(response: requests.Response) -> tuple[str | None, str]:
    try:
        code, message = parse_error_body(response.json())
    except ValueError:
        code, message = None, (response.text or None)
    return code, _truncate(message or response.reason or f"HTTP {response.status_code}")


def _credential_help(path: str | None) -> str:
    if path and (path.startswith("/rest/") or path.startswith("/ex/")):
        return SITE_TOKEN_HELP
    return ADMIN_KEY_HELP


_ERROR_CLASSES: dict[int, type[AtlassianApiError]] = {
    401: AtlassianAuthError,
    403: AtlassianPermissionError,
    404: AtlassianNotFoundError,
    409: AtlassianConflictError,
}


def error_from_response(
    resp: requests.Response,
    method: str,
    path: str,
    conn_id: str | None = None,
    scrub: Callable[[str], str] | None = None,
) -> AtlassianApiError:
    """
    Map a non-2xx response to the matching :class:`AtlassianApiError` subclass.

    :param resp: the failed response.
    :param method: HTTP method of the request.
    :param path: URL path of the request (without query string).
    :param conn_id: Airflow connection id, named in the 401 message so the admin knows what to fix.
    :param scrub: removes the credential's forms from the text (a body may echo request headers).
    :return: the exception to raise (not raised here).
    """
    code, message = _decode_error(resp)
    if scrub is not None:
        message = scrub(message)
        code = scrub(code) if code else code
    status = resp.status_code
    detail = None
    if status == 401:
        connection = f"connection '{conn_id}'" if conn_id else "the Airflow connection"
        detail = f"Atlassian rejected the credentials of {connection}: {_credential_help(path)}"
    elif status == 410:
        detail = "Atlassian removed this endpoint; this client must be updated"
    cls = _ERROR_CLASSES.get(status, AtlassianApiError)
    return cls(message, status=status, code=code, method=method.upper(), path=path, detail=detail)
