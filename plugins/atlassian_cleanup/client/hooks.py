"""Airflow hooks for the Atlassian Cloud Admin API and a Jira / Jira Service Management site.

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

Connections (JSON form, e.g. in ``AIRFLOW_CONN_ATLASSIAN_ADMIN``)::

    {"conn_type": "http", "host": "https://api.atlassian.com", "password": "<org Admin API key>",
     "extra": {"org_id": "<org id>", "directory_id": "<optional directory id>"}}

    {"conn_type": "http", "host": "https://acme.atlassian.net", "login": "automation@acme.com",
     "password": "<API token>"}

Optional extras for both: ``timeout`` (seconds, or ``[connect, read]``), ``verify`` (bool or CA
bundle path), ``proxies`` (``{"https": "http://proxy:3128"}``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Self, cast
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk import Connection
from airflow.sdk.exceptions import AirflowException
from requests.auth import AuthBase, HTTPBasicAuth

from atlassian_cleanup import __version__
from atlassian_cleanup.client.credentials import credential_forms, credential_state
from atlassian_cleanup.client.errors import (
    AtlassianApiError,
    AtlassianConfigurationError,
    AtlassianPaginationError,
)
from atlassian_cleanup.client.pagination import (
    OnPage,
    Page,
    items_of,
    iter_jira_is_last,
    iter_jira_offset_array,
    iter_jql_token,
    iter_jsm_pages,
    iter_v1_links_next,
    iter_v2_cursor,
    pages_v2_cursor,
    prefetch,
)
from atlassian_cleanup.client.retry import RateLimitTracker, RetryPolicy

USER_AGENT = f"atlassian-cleanup-airflow/{__version__} (+https://airflow.apache.org)"

#: Methods that may be replayed after an ambiguous failure unless the caller says otherwise.
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 60.0)
#: Connection extras the base hook understands; nothing in the extra is ever sent as a header.
_HTTP_EXTRAS = frozenset({"timeout", "verify", "verify_ssl", "proxies", "retry"})
#: Keys of the optional ``retry`` extra: tuning of :class:`RetryPolicy` per connection.
_RETRY_TUNING = ("max_attempts", "base_delay", "max_backoff", "max_wait")


class BearerAuth(AuthBase):
    """``Authorization: Bearer <key>`` for the Admin API; the key never appears in ``repr``."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(<hidden>)"


@dataclass(frozen=True)
class MembershipChange:
    """
    Outcome of a group membership write.

    :param changed: ``False`` when the membership was already as requested (a no-op).
    :param message: one sentence for the task log and the audit file.
    """

    changed: bool
    message: str


def _segment(value: str, what: str) -> str:
    """Quote one path segment; account ids such as ``712020:<uuid>`` keep their colon."""
    text = str(value).strip()
    if not text:
        raise ValueError(f"{what} must not be empty")
    return quote(text, safe=":")


def _bool_param(value: bool) -> str:
    # requests would send Python's "True"; Jira expects lower case.
    return "true" if value else "false"


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


def _directory_users(page: Page, endpoint: str) -> list[dict[str, Any]]:
    """The users of one directory page; a user without an ``accountId`` makes the page unusable."""
    users = items_of(page, "data", endpoint)
    for position, found in enumerate(users):
        account_id = found.get("accountId") if isinstance(found, Mapping) else None
        if not isinstance(account_id, str) or not account_id.strip():
            raise AtlassianPaginationError(
                f"user {position + 1} of a page has no accountId (got {type(account_id).__name__}); "
                "a user list that cannot say who is who is not used",
                path=endpoint,
                detail="Nothing was changed; retry later or report it",
            )
    return users


class _AtlassianHttpHook(HttpHook):
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
        """Every form of this connection's secret (see :func:`.retry.credential_forms`)."""
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


