"""The Airflow hook for the Atlassian organization Admin API: directories, users, groups, lifecycle.

Connection (JSON form, e.g. in ``AIRFLOW_CONN_ATLASSIAN_ADMIN``)::

    {"conn_type": "http", "host": "https://api.atlassian.com", "password": "<org Admin API key>",
     "extra": {"org_id": "<org id>", "directory_id": "<optional directory id(s)>"}}

``directory_id`` may be one id, a list of ids, or ``"*"`` / absent for every directory of the
organisation (see :mod:`~atlassian_cleanup.client.directories`).

Optional extras: ``timeout`` (seconds, or ``[connect, read]``), ``verify`` (bool or CA bundle
path), ``proxies`` (``{"https": "http://proxy:3128"}``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, cast

import requests
from airflow.sdk import Connection
from requests.auth import AuthBase

from atlassian_cleanup.client.directories import (
    account_directories,
    configured_directories,
    merged_user_pages,
    missing_directory_error,
    resolve_directories,
)
from atlassian_cleanup.client.errors import (
    AtlassianConfigurationError,
    AtlassianNotFoundError,
    AtlassianPaginationError,
)
from atlassian_cleanup.client.http_hook import AtlassianHttpHook, path_segment
from atlassian_cleanup.client.pagination import (
    OnPage,
    Page,
    items_of,
    iter_v2_cursor,
    pages_v2_cursor,
    prefetch,
)
from atlassian_cleanup.client.retry import RetryPolicy

#: What a directory user search returns with each user unless the caller asks otherwise.
DIRECTORY_USER_EXPAND = ("productAccess", "groups", "platformRoles")


class BearerAuth(AuthBase):
    """``Authorization: Bearer <key>`` for the Admin API; the key never appears in ``repr``."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(<hidden>)"


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


