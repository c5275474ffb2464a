"""Jira Service Management REST (§6): service desks, request types, requests, comments, transitions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from atlassian_sandbox import views
from atlassian_sandbox.errors import J, jsm_error
from atlassian_sandbox.incoming import Caller, base_url, int_param, json_body, qlist
from atlassian_sandbox.model import JSM_TRANSITIONS, SandboxError
from atlassian_sandbox.runtime import Runtime
from atlassian_sandbox.state import OrgState


def jsm_paging(request: Request, default_limit: int) -> tuple[int, int]:
    start = int_param(request.query_params.get("start"), "start", 0, "jsm")
    limit = int_param(request.query_params.get("limit"), "limit", default_limit, "jsm")
    if start < 0 or limit < 1:
        raise jsm_error(400, "start must be >= 0 and limit >= 1")
    return start, min(limit, 100)


def find_desk(state: OrgState, desk_id: str) -> dict[str, str]:
    desk = next((d for d in state.service_desks if desk_id in (d["id"], d["projectKey"])), None)
    if desk is None:
        raise jsm_error(404, f"The service desk {desk_id} does not exist.", "sd.servicedesk.error.not.found")
    return desk


def jsm_request_or_404(state: OrgState, key: str) -> Any:
    try:
        return state.request(key)
    except SandboxError:
        raise jsm_error(404, f"Request {key} does not exist.", "sd.request.error.not.found") from None


def add_jsm_routes(site: APIRouter, rt: Runtime) -> None:
    def st() -> OrgState:
        return rt.state

    sd = "/rest/servicedeskapi"

    @site.get(sd + "/servicedesk")
    async def jsm_desks(request: Request, caller: Caller) -> Response:
        with st().lock:
            state = st()
            start, limit = jsm_paging(request, 100)
            base = base_url(request)
            values = [views.jsm_desk(d, base) for d in state.service_desks]
            return J(views.page_of(values, start, limit, f"{base}{sd}/servicedesk", {}))

    @site.get(sd + "/servicedesk/{desk_id}")
    async def jsm_desk(desk_id: str, request: Request, caller: Caller) -> Response:
        with st().lock:
            return J(views.jsm_desk(find_desk(st(), desk_id), base_url(request)))

    @site.get(sd + "/servicedesk/{desk_id}/requesttype")
    async def jsm_request_types(desk_id: str, request: Request, caller: Caller) -> Response:
        with st().lock:
            state = st()
            desk = find_desk(state, desk_id)
            start, limit = jsm_paging(request, 50)
            term = (request.query_params.get("searchQuery") or "").lower()
            base = base_url(request)
            values = [
                views.jsm_request_type(t, base)
                for t in state.request_types
                if t["serviceDeskId"] == desk["id"] and term in t["name"].lower()
            ]
            return J(views.page_of(values, start, limit, f"{base}{sd}/servicedesk/{desk_id}/requesttype", {}))

    @site.get(sd + "/servicedesk/{desk_id}/requesttype/{type_id}/field")
    async def jsm_request_type_fields(desk_id: str, type_id: str, caller: Caller) -> Response:
        with st().lock:
            find_desk(st(), desk_id)
            fields = [
                {
                    "fieldId": field_id,
                    "name": name,
                    "description": "",
                    "required": field_id == "summary",
                    "validValues": [],
                    "jiraSchema": {"type": "string", "system": field_id},
                    "visible": True,
                }
                for field_id, name in (("summary", "Summary"), ("description", "Description"))
            ]
            return J(
                {"requestTypeFields": fields, "canRaiseOnBehalfOf": True, "canAddRequestParticipants": True}
            )

    @site.post(sd + "/request")
    async def jsm_create_request(request: Request, caller: Caller) -> Response:
        body = await json_body(request, "jsm", required=True)
        if not isinstance(body, dict):
            raise jsm_error(400, "The request body must be a JSON object")
        fields = body.get("requestFieldValues") or {}
        summary = str(fields.get("summary") or "").strip()
        if not body.get("serviceDeskId") or not body.get("requestTypeId"):
            raise jsm_error(400, "serviceDeskId and requestTypeId are required")
        if not summary:
            raise jsm_error(400, "Summary: Summary is required.", "sd.request.create.error.field.required")
        with st().lock:
            state = st()
            find_desk(state, str(body["serviceDeskId"]))
            reporter = caller
            on_behalf = body.get("raiseOnBehalfOf")
            if on_behalf:
                found = state.users.get(str(on_behalf)) or state.user_by_email(str(on_behalf))
                if found is None:
                    raise jsm_error(
                        400,
                        f"The user '{on_behalf}' does not exist.",
                        "sd.request.create.error.raiseonbehalfof",
                    )
                reporter = found
            created = state.create_request(
                str(body["serviceDeskId"]), str(body["requestTypeId"]), reporter.account_id, summary,
                str(fields.get("description") or ""), channel="api",
            )  # fmt: skip
            created.participants = [str(p) for p in body.get("requestParticipants") or []]
            return J(views.jsm_request(state, created, base_url(request), set()), 201)

    @site.get(sd + "/request")
    async def jsm_list_requests(request: Request, caller: Caller) -> Response:
        with st().lock:
            state = st()
            start, limit = jsm_paging(request, 50)
            params = {k: v for k, v in request.query_params.items() if k not in ("start", "limit")}
            desk_id = params.get("serviceDeskId")
            type_id = params.get("requestTypeId")
            status = params.get("requestStatus", "ALL_REQUESTS")
            ownership = params.get("requestOwnership")
            term = (params.get("searchTerm") or "").lower()
            expand = {e for raw in qlist(request, "expand") for e in raw.split(",")}
            values = []
            for key in state.request_order:
                item = state.requests[key]
                # GET /request is scoped to the caller, not a queue (§6 gotchas).
                if ownership == "ALL_REQUESTS":
                    pass
                elif ownership == "OWNED_REQUESTS":
                    if item.reporter != caller.account_id:
                        continue
                elif ownership == "PARTICIPATED_REQUESTS":
                    if caller.account_id not in item.participants:
                        continue
                elif item.reporter != caller.account_id and caller.account_id not in item.participants:
                    continue
                if desk_id and item.service_desk_id != desk_id:
                    continue
                if type_id and item.request_type_id != type_id:
                    continue
                if status == "OPEN_REQUESTS" and item.category == "DONE":
                    continue
                if status == "CLOSED_REQUESTS" and item.category != "DONE":
                    continue
                if term and term not in item.summary.lower():
                    continue
                values.append(item)
            base = base_url(request)
            rendered = [views.jsm_request(state, r, base, expand) for r in values[start : start + limit]]
            page = views.page_of(values, start, limit, f"{base}{sd}/request", params)
            page["values"] = rendered
            return J(page)

    @site.get(sd + "/request/{key}")
    async def jsm_get_request(key: str, request: Request, caller: Caller) -> Response:
        with st().lock:
            state = st()
            item = jsm_request_or_404(state, key)
            expand = {e for raw in qlist(request, "expand") for e in raw.split(",")}
            return J(views.jsm_request(state, item, base_url(request), expand))

    @site.get(sd + "/request/{key}/status")
    async def jsm_request_status(key: str, request: Request, caller: Caller) -> Response:
        with st().lock:
            state = st()
            item = jsm_request_or_404(state, key)
            start, limit = jsm_paging(request, 50)
            values = [views.jsm_status(s, t) for s, t in reversed(item.status_history)]
            return J(views.page_of(values, start, limit, f"{base_url(request)}{sd}/request/{key}/status", {}))

    @site.get(sd + "/request/{key}/comment")
    async def jsm_comments(key: str, request: Request, caller: Caller) -> Response:
        with st().lock:
            state = st()
            item = jsm_request_or_404(state, key)
            start, limit = jsm_paging(request, 50)
            public = request.query_params.get("public", "true").lower() != "false"
            internal = request.query_params.get("internal", "true").lower() != "false"
            chosen = [c for c in item.comments if (c.public and public) or (not c.public and internal)]
            base = base_url(request)
            values = [views.jsm_comment(state, item, c, base) for c in chosen]
            return J(views.page_of(values, start, limit, f"{base}{sd}/request/{key}/comment", {}))

    @site.post(sd + "/request/{key}/comment")
    async def jsm_add_comment(key: str, request: Request, caller: Caller) -> Response:
        body = await json_body(request, "jsm", required=True)
        text = str(body.get("body") or "") if isinstance(body, dict) else ""
        if not text.strip():
            raise jsm_error(400, "The comment body is required.", "sd.comment.error.body.required")
        with st().lock:
            state = st()
            item = jsm_request_or_404(state, key)
            comment = state.add_comment(item.key, caller.account_id, text, bool(body.get("public", True)))
            return J(views.jsm_comment(state, item, comment, base_url(request)), 201)

    @site.get(sd + "/request/{key}/transition")
    async def jsm_transitions(key: str, request: Request, caller: Caller) -> Response:
        with st().lock:
            state = st()
            item = jsm_request_or_404(state, key)
            start, limit = jsm_paging(request, 50)
            values = [{"id": t, "name": n} for t, n, _ in JSM_TRANSITIONS[item.category]]
            return J(
                views.page_of(values, start, limit, f"{base_url(request)}{sd}/request/{key}/transition", {})
            )

    @site.post(sd + "/request/{key}/transition")
    async def jsm_do_transition(key: str, request: Request, caller: Caller) -> Response:
        body = await json_body(request, "jsm", required=True)
        transition_id = body.get("id") if isinstance(body, dict) else None
        if not transition_id:
            raise jsm_error(400, "The transition id is required.")
        with st().lock:
            state = st()
            item = jsm_request_or_404(state, key)
            state.transition(item.key, str(transition_id), customer=True)
            extra = body.get("additionalComment")
            if isinstance(extra, dict) and extra.get("body"):
                state.add_comment(item.key, caller.account_id, str(extra["body"]), True)
            return Response(status_code=204)