class AtlassianAdminHook(_AtlassianHttpHook):
    """
    Atlassian organization Admin API (``api.atlassian.com``): directories, users, groups, lifecycle.

    Writes go through the v2 ``/admin/v2/orgs/{orgId}/directories/{directoryId}/...`` endpoints; the
    v1 directory write endpoints stopped working after 2026-06-30 and are never called.

    :param atlassian_admin_conn_id: connection with host ``https://api.atlassian.com``, the org Admin
        API key as password (login may be empty) and extras ``org_id`` and optional ``directory_id``.
    :param org_id: overrides the connection's ``org_id`` extra.
    :param directory_id: overrides the connection's ``directory_id`` extra.
    :param retry_policy: how calls are retried.
    :param replay_ambiguous_writes: re-send effect-idempotent writes after an ambiguous failure.
    """

    conn_name_attr = "atlassian_admin_conn_id"
    default_conn_name = "atlassian_admin"
    # Registered by the installed distribution (provider_info.py); ``http`` connections work too.
    conn_type = "atlassian_admin"
    hook_name = "Atlassian Admin API"
    default_host = "https://api.atlassian.com"
    _own_extras: ClassVar[frozenset[str]] = frozenset({"org_id", "directory_id"})

    def __init__(
        self,
        atlassian_admin_conn_id: str = default_conn_name,
        *,
        org_id: str | None = None,
        directory_id: str | None = None,
        retry_policy: RetryPolicy | None = None,
        replay_ambiguous_writes: bool = True,
    ) -> None:
        super().__init__(
            atlassian_admin_conn_id,
            retry_policy=retry_policy,
            replay_ambiguous_writes=replay_ambiguous_writes,
        )
        self._org_id = org_id
        self._directory_id = directory_id
        self._group_roles: dict[str, list[dict[str, Any]]] = {}  # group id -> its role assignments

    def _host_hint(self) -> str:
        return "set it to https://api.atlassian.com"

    def _build_auth(self, conn: Connection) -> AuthBase:
        if not conn.password:
            raise AtlassianConfigurationError(
                f"Connection '{self.conn_id}' has no password: put the organization Admin API key "
                "(admin.atlassian.com → Settings → API keys) in the Password field; Login may stay empty"
            )
        return BearerAuth(conn.password)

    # -- identifiers --------------------------------------------------------------------------------

    @property
    def org_id(self) -> str:
        """The organization id, from the constructor or the connection extra ``org_id``."""
        if not self._org_id:
            value = self.extras.get("org_id")
            if not value:
                raise AtlassianConfigurationError(
                    f"Connection '{self.conn_id}' has no org_id: add "
                    '{"org_id": "<your organization id>"} to its Extra (the id is shown next to the '
                    "API key in admin.atlassian.com → Settings → API keys, and in the admin URL)"
                )
            self._org_id = str(value).strip()
        return self._org_id

    @property
    def directory_id(self) -> str:
        """
        The directory all v2 user and group calls address.

        Taken from the constructor or the ``directory_id`` extra; otherwise discovered when the
        organization has exactly one directory.
        """
        if not self._directory_id:
            configured = self.extras.get("directory_id")
            self._directory_id = str(configured).strip() if configured else self._discovered_directory()
        return self._directory_id

    def _discovered_directory(self) -> str:
        """The discovered directory, looked up once per process and credential (not once per thread).

        Each worker thread has its own hook; without this every one of them would list the
        directories, and under a 429 they would each retry on their own schedule.
        """
        credential = self.retry_policy.credential
        if credential is None:
            return self._discover_directory()
        key = ("directory_id", self.org_id)
        with credential.memo_lock:  # the other threads wait for the first one's answer
            found = credential.memos.get(key)
            if found is None:
                found = credential.memos[key] = self._discover_directory()
            return str(found)

    def _discover_directory(self) -> str:
        directories = self.list_directories()
        if len(directories) == 1:
            found = directories[0]
            self.log.info(
                "Connection '%s' has no directory_id; using the organization's only directory %r (%s)",
                self.conn_id,
                found.get("name"),
                found.get("directoryId"),
            )
            return str(found["directoryId"])
        if not directories:
            raise AtlassianConfigurationError(
                f"The API key of connection '{self.conn_id}' sees no user directory in organization "
                f"{self.org_id}; check that the key belongs to this organization"
            )
        listing = "; ".join(f"{d.get('name')!r} = {d.get('directoryId')}" for d in directories)
        raise AtlassianConfigurationError(
            f"Organization {self.org_id} has {len(directories)} directories, so connection "
            f"'{self.conn_id}' must say which one to manage: add "
            '{"directory_id": "<id>"} to its Extra. Directories: ' + listing
        )

    @property
    def _v1(self) -> str:
        return f"/admin/v1/orgs/{_segment(self.org_id, 'org_id')}"

    @property
    def _v2(self) -> str:
        return f"/admin/v2/orgs/{_segment(self.org_id, 'org_id')}"

    def _dir(self, directory_id: str | None = None) -> str:
        directory = directory_id or self.directory_id
        return f"{self._v2}/directories/{_segment(directory, 'directory_id')}"

    def _probe(self) -> str:
        org = self.get_org()
        name = (org.get("attributes") or {}).get("name") or org.get("name") or "?"
        return f"Connected to Atlassian organization {name!r} ({self.org_id})"

    # -- organization and directories ------------------------------------------------------------

    def get_org(self) -> dict[str, Any]:
        """
        Read the organization (``GET /admin/v1/orgs/{orgId}``); validates the key and the org id.

        :return: the ``data`` object (``id``, ``type``, ``attributes.name``, ...).
        """
        body = self._request("GET", self._v1)
        return cast("dict[str, Any]", (body or {}).get("data") or {})

    def list_directories(self) -> list[dict[str, Any]]:
        """
        List the organization's user directories (v2).

        :return: ``[{"directoryId", "name", ...}]``.
        """
        path = f"{self._v2}/directories"
        return list(iter_v2_cursor(self._get_cursor_fetch(path), endpoint=f"GET {path}"))

    # -- users ------------------------------------------------------------------------------------

    def iter_directory_users(
        self,
        *,
        expand: Sequence[str] = ("productAccess", "groups", "platformRoles"),
        limit: int = 100,
        filters: Mapping[str, Any] | None = None,
        directory_id: str | None = None,
        on_page: OnPage | None = None,
    ) -> Iterator[dict[str, Any]]:
        """
        Yield every user of a directory via ``POST .../directories/{dirId}/users/search`` (v2, camelCase).

        With ``expand=productAccess`` each user carries ``productAccess[].lastActiveTimestamp``, so
        the whole org's last-active data comes without one call per user.

        :param expand: v2 expansions (``productAccess``, ``groups``, ``platformRoles``, ``counts.resources``).
        :param limit: page size, 1–100.
        :param filters: extra search body fields (``accountIds``, ``status``, ``claimStatus``, ...).
        :param directory_id: directory to search; default the hook's directory (``-`` = all).
        :param on_page: progress callback ``(page_number, users_so_far)``.
        :return: an iterator of ``MultiDirectoryUser`` dicts.
        """
        pages = self.iter_directory_user_pages(
            expand=expand, limit=limit, filters=filters, directory_id=directory_id, on_page=on_page
        )
        for page in pages:
            yield from page

    def iter_directory_user_pages(
        self,
        *,
        expand: Sequence[str] = ("productAccess", "groups", "platformRoles"),
        limit: int = 100,
        filters: Mapping[str, Any] | None = None,
        directory_id: str | None = None,
        on_page: OnPage | None = None,
        ahead: int = 0,
    ) -> Iterator[list[dict[str, Any]]]:
        """
        Like :meth:`iter_directory_users`, one list of users per page.

        :param ahead: with ``ahead > 0`` the pages are fetched in a background thread that keeps up
            to ``ahead`` pages ready, so the next request is already on the wire while the caller
            processes a page (the caller's loop and the network overlap; the pages still come one
            after the other, as each cursor comes from the previous page). The hook's session is
            then used by that thread only: make no other call on this hook meanwhile.
        :return: an iterator of pages (lists of ``MultiDirectoryUser`` dicts).
        """
        path = f"{self._dir(directory_id)}/users/search"
        base: dict[str, Any] = {"limit": max(1, min(100, int(limit)))}
        if expand:
            base["expand"] = list(expand)
        if filters:
            base.update(filters)

        def fetch(cursor: str | None) -> Page:
            body = dict(base)
            if cursor:
                body["cursor"] = cursor
            # A search is a read: replaying it after a timeout is safe.
            return cast("Page", self._request("POST", path, json=body, idempotent=True))

        self.get_conn()  # connect (and resolve the directory) before any background thread starts
        endpoint = f"POST {path}"
        pages = (
            _directory_users(page, endpoint)
            for page in pages_v2_cursor(fetch, on_page=on_page, endpoint=endpoint)
        )
        if ahead > 0:
            pages = prefetch(pages, ahead=ahead, name="atlassian-directory-pages")
        yield from pages

    #: Most ids the v2 search accepts in one ``accountIds`` filter.
    MAX_ACCOUNT_IDS_PER_SEARCH = 10

    def get_users(
        self, account_ids: Sequence[str], *, expand: Sequence[str] = ("productAccess", "groups")
    ) -> dict[str, dict[str, Any]]:
        """
        Read users by id with the v2 search, :attr:`MAX_ACCOUNT_IDS_PER_SEARCH` ids per call.

        :param account_ids: Atlassian account ids (duplicates are read once).
        :param expand: v2 search expansions.
        :return: ``{account_id: user}``; ids the directory does not list are absent.
        """
        unique = list(dict.fromkeys(str(account_id) for account_id in account_ids))
        found: dict[str, dict[str, Any]] = {}
        step = self.MAX_ACCOUNT_IDS_PER_SEARCH
        for start in range(0, len(unique), step):
            batch = unique[start : start + step]
            wanted = set(batch)
            for user in self.iter_directory_users(filters={"accountIds": batch}, expand=tuple(expand)):
                if user.get("accountId") in wanted:
                    found[str(user["accountId"])] = user
        return found

    def iter_managed_accounts(self, *, on_page: OnPage | None = None) -> Iterator[dict[str, Any]]:
        """
        Yield the organization's managed accounts (``GET /admin/v1/orgs/{orgId}/users``, snake_case).

        :param on_page: progress callback ``(page_number, users_so_far)``.
        :return: an iterator of v1 user dicts.
        """
        first = f"{self._v1}/users"

        def fetch(next_url: str | None) -> Page:
            return cast("Page", self._request("GET", next_url or first))

        yield from iter_v1_links_next(fetch, on_page=on_page, endpoint=f"GET {first}")

    def get_user(self, account_id: str) -> dict[str, Any]:
        """
        Read one directory user (v2).

        :param account_id: Atlassian account id.
        :return: the ``data`` object.
        """
        body = self._request("GET", f"{self._dir()}/users/{_segment(account_id, 'account_id')}")
        return cast("dict[str, Any]", (body or {}).get("data") or {})

    def get_user_role_assignments(self, account_id: str) -> list[dict[str, Any]]:
        """
        List a user's role assignments per resource (v2, all pages) — what a restore must give back.

        :param account_id: Atlassian account id.
        :return: ``[{"resourceId", "roleAssignments": [...], "directoryId", ...}]``.
        """
        path = f"{self._dir()}/users/{_segment(account_id, 'account_id')}/role-assignments"
        return list(iter_v2_cursor(self._get_cursor_fetch(path), endpoint=f"GET {path}"))

    def get_last_active_dates(self, account_id: str) -> dict[str, Any]:
        """
        Read one user's per-product last-active dates (v1, still current), all pages merged.

        :param account_id: Atlassian account id.
        :return: ``{"product_access": [{"id", "key", "last_active", "last_active_timestamp"}],
            "added_to_org": ..., "added_to_org_timestamp": ...}``.
        """
        path = f"{self._v1}/directory/users/{_segment(account_id, 'account_id')}/last-active-dates"
        merged: dict[str, Any] = {"product_access": []}
        for page in pages_v2_cursor(self._get_cursor_fetch(path), endpoint=f"GET {path}"):
            data = page.get("data") or {}
            for key, value in data.items():
                if key == "product_access":
                    merged["product_access"].extend(value or [])
                else:
                    merged.setdefault(key, value)
        return merged

    def suspend_user(self, account_id: str) -> dict[str, Any] | None:
        """
        Suspend a user's access in the directory (v2); groups and roles are kept for a restore.

        Idempotent in effect, so retried on transient failures.

        :param account_id: Atlassian account id.
        :return: the response body if any (200 or 204 both mean success).
        """
        path = f"{self._dir()}/users/{_segment(account_id, 'account_id')}/suspend"
        return cast(
            "dict[str, Any] | None", self._request("POST", path, idempotent=self.replay_ambiguous_writes)
        )

    def restore_user(self, account_id: str) -> dict[str, Any] | None:
        """
        Restore a suspended user's access in the directory (v2); prior groups and roles return.

        :param account_id: Atlassian account id.
        :return: the response body if any.
        """
        path = f"{self._dir()}/users/{_segment(account_id, 'account_id')}/restore"
        return cast(
            "dict[str, Any] | None", self._request("POST", path, idempotent=self.replay_ambiguous_writes)
        )

    def remove_user(self, account_id: str) -> dict[str, Any] | None:
        """
        Remove a user from the directory (v2). Groups and roles are lost: snapshot them first.

        :param account_id: Atlassian account id.
        :return: the response body if any.
        """
        path = f"{self._dir()}/users/{_segment(account_id, 'account_id')}"
        return cast(
            "dict[str, Any] | None", self._request("DELETE", path, idempotent=self.replay_ambiguous_writes)
        )

    # -- groups -----------------------------------------------------------------------------------

    def iter_groups(
        self,
        *,
        search_term: str | None = None,
        group_ids: Sequence[str] | None = None,
        limit: int = 100,
        on_page: OnPage | None = None,
        expand: Sequence[str] = (),
    ) -> Iterator[dict[str, Any]]:
        """
        Yield the directory's groups via ``POST .../groups/search`` (v2).

        :param search_term: substring of the group name.
        :param group_ids: restrict to these group ids.
        :param limit: page size, 1–100.
        :param on_page: progress callback ``(page_number, groups_so_far)``.
        :param expand: ``counts.users`` / ``counts.resources`` (each group then carries ``counts``).
        :return: an iterator of group dicts (``id``, ``name``, ``externalSynced``, ``managementAccess``, ...).
        """
        path = f"{self._dir()}/groups/search"
        base: dict[str, Any] = {"limit": max(1, min(100, int(limit)))}
        if search_term:
            base["searchTerm"] = search_term
        if group_ids:
            base["groupIds"] = list(group_ids)
        if expand:
            base["expand"] = list(expand)

        def fetch(cursor: str | None) -> Page:
            body = dict(base)
            if cursor:
                body["cursor"] = cursor
            return cast("Page", self._request("POST", path, json=body, idempotent=True))

        yield from iter_v2_cursor(fetch, on_page=on_page, endpoint=f"POST {path}")

    def get_group(self, group_id: str) -> dict[str, Any]:
        """
        Read one group (v2).

        :param group_id: group id (UUID, the same as Jira's ``groupId``).
        :return: the ``data`` object.
        """
        body = self._request("GET", f"{self._dir()}/groups/{_segment(group_id, 'group_id')}")
        return cast("dict[str, Any]", (body or {}).get("data") or {})

    def get_group_role_assignments(self, group_id: str) -> list[dict[str, Any]]:
        """
        List the roles a group grants, per resource (v2, all pages).

        :param group_id: group id.
        :return: ``[{"resourceId", "roleAssignments": [...]}]``.
        """
        path = f"{self._dir()}/groups/{_segment(group_id, 'group_id')}/role-assignments"
        return list(iter_v2_cursor(self._get_cursor_fetch(path), endpoint=f"GET {path}"))

    def iter_groups_with_roles(self) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """
        Yield every group of the directory with the role assignments it grants (what gives access).

        Groups are searched once with ``expand=counts.resources``; a group that reports no resource
        grants no role, so only the others cost a ``GET .../groups/{id}/role-assignments`` call (a
        handful in a usual org: the products' default groups and a few more). Each group's
        assignments are read once per hook and kept.

        :return: an iterator of ``(group, role assignments)``; assignments are
            ``[{"resourceId", "resourceOwner", "roleAssignments": [{"role", ...}]}]``.
        """
        for group in self.iter_groups(expand=("counts.resources",)):
            group_id = str(group["id"])
            counts = group.get("counts")
            resources = counts.get("resources") if isinstance(counts, Mapping) else None
            if resources == 0:
                yield group, []
                continue
            if group_id not in self._group_roles:
                self._group_roles[group_id] = self.get_group_role_assignments(group_id)
            yield group, self._group_roles[group_id]

    def add_group_member(self, group_id: str, account_id: str) -> dict[str, Any] | None:
        """
        Add a user to a group (v2). May fail with 409 ``ADMIN-409-3`` when a product's seats are full.

        :param group_id: group id.
        :param account_id: Atlassian account id.
        :return: the response body if any.
        """
        path = f"{self._dir()}/groups/{_segment(group_id, 'group_id')}/memberships"
        body = {"accountId": account_id}
        return cast(
            "dict[str, Any] | None",
            self._request("POST", path, json=body, idempotent=self.replay_ambiguous_writes),
        )

    def remove_group_member(self, group_id: str, account_id: str) -> dict[str, Any] | None:
        """
        Remove a user from a group (v2).

        :param group_id: group id.
        :param account_id: Atlassian account id.
        :return: the response body if any.
        """
        path = (
            f"{self._dir()}/groups/{_segment(group_id, 'group_id')}"
            f"/memberships/{_segment(account_id, 'account_id')}"
        )
        return cast(
            "dict[str, Any] | None",
            self._request("DELETE", path, idempotent=self.replay_ambiguous_writes),
        )

    # -- user management (managed accounts only) ------------------------------------------------

    @staticmethod
    def _manage(account_id: str) -> str:
        return f"/users/{_segment(account_id, 'account_id')}/manage"

    def get_manage_privileges(self, account_id: str) -> dict[str, Any]:
        """
        Ask whether the key may deactivate / delete this account (call before disable or delete).

        :param account_id: Atlassian account id.
        :return: privilege map, e.g. ``{"lifecycle.delete": {"allowed": false, "reason": {...}}}``.
        """
        params = {"privileges": "lifecycle.enablement,lifecycle.delete"}
        return cast("dict[str, Any]", self._request("GET", self._manage(account_id), params=params) or {})

    def get_profile(self, account_id: str) -> dict[str, Any]:
        """
        Read a managed account's profile.

        :param account_id: Atlassian account id.
        :return: the ``account`` object (``account_id``, ``account_status``, ``email``, ...).
        """
        body = self._request("GET", f"{self._manage(account_id)}/profile") or {}
        return cast("dict[str, Any]", body.get("account", body))

    def disable_user(self, account_id: str, message: str | None = None) -> None:
        """
        Deactivate a managed account: it can no longer log in to any Atlassian site.

        :param account_id: Atlassian account id.
        :param message: shown to the user when they try to log in.
        """
        body = {"message": message} if message else None
        self._request(
            "POST",
            f"{self._manage(account_id)}/lifecycle/disable",
            json=body,
            idempotent=self.replay_ambiguous_writes,
        )

    def enable_user(self, account_id: str) -> None:
        """
        Re-activate a deactivated managed account (an account pending deletion needs :meth:`cancel_delete`).

        :param account_id: Atlassian account id.
        """
        self._request(
            "POST", f"{self._manage(account_id)}/lifecycle/enable", idempotent=self.replay_ambiguous_writes
        )

    def delete_user(self, account_id: str) -> dict[str, Any] | None:
        """
        Schedule a managed account for deletion (14-day grace, cancellable).

        Never replayed after an ambiguous failure: re-read the account's state before trying again.

        :param account_id: Atlassian account id.
        :return: the response body if any.
        """
        path = f"{self._manage(account_id)}/lifecycle/delete"
        return cast("dict[str, Any] | None", self._request("POST", path, idempotent=False))

    def cancel_delete(self, account_id: str) -> dict[str, Any] | None:
        """
        Cancel a scheduled deletion inside the 14-day grace period; the account is active again.

        Not replayed after an ambiguous failure either: re-read the account's state first.

        :param account_id: Atlassian account id.
        :return: the response body if any.
        """
        path = f"{self._manage(account_id)}/lifecycle/cancel-delete"
        return cast("dict[str, Any] | None", self._request("POST", path, idempotent=False))


