"""Jira platform REST (§5.4, §6.1): users, groups, application roles, JQL search, transitions."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from atlassian_sandbox import jql, views
from atlassian_sandbox.errors import J, jira_body, jira_error
from atlassian_sandbox.incoming import Caller, base_url, int_param, json_body, qlist
from atlassian_sandbox.model import CONFLUENCE, PRODUCT_NAMES, CustomerRequest, SandboxError, User
from atlassian_sandbox.runtime import Runtime
from atlassian_sandbox.state import OrgState


def jira_user_or_404(state: OrgState, account_id: str | None) -> User:
    if not account_id:
        raise jira_error(400, "The query parameter 'accountId' is required.")
    user = state.users.get(account_id)
    if user is None:
        raise jira_error(404, f"User with accountId '{account_id}' does not exist.")
    return user


def jira_group_param(state: OrgState, request: Request) -> Any:
    group_id = request.query_params.get("groupId")
    name = request.query_params.get("groupname") or request.query_params.get("groupName")
    if not group_id and not name:
        raise jira_error(400, "You must specify a group name or group id.")
    try:
        return state.group(group_id) if group_id else state.group_by_name(str(name))
    except SandboxError:
        raise jira_error(404, "Specified group does not exist.") from None


def jira_issue_or_404(state: OrgState, key: str) -> CustomerRequest:
    try:
        return state.request(key)
    except SandboxError:
        raise jira_error(404, "Issue does not exist or you do not have permission to see it.") from None


def offset_params(request: Request, default: int, maximum: int) -> tuple[int, int]:
    start = int_param(request.query_params.get("startAt"), "startAt", 0, "jira")
    size = int_param(request.query_params.get("maxResults"), "maxResults", default, "jira")
    if start < 0 or size < 0:
        raise jira_error(400, "startAt and maxResults must not be negative.")
    return start, min(size, maximum)


def transition_comments(body: dict[str, Any]) -> list[tuple[str, bool]]:
    """``update.comment[].add`` of a transition: (text, public) pairs, checked before any write.

    The body is rich text: an ADF document in v3, a plain string in v2 (each version refuses
    the other's form). On a service-desk issue a comment is shared with the customer unless
    its ``sd.public.comment`` property says ``internal: true``.
    """
    update = body.get("update") or {}
    operations = update.get("comment") if isinstance(update, dict) else None
    if not operations:
        return []
    v3 = views.JIRA_API_VERSION.get() == 3
    out = []
    for operation in operations if isinstance(operations, list) else [operations]:
        add = operation.get("add") if isinstance(operation, dict) else None
        if not isinstance(add, dict):
            raise jira_error(400, "", errors={"comment": "Only the 'add' operation is supported on comment."})
        raw = add.get("body")
        text = views.adf_text(raw) if v3 else (raw if isinstance(raw, str) else None)
        if text is None:
            expected = "an Atlassian Document (see the Atlassian Document Format)" if v3 else "a string"
            raise jira_error(400, "", errors={"comment": f"Operation value must be {expected}"})
        if not text.strip():
            raise jira_error(400, "", errors={"comment": "Comment body can not be empty!"})
        internal = any(
            isinstance(p, dict) and p.get("key") == "sd.public.comment"
            and isinstance(p.get("value"), dict) and p["value"].get("internal") is True
            for p in add.get("properties") or []
        )  # fmt: skip
        out.append((text, not internal))
    return out


def add_jira_routes(site: APIRouter, rt: Runtime) -> None:
    def st() -> OrgState:
        return rt.state

    def jira_state() -> OrgState:
        state = st()
        state.process_due_deletions()
        return state

    @site.get("/rest/api/3/myself")
    async def jira_myself(request: Request, caller: Caller) -> Response:
        with st().lock:
            return J(views.jira_user(st(), caller, base_url(request)))

    @site.get("/rest/api/3/users/search")
    @site.get("/rest/api/3/users")
    async def jira_users(request: Request, caller: Caller) -> Response:
        with st().lock:
            state = jira_state()
            start, size = offset_params(request, 50, 1000)
            base = base_url(request)
            # A bare array with no total: clients page until an empty page (§5.4).
            ids = state.user_order[start : start + size]
            return J([views.jira_user(state, state.users[a], base) for a in ids if a in state.users])

    @site.get("/rest/api/3/user")
    async def jira_get_user(request: Request, caller: Caller) -> Response:
        with st().lock:
            state = jira_state()
            user = jira_user_or_404(state, request.query_params.get("accountId"))
            base = base_url(request)
            data = views.jira_user(state, user, base)
            expand = {e for raw in qlist(request, "expand") for e in raw.split(",")}
            visible = state.visible(user)
            if "groups" in expand:
                items = [views.jira_group(g, base) for g in state.sorted_groups(visible)]
                data["groups"] = {"size": len(items), "items": items}
            if "applicationRoles" in expand:
                roles = [
                    {"key": p, "name": PRODUCT_NAMES[p]}
                    for p in state.user_products(visible)
                    if p != CONFLUENCE
                ]
                data["applicationRoles"] = {"size": len(roles), "items": roles}
            data["expand"] = "groups,applicationRoles"
            return J(data)

    @site.get("/rest/api/3/user/groups")
    async def jira_user_groups(request: Request, caller: Caller) -> Response:
        with st().lock:
            state = jira_state()
            user = state.visible(jira_user_or_404(state, request.query_params.get("accountId")))
            base = base_url(request)
            return J([views.jira_group(g, base) for g in state.sorted_groups(user)])

    @site.get("/rest/api/3/group/bulk")
    async def jira_group_bulk(request: Request, caller: Caller) -> Response:
        with st().lock:
            state = jira_state()
            start, size = offset_params(request, 50, 50)
            ids = set(qlist(request, "groupId"))
            names = set(qlist(request, "groupName"))
            access = request.query_params.get("accessType")
            app_key = request.query_params.get("applicationKey")
            groups = []
            for gid in state.group_order:
                group = state.groups[gid]
                if ids and gid not in ids and group.name not in names:
                    continue
                if names and not ids and group.name not in names:
                    continue
                if access == "site-admin" and group.name != "site-admins":
                    continue
                if access == "admin" and not any(r == "atlassian/admin" for _, r in group.roles):
                    continue
                if access == "user" and not any(r == "atlassian/user" for _, r in group.roles):
                    continue
                if app_key and not any(p == app_key for p, _ in group.roles):
                    continue
                groups.append({"name": group.name, "groupId": group.id})
            page = groups[start : start + size]
            return J({"maxResults": size, "startAt": start, "total": len(groups),
                      "isLast": start + size >= len(groups), "values": page})  # fmt: skip

    member_cache: dict[tuple[int, str], list[str]] = {}

    @site.get("/rest/api/3/group/member")
    async def jira_group_member(request: Request, caller: Caller) -> Response:
        with st().lock:
            state = jira_state()
            group = jira_group_param(state, request)
            start, size = offset_params(request, 50, 50)
            include_inactive = request.query_params.get("includeInactiveUsers", "false").lower() == "true"
            key = (state._version, f"{id(state)}:{group.id}:{include_inactive}")
            members = member_cache.get(key)
            if members is None:
                member_cache.clear()
                members = sorted(group.members)
                # Jira hides deactivated accounts unless asked (§9.5).
                if not include_inactive:
                    members = [a for a in members if state.users[a].account_status == "active"]
                member_cache[key] = members
            base = base_url(request)
            page = members[start : start + size]
            last = start + size >= len(members)
            params = f"groupId={group.id}&includeInactiveUsers={str(include_inactive).lower()}"
            url = f"{views.jira_rest(base)}/group/member"
            data: dict[str, Any] = {"self": f"{url}?{params}&startAt={start}&maxResults={size}"}
            if not last:
                data["nextPage"] = f"{url}?{params}&startAt={start + size}&maxResults={size}"
            data.update({"maxResults": size, "startAt": start, "total": len(members), "isLast": last,
                         "values": [views.jira_user(state, state.users[a], base) for a in page]})  # fmt: skip
            return J(data)

    @site.post("/rest/api/3/group/user")
    async def jira_add_to_group(request: Request, caller: Caller) -> Response:
        body = await json_body(request, "jira", required=True)
        account_id = body.get("accountId") if isinstance(body, dict) else None
        with st().lock:
            state = jira_state()
            group = jira_group_param(state, request)
            jira_user_or_404(state, account_id)
            if not state.add_member(group.id, str(account_id)):
                raise jira_error(400, f"Cannot add user. User is already a member of '{group.name}'")
            base = base_url(request)
            data = {
                **views.jira_group(group, base),
                "users": {
                    "size": len(group.members),
                    "items": [],
                    "max-results": 50,
                    "start-index": 0,
                    "end-index": 0,
                },
                "expand": "users",
            }
            return J(data, 201)

    @site.delete("/rest/api/3/group/user")
    async def jira_remove_from_group(request: Request, caller: Caller) -> Response:
        with st().lock:
            state = jira_state()
            group = jira_group_param(state, request)
            account_id = request.query_params.get("accountId")
            jira_user_or_404(state, account_id)
            if not state.remove_member(group.id, str(account_id)):
                raise jira_error(400, f"Cannot remove user. User is not a member of '{group.name}'")
            return Response(status_code=200)

    @site.get("/rest/api/3/applicationrole")
    async def jira_app_roles(request: Request, caller: Caller) -> Response:
        with st().lock:
            return J(views.application_roles(jira_state(), base_url(request)))

    @site.get("/rest/api/3/applicationrole/{key}")
    async def jira_app_role(key: str, request: Request, caller: Caller) -> Response:
        with st().lock:
            for role in views.application_roles(jira_state(), base_url(request)):
                if role["key"] == key:
                    return J(role)
            raise jira_error(404, f"The application role '{key}' does not exist.")

    async def search_jql(request: Request, source: dict[str, Any]) -> Response:
        max_results = min(int_param(source.get("maxResults"), "maxResults", 50, "jira"), 5000)
        fields_raw = source.get("fields") or ["id"]
        if isinstance(fields_raw, str):
            fields_raw = fields_raw.split(",")
        fields = {f.strip() for f in fields_raw if f.strip()}
        token = source.get("nextPageToken")
        offset = 0
        if token:
            try:
                offset = int(base64.urlsafe_b64decode(str(token) + "==").decode().removeprefix("o:"))
            except (ValueError, binascii.Error, UnicodeDecodeError):
                raise jira_error(400, "The nextPageToken is invalid.") from None
        with st().lock:
            state = jira_state()
            try:
                matches = jql.run(state, str(source.get("jql") or ""))
            except jql.JqlError as exc:
                raise jira_error(400, str(exc)) from None
            page = matches[offset : offset + max_results]
            base = base_url(request)
            data: dict[str, Any] = {"issues": [views.jira_issue(state, r, fields, base) for r in page]}
            last = offset + max_results >= len(matches)
            if not last:
                data["nextPageToken"] = (
                    base64.urlsafe_b64encode(f"o:{offset + max_results}".encode()).decode().rstrip("=")
                )
            data["isLast"] = last
            return J(data)

    @site.get("/rest/api/3/search/jql")
    async def jira_search_get(request: Request, caller: Caller) -> Response:
        source = {k: request.query_params.get(k) for k in ("jql", "maxResults", "nextPageToken")}
        source["fields"] = ",".join(qlist(request, "fields"))
        return await search_jql(request, source)

    @site.post("/rest/api/3/search/jql")
    async def jira_search_post(request: Request, caller: Caller) -> Response:
        body = await json_body(request, "jira")
        return await search_jql(request, body if isinstance(body, dict) else {})

    @site.api_route("/rest/api/3/search", methods=["GET", "POST"])
    @site.api_route("/rest/api/2/search", methods=["GET", "POST"])
    async def jira_search_removed(request: Request, caller: Caller) -> Response:
        # CHANGE-2046: the classic search endpoint answers 410 Gone.
        return J(
            jira_body(
                "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API."
            ),
            410,
        )

    @site.get("/rest/api/3/issue/{key}/transitions")
    async def jira_get_transitions(key: str, request: Request, caller: Caller) -> Response:
        with st().lock:
            state = jira_state()
            issue = jira_issue_or_404(state, key)
            return J(views.jira_transitions(issue, base_url(request)))

    @site.post("/rest/api/3/issue/{key}/transitions")
    async def jira_do_transition(key: str, request: Request, caller: Caller) -> Response:
        body = await json_body(request, "jira", required=True)
        transition = body.get("transition") if isinstance(body, dict) else None
        transition_id = transition.get("id") if isinstance(transition, dict) else None
        if not transition_id:
            raise jira_error(400, "", errors={"transition": "Transition id is required."})
        comments = transition_comments(body)
        with st().lock:
            state = jira_state()
            jira_issue_or_404(state, key)
            try:
                state.transition(key, str(transition_id), customer=False)
            except SandboxError as exc:
                raise jira_error(400, exc.message) from None
            for text, public in comments:
                state.add_comment(key, caller.account_id, text, public)
            return Response(status_code=204)
