"""The one retry / rate-limit policy for every Atlassian call, and the exceptions it raises.

Atlassian answers an exhausted rate limit with ``429`` (sometimes ``503``) and tells the client when
to come back in one of two ways: Jira sends ``Retry-After`` (seconds, or an HTTP date), the Admin
API sends ``X-RateLimit-Reset`` (an ISO-8601 instant such as ``2023-10-11T10:15Z``). Atlassian's
guidance is to treat ``Retry-After`` as a floor, add positive jitter, back off exponentially when
no hint is given, and never retry other ``4xx``. A wait longer than :attr:`RetryPolicy.max_wait` is
not slept through inside a task: :class:`AtlassianRetryExhausted` is raised so the Airflow task retry
(which frees the worker slot) picks the work up later.

Requests that change state are only replayed when the server certainly did not process them
(``429``, ``503`` with ``Retry-After``, or a connection that was never established): a lifecycle
delete that timed out mid-flight must be re-checked, not re-sent.

Two pieces of state are per *credential*, not per hook, so every thread and every hook of a task
process that uses the same connection shares them (:func:`credential_state`): the time before which
an endpoint must not be called again after a ``429``/``503`` announced a wait, and the derived forms
of the secret (raw token, Basic ``base64(email:token)``) scrubbed from every error text built from a
response body.

A task being stopped (Airflow's SIGTERM calls the operator's ``on_kill``, or its
``execution_timeout`` fires) sets one process-wide flag (:func:`cancel_atlassian_calls`): every
back-off or pacing wait (:func:`interruptible_sleep`) wakes at once, and no further request is sent
(:func:`raise_if_cancelled`), in any thread.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import random
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import requests
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowTaskTerminated,
    AirflowTaskTimeout,
)
from tenacity import Retrying, retry_if_exception, stop_after_attempt
from urllib3.exceptions import ConnectTimeoutError

log = logging.getLogger(__name__)

T = TypeVar("T")

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
_NOT_IDEMPOTENT = (
    "Not retried automatically because the call is not idempotent and may have been processed; "
    "check the account's current state before trying again"
)


# --------------------------------------------------------------------------------------------------
# Exceptions
# --------------------------------------------------------------------------------------------------


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
# Stopping a task: one process-wide flag
# --------------------------------------------------------------------------------------------------

_CANCELLED = threading.Event()
_cancel_reason: list[str] = []


class AtlassianCallsCancelled(AirflowTaskTerminated):
    """The task was asked to stop (SIGTERM, ``execution_timeout``); no further Atlassian call is made.

    A ``BaseException`` (like Airflow's own), so per-user ``except Exception`` handlers do not
    swallow it: a write whose intent is journalled but whose result is not stays *uncertain*, and
    the next run re-checks it in Atlassian before doing anything.
    """


def begin_atlassian_calls() -> None:
    """A task that calls Atlassian starts: clear the stop flag and what was memoised for one task."""
    _CANCELLED.clear()
    _cancel_reason.clear()
    with _CREDENTIALS_LOCK:
        for state in _CREDENTIALS.values():
            state.forget_task_memos()


def cancel_atlassian_calls(reason: str = "the task was asked to stop") -> None:
    """Make every Atlassian call, back-off and pacing wait of this process stop as soon as possible."""
    _cancel_reason[:] = [reason]
    _CANCELLED.set()


def atlassian_calls_cancelled() -> bool:
    """Whether :func:`cancel_atlassian_calls` was called since the task began."""
    return _CANCELLED.is_set()


def raise_if_cancelled(where: str = "") -> None:
    """
    Raise :class:`AtlassianCallsCancelled` when the task is being stopped.

    :param where: what was about to happen (``POST /admin/...``), for the message.
    """
    if _CANCELLED.is_set():
        reason = _cancel_reason[0] if _cancel_reason else "the task was asked to stop"
        before = f" before {where}" if where else ""
        raise AtlassianCallsCancelled(f"Stopped{before}: {reason}")


def interruptible_sleep(seconds: float) -> None:
    """``time.sleep`` that returns at once when the task is being stopped (then raises)."""
    if seconds > 0:
        _CANCELLED.wait(seconds)
    raise_if_cancelled()


class StopsAtlassianCallsOnKill:
    """
    Operator mixin: ``on_kill`` stops this task's Atlassian calls within seconds.

    Airflow 3 answers SIGTERM by calling ``on_kill`` from the signal handler, in the main thread,
    and nothing else: a task blocked in a page loop, a back-off sleep or a thread pool would run on.
    Here the process-wide stop flag is set (every thread's waits wake up, no new request leaves),
    and, when called from that signal handler, :class:`AtlassianCallsCancelled` is raised in the
    main thread so whatever it was waiting for is abandoned. After an ``execution_timeout`` Airflow
    calls ``on_kill`` with the timeout already raised: only the flag is set then.
    """

    def pre_execute(self, context: Any) -> Any:
        begin_atlassian_calls()  # a new task: a stop requested for an earlier one no longer applies
        parent = getattr(super(), "pre_execute", None)
        return parent(context) if parent is not None else None

    def on_kill(self) -> None:
        task_id = getattr(self, "task_id", "task")
        cancel_atlassian_calls(f"task {task_id} was stopped (SIGTERM or execution_timeout)")
        handling = sys.exc_info()[1]
        if threading.current_thread() is threading.main_thread() and not isinstance(
            handling, AirflowTaskTimeout | AirflowTaskTerminated
        ):
            raise_if_cancelled()


# --------------------------------------------------------------------------------------------------
# Per-credential state: announced waits and the secret's derived forms
# --------------------------------------------------------------------------------------------------

_SCRUBBED = "***"


class CredentialState:
    """
    What every hook and thread of a process using one credential must share.

    * ``not_before``: per ``(method, path)``, the monotonic time a ``429``/``503`` told us to wait
      for. Nothing is sent to that endpoint before it, whichever thread or hook asks.
    * ``secrets``: every form of the credential (raw token, ``base64(email:token)``); error texts
      built from a response body have them replaced with ``***``.
    """

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        self._lock = threading.Lock()
        self._not_before: dict[tuple[str, str], float] = {}
        #: Answers looked up once per task for every hook of the credential (the directory id
        #: discovered for an org); :func:`begin_atlassian_calls` forgets them.
        self.memo_lock = threading.Lock()
        self.memos: dict[Any, Any] = {}
        #: Whether the forms were registered with Airflow's secrets masker.
        self.masked = False
        self.secrets = tuple(sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True))
        self._pattern = re.compile("|".join(re.escape(s) for s in self.secrets)) if self.secrets else None

    def not_before(self, method: str, path: str) -> float:
        """The monotonic time before which ``method path`` must not be sent (0.0 when none)."""
        with self._lock:
            return self._not_before.get((method.upper(), path), 0.0)

    def wait_before(self, method: str, path: str, now: float | None = None) -> float:
        """Seconds until ``method path`` may be sent (0 when it may go now)."""
        now = time.monotonic() if now is None else now
        return max(0.0, self.not_before(method, path) - now)

    def announce(self, method: str, path: str, seconds: float, now: float | None = None) -> None:
        """Record that the server asked to wait ``seconds`` before calling ``method path`` again."""
        now = time.monotonic() if now is None else now
        key = (method.upper(), path)
        with self._lock:
            self._not_before[key] = max(self._not_before.get(key, 0.0), now + seconds)

    def forget_task_memos(self) -> None:
        """Forget what was looked up for the previous task."""
        with self.memo_lock:
            self.memos.clear()

    def scrub(self, text: str) -> str:
        """``text`` with every form of the credential replaced by ``***``."""
        return self._pattern.sub(_SCRUBBED, text) if self._pattern is not None and text else text


_CREDENTIALS: dict[str, CredentialState] = {}
_CREDENTIALS_LOCK = threading.Lock()


def credential_forms(password: str | None, login: str | None = None) -> tuple[str, ...]:
    """
    Every form in which a credential travels: the raw secret, and for Basic auth ``login:secret``
    and its base64 (what the ``Authorization`` header carries, and what an echoing server returns).

    :param password: the API token or Admin API key.
    :param login: the e-mail of a Basic-auth credential, or ``None`` for a Bearer key.
    :return: the forms, longest first; empty when there is no secret.
    """
    if not password:
        return ()
    forms = [password]
    if login:
        pair = f"{login}:{password}"
        encoded = base64.b64encode(pair.encode("latin-1", "replace")).decode("ascii")
        forms += [pair, encoded, encoded.rstrip("=")]
    return tuple(forms)


def credential_state(base_url: str, forms: tuple[str, ...]) -> CredentialState:
    """
    The process's one :class:`CredentialState` for this host and credential.

    Keyed by the host and a hash of the credential, so two connections with the same key share the
    announced waits, and the secret itself is never a dictionary key.

    :param base_url: the API's base URL.
    :param forms: :func:`credential_forms` of the credential.
    :return: the shared state.
    """
    digest = hashlib.sha256("\0".join((base_url.rstrip("/"), *forms)).encode()).hexdigest()
    with _CREDENTIALS_LOCK:
        state = _CREDENTIALS.get(digest)
        if state is None:
            state = _CREDENTIALS[digest] = CredentialState(forms)
        return state


# --------------------------------------------------------------------------------------------------
# Parsing Atlassian responses
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


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """
    Seconds to wait according to a ``Retry-After`` header (delta-seconds or an HTTP date).

    :param value: the header value.
    :param now: the current time (timezone aware).
    :return: seconds (never negative), or ``None`` when absent or unparseable.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def parse_rate_limit_reset(value: str | None, now: datetime) -> float | None:
    """
    Seconds until an ``X-RateLimit-Reset`` instant.

    The Admin API sends ISO-8601 without seconds (``2023-10-11T10:15Z``); seconds, fractions and
    offsets are accepted too, as is an epoch-seconds number.

    :param value: the header value.
    :param now: the current time (timezone aware).
    :return: seconds until the reset (may be ``<= 0`` if the instant is past), ``None`` if unparseable.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        # Some gateways send epoch seconds; small numbers can only be a delta.
        return number - now.timestamp() if number > 1e9 else number
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - now).total_seconds()


# --------------------------------------------------------------------------------------------------
# Rate-limit tracking
# --------------------------------------------------------------------------------------------------


@dataclass
class RateLimitTracker:
    """
    The latest rate-limit headers seen on a credential, for pacing and for the task log.

    ``X-RateLimit-NearLimit: true`` means less than 20 % of the budget is left; it is logged once
    each time the client enters that state, not on every response.
    """

    remaining: int | None = None
    limit: int | None = None
    near_limit: bool = False
    reason: str | None = None

    def observe(self, response: requests.Response) -> None:
        """
        Record the rate-limit headers of a response.

        :param response: any response from Atlassian.
        """
        headers = response.headers
        remaining = _int_header(headers.get("X-RateLimit-Remaining"))
        if remaining is not None:
            self.remaining = remaining
        limit = _int_header(headers.get("X-RateLimit-Limit"))
        if limit is not None:
            self.limit = limit
        if headers.get("RateLimit-Reason"):
            self.reason = headers.get("RateLimit-Reason")
        near = headers.get("X-RateLimit-NearLimit")
        if near is None:
            return
        is_near = near.strip().lower() == "true"
        if is_near and not self.near_limit:
            log.warning(
                "Atlassian reports the rate limit is nearly used up (X-RateLimit-Remaining=%s); "
                "requests will slow down if it runs out.",
                self.remaining if self.remaining is not None else "unknown",
            )
        self.near_limit = is_near


def _int_header(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------------
# The policy
# --------------------------------------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _request_never_sent(exc: requests.exceptions.RequestException) -> bool:
    """Whether a transport error certainly happened before the request reached the server."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    # urllib3 wraps a refused/unreachable connection as NewConnectionError, a ConnectTimeoutError
    # subclass: the TCP connection was never established, so nothing was sent.
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, ConnectTimeoutError)


@dataclass(frozen=True)
class RetryPolicy:
    """
    How Atlassian calls are retried (contract §7.3).

    :param max_attempts: total attempts per request, the first one included.
    :param base_delay: first exponential backoff step in seconds (doubles each retry).
    :param max_backoff: cap of the exponential backoff step in seconds.
    :param max_wait: longest single wait accepted inside a task; a longer required wait raises
        :class:`AtlassianRetryExhausted` at once so the Airflow task retry takes over.
    :param jitter: bounds of the multiplicative jitter; both ``>= 1`` so a server-given wait is a floor.
    :param sleep: called with the seconds to wait (inject a recorder in tests); the default wakes
        up at once when the task is being stopped (:func:`interruptible_sleep`).
    :param clock: returns the current aware time (for ``Retry-After`` dates and ``X-RateLimit-Reset``).
    :param rng: random source for the jitter.
    :param rate_limit: latest rate-limit headers seen; a hook gets its own tracker.
    :param credential: the per-credential state shared by every hook of the process (announced
        waits, secret forms to scrub); a hook sets it from its connection.
    """

    max_attempts: int = 5
    base_delay: float = 5.0
    max_backoff: float = 30.0
    max_wait: float = 300.0
    jitter: tuple[float, float] = (1.0, 1.3)
    sleep: Callable[[float], None] = field(default=interruptible_sleep, compare=False, repr=False)
    clock: Callable[[], datetime] = field(default=_utc_now, compare=False, repr=False)
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    rate_limit: RateLimitTracker = field(default_factory=RateLimitTracker, compare=False, repr=False)
    credential: CredentialState | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        low, high = self.jitter
        if not 1.0 <= low <= high:
            raise ValueError("jitter must satisfy 1.0 <= low <= high: a server-given wait is a floor")

    @classmethod
    def without_sleep(cls, **overrides: Any) -> RetryPolicy:
        """
        A policy that never actually waits (tests, sandbox runs); the computed waits are still checked.

        :param overrides: any other field, e.g. ``max_attempts=3``.
        :return: the policy.
        """
        overrides.setdefault("sleep", lambda _seconds: None)
        return cls(**overrides)

    def backoff(self, attempt: int) -> float:
        """
        The exponential backoff before retry number ``attempt`` (1-based), before jitter.

        :param attempt: the number of the attempt that just failed.
        :return: ``min(max_backoff, base_delay * 2 ** (attempt - 1))`` seconds.
        """
        return min(self.max_backoff, self.base_delay * 2 ** (attempt - 1))

    def server_delay(self, response: requests.Response) -> float | None:
        """
        The wait the server asked for: ``Retry-After``, else (on 429/503) ``X-RateLimit-Reset`` − now.

        :param response: the failed response.
        :return: seconds, or ``None`` when the server gave no usable hint.
        """
        now = self.clock()
        delay = parse_retry_after(response.headers.get("Retry-After"), now)
        if delay is not None:
            return delay
        if response.status_code in (429, 503):
            until_reset = parse_rate_limit_reset(response.headers.get("X-RateLimit-Reset"), now)
            if until_reset is not None and until_reset > 0:
                return until_reset
        return None

    def _jittered(self, base: float) -> float:
        low, high = self.jitter
        return base * self.rng.uniform(low, high)

    def execute(
        self,
        send: Callable[[], requests.Response],
        *,
        method: str,
        path: str,
        idempotent: bool,
        conn_id: str | None = None,
    ) -> requests.Response:
        """
        Send a request, retrying per the policy, and return the final 2xx/3xx response.

        :param send: performs the request once and returns the response (may raise ``requests`` errors).
        :param method: HTTP method, for logs and errors.
        :param path: URL path without query string, for logs and errors.
        :param idempotent: whether replaying the request after an ambiguous failure is safe.
        :param conn_id: Airflow connection id, named in credential errors.
        :return: the successful response.
        :raises AtlassianApiError: (or a subclass) when the request fails for good.
        """
        method = method.upper()
        credential = self.credential
        scrub = credential.scrub if credential is not None else None
        slept_until = 0.0  # the announced time this thread's own back-off already waited for
        for attempt in range(1, self.max_attempts + 1):
            response: requests.Response | None = None
            self._await_announced_wait(method, path, slept_until)
            try:
                response = send()
            except requests.exceptions.RequestException as exc:
                if not (idempotent or _request_never_sent(exc)):
                    raise AtlassianApiError(
                        f"{type(exc).__name__} after the request may have reached Atlassian",
                        method=method,
                        path=path,
                        detail=_NOT_IDEMPOTENT,
                    ) from exc
                outcome = type(exc).__name__
                base_wait = self.backoff(attempt)
                last_error: BaseException = exc
            else:
                self.rate_limit.observe(response)
                status = response.status_code
                if status < 400:
                    return response
                error = error_from_response(response, method, path, conn_id, scrub)
                server_wait = self.server_delay(response)
                if credential is not None and server_wait is not None and status in (429, 503):
                    # Every thread and hook on this credential now holds this endpoint back.
                    credential.announce(method, path, server_wait)
                    slept_until = credential.not_before(method, path)
                if status == 429 or (status == 503 and server_wait is not None):
                    pass  # the server did not process the request: safe to replay anything
                elif status >= 500 and idempotent:
                    pass
                elif status >= 500:
                    raise error.with_detail(_NOT_IDEMPOTENT)
                else:
                    raise error
                outcome = f"{status}{f' {error.code}' if error.code else ''}"
                base_wait = server_wait if server_wait is not None else self.backoff(attempt)
                last_error = error

            if attempt >= self.max_attempts:
                raise AtlassianRetryExhausted(
                    f"still failing after {self.max_attempts} attempts (last: {outcome})",
                    status=response.status_code if response is not None else None,
                    code=getattr(last_error, "code", None),
                    method=method,
                    path=path,
                    detail="Giving up for now; the Airflow task retry will pick it up",
                ) from last_error
            if base_wait > self.max_wait:
                raise AtlassianRetryExhausted(
                    f"Atlassian asked to wait {base_wait:.0f}s ({outcome}), more than the "
                    f"{self.max_wait:.0f}s allowed inside a task",
                    status=response.status_code if response is not None else None,
                    code=getattr(last_error, "code", None),
                    method=method,
                    path=path,
                    detail="Not waiting; the Airflow task retry will pick it up",
                ) from last_error
            wait = min(self._jittered(base_wait), max(base_wait, self.max_wait))
            remaining = (
                f", X-RateLimit-Remaining={self.rate_limit.remaining}"
                if response is not None and response.headers.get("X-RateLimit-Remaining") is not None
                else ""
            )
            log.warning(
                "Atlassian %s %s: %s (attempt %d/%d); retrying in %.1fs%s",
                method,
                path,
                outcome,
                attempt,
                self.max_attempts,
                wait,
                remaining,
            )
            self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _await_announced_wait(self, method: str, path: str, slept_until: float = 0.0) -> None:
        """Stop if the task is being stopped; wait out a wait another thread was told about.

        :param slept_until: the announced time this thread's own back-off sleep already covered.
        """
        raise_if_cancelled(f"{method} {path}")
        credential = self.credential
        if credential is None:
            return
        not_before = credential.not_before(method, path)
        if not_before <= slept_until:
            return
        wait = not_before - time.monotonic()
        if wait <= 0:
            return
        if wait > self.max_wait:
            raise AtlassianRetryExhausted(
                f"Atlassian asked to wait {wait:.0f}s before calling this again, more than the "
                f"{self.max_wait:.0f}s allowed inside a task",
                method=method,
                path=path,
                detail="Not waiting; the Airflow task retry will pick it up",
            )
        log.info("Atlassian %s %s: waiting %.1fs, as Atlassian asked on an earlier call", method, path, wait)
        self.sleep(wait)
        raise_if_cancelled(f"{method} {path}")


# --------------------------------------------------------------------------------------------------
# Pacing: several threads sharing one endpoint's rate limit
# --------------------------------------------------------------------------------------------------


class RatePacer:
    """
    Space the calls of several threads to one endpoint so they use its rate limit without exceeding it.

    Before each call :meth:`wait` hands out the next slot; after it :meth:`observe` gets the
    endpoint's ``X-RateLimit-Remaining`` / ``X-RateLimit-Limit``. The refill rate is measured from
    those: over a few seconds, ``(successful calls + change of Remaining) / elapsed``. While more
    than 3/4 of the bucket is left calls go out unpaced (bursts are what the bucket is for); below
    that they are spaced at the measured refill rate, 10 % slower when less than 1/4 is left, so
    the bucket settles instead of running dry. Without rate-limit headers nothing is paced.

    :param window: seconds of observations the rate is measured over.
    :param clock: monotonic time (tests inject a fake one).
    :param sleep: called with the seconds to wait (by default it wakes up when the task is stopped).
    """

    def __init__(
        self,
        *,
        window: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = interruptible_sleep,
    ) -> None:
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0
        self._successes = 0
        self._samples: deque[tuple[float, int, int]] = deque()
        #: Seconds between two calls (0 = unpaced); ``refill`` is the measured tokens per second.
        self.interval = 0.0
        self.refill: float | None = None

    def wait(self) -> None:
        """Block until this thread may make its call."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)

    def observe(self, remaining: int | None, limit: int | None, *, ok: bool) -> None:
        """Record one finished call and the rate-limit headers of its (last) response."""
        with self._lock:
            now = self._clock()
            if ok:
                self._successes += 1
            if remaining is None or not limit:
                return
            self._samples.append((now, remaining, self._successes))
            while len(self._samples) > 2 and now - self._samples[0][0] > self.window:
                self._samples.popleft()
            first_at, first_remaining, first_successes = self._samples[0]
            if now - first_at < min(0.5, self.window):
                return
            refill = (self._successes - first_successes + remaining - first_remaining) / (now - first_at)
            if refill <= 0:
                return
            self.refill = refill
            level = remaining / limit
            if level >= 0.75:
                self.interval = 0.0
            else:
                self.interval = 1.0 / (refill * (0.9 if level < 0.25 else 1.0))


#: One pacer per credential and endpoint for the whole process: every engine, thread and hook
#: using the same credential shares the endpoint's budget.
_PACERS: dict[tuple[int, str], RatePacer] = {}
_PACERS_LOCK = threading.Lock()


def shared_pacer(hook: Any, endpoint: str) -> RatePacer:
    """The process's :class:`RatePacer` for ``endpoint`` on ``hook``'s credential."""
    credential = getattr(getattr(hook, "retry_policy", None), "credential", None)
    key = (id(credential) if credential is not None else id(hook), endpoint)
    with _PACERS_LOCK:
        pacer = _PACERS.get(key)
        if pacer is None:
            pacer = _PACERS[key] = RatePacer()
        return pacer


def paced_call(hook: Any, endpoint: str, call: Callable[[], T]) -> T:
    """
    Make one call to ``endpoint`` through the endpoint's :func:`shared_pacer`.

    :param hook: the hook ``call`` uses; its credential selects the pacer, its ``rate_limit``
        tracker gives the response's headers.
    :param endpoint: names the endpoint (one rate-limit bucket), e.g. ``users/search``.
    :param call: makes the call with ``hook``.
    :return: what ``call`` returned.
    """
    pacer = shared_pacer(hook, endpoint)
    pacer.wait()
    tracker = hook.rate_limit
    # Only this call's own headers count: a value left from an earlier response (a 429 before a
    # retry, another endpoint) would be read as this endpoint's budget.
    tracker.remaining = tracker.limit = None
    try:
        result = call()
    except AtlassianApiError:
        pacer.observe(tracker.remaining, tracker.limit, ok=False)
        raise
    pacer.observe(tracker.remaining, tracker.limit, ok=True)
    return result


# --------------------------------------------------------------------------------------------------
# Writes whose replay is decided by looking, not by the status alone
# --------------------------------------------------------------------------------------------------


def guard_write_replays(hook: Any) -> Any:
    """
    Make ``hook`` leave ambiguous write failures to :func:`write_unless_done`.

    The hooks may re-send suspend / disable / membership writes after a dropped connection or a
    5xx (correct for the *state*, since they are idempotent in effect), which would show as a
    second successful write for one action. The engine instead re-reads the account and decides
    itself, so it switches that replay off; searches keep being retried.
    """
    hook.replay_ambiguous_writes = False
    return hook


def write_may_have_happened(exc: BaseException) -> bool:
    """Whether a failed write may or may not have been applied: no response, or a server error.

    A 4xx is a definite "no", and a 429 that outlasted the retry policy is left to the Airflow
    task retry.
    """
    return isinstance(exc, AtlassianApiError) and (exc.status is None or exc.status >= 500)


def write_unless_done(write: Callable[[], T], happened: Callable[[], bool], *, attempts: int) -> T | None:
    """
    Make one write; after an ambiguous failure look, and write again only if it did not happen.

    :param write: makes the write once; must not return ``None``.
    :param happened: re-reads Atlassian and says whether the write's effect is there. A failing
        re-read propagates: nothing is re-sent without knowing.
    :param attempts: writes at most, the first one included.
    :return: what ``write`` returned, or ``None`` when the effect was confirmed by re-reading.
    :raises AtlassianApiError: the last failure, when the write failed for good.
    """

    def attempt() -> T | None:
        try:
            return write()
        except AtlassianApiError as exc:
            if write_may_have_happened(exc) and happened():
                return None
            raise

    retrying = Retrying(
        stop=stop_after_attempt(max(1, attempts)),
        retry=retry_if_exception(write_may_have_happened),
        sleep=interruptible_sleep,
        reraise=True,
    )
    return retrying(attempt)