class AtlassianSiteHook(_AtlassianHttpHook):
    """
    Jira Cloud platform and Jira Service Management REST APIs of one site (``{site}.atlassian.net``).

    :param atlassian_site_conn_id: connection with host ``https://<site>.atlassian.net``, the API
        user's e-mail as login and an API token as password (HTTP Basic).
    :param retry_policy: how calls are retried.
    :param replay_ambiguous_writes: re-send effect-idempotent writes after an ambiguous failure.
    """

    conn_name_attr = "atlassian_site_conn_id"
    default_conn_name = "atlassian_site"
    # Registered by the installed distribution (provider_info.py); ``http`` connections work too.
    conn_type = "atlassian_site"
    hook_name = "Atlassian site (Jira / JSM)"

    _JIRA = "/rest/api/3"
    _JSM = "/rest/servicedeskapi"

    def __init__(
        self,
        atlassian_site_conn_id: str = default_conn_name,
        *,
        retry_policy: RetryPolicy | None = None,
        replay_ambiguous_writes: bool = True,
    ) -> None:
        super().__init__(
            atlassian_site_conn_id, retry_policy=retry_policy, replay_ambiguous_writes=replay_ambiguous_writes
        )

    def _host_hint(self) -> str:
        return "set it to https://<your-site>.atlassian.net"

    def _build_auth(self, conn: Connection) -> AuthBase:
        if not conn.login or not conn.password:
            raise AtlassianConfigurationError(
                f"Connection '{self.conn_id}' needs the API user's e-mail as Login and an API token "
                "(id.atlassian.com → Security → API tokens) as Password"
            )
        return HTTPBasicAuth(conn.login, conn.password)

    def _credential_forms(self, conn: Connection) -> tuple[str, ...]:
        return credential_forms(conn.password, conn.login)

    @property
    def api_user_email(self) -> str:
        """The e-mail of the account the hook acts as (the connection login); never clean it up."""
        return str(self.connection.login or "").strip()

    def _probe(self) -> str:
        self._request("GET", f"{self._JIRA}/users/search", params={"startAt": 0, "maxResults": 1})
        return f"Connected to {self.base_url} as {self.api_user_email}"

    def _offset_fetch(
        self, path: str, params: Mapping[str, Any], start_key: str, size_key: str
    ) -> Callable[[int, int], Any]:
        def fetch(start: int, size: int) -> Any:
            return self._request("GET", path, params={**params, start_key: start, size_key: size})

        return fetch

    # -- Jira users and groups ----------------------------------------------------------------------

    def iter_users(self, page_size: int = 1000, on_page: OnPage | None = None) -> Iterator[dict[str, Any]]:
        """
        Yield every user the site knows (``GET /rest/api/3/users/search``), incl. app and customer accounts.

        :param page_size: ``maxResults`` per page (Jira caps it at 1000).
        :param on_page: progress callback ``(page_number, users_so_far)``.
        :return: an iterator of Jira user dicts (``accountId``, ``accountType``, ``active``, ...).
        """
        path = f"{self._JIRA}/users/search"
        fetch = self._offset_fetch(path, {}, "startAt", "maxResults")
        yield from iter_jira_offset_array(fetch, page_size=page_size, on_page=on_page, endpoint=f"GET {path}")

    def get_user(self, account_id: str, expand: str | Sequence[str] | None = None) -> dict[str, Any]:
        """
        Read one Jira user.

        :param account_id: Atlassian account id.
        :param expand: e.g. ``("groups", "applicationRoles")``.
        :return: the Jira user object.
        """
        params: dict[str, Any] = {"accountId": account_id}
        if expand:
            params["expand"] = expand if isinstance(expand, str) else ",".join(expand)
        return cast("dict[str, Any]", self._request("GET", f"{self._JIRA}/user", params=params))

    def get_user_groups(self, account_id: str) -> list[dict[str, Any]]:
        """
        List the groups a user belongs to.

        :param account_id: Atlassian account id.
        :return: ``[{"name", "groupId", "self"}]``.
        """
        params = {"accountId": account_id}
        return cast("list[dict[str, Any]]", self._request("GET", f"{self._JIRA}/user/groups", params=params))

    def iter_groups(
        self,
        *,
        application_key: str | None = None,
        access_type: str | None = None,
        page_size: int = 50,
        on_page: OnPage | None = None,
    ) -> Iterator[dict[str, Any]]:
        """
        Yield the site's groups (``GET /rest/api/3/group/bulk``).

        :param application_key: e.g. ``jira-software``: only groups granting that application.
        :param access_type: ``site-admin``, ``admin`` or ``user`` (needs ``application_key``).
        :param page_size: ``maxResults`` per page.
        :param on_page: progress callback ``(page_number, groups_so_far)``.
        :return: an iterator of ``{"name", "groupId"}``.
        """
        params: dict[str, Any] = {}
        if application_key:
            params["applicationKey"] = application_key
        if access_type:
            params["accessType"] = access_type
        path = f"{self._JIRA}/group/bulk"
        fetch = self._offset_fetch(path, params, "startAt", "maxResults")
        yield from iter_jira_is_last(fetch, page_size=page_size, on_page=on_page, endpoint=f"GET {path}")

    def iter_group_members(
        self,
        group_id: str,
        include_inactive: bool = True,
        *,
        page_size: int = 50,
        on_page: OnPage | None = None,
    ) -> Iterator[dict[str, Any]]:
        """
        Yield a group's members (``GET /rest/api/3/group/member``).

        Jira hides inactive users unless asked, which would make suspended users look group-less.

        :param group_id: group id.
        :param include_inactive: include inactive (deactivated) users.
        :param page_size: ``maxResults`` per page, at most 50.
        :param on_page: progress callback ``(page_number, members_so_far)``.
        :return: an iterator of Jira user dicts.
        """
        params = {"groupId": group_id, "includeInactiveUsers": _bool_param(include_inactive)}
        path = f"{self._JIRA}/group/member"
        fetch = self._offset_fetch(path, params, "startAt", "maxResults")
        size = max(1, min(50, page_size))
        yield from iter_jira_is_last(fetch, page_size=size, on_page=on_page, endpoint=f"GET {path}")

    def add_user_to_group(self, group_id: str, account_id: str) -> MembershipChange:
        """
        Add a user to a group (``POST /rest/api/3/group/user``, 201).

        Jira answers 400 "already a member" when there is nothing to do; that is a no-op, not an error.

        :param group_id: group id.
        :param account_id: Atlassian account id.
        :return: whether the membership changed.
        """
        try:
            # Replaying is safe: a second add after a lost response is answered "already a member".
            self._request(
                "POST",
                f"{self._JIRA}/group/user",
                params={"groupId": group_id},
                json={"accountId": account_id},
                idempotent=True,
            )
        except AtlassianApiError as exc:
            if exc.status == 400 and "already a member" in (exc.message or "").lower():
                return MembershipChange(False, f"already a member of group {group_id}; nothing to do")
            raise
        return MembershipChange(True, f"added to group {group_id}")

    def remove_user_from_group(self, group_id: str, account_id: str) -> MembershipChange:
        """
        Remove a user from a group (``DELETE /rest/api/3/group/user``, 200).

        :param group_id: group id.
        :param account_id: Atlassian account id.
        :return: the change made.
        """
        params = {"groupId": group_id, "accountId": account_id}
        self._request("DELETE", f"{self._JIRA}/group/user", params=params, expect_json=False)
        return MembershipChange(True, f"removed from group {group_id}")

    def get_application_roles(self) -> list[dict[str, Any]]:
        """
        List application roles with their default groups and seat counts.

        :return: ``[{"key", "defaultGroups", "groupDetails", "numberOfSeats", "remainingSeats", ...}]``.
        """
        return cast("list[dict[str, Any]]", self._request("GET", f"{self._JIRA}/applicationrole"))

    # -- Jira issues --------------------------------------------------------------------------------

    def iter_jql(
        self,
        jql: str,
        fields: Sequence[str] = ("summary", "status", "reporter", "created"),
        page_size: int = 100,
        *,
        on_page: OnPage | None = None,
    ) -> Iterator[dict[str, Any]]:
        """
        Yield the issues matching a JQL query (``POST /rest/api/3/search/jql``; the old ``/search`` is gone).

        Search is eventually consistent: a just-created issue may appear only on a later run.

        :param jql: the query.
        :param fields: fields to return (Jira returns only ``id`` by default).
        :param page_size: ``maxResults`` per page.
        :param on_page: progress callback ``(page_number, issues_so_far)``.
        :return: an iterator of issues.
        """
        path = f"{self._JIRA}/search/jql"
        base: dict[str, Any] = {"jql": jql, "fields": list(fields), "maxResults": page_size}

        def fetch(token: str | None) -> Page:
            body = dict(base)
            if token:
                body["nextPageToken"] = token
            return cast("Page", self._request("POST", path, json=body, idempotent=True))

        yield from iter_jql_token(fetch, on_page=on_page, endpoint=f"POST {path}")

    def get_issue_transitions(self, key: str) -> list[dict[str, Any]]:
        """
        List the workflow transitions available on an issue.

        :param key: issue key or id.
        :return: ``[{"id", "name", "to": {...}}]``.
        """
        body = self._request("GET", f"{self._JIRA}/issue/{_segment(key, 'issue key')}/transitions") or {}
        return cast("list[dict[str, Any]]", body.get("transitions") or [])

    def transition_issue(self, key: str, transition_id: str, fields: Mapping[str, Any] | None = None) -> None:
        """
        Move an issue through a workflow transition (204). Not replayed after an ambiguous failure.

        :param key: issue key or id.
        :param transition_id: id from :meth:`get_issue_transitions`.
        :param fields: fields to set on the transition screen, e.g. ``{"resolution": {"name": "Done"}}``.
        """
        body: dict[str, Any] = {"transition": {"id": str(transition_id)}}
        if fields:
            body["fields"] = dict(fields)
        self._request("POST", f"{self._JIRA}/issue/{_segment(key, 'issue key')}/transitions", json=body)

    # -- Jira Service Management ----------------------------------------------------------------

    def iter_service_desks(
        self, *, page_size: int = 50, on_page: OnPage | None = None
    ) -> Iterator[dict[str, Any]]:
        """
        Yield the site's service desks.

        :param page_size: ``limit`` per page.
        :param on_page: progress callback ``(page_number, desks_so_far)``.
        :return: an iterator of ``{"id", "projectId", "projectKey", "projectName"}``.
        """
        path = f"{self._JSM}/servicedesk"
        fetch = self._offset_fetch(path, {}, "start", "limit")
        yield from iter_jsm_pages(fetch, page_size=page_size, on_page=on_page, endpoint=f"GET {path}")

    def iter_request_types(
        self,
        service_desk_id: str,
        *,
        search_query: str | None = None,
        page_size: int = 50,
        on_page: OnPage | None = None,
    ) -> Iterator[dict[str, Any]]:
        """
        Yield a service desk's request types.

        :param service_desk_id: service desk id (or project key).
        :param search_query: filter by name.
        :param page_size: ``limit`` per page.
        :param on_page: progress callback.
        :return: an iterator of ``{"id", "name", "serviceDeskId", ...}``.
        """
        params = {"searchQuery": search_query} if search_query else {}
        path = f"{self._JSM}/servicedesk/{_segment(service_desk_id, 'service_desk_id')}/requesttype"
        fetch = self._offset_fetch(path, params, "start", "limit")
        yield from iter_jsm_pages(fetch, page_size=page_size, on_page=on_page, endpoint=f"GET {path}")

    def create_request(
        self,
        service_desk_id: str,
        request_type_id: str,
        summary: str,
        description: str | None = None,
        *,
        fields: Mapping[str, Any] | None = None,
        raise_on_behalf_of: str | None = None,
        participants: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """
        Raise a customer request (201). Not replayed after an ambiguous failure (it would duplicate).

        :param service_desk_id: service desk id.
        :param request_type_id: request type id.
        :param summary: the request summary.
        :param description: the request description.
        :param fields: other ``requestFieldValues``.
        :param raise_on_behalf_of: account id or e-mail of the customer the request is for.
        :param participants: account ids to add as participants.
        :return: the created CustomerRequest (``issueKey``, ``currentStatus``, ...).
        """
        values: dict[str, Any] = {"summary": summary}
        if description is not None:
            values["description"] = description
        values.update(fields or {})
        body: dict[str, Any] = {
            "serviceDeskId": str(service_desk_id),
            "requestTypeId": str(request_type_id),
            "requestFieldValues": values,
        }
        if raise_on_behalf_of:
            body["raiseOnBehalfOf"] = raise_on_behalf_of
        if participants:
            body["requestParticipants"] = list(participants)
        return cast("dict[str, Any]", self._request("POST", f"{self._JSM}/request", json=body))

    def iter_requests(
        self,
        service_desk_id: str | None = None,
        request_type_id: str | None = None,
        status: str = "OPEN_REQUESTS",
        *,
        ownership: str | None = None,
        expand: Sequence[str] | None = None,
        page_size: int = 50,
        on_page: OnPage | None = None,
    ) -> Iterator[dict[str, Any]]:
        """
        Yield customer requests visible to the API user (``GET /rest/servicedeskapi/request``).

        JSM filters by the caller's ownership by default; an agent account that must see every
        request can pass ``ownership`` or use :meth:`iter_jql` instead.

        :param service_desk_id: only this service desk.
        :param request_type_id: only this request type (needs ``service_desk_id``).
        :param status: ``OPEN_REQUESTS``, ``CLOSED_REQUESTS`` or ``ALL_REQUESTS``.
        :param ownership: ``requestOwnership`` filter.
        :param expand: e.g. ``("requestType", "status")``.
        :param page_size: ``limit`` per page.
        :param on_page: progress callback.
        :return: an iterator of CustomerRequest dicts.
        """
        params: dict[str, Any] = {"requestStatus": status}
        if service_desk_id:
            params["serviceDeskId"] = service_desk_id
        if request_type_id:
            params["requestTypeId"] = request_type_id
        if ownership:
            params["requestOwnership"] = ownership
        if expand:
            params["expand"] = ",".join(expand)
        path = f"{self._JSM}/request"
        fetch = self._offset_fetch(path, params, "start", "limit")
        yield from iter_jsm_pages(fetch, page_size=page_size, on_page=on_page, endpoint=f"GET {path}")

    def get_request(self, key: str, expand: Sequence[str] | None = None) -> dict[str, Any]:
        """
        Read one customer request.

        :param key: issue key or id.
        :param expand: e.g. ``("requestType", "status")``.
        :return: the CustomerRequest.
        """
        params = {"expand": ",".join(expand)} if expand else None
        path = f"{self._JSM}/request/{_segment(key, 'request key')}"
        return cast("dict[str, Any]", self._request("GET", path, params=params))

    def add_request_comment(self, key: str, body: str, public: bool = True) -> dict[str, Any]:
        """
        Comment on a customer request (201). Not replayed after an ambiguous failure.

        :param key: issue key or id.
        :param body: plain-text comment.
        :param public: visible to the customer.
        :return: the created comment.
        """
        path = f"{self._JSM}/request/{_segment(key, 'request key')}/comment"
        return cast("dict[str, Any]", self._request("POST", path, json={"body": body, "public": public}))

    def get_request_transitions(self, key: str) -> list[dict[str, Any]]:
        """
        List the customer transitions available on a request.

        :param key: issue key or id.
        :return: ``[{"id", "name"}]``.
        """
        path = f"{self._JSM}/request/{_segment(key, 'request key')}/transition"
        return list(iter_jsm_pages(self._offset_fetch(path, {}, "start", "limit"), endpoint=f"GET {path}"))

    def transition_request(self, key: str, transition_id: str, comment: str | None = None) -> None:
        """
        Perform a customer transition on a request (204), optionally with a comment.

        :param key: issue key or id.
        :param transition_id: id from :meth:`get_request_transitions`.
        :param comment: comment added with the transition.
        """
        body: dict[str, Any] = {"id": str(transition_id)}
        if comment:
            body["additionalComment"] = {"body": comment}
        path = f"{self._JSM}/request/{_segment(key, 'request key')}/transition"
        self._request("POST", path, json=body)
