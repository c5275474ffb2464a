"""Admin API: the org, its directory and workspaces, v1 users, the removed v1 endpoints.

Also the checks every Admin route shares (org and directory ids, cursor pages); the v2 directory
users and groups live in :mod:`admin_users` and :mod:`admin_groups`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from atlassian_sandbox import directories, views
from atlassian_sandbox.errors import J, admin_body, admin_error
from atlassian_sandbox.incoming import base_url, int_param
from atlassian_sandbox.runtime import BadCursor, Runtime
from atlassian_sandbox.state import OrgState


def check_org(rt: Runtime, org_id: str) -> OrgState:
    state = rt.state
    if org_id != state.org_id:
        raise admin_error(404, "ADMIN-404-2", "Organization not found", f"Organization {org_id} not found")
    state.process_due_deletions()
    return state


def check_dir(rt: Runtime, state: OrgState, directory_id: str, *, write: bool = False) -> None:
    if directory_id == "-":
        if write and not rt.config.allow_dash_directory_writes:
            raise admin_error(
                400, "ADMIN-400-24", "Bad request", "A concrete directoryId is required for writes"
            )
        return
    if not directories.is_known(state, directory_id):
        raise admin_error(404, "ADMIN-404-1", "Directory not found", f"Directory {directory_id} not found")


#: Lists, from a page's filters, the ids a cursor snapshot pages through.
IdsBuilder = Callable[[dict[str, Any]], list[str]]


def cursor_page(
    rt: Runtime, kind: str, cursor: str | None, query: dict[str, Any], build: IdsBuilder, limit: int
) -> tuple[list[str], str, str | None, str | None]:
    """One page of a cursor-paged Admin list: ids, then the self, prev and next tokens."""
    try:
        return rt.cursors.page(kind, cursor, query, build, limit)
    except BadCursor:
        raise admin_error(
            400, "ADMIN-400-1", "Invalid cursor", "The cursor is invalid or has expired"
        ) from None


def page_limit(raw: Any) -> int:
    """The ``limit`` of a v2 list: 50 unless given, and 1 to 100."""
    limit = int_param(raw, "limit", 50, "admin")
    if limit < 1 or limit > 100:
        raise admin_error(400, "ADMIN-400-24", "Bad request", "limit must be between 1 and 100")
    return limit


def v2_links(rt: Runtime, self_token: str, prev_token: str | None, next_token: str | None) -> dict[str, Any]:
    links: dict[str, Any] = {"self": self_token, "prev": prev_token}
    if next_token or rt.config.v2_last_page_next == "null":
        links["next"] = next_token  # an opaque token to pass back as cursor, not a URL
    return links


def add_org_routes(admin: APIRouter, rt: Runtime) -> None:
    def st() -> OrgState:
        return rt.state

    def org_object(state: OrgState, base: str) -> dict[str, Any]:
        org_url = f"{base}/admin/v1/orgs/{state.org_id}"
        return {
            "id": state.org_id,
            "type": "orgs",
            "attributes": {"name": state.org_name},
            "links": {"self": org_url},
            "relationships": {
                "domains": {"related": f"{org_url}/domains"},
                "users": {"related": f"{org_url}/users"},
            },
        }

    @admin.get("/admin/v1/orgs")
    async def list_orgs(request: Request) -> Response:
        with st().lock:
            base = base_url(request)
            return J(
                {"data": [org_object(st(), base)], "links": {"self": f"{base}/admin/v1/orgs"}, "meta": None}
            )

    @admin.get("/admin/v1/orgs/{org_id}")
    async def get_org(org_id: str, request: Request) -> Response:
        with st().lock:
            state = check_org(rt, org_id)
            return J({"data": org_object(state, base_url(request))})

    @admin.get("/admin/v2/orgs/{org_id}/directories")
    async def list_directories(org_id: str, request: Request) -> Response:
        with st().lock:
            state = check_org(rt, org_id)
            listed = directories.directory_list(state)
            account_id = request.query_params.get("accountId")
            if account_id:  # §2.3: only the directories this account belongs to
                member_of = set(directories.directories_of(state, account_id))
                listed = [(d, name) for d, name in listed if d in member_of]
            icon = "https://admin.atlassian.com/assets/directory.svg"
            return J(
                {
                    "data": [{"directoryId": d, "name": name, "icon": icon} for d, name in listed],
                    "links": {"self": None, "prev": None, "next": None},
                }
            )

    @admin.post("/admin/v2/orgs/{org_id}/workspaces")
    async def list_workspaces(org_id: str, request: Request) -> Response:
        with st().lock:
            state = check_org(rt, org_id)
            base = base_url(request)
            data = [
                {
                    "id": r.ari,
                    "type": "workspaces",
                    "attributes": {
                        "name": state.site,
                        "typeKey": r.key,
                        "hostUrl": r.host_url,
                        "status": "online",
                    },
                    "links": {"self": f"{base}/admin/v2/orgs/{org_id}/workspaces/{r.ari}"},
                }
                for r in state.resources.values()
            ]
            return J(
                {
                    "data": data,
                    "links": {"self": None, "prev": None, "next": None},
                    "meta": {"pageSize": len(data)},
                }
            )

    # ================================================================ Admin v1 users
    @admin.get("/admin/v1/orgs/{org_id}/users")
    async def v1_users(org_id: str, request: Request) -> Response:
        with st().lock:
            state = check_org(rt, org_id)
            base = base_url(request)
            cursor = request.query_params.get("cursor")

            def build(_query: dict[str, Any]) -> list[str]:
                # v1 lists managed accounts only: claimed domain, Atlassian accounts (§3.1).
                return [a for a in state.user_order if (u := state.users.get(a)) is not None and u.managed]

            ids, self_token, prev_token, next_token = cursor_page(
                rt, "v1users", cursor, {}, build, rt.config.v1_page_size
            )
            url = f"{base}/admin/v1/orgs/{org_id}/users"
            links: dict[str, str] = {"self": f"{url}?cursor={self_token}" if cursor else url}
            if prev_token:
                links["prev"] = f"{url}?cursor={prev_token}"
            if next_token:
                links["next"] = f"{url}?cursor={next_token}"  # a full URL, unlike v2 (§9.11)
            total = sum(1 for u in state.users.values() if u.managed)
            data = [views.v1_user(state, state.users[a], base) for a in ids if a in state.users]
            return J({"data": data, "meta": {"total": total}, "links": links})

    @admin.get("/admin/v1/orgs/{org_id}/directory/users/{account_id}/last-active-dates")
    async def v1_last_active(org_id: str, account_id: str, request: Request) -> Response:
        with st().lock:
            state = check_org(rt, org_id)
            user = state.directory_user(account_id)
            return J(views.last_active_dates(state, user))


def add_removed_v1_routes(admin: APIRouter) -> None:
    def gone(detail: str) -> Response:
        return J(admin_body(410, "ADMIN-410-1", "Gone", detail), 410)

    removed_detail = "This endpoint stopped working after 2026-06-30; use the v2 directories API"

    # Removed whatever the method: atlassian-python-api's search_users_in_organization sends GET.
    @admin.api_route("/admin/v1/orgs/{org_id}/users/search", methods=["GET", "POST"])
    async def removed_v1_search(org_id: str) -> Response:
        return gone(removed_detail)

    @admin.post("/admin/v1/orgs/{org_id}/directory/users/{account_id}/suspend-access")
    async def removed_v1_suspend(org_id: str, account_id: str) -> Response:
        return gone(removed_detail)

    @admin.post("/admin/v1/orgs/{org_id}/directory/users/{account_id}/restore-access")
    async def removed_v1_restore(org_id: str, account_id: str) -> Response:
        return gone(removed_detail)

    @admin.delete("/admin/v1/orgs/{org_id}/directory/users/{account_id}")
    async def removed_v1_delete(org_id: str, account_id: str) -> Response:
        return gone(removed_detail)

    @admin.api_route(
        "/admin/v1/orgs/{org_id}/directory/groups{rest:path}", methods=["GET", "POST", "DELETE", "PUT"]
    )
    async def removed_v1_groups(org_id: str, rest: str) -> Response:
        return gone(removed_detail)

    @admin.post("/admin/v1/orgs/{org_id}/groups/search")
    async def removed_v1_group_search(org_id: str) -> Response:
        return gone(removed_detail)
