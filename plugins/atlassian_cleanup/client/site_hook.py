"""The Airflow hook for one Jira Cloud / Jira Service Management site (``{site}.atlassian.net``).

Connection (JSON form, e.g. in ``AIRFLOW_CONN_ATLASSIAN_SITE``)::

    {"conn_type": "http", "host": "https://acme.atlassian.net", "login": "automation@acme.com",
     "password": "<API token>"}

Optional extras: ``timeout`` (seconds, or ``[connect, read]``), ``verify`` (bool or CA bundle
path), ``proxies`` (``{"https": "http://proxy:3128"}``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

from airflow.sdk import Connection
from requests.auth import AuthBase, HTTPBasicAuth

from atlassian_cleanup.client.credentials import credential_forms
from atlassian_cleanup.client.errors import AtlassianConfigurationError
from atlassian_cleanup.client.http_hook import AtlassianHttpHook, path_segment
from atlassian_cleanup.client.pagination import (
    OnPage,
    iter_jira_is_last,
    iter_jira_offset_array,
    iter_jql_token,
    iter_jsm_pages,
)
from atlassian_cleanup.client.retry import RetryPolicy


class AtlassianSiteHook(AtlassianHttpHook):
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

        fetch = self._search_fetch(path, base, next_key="nextPageToken")
        yield from iter_jql_token(fetch, on_page=on_page, endpoint=f"POST {path}")

    def get_issue_transitions(self, key: str) -> list[dict[str, Any]]:
        """
        List the workflow transitions available on an issue.

        :param key: issue key or id.
        :return: ``[{"id", "name", "to": {...}}]``.
        """
        body = self._request("GET", f"{self._JIRA}/issue/{path_segment(key, 'issue key')}/transitions") or {}
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
        self._request("POST", f"{self._JIRA}/issue/{path_segment(key, 'issue key')}/transitions", json=body)

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
        path = f"{self._JSM}/servicedesk/{path_segment(service_desk_id, 'service_desk_id')}/requesttype"
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

    def add_request_comment(self, key: str, body: str, public: bool = True) -> dict[str, Any]:
        """
        Comment on a customer request (201). Not replayed after an ambiguous failure.

        :param key: issue key or id.
        :param body: plain-text comment.
        :param public: visible to the customer.
        :return: the created comment.
        """
        path = f"{self._JSM}/request/{path_segment(key, 'request key')}/comment"
        return cast("dict[str, Any]", self._request("POST", path, json={"body": body, "public": public}))

    def get_request_transitions(self, key: str) -> list[dict[str, Any]]:
        """
        List the customer transitions available on a request.

        :param key: issue key or id.
        :return: ``[{"id", "name"}]``.
        """
        path = f"{self._JSM}/request/{path_segment(key, 'request key')}/transition"
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
        path = f"{self._JSM}/request/{path_segment(key, 'request key')}/transition"
        self._request("POST", path, json=body)