class AtlassianAdminHook(AtlassianHttpHook):
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
        self._group_directory: dict[str, str] = {}  # group id -> the directory that listed it
        self._directory_ids: list[str] | None = [directory_id] if directory_id else None

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
    def directory_ids(self) -> list[str]:
        """
        The directories this hook reads: the constructor's, the ``directory_id`` extra's, or all.

        One configured id is used as given (a wrong one is explained when its first read fails);
        a list is checked against the organisation's directories; ``"*"`` or no extra means every
        directory the organisation has, looked up once per process and credential.
        """
        if self._directory_ids is None:
            wanted = configured_directories(self.extras.get("directory_id"), self.conn_id)
            self._directory_ids = wanted if wanted and len(wanted) == 1 else resolve_directories(self, wanted)
        return self._directory_ids

    @property
    def directory_id(self) -> str:
        """The one directory of a call that needs one; refuses when the hook reads several."""
        ids = self.directory_ids
        if len(ids) != 1:
            raise AtlassianConfigurationError(
                f"Connection '{self.conn_id}' manages {len(ids)} directories ({', '.join(ids)}) and this "
                "call needs one: pass directory_id to the hook"
            )
        return ids[0]

    @property
    def directory_label(self) -> str:
        """The directory ids, comma-separated (for log lines)."""
        return ", ".join(self.directory_ids)

    def directories_of(self, account_id: str) -> list[str]:
        """The hook's directories that list ``account_id``; raises not-found when none does."""
        ids = self.directory_ids
        return list(ids) if len(ids) == 1 else account_directories(self, account_id)

    @property
    def _v1(self) -> str:
        return f"/admin/v1/orgs/{path_segment(self.org_id, 'org_id')}"

    @property
    def _v2(self) -> str:
        return f"/admin/v2/orgs/{path_segment(self.org_id, 'org_id')}"

    def _dir(self, directory_id: str | None = None) -> str:
        directory = directory_id or self.directory_id
        if directory != "-" and directory not in self.directory_ids:
            raise AtlassianConfigurationError(
                f"Connection '{self.conn_id}' manages directories {self.directory_label}, not {directory}"
            )
        return f"{self._v2}/directories/{path_segment(directory, 'directory_id')}"

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

    def list_directories(self, account_id: str | None = None) -> list[dict[str, Any]]:
        """
        List the organization's user directories (v2), or the ones ``account_id`` is in.

        :return: ``[{"directoryId", "name", ...}]``.
        """
        path = f"{self._v2}/directories"
        fetch = self._get_cursor_fetch(path, {"accountId": account_id} if account_id else None)
        return list(iter_v2_cursor(fetch, endpoint=f"GET {path}"))

    # -- users ------------------------------------------------------------------------------------

    def iter_directory_users(
        self,
        *,
        expand: Sequence[str] = DIRECTORY_USER_EXPAND,
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
        expand: Sequence[str] = DIRECTORY_USER_EXPAND,
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

        When the hook reads several directories (and ``directory_id`` is not given) they are read
        concurrently, one cursor and connection each, and merged (one entry per account, see
        :mod:`~atlassian_cleanup.client.directories`); the pages then come once every directory
        has been read in full, and a failure in any directory fails the whole listing.
        """
        if directory_id is None and len(self.directory_ids) > 1:
            yield from merged_user_pages(self, expand, limit, filters, on_page)
            return
        path = f"{self._dir(directory_id)}/users/search"
        base: dict[str, Any] = {"limit": max(1, min(100, int(limit)))}
        if expand:
            base["expand"] = list(expand)
        if filters:
            base.update(filters)

        fetch = self._search_fetch(path, base)
        self.get_conn()  # connect (and resolve the directory) before any background thread starts
        endpoint = f"POST {path}"
        pages = (
            _directory_users(page, endpoint)
            for page in pages_v2_cursor(fetch, on_page=on_page, endpoint=endpoint)
        )
        if ahead > 0:
            pages = prefetch(pages, ahead=ahead, name="atlassian-directory-pages")
        try:
            yield from pages
        except AtlassianNotFoundError as exc:
            raise missing_directory_error(self, directory_id or self.directory_id, exc) from exc

    def sibling(self, directory_id: str) -> AtlassianAdminHook:
        """A hook of the same connection, credential and retry policy, for another thread."""
        return type(self)(
            self.conn_id,
            org_id=self.org_id,
            directory_id=directory_id,
            retry_policy=self._given_retry_policy,
            replay_ambiguous_writes=self.replay_ambiguous_writes,
        )

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

    def get_user_role_assignments(self, account_id: str) -> list[dict[str, Any]]:
        """
        List a user's role assignments per resource (v2, all pages) — what a restore must give back.

        :param account_id: Atlassian account id.
        :return: ``[{"resourceId", "roleAssignments": [...], "directoryId", ...}]``.
        """
        directory = self.directory_ids[0] if len(self.directory_ids) == 1 else "-"  # reads may span all
        path = f"{self._dir(directory)}/users/{path_segment(account_id, 'account_id')}/role-assignments"
        return list(iter_v2_cursor(self._get_cursor_fetch(path), endpoint=f"GET {path}"))

    def get_last_active_dates(self, account_id: str) -> dict[str, Any]:
        """
        Read one user's per-product last-active dates (v1, still current), all pages merged.

        :param account_id: Atlassian account id.
        :return: ``{"product_access": [{"id", "key", "last_active", "last_active_timestamp"}],
            "added_to_org": ..., "added_to_org_timestamp": ...}``.
        """
        path = f"{self._v1}/directory/users/{path_segment(account_id, 'account_id')}/last-active-dates"
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
        return self._in_each_directory("POST", account_id, "/suspend")

    def restore_user(self, account_id: str) -> dict[str, Any] | None:
        """
        Restore a suspended user's access in the directory (v2); prior groups and roles return.

        :param account_id: Atlassian account id.
        :return: the response body if any.
        """
        return self._in_each_directory("POST", account_id, "/restore")

    def remove_user(self, account_id: str) -> dict[str, Any] | None:
        """
        Remove a user from the directory (v2). Groups and roles are lost: snapshot them first.

        :param account_id: Atlassian account id.
        :return: the response body if any.
        """
        return self._in_each_directory("DELETE", account_id, "")

    def _in_each_directory(self, method: str, account_id: str, suffix: str) -> dict[str, Any] | None:
        """One directory write in every directory of the hook that lists the account (the last answer)."""
        body = None
        for directory in self.directories_of(account_id):
            path = f"{self._dir(directory)}/users/{path_segment(account_id, 'account_id')}{suffix}"
            body = self._effect_idempotent_write(method, path)
        return body

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
        base: dict[str, Any] = {"limit": max(1, min(100, int(limit)))}
        if search_term:
            base["searchTerm"] = search_term
        if group_ids:
            base["groupIds"] = list(group_ids)
        if expand:
            base["expand"] = list(expand)
        for directory in self.directory_ids:  # a group belongs to one directory
            path = f"{self._dir(directory)}/groups/search"
            groups = iter_v2_cursor(self._search_fetch(path, base), on_page=on_page, endpoint=f"POST {path}")
            try:
                for group in groups:
                    if self._group_directory.setdefault(str(group.get("id")), directory) == directory:
                        yield group
            except AtlassianNotFoundError as exc:
                raise missing_directory_error(self, directory, exc) from exc

    def _group_dir(self, group_id: str) -> str:
        """The directory of a group: the one that listed it, or the hook's only one."""
        found = self._group_directory.get(group_id)
        if found is None and len(self.directory_ids) > 1:
            for _group in self.iter_groups(group_ids=[group_id]):
                pass
            found = self._group_directory.get(group_id)
        return self._dir(found) if found else self._dir()

    def get_group_role_assignments(self, group_id: str) -> list[dict[str, Any]]:
        """
        List the roles a group grants, per resource (v2, all pages).

        :param group_id: group id.
        :return: ``[{"resourceId", "roleAssignments": [...]}]``.
        """
        path = f"{self._group_dir(group_id)}/groups/{path_segment(group_id, 'group_id')}/role-assignments"
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
        path = f"{self._group_dir(group_id)}/groups/{path_segment(group_id, 'group_id')}/memberships"
        body = {"accountId": account_id}
        return self._effect_idempotent_write("POST", path, json=body)

    def remove_group_member(self, group_id: str, account_id: str) -> dict[str, Any] | None:
        """
        Remove a user from a group (v2).

        :param group_id: group id.
        :param account_id: Atlassian account id.
        :return: the response body if any.
        """
        path = (
            f"{self._group_dir(group_id)}/groups/{path_segment(group_id, 'group_id')}"
            f"/memberships/{path_segment(account_id, 'account_id')}"
        )
        return self._effect_idempotent_write("DELETE", path)

    # -- user management (managed accounts only) ------------------------------------------------

    @staticmethod
    def _manage(account_id: str) -> str:
        return f"/users/{path_segment(account_id, 'account_id')}/manage"

    def get_manage_privileges(self, account_id: str) -> dict[str, Any]:
        """
        Ask whether the key may deactivate / delete this account (call before disable or delete).

        :param account_id: Atlassian account id.
        :return: privilege map, e.g. ``{"lifecycle.delete": {"allowed": false, "reason": {...}}}``.
        """
        params = {"privileges": "lifecycle.enablement,lifecycle.delete"}
        return cast("dict[str, Any]", self._request("GET", self._manage(account_id), params=params) or {})

    def disable_user(self, account_id: str, message: str | None = None) -> None:
        """
        Deactivate a managed account: it can no longer log in to any Atlassian site.

        :param account_id: Atlassian account id.
        :param message: shown to the user when they try to log in.
        """
        body = {"message": message} if message else None
        self._effect_idempotent_write("POST", f"{self._manage(account_id)}/lifecycle/disable", json=body)

    def enable_user(self, account_id: str) -> None:
        """
        Re-activate a deactivated managed account (an account pending deletion needs :meth:`cancel_delete`).

        :param account_id: Atlassian account id.
        """
        self._effect_idempotent_write("POST", f"{self._manage(account_id)}/lifecycle/enable")

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
