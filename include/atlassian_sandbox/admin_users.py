"""Admin v2 directory users: search, list, count, stats, one user, suspend, restore, remove."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from atlassian_sandbox import directories, views
from atlassian_sandbox.admin_api import check_dir, check_org, cursor_page, page_limit, v2_links
from atlassian_sandbox.errors import J, admin_error
from atlassian_sandbox.incoming import as_list, base_url, json_body, qlist
from atlassian_sandbox.model import SandboxError
from atlassian_sandbox.runtime import Runtime
from atlassian_sandbox.state import OrgState

V2_STATUSES = {"active", "suspended", "not_invited", "deactivated", "for_deletion"}
ACCOUNT_STATUSES = {"active", "inactive", "closed"}
MEMBERSHIP_STATUSES = {"active", "suspended", "no_membership"}
CLAIM_STATUSES = {"managed", "unmanaged"}
V2_EXPANDS = {"productAccess", "groups", "platformRoles", "counts.resources"}


def add_directory_user_routes(admin: APIRouter, rt: Runtime) -> None:
    def st() -> OrgState:
        return rt.state

    def v2_query(source: dict[str, Any]) -> dict[str, Any]:
        query: dict[str, Any] = {}
        for key in ("accountIds", "status", "accountStatus", "membershipStatus", "claimStatus", "groupIds",
                    "emails", "emailDomains", "resourceIds", "directoryIds", "roleIds"):  # fmt: skip
            values = as_list(source.get(key))
            if values:
                query[key] = values
        allowed = {"status": V2_STATUSES, "accountStatus": ACCOUNT_STATUSES,
                   "membershipStatus": MEMBERSHIP_STATUSES, "claimStatus": CLAIM_STATUSES}  # fmt: skip
        for key, valid in allowed.items():
            bad = [v for v in query.get(key, []) if v not in valid]
            if bad:
                raise admin_error(
                    400, "ADMIN-400-24", "Bad request", f"Invalid {key} value(s): {', '.join(bad)}"
                )
        term = source.get("searchTerm")
        if term:
            query["searchTerm"] = str(term)
        if query.get("searchTerm") and query.get("emails"):
            raise admin_error(
                400, "ADMIN-400-24", "Bad request", "searchTerm and emails cannot be used together"
            )
        mfa = source.get("mfaEnabled")
        if mfa is not None and mfa != "":
            query["mfaEnabled"] = str(mfa).lower() in ("true", "1")
        sort = source.get("sortBy")
        if sort:
            entries = sort if isinstance(sort, list) else [sort]
            first = (
                entries[0]
                if isinstance(entries[0], dict)
                else {"field": "nick_name", "direction": str(entries[0])}
            )
            query["sortDesc"] = str(first.get("direction", "asc")).lower() == "desc"
            query["sort"] = True
        return query

    def v2_build(state: OrgState, query: dict[str, Any]) -> list[str]:
        account_ids = set(query.get("accountIds", []))
        status = set(query.get("status", []))
        account_status = set(query.get("accountStatus", []))
        membership = set(query.get("membershipStatus", []))
        claim = set(query.get("claimStatus", []))
        group_ids = set(query.get("groupIds", []))
        emails = {e.lower() for e in query.get("emails", [])}
        domains = {d.lower().lstrip("@") for d in query.get("emailDomains", [])}
        resources = set(query.get("resourceIds", []))
        term = str(query.get("searchTerm", "")).lower()
        mfa = query.get("mfaEnabled")
        apps = rt.config.apps_in_directory_search
        directory = str(query.get("directory", state.directory_id))
        listed = directories.member_ids(state, directory)
        candidates: list[str]
        if account_ids:
            candidates = [a for a in state.user_order if a in account_ids]
        elif group_ids:
            members: set[str] = set()
            for gid in group_ids:
                if gid in state.groups:
                    members |= state.groups[gid].members
            candidates = [a for a in state.user_order if a in members]
        else:
            candidates = state.user_order
        result = []
        for account_id in candidates:
            user = state.users.get(account_id)
            if user is None or user.account_type == "customer":
                continue  # portal-only customers are not directory members
            if listed is not None and account_id not in listed:
                continue  # not a member of this (second) directory
            user = directories.in_directory(state, user, directory)
            if user.account_type == "app" and not apps:
                continue
            if user.membership == "none" and not user.managed:
                continue  # removed external users leave the directory entirely (§4.3)
            if status and user.status not in status:
                continue
            if account_status and user.account_status not in account_status:
                continue
            if membership and user.membership_status not in membership:
                continue
            if (
                claim
                and (user.claim_status if user.account_type == "atlassian" else "unmanaged") not in claim
            ):
                continue
            if group_ids and not (user.groups & group_ids):
                continue
            if emails and (user.email or "").lower() not in emails:
                continue
            if domains and (user.email or "").rsplit("@", 1)[-1].lower() not in domains:
                continue
            if resources and not {state.resources[p].ari for p in state.user_products(user)} & resources:
                continue
            if mfa is not None and user.mfa_enabled != mfa:
                continue
            if (
                term
                and term not in user.name.lower()
                and term not in user.nickname
                and term not in (user.email or "").lower()
            ):
                continue
            result.append(account_id)
        if query.get("sort"):
            result.sort(key=lambda a: (state.users[a].nickname, a), reverse=bool(query.get("sortDesc")))
        return result

    def v2_page(
        request: Request,
        state: OrgState,
        query: dict[str, Any],
        cursor: str | None,
        limit_raw: Any,
        expand: set[str],
    ) -> Response:
        limit = page_limit(limit_raw)
        bad = expand - V2_EXPANDS
        if bad:
            raise admin_error(
                400, "ADMIN-400-24", "Bad request", f"Unsupported expand value(s): {', '.join(sorted(bad))}"
            )
        ids, self_token, prev_token, next_token = cursor_page(
            rt,
            "v2users",
            cursor,
            query,
            lambda q: v2_build(state, q)[: rt.config.directory_search_max_users],
            limit,
        )
        base = base_url(request)
        directory = str(query.get("directory", state.directory_id))
        data = [
            views.v2_user(
                state, directories.in_directory(state, state.users[a], directory), expand, base, rt.config
            )
            for a in ids
            if a in state.users
        ]
        return J({"data": data, "links": v2_links(rt, self_token, prev_token, next_token)})

    @admin.post("/admin/v2/orgs/{org_id}/directories/{directory_id}/users/search")
    async def v2_search(org_id: str, directory_id: str, request: Request) -> Response:
        body = await json_body(request, "admin")
        if not isinstance(body, dict):
            raise admin_error(400, "ADMIN-400-24", "Bad request", "The body must be a JSON object")
        with st().lock:
            state = check_org(rt, org_id)
            check_dir(rt, state, directory_id)
            query = {**v2_query(body), "directory": directory_id}
            return v2_page(
                request, state, query, body.get("cursor"), body.get("limit"), set(as_list(body.get("expand")))
            )

    def v2_query_params(request: Request) -> dict[str, Any]:
        """The v2 user filters of a GET (list and count): array parameters repeat their key."""
        source: dict[str, Any] = {k: qlist(request, k) for k in (
            "accountIds", "status", "accountStatus", "membershipStatus", "claimStatus", "groupIds",
            "emails", "emailDomains", "resourceIds", "directoryIds", "roleIds")}  # fmt: skip
        source["searchTerm"] = request.query_params.get("searchTerm")
        source["mfaEnabled"] = request.query_params.get("mfaEnabled")
        return v2_query(source)

    @admin.get("/admin/v2/orgs/{org_id}/directories/{directory_id}/users")
    async def v2_list(org_id: str, directory_id: str, request: Request) -> Response:
        with st().lock:
            state = check_org(rt, org_id)
            check_dir(rt, state, directory_id)
            query = {**v2_query_params(request), "directory": directory_id}
            return v2_page(
                request,
                state,
                query,
                request.query_params.get("cursor"),
                request.query_params.get("limit"),
                set(),
            )

    # The literal segments (count, stats) are registered before users/{account_id}: the first
    # matching route wins, and "count" is no account id.
    @admin.get("/admin/v2/orgs/{org_id}/directories/{directory_id}/users/count")
    async def v2_count_users(org_id: str, directory_id: str, request: Request) -> Response:
        # §3.5: same filters as the list (§3.3); the shape {"count": n} is jira.js's
        # GetDirectoryUsersCount model ([lib]; atlassian-python-api passes the JSON through).
        with st().lock:
            state = check_org(rt, org_id)
            check_dir(rt, state, directory_id)
            query = {**v2_query_params(request), "directory": directory_id}
            return J({"count": len(v2_build(state, query))})

    @admin.get("/admin/v2/orgs/{org_id}/directories/{directory_id}/users/stats")
    async def v2_user_stats(org_id: str, directory_id: str) -> Response:
        # §3.5 "user stats": jira.js's MultiDirectoryUserStats model ([lib]), the users a
        # directory list returns counted per role id and per account status.
        with st().lock:
            state = check_org(rt, org_id)
            check_dir(rt, state, directory_id)
            roles: dict[str, int] = {}
            statuses = dict.fromkeys(sorted(ACCOUNT_STATUSES), 0)
            for account_id in v2_build(state, {}):
                user = state.visible(state.users[account_id])
                statuses[user.account_status] = statuses.get(user.account_status, 0) + 1
                held = {
                    a["role"] for item in views.role_assignments(state, user) for a in item["roleAssignments"]
                }
                for role in held:
                    roles[role] = roles.get(role, 0) + 1
            return J(
                {
                    "roles": [{"roleId": r, "count": n} for r, n in sorted(roles.items())],
                    "accountStatus": [{"status": s, "count": n} for s, n in statuses.items()],
                }
            )

    @admin.get("/admin/v2/orgs/{org_id}/directories/{directory_id}/users/{account_id}")
    async def v2_get_user(org_id: str, directory_id: str, account_id: str, request: Request) -> Response:
        with st().lock:
            state = check_org(rt, org_id)
            check_dir(rt, state, directory_id)
            user = state.directory_user(account_id)
            if user.membership == "none" and not user.managed:
                raise SandboxError("not_found", f"User {account_id} not found")
            return J({"data": views.v2_user(state, user, set(), base_url(request), rt.config)})

    @admin.get("/admin/v2/orgs/{org_id}/directories/{directory_id}/users/{account_id}/role-assignments")
    async def v2_role_assignments(
        org_id: str, directory_id: str, account_id: str, request: Request
    ) -> Response:
        with st().lock:
            state = check_org(rt, org_id)
            check_dir(rt, state, directory_id)
            user = state.visible(state.directory_user(account_id))
            return J(
                {
                    "data": views.role_assignments(state, user),
                    "links": {"self": None, "prev": None, "next": None},
                }
            )

    def write_ok(message: str) -> Response:
        if rt.config.suspend_restore_success_code == 200:
            return J({"message": message})
        return Response(status_code=204)

    @admin.post("/admin/v2/orgs/{org_id}/directories/{directory_id}/users/{account_id}/suspend")
    async def v2_suspend(org_id: str, directory_id: str, account_id: str) -> Response:
        with st().lock:
            state = check_org(rt, org_id)
            check_dir(rt, state, directory_id, write=True)
            if directory_id in state.extra_directories:
                directories.write(state, directory_id, account_id, "suspend")
            else:
                state.suspend(account_id)
            return write_ok(f"Access was suspended for user {account_id} in directory {state.directory_id}")

    @admin.post("/admin/v2/orgs/{org_id}/directories/{directory_id}/users/{account_id}/restore")
    async def v2_restore(org_id: str, directory_id: str, account_id: str) -> Response:
        with st().lock:
            state = check_org(rt, org_id)
            check_dir(rt, state, directory_id, write=True)
            if directory_id in state.extra_directories:
                directories.write(state, directory_id, account_id, "restore")
            else:
                state.restore(account_id)
            return write_ok(f"Access was restored for user {account_id} in directory {state.directory_id}")

    @admin.delete("/admin/v2/orgs/{org_id}/directories/{directory_id}/users/{account_id}")
    async def v2_remove(org_id: str, directory_id: str, account_id: str) -> Response:
        with st().lock:
            state = check_org(rt, org_id)
            check_dir(rt, state, directory_id, write=True)
            if directory_id in state.extra_directories:
                directories.write(state, directory_id, account_id, "remove")
            else:
                state.remove_from_directory(account_id)
            return Response(status_code=204)
