"""The plumbing both Atlassian hooks share: one session, the base URL, allow-listed extras, retries.

Both hooks sit on the HTTP provider's :class:`~airflow.providers.http.hooks.http.HttpHook` (connection
type ``http``) but replace the parts of it that do not suit Atlassian:

* ``HttpHook.run`` opens a new ``requests.Session`` per call; here one session per hook instance is
  reused for every call and every page (keep-alive matters on a 10 000-user extraction).
* ``HttpHook`` turns every unknown connection extra into an HTTP header (``org_id`` would be sent to
  Atlassian); here only an allow-list of extras is read and none becomes a header.
* With an empty login ``HttpHook`` calls a custom auth class without arguments, which sends
  ``Authorization: Bearer None``; here the Bearer header is built from the password directly.
* ``check_response`` hides the status code; here every call goes through
  :class:`~atlassian_cleanup.client.retry.RetryPolicy`, which classifies statuses itself.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, Self, cast
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk import Connection
from airflow.sdk.exceptions import AirflowException
from requests.auth import AuthBase

from atlassian_cleanup import __version__
from atlassian_cleanup.client.credentials import credential_forms, credential_state
from atlassian_cleanup.client.errors import AtlassianApiError, AtlassianConfigurationError
from atlassian_cleanup.client.pagination import Page
from atlassian_cleanup.client.rate_limit_headers import RateLimitTracker
from atlassian_cleanup.client.retry import RetryPolicy

USER_AGENT = f"atlassian-cleanup-airflow/{__version__} (+https://airflow.apache.org)"

#: Methods that may be replayed after an ambiguous failure unless the caller says otherwise.
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 60.0)
#: Connection extras the base hook understands; nothing in the extra is ever sent as a header.
_HTTP_EXTRAS = frozenset({"timeout", "verify", "verify_ssl", "proxies", "retry"})
#: Keys of the optional ``retry`` extra: tuning of :class:`RetryPolicy` per connection.
_RETRY_TUNING = ("max_attempts", "base_delay", "max_backoff", "max_wait")


def path_segment(value: str, what: str) -> str:
    """Quote one path segment; account ids such as ``712020:<uuid>`` keep their colon."""
    text = str(value).strip()
    if not text:
        raise ValueError(f"{what} must not be empty")
    return quote(text, safe=":")


def _as_bool(value: Any) -> bool | str:
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "1", "0", "yes", "no"}:
        return value.strip().lower() in {"true", "1", "yes"}
    return cast("bool | str", value)


def _settle_environment(session: requests.Session, base_url: str) -> None:
    """
    Read the proxy and CA-bundle environment variables once per session instead of per request.

    With ``trust_env`` requests scans the whole environment for ``*_proxy`` variables on every
    request (about half a millisecond under Airflow's long environment, on the critical path of a
    100k-user extraction). The result is the same for every request of a hook, which only talks to
    its connection's host, so it is resolved here with requests' own helpers and the same
    precedence (environment proxies override session ones), then ``trust_env`` is switched off.
    """
    for scheme, proxy in requests.utils.get_environ_proxies(base_url).items():
        session.proxies[scheme] = proxy
    if session.verify is True:
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            session.verify = bundle
    session.trust_env = False  # the auth is explicit, so .netrc is never needed either


def _mask_in_logs(forms: Sequence[str]) -> None:
    """Register every form of the credential with Airflow's secrets masker (task and supervisor logs).

    Airflow masks a connection's password, not what is derived from it: the Basic header value
    ``base64(email:token)`` that a server echoing request headers would put in an error body.
    """
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - the SDK always has it in Airflow 3
        return
    for form in forms:
        mask_secret(form)


class AtlassianHttpHook(HttpHook):
    """
    Shared plumbing: one cached session, base URL, allow-listed extras, retries, JSON decoding.

    :param conn_id: the Airflow connection id.
    :param retry_policy: how calls are retried; tests pass ``RetryPolicy.without_sleep()``.
        The hook keeps its own rate-limit tracker, so one policy can be shared by several hooks.
    """

    conn_type = "http"
    #: Extras a subclass reads itself (they are still never sent as headers).
    _own_extras: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        conn_id: str,
        *,
        retry_policy: RetryPolicy | None = None,
        replay_ambiguous_writes: bool = True,
    ) -> None:
        super().__init__(method="GET", http_conn_id=conn_id)
        #: Whether state-changing calls that are idempotent in effect (suspend, restore, group
        #: membership, disable/enable) are re-sent after an ambiguous failure (connection dropped,
        #: 5xx). True suits one-off calls; the enforcement engine turns it off because it re-reads
        #: the account instead, so Atlassian's audit log (and the sandbox's call log) shows one
        #: write per action.
        self.replay_ambiguous_writes = replay_ambiguous_writes
        setattr(self, self.conn_name_attr, conn_id)
        self._given_retry_policy = retry_policy
        self._retry_policy: RetryPolicy | None = None
        self._connection: Connection | None = None
        self._session: requests.Session | None = None
        self._timeout: float | tuple[float, float] = _DEFAULT_TIMEOUT

    # -- connection and session -------------------------------------------------------------------

    @property
    def conn_id(self) -> str:
        """The Airflow connection id this hook reads."""
        return cast("str", getattr(self, self.conn_name_attr))

    @property
    def connection(self) -> Connection:
        """The Airflow connection, read once per hook."""
        if self._connection is None:
            self._connection = cast("Connection", self.get_connection(self.conn_id))
        return self._connection

    @property
    def extras(self) -> dict[str, Any]:
        """The connection's extra field as a dict."""
        return dict(self.connection.extra_dejson or {})

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry policy: the constructor's, else the defaults tuned by the ``retry`` extra.

        ``{"retry": {"base_delay": 2, "max_attempts": 8}}`` lets an admin adapt backoff to their
        org's limits without code changes; unknown keys are an error rather than silently ignored.
        """
        if self._retry_policy is None:
            policy = self._given_retry_policy
            if policy is None:
                tuning = self.extras.get("retry") or {}
                unknown = sorted(set(tuning) - set(_RETRY_TUNING)) if isinstance(tuning, Mapping) else []
                if not isinstance(tuning, Mapping) or unknown:
                    raise AtlassianConfigurationError(
                        f"Connection '{self.conn_id}': extra 'retry' must be an object with keys "
                        f"{', '.join(_RETRY_TUNING)} (got {tuning!r})"
                    )
                policy = RetryPolicy(**{key: float(value) for key, value in tuning.items()})
                if "max_attempts" in tuning:
                    policy = dataclasses.replace(policy, max_attempts=int(tuning["max_attempts"]))
            self._retry_policy = dataclasses.replace(
                policy, rate_limit=RateLimitTracker(), credential=self._credential_state()
            )
        return self._retry_policy

    def _credential_forms(self, conn: Connection) -> tuple[str, ...]:
        """Every form of this connection's secret (see :func:`.credentials.credential_forms`)."""
        return credential_forms(conn.password)

    def _credential_state(self) -> Any:
        """The process's shared state for this host and credential; its secret forms are masked in logs."""
        conn = self.connection
        forms = self._credential_forms(conn)
        state = credential_state(self._base_url_from(conn), forms)
        if not state.masked:  # once per credential and process, not once per hook
            _mask_in_logs(forms)
            state.masked = True
        return state

    @property
    def rate_limit(self) -> RateLimitTracker:
        """Latest ``X-RateLimit-*`` values seen by this hook (for pacing decisions)."""
        return self.retry_policy.rate_limit

    def _base_url_from(self, conn: Connection) -> str:
        host = (conn.host or self.default_host or "").strip()
        if not host:
            raise AtlassianConfigurationError(f"Connection '{self.conn_id}' has no host: {self._host_hint()}")
        if "://" in host:
            base = host
        else:
            scheme = (conn.schema or "https").strip().lower()
            if scheme not in {"http", "https"}:
                raise AtlassianConfigurationError(
                    f"Connection '{self.conn_id}' has schema '{conn.schema}': for an HTTP connection the "
                    "schema field is the URL scheme (https or http), not an API path"
                )
            base = f"{scheme}://{host}"
        if conn.port:
            base = f"{base.rstrip('/')}:{conn.port}"
        return base.rstrip("/")

    def _host_hint(self) -> str:
        return "set it to the API's base URL"

    def _build_auth(self, conn: Connection) -> AuthBase:
        raise NotImplementedError

    def _read_http_extras(self, extra: Mapping[str, Any]) -> tuple[Any, Any, dict[str, str]]:
        unknown = sorted(set(extra) - _HTTP_EXTRAS - self._own_extras)
        if unknown:
            self.log.warning(
                "Connection '%s': ignoring extra keys %s (extras are never sent as HTTP headers)",
                self.conn_id,
                ", ".join(unknown),
            )
        timeout: Any = extra.get("timeout")
        if timeout is None:
            timeout = _DEFAULT_TIMEOUT
        elif isinstance(timeout, list | tuple):
            timeout = (float(timeout[0]), float(timeout[1]))
        else:
            timeout = float(timeout)
        verify = _as_bool(extra.get("verify", extra.get("verify_ssl", True)))
        proxies = extra.get("proxies") or {}
        if not isinstance(proxies, Mapping):
            raise AtlassianConfigurationError(
                f"Connection '{self.conn_id}': extra 'proxies' must be an object like "
                '{"https": "http://proxy:3128"}'
            )
        return timeout, verify, {str(key): str(value) for key, value in proxies.items()}

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """
        Return the hook's single ``requests.Session``, creating it on first use.

        Unlike ``HttpHook.get_conn`` this does not build a new session per call: every request and
        every page of this hook reuses the same keep-alive connection pool.

        :param headers: ignored (kept for ``HttpHook`` compatibility).
        :param extra_options: ignored (kept for ``HttpHook`` compatibility).
        :return: the configured session.
        """
        if self._session is not None:
            return self._session
        conn = self.connection
        self.base_url = self._base_url_from(conn)
        self._base_url_initialized = True
        self._timeout, verify, proxies = self._read_http_extras(conn.extra_dejson or {})
        session = requests.Session()
        session.auth = self._build_auth(conn)
        self.retry_policy  # noqa: B018 - joins the credential's shared state, masks its forms
        session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        session.verify = verify
        session.proxies.update(proxies)
        _settle_environment(session, self.base_url)
        if self.adapter is not None:
            session.mount(f"{urlsplit(self.base_url).scheme}://", self.adapter)
        elif self.keep_alive_adapter is not None:
            session.mount("https://", self.keep_alive_adapter)
            session.mount("http://", self.keep_alive_adapter)
        self._session = session
        self.log.info("Using %s at %s (connection '%s')", self.hook_name, self.base_url, self.conn_id)
        return session

    def close(self) -> None:
        """Close the session and its pooled connections."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- requests ---------------------------------------------------------------------------------

    def _url(self, endpoint_or_full_url: str) -> str:
        if "://" not in endpoint_or_full_url:
            return f"{self.base_url}/{endpoint_or_full_url.lstrip('/')}"
        target, base = urlsplit(endpoint_or_full_url), urlsplit(self.base_url)
        if (target.scheme, target.netloc) == (base.scheme, base.netloc):
            return endpoint_or_full_url
        # Never send the credential to another host: a next-page link naming a different origin
        # (a proxy, a simulator behind another name) is followed on the connection's own host.
        self.log.warning(
            "Next-page link points at %s://%s, not the connection's %s; following it on the connection host",
            target.scheme,
            target.netloc,
            self.base_url,
        )
        return urlunsplit((base.scheme, base.netloc, target.path, target.query, ""))

    def _request(
        self,
        method: str,
        endpoint_or_full_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
        expect_json: bool = True,
    ) -> Any:
        """
        Send one request through the retry policy and decode the answer.

        :param method: HTTP method.
        :param endpoint_or_full_url: a path such as ``/admin/v2/...`` or a full URL from ``links.next``.
        :param params: query parameters (lists repeat the key).
        :param json: JSON body.
        :param idempotent: whether replaying after an ambiguous failure is safe; default: True for
            GET/PUT/DELETE, False for POST.
        :param expect_json: decode the body as JSON; when False the body is ignored.
        :return: the decoded JSON, or ``None`` for ``204`` / an empty body / ``expect_json=False``.
        """
        method = method.upper()
        session = self.get_conn()
        url = self._url(endpoint_or_full_url)
        path = urlsplit(url).path
        if idempotent is None:
            idempotent = method in _IDEMPOTENT_METHODS

        def send() -> requests.Response:
            return session.request(method, url, params=params, json=json, timeout=self._timeout)

        response = self.retry_policy.execute(
            send, method=method, path=path, idempotent=idempotent, conn_id=self.conn_id
        )
        if response.status_code == 204 or not expect_json or not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise AtlassianApiError(
                f"expected JSON but got {response.headers.get('Content-Type') or 'no content type'}",
                status=response.status_code,
                method=method,
                path=path,
            ) from exc

    def _get_cursor_fetch(
        self, path: str, params: Mapping[str, Any] | None = None
    ) -> Callable[[str | None], Page]:
        """A ``fetch(cursor)`` for GET lists paged by an opaque ``cursor`` query parameter."""

        def fetch(cursor: str | None) -> Page:
            if cursor and "://" in cursor:
                return cast("Page", self._request("GET", cursor))
            query = dict(params or {})
            if cursor:
                query["cursor"] = cursor
            return cast("Page", self._request("GET", path, params=query))

        return fetch

    def _search_fetch(
        self, path: str, base: Mapping[str, Any], *, next_key: str = "cursor"
    ) -> Callable[[str | None], Page]:
        """A ``fetch(token)`` for ``POST`` searches whose next-page token goes in the JSON body."""

        def fetch(value: str | None) -> Page:
            body = dict(base)
            if value:
                body[next_key] = value
            # A search is a read: replaying it after a timeout is safe.
            return cast("Page", self._request("POST", path, json=body, idempotent=True))

        return fetch

    def _effect_idempotent_write(self, method: str, path: str, json: Any = None) -> dict[str, Any] | None:
        """
        A state-changing call that is idempotent in effect (suspend, restore, membership, disable).

        It is re-sent after an ambiguous failure unless :attr:`replay_ambiguous_writes` is off.

        :return: the response body, or ``None`` for ``204`` / an empty body.
        """
        return cast(
            "dict[str, Any] | None",
            self._request(method, path, json=json, idempotent=self.replay_ambiguous_writes),
        )

    def test_connection(self) -> tuple[bool, str]:
        """
        Check the connection with one cheap authenticated read.

        :return: ``(ok, message)``.
        """
        try:
            return True, self._probe()
        except (AirflowException, requests.RequestException, ValueError) as exc:
            return False, str(exc)

    def _probe(self) -> str:
        raise NotImplementedError
