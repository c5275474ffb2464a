"""Admin v2 groups: list, search, one group, create, delete, role assignments, memberships."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from atlassian_sandbox import views
from atlassian_sandbox.admin_api import check_dir, check_org, cursor_page, page_limit, v2_links
from atlassian_sandbox.errors import J, admin_error
from atlassian_sandbox.incoming import as_list, base_url, json_body, qlist
from atlassian_sandbox.runtime import Runtime
from atlassian_sandbox.state import OrgState


def add_group_routes(admin: APIRouter, rt: Runtime) -> None:
    def st() -> OrgState:
        return rt.state

    def group_page(request: Request, state: OrgState, source: dict[str, Any], counts: bool) -> Response:
        limit = page_limit(source.get("limit"))
        query = {
            "groupIds": as_list(source.get("groupIds")),
            "groupNames": as_list(source.get("groupNames")),
            "accountIds": as_list(source.get("accountIds")),
            "resourceIds": as_list(source.get("resourceIds")),
            "searchTerm": str(source.get("searchTerm") or ""),
        }

        def build(q: dict[str, Any]) -> list[str]:
            out = []
            for gid in state.group_order:
                group = state.groups.get(gid)
                if group is None:
                    continue
                if q["groupIds"] and gid not in q["groupIds"]:
                    continue
                if q["groupNames"] and group.name not in q["groupNames"]:
                    continue
                if q["accountIds"] and not group.members & set(q["accountIds"]):
                    continue
                if q["resourceIds"] and not {state.resources[p].ari for p, _ in group.roles} & set(
                    q["resourceIds"]
                ):
                    continue
                if q["searchTerm"] and q["searchTerm"].lower() not in group.name.lower():
                    continue
                out.append(gid)
            return out

        ids, self_token, prev_token, next_token = cursor_page(
            rt, "groups", source.get("cursor"), query, build, limit
        )
        base = base_url(request)
        data = [views.admin_group(state, state.groups[g], base, counts) for g in ids if g in state.groups]
        return J({"data": data, "links": v2_links(rt, self_token, prev_token, next_token)})

    groups_path = "/admin/v2/orgs/{org_id}/directories/{directory_id}/groups"

    @admin.get(groups_path)
    async def v2_list_groups(org_id: str, directory_id: str, request: Request) -> Response:
        with st().lock:
            state = check_org(rt, org_id)
            check_dir(rt, state, directory_id)
            source: dict[str, Any] = {k: qlist(request, k) for k in ("groupIds", "accountIds", "resourceIds")}
            for key in ("cursor", "limit", "searchTerm"):
                source[key] = request.query_params.get(key)
            return group_page(request, state, source, counts=True)

    @admin.post(groups_path + "/search")
    async def v2_search_groups(org_id: str, directory_id: str, request: Request) -> Response:
        body = await json_body(request, "admin")
        with st().lock:
            state = check_org(rt, org_id)
            check_dir(rt, state, directory_id)
            expand = set(as_list(body.get("expand")))
            return group_page(
                request, state, body, counts=bool(expand & {"counts.users", "counts.resources"})
            )

    @admin.get(groups_path + "/{group_id}")
    async def v2_get_group(org_id: str, directory_id: str, group_id: str, request: Request) -> Response:
        with st().lock:
            state = check_org(rt, org_id)
            check_dir(rt, state, directory_id)
            return J({"data": views.admin_group(state, state.group(group_id), base_url(request), True)})

    @admin.post(groups_path)
    async def v2_create_group(org_id: str, directory_id: str, request: Request) -> Response:
        body = await json_body(request, "admin", required=True)
        name = str(body.get("name") or "").strip() if isinstance(body, dict) else ""
        if not name:
            raise admin_error(400, "ADMIN-400-24", "Bad request", "name is required")
        with st().lock:
            state = check_org(rt, org_id)
            check_dir(rt, state, directory_id, write=True)
            group_id = str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"{state.org_id}/groups/{name}/{len(state.group_order)}")
            )
            group = state.create_group(group_id, name, body.get("description"))
            return J({"data": views.admin_group(state, group, base_url(request), True)}, 201)

    @admin.delete(groups_path + "/{group_id}")
    async def v2_delete_group(org_id: str, directory_id: str, group_id: str) -> Response:
        with st().lock:
            state = check_org(rt, org_id)
            check_dir(rt, state, directory_id, write=True)
            state.delete_group(group_id)
            return Response(status_code=204)

    @admin.get(groups_path + "/{group_id}/role-assignments")
    async def v2_group_roles(org_id: str, directory_id: str, group_id: str) -> Response:
        with st().lock:
            state = check_org(rt, org_id)
            check_dir(rt, state, directory_id)
            group = state.group(group_id)
            # One entry per resource with every role the group holds on it (§5.2).
            per_resource: dict[str, list[str]] = {}
            for product, role in group.roles:
                per_resource.setdefault(product, []).append(role)
            data = [
                {"resourceId": state.resources[p].ari, "resourceOwner": p,
                 "roleAssignments": [{"role": r, "roleAssignmentMethods": ["direct"]} for r in roles]}
                for p, roles in per_resource.items()
            ]  # fmt: skip
            return J({"data": data, "links": {"self": None, "prev": None, "next": None}})

    @admin.post(groups_path + "/{group_id}/memberships")
    async def v2_add_member(org_id: str, directory_id: str, group_id: str, request: Request) -> Response:
        body = await json_body(request, "admin", required=True)
        account_id = body.get("accountId") if isinstance(body, dict) else None
        if not account_id:
            raise admin_error(400, "ADMIN-400-24", "Bad request", "accountId is required")
        with st().lock:
            state = check_org(rt, org_id)
            check_dir(rt, state, directory_id, write=True)
            group = state.group(group_id)
            if group.external_synced:
                raise admin_error(403, "ADMIN-403-5", "Forbidden", "You can't add a user to a synced group")
            state.add_member(group_id, str(account_id))
            return Response(status_code=204)

    @admin.delete(groups_path + "/{group_id}/memberships/{account_id}")
    async def v2_remove_member(org_id: str, directory_id: str, group_id: str, account_id: str) -> Response:
        with st().lock:
            state = check_org(rt, org_id)
            check_dir(rt, state, directory_id, write=True)
            group = state.group(group_id)
            if group.external_synced:
                raise admin_error(
                    403, "ADMIN-403-5", "Forbidden", "You can't remove a user from a synced group"
                )
            state.remove_member(group_id, account_id)
            return Response(status_code=204)
